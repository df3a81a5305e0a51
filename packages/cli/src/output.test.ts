import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Printer, formatDuration, formatTable, parseSince, sanitize } from './output.js';

test('tables align columns, with no trailing blanks', () => {
  const out = formatTable(
    ['NAME', 'VERSION', 'NODES'],
    [
      ['helloworld', '1.0.0', '2'],
      ['a', 'latest', '10'],
    ],
  );
  assert.equal(out, 'NAME        VERSION  NODES\nhelloworld  1.0.0    2\na           latest   10\n');
  assert.equal(formatTable(['A', 'B'], [['x', '']]), 'A  B\nx\n');
});

test('cells are one line, without terminal escapes, and long ones are cut', () => {
  const out = formatTable(['NAME', 'LAST ERROR'], [['svc', 'boom\n  at line 3\u001b[31m red']]);
  assert.equal(out, 'NAME  LAST ERROR\nsvc   boom at line 3[31m red\n');
  assert.equal(sanitize('a\tb\r\nc'), 'a b c');
  const long = formatTable(['X'], [['y'.repeat(100)]], 10);
  assert.equal(long, `X\n${'y'.repeat(9)}…\n`);
});

test('json output is compact and goes to stdout; messages for people go to stderr then', () => {
  const out: string[] = [];
  const err: string[] = [];
  const p = new Printer('json', { write: (s: string) => out.push(s) }, { write: (s: string) => err.push(s) });
  p.table(['A'], [['1']], [{ a: 1 }]);
  p.value({ b: [1, 2] });
  p.info('done');
  assert.deepEqual(out, ['[{"a":1}]\n', '{"b":[1,2]}\n']);
  assert.deepEqual(err, ['done\n']);
  const text: string[] = [];
  const t = new Printer('text', { write: (s: string) => text.push(s) });
  t.value({ b: 1 });
  assert.deepEqual(text, ['{\n  "b": 1\n}\n']);
});

test('durations for people', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(59_999), '59s');
  assert.equal(formatDuration(303_000), '5m3s');
  assert.equal(formatDuration(2 * 3_600_000 + 10 * 60_000), '2h10m');
  assert.equal(formatDuration(76 * 3_600_000), '3d4h');
  assert.equal(formatDuration(-1), '-');
});

test('--since takes an ISO time or a duration back from now', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  assert.equal(parseSince('10m', now), '2024-05-01T11:50:00.000Z');
  assert.equal(parseSince('1d', now), '2024-04-30T12:00:00.000Z');
  assert.equal(parseSince('2024-05-01T10:00:00Z', now), '2024-05-01T10:00:00.000Z');
  for (const bad of ['yesterday', '1', '10 m', '-5m', '2024-13-45']) assert.throws(() => parseSince(bad, now), /--since must be/);
});
