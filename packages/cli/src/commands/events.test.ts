import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { Home } from '../config.js';
import { CliContext } from '../context.js';
import { CliError, formatTable } from '../output.js';
import {
  GROUP_HEADERS,
  TOPIC_HEADERS,
  eventLine,
  formatSize,
  groupRow,
  parseCount,
  parseDuration,
  parseMetadata,
  parsePayload,
  parseSize,
  parseStartOffset,
  parseTime,
  registerEventsCommands,
  retentionText,
  safeJson,
  topicRow,
} from './events.js';

test('payloads are JSON; text that is not says how to quote it', () => {
  assert.deepEqual(parsePayload('{"id":1,"tags":["a"]}'), { id: 1, tags: ['a'] });
  assert.equal(parsePayload('"hello"'), 'hello');
  assert.equal(parsePayload('42'), 42);
  assert.equal(parsePayload('null'), null);
  assert.throws(() => parsePayload('hello'), /the payload must be JSON .*quote text as a JSON string, e\.g\. '"hello"'/);
  assert.throws(() => parsePayload('{"a":'), /must be JSON/);
});

test('--metadata pairs', () => {
  assert.deepEqual(parseMetadata(['a=1', 'b=x=y', 'empty=']), { a: '1', b: 'x=y', empty: '' });
  assert.equal(parseMetadata(undefined), undefined);
  assert.throws(() => parseMetadata(['novalue']), /--metadata takes key=value/);
  assert.throws(() => parseMetadata(['=v']), /--metadata takes key=value/);
  const hostile = parseMetadata(['__proto__=x']);
  assert.equal(Object.keys(hostile ?? {}).length, 1);
  assert.equal(({} as Record<string, unknown>).x, undefined);
});

test('--offset: earliest, latest, an offset, a time or a duration back', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  assert.equal(parseStartOffset('earliest'), 'earliest');
  assert.equal(parseStartOffset('latest'), 'latest');
  assert.deepEqual(parseStartOffset('42'), { offset: 42 });
  assert.deepEqual(parseStartOffset('2024-05-01T10:00:00Z'), { time: Date.parse('2024-05-01T10:00:00Z') });
  assert.deepEqual(parseStartOffset('10m', now), { time: now - 600_000 });
  assert.throws(() => parseStartOffset('0'), /--offset must be a whole number from 1/);
  assert.throws(() => parseStartOffset('first'), /--offset must be earliest, latest, an offset/);
  assert.throws(() => parseStartOffset('\u001b[31mred'), (err: Error) => !err.message.includes('\u001b'));
  assert.equal(parseTime('--from', '1h', now), now - 3_600_000);
  assert.throws(() => parseTime('--from', 'yesterday'), /--from must be a time/);
});

test('durations, sizes and counts', () => {
  assert.equal(parseDuration('--ack-wait', '30s'), 30_000);
  assert.equal(parseDuration('--ack-wait', '500ms'), 500);
  assert.equal(parseDuration('--ack-wait', '1.5m'), 90_000);
  assert.equal(parseDuration('--ack-wait', '2500'), 2500);
  assert.equal(parseDuration('--max-age', '7d', true), 7 * 86_400_000);
  assert.equal(parseDuration('--max-age', '0', true), 0);
  assert.throws(() => parseDuration('--ack-wait', '0'), /--ack-wait must be a duration/);
  assert.throws(() => parseDuration('--ack-wait', 'soon'), /--ack-wait must be a duration like 500ms/);
  assert.equal(parseSize('--max-bytes', '512MB'), 512 * 1024 ** 2);
  assert.equal(parseSize('--max-bytes', '1.5 GiB'), 1.5 * 1024 ** 3);
  assert.equal(parseSize('--max-bytes', '0'), 0);
  assert.throws(() => parseSize('--max-bytes', '-1'), /--max-bytes must be a size/);
  assert.throws(() => parseSize('--max-bytes', '10 parsecs'), /--max-bytes must be a size/);
  assert.equal(parseCount('-n', '3', 1, 10), 3);
  assert.throws(() => parseCount('--count', '0', 1, 10), /--count must be a whole number from 1 to 10/);
  assert.throws(() => parseCount('--count', '2.5', 1, 10), /--count/);
});

test('rows and lines for people', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  const row = topicRow({ name: 'orders', count: 3, bytes: 2048, first: 5, last: 7, lastTimestamp: now - 65_000, retention: { maxEvents: 100 } }, now);
  assert.deepEqual(row, ['orders', '3', '2.0 KiB', '5', '7', '1m5s ago', 'max 100 events']);
  assert.deepEqual(topicRow({ name: 'empty', count: 0, bytes: 0, first: 1, last: 0 }, now), ['empty', '0', '0 B', '-', '0', '-', 'default']);
  assert.match(formatTable(TOPIC_HEADERS, [row]), /^TOPIC +EVENTS +SIZE +FIRST +LAST +LAST EVENT +RETENTION\n/);
  assert.deepEqual(groupRow({ name: 'billing', committed: 4, pending: 3, inflight: 1, members: 2 }), ['billing', '4', '3', '1', '2']);
  assert.match(formatTable(GROUP_HEADERS, [groupRow({ name: 'g', committed: 0, pending: 0, inflight: 0, members: 0 })]), /^GROUP +COMMITTED +PENDING +IN FLIGHT +CONSUMERS\n/);
  assert.equal(retentionText(undefined), "the server's defaults");
  assert.equal(retentionText({ maxAge: 7 * 86_400_000, maxEvents: 0, maxBytes: 1024 ** 3 }), 'max age 7d0h, any count, max 1.0 GiB');
  assert.equal(formatSize(1536 * 1024 * 1024), '1.5 GiB');
  const line = eventLine({ id: 'x', topic: 't', offset: 9, timestamp: now, payload: { text: 'a\u001b[2Jb\nc\u009b1m\u2028' }, metadata: { k: 'v\u0007' } }, 2);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/, 'no terminal escapes or line breaks');
  assert.equal(line, '#9  2024-05-01T12:00:00.000Z  {"text":"a\\u001b[2Jb\\nc\\u009b1m\\u2028"}  {"k":"v\\u0007"}  (attempt 2)');
  assert.deepEqual(JSON.parse(safeJson({ t: '\u009b\u2028' })), { t: '\u009b\u2028' }, 'still JSON');
});

/** Runs `micro events ...` as main would, without a server (and without main's other commands). */
async function run(args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const home = mkdtempSync(join(tmpdir(), 'micro-cli-events-'));
  const out: string[] = [];
  const err: string[] = [];
  const input = Object.assign(Readable.from([stdin]), { isTTY: false });
  const ctx = new CliContext(new Home(home), { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, stdin: input });
  const program = new Command('micro').exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => err.push(s) });
  registerEventsCommands(program, ctx);
  let code = 0;
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) code = e.exitCode;
    else if (e instanceof CliError) {
      err.push(`${e.message}\n`);
      code = e.exitCode;
    } else throw e;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  return { code, out: out.join(''), err: err.join('') };
}

test('mistakes in how a command is called are found before any server is asked', async () => {
  const cases: Array<[string[], RegExp, string?]> = [
    [['events', 'publish', 'orders', 'not json'], /the payload must be JSON/],
    [['events', 'publish', 'orders', '1', '--metadata', 'bad'], /--metadata takes key=value/],
    [['events', 'publish', 'orders'], /no payload: give it as JSON/, '  '],
    [['events', 'publish', 'orders', '-'], /the payload must be JSON/, 'plain text'],
    [['events', 'consume', 'orders'], /required option '-g, --group <group>' not specified/],
    [['events', 'consume', 'orders', '-g', 'g', '--offset', 'soon'], /--offset must be earliest, latest/],
    [['events', 'consume', 'orders', '-g', 'g', '-n', '0'], /--count must be a whole number from 1/],
    [['events', 'consume', 'orders', '-g', 'g', '--ack-wait', 'forever'], /--ack-wait must be a duration/],
    [['events', 'read', 'orders', '--offset', '1', '--from', '1h'], /give --offset or --from, not both/],
    [['events', 'read', 'orders', '--limit', '5000'], /--limit must be a whole number from 1 to 1000/],
    [['events', 'retention', 'orders', '--reset', '--max-events', '5'], /give --reset or limits, not both/],
    [['events', 'retention', 'orders', '--max-bytes', 'lots'], /--max-bytes must be a size/],
    [['events', 'topics', '-o', 'yaml'], /--output must be json or text/],
  ];
  for (const [args, message, stdin] of cases) {
    const r = await run(args, stdin);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, message, args.join(' '));
  }
  // a well-formed command gets as far as looking for the server
  const r = await run(['events', 'publish', 'orders', '{"id":1}']);
  assert.equal(r.code, 1);
  assert.match(r.err, /no micro server is running for this MICRO_HOME — start one with `micro server`/);
});
