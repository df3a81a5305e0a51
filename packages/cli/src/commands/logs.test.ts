import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Home } from '../config.js';
import { CliContext } from '../context.js';
import { main } from '../main.js';
import { UsageError } from '../output.js';
import { logsRequest } from './runtime.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const NOW = Date.parse('2026-01-01T12:00:00Z');

test('micro logs flags become a runtime.Logs request', () => {
  assert.deepEqual(logsRequest('shop', { level: 'warn', trace: TRACE, since: '10m', follow: true, lines: '20' }, NOW), {
    name: 'shop',
    namespace: undefined,
    lines: 20,
    since: '2026-01-01T11:50:00.000Z',
    follow: true,
    level: 'warn',
    traceId: TRACE,
  });
  // upper case is forgiven (people paste trace ids from other tools), the wire gets lower case
  const loud = logsRequest(undefined, { level: 'ERROR', trace: TRACE.toUpperCase(), namespace: 'b' }, NOW);
  assert.deepEqual([loud.name, loud.namespace, loud.level, loud.traceId, loud.follow], [undefined, 'b', 'error', TRACE, false]);
  assert.equal(logsRequest('shop', { since: '2025-12-31T00:00:00Z' }, NOW).since, '2025-12-31T00:00:00.000Z');
});

test('micro logs refuses bad flags before calling anyone, naming the flag', () => {
  const refused = (opts: Parameters<typeof logsRequest>[1]) => {
    try {
      logsRequest('shop', opts, NOW);
    } catch (err) {
      assert.ok(err instanceof UsageError, String(err));
      return err.message;
    }
    return 'accepted';
  };
  assert.match(refused({ level: 'loud' }), /^--level must be one of trace, debug, info, warn, error, fatal, not "loud"$/);
  assert.match(refused({ level: 'x'.repeat(10_000) }), /^--level .{0,120}$/);
  assert.match(refused({ trace: 'abc' }), /^--trace must be a trace id of 32 hex digits/);
  assert.match(refused({ trace: '0'.repeat(32) }), /^--trace/);
  assert.match(refused({ trace: `${TRACE} ; rm -rf /` }), /^--trace/);
  assert.match(refused({ since: '999999999d' }), /^--since .*100 years/);
  assert.match(refused({ since: '1e308d' }), /^--since must be/);
  assert.match(refused({ since: 'yesterday' }), /^--since must be an ISO time/);
  assert.match(refused({ lines: '-5' }), /--lines/);
});

test('micro logs with a bad flag exits 1 with the reason, no server needed', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'micro-cli-logs-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const err: string[] = [];
  const ctx = new CliContext(new Home(home), { stdout: { write: () => true }, stderr: { write: (s: string) => err.push(s) }, stdin: process.stdin });
  for (const [args, reason] of [
    [['logs', 'shop', '--level', 'verbose'], /--level must be one of/],
    [['logs', '--trace', 'nope', '-f'], /--trace must be a trace id/],
    [['logs', 'shop', '--since', '9999999999999d'], /--since .*100 years/],
  ] as const) {
    err.length = 0;
    assert.equal(await main([...args], ctx), 1, args.join(' '));
    assert.match(err.join(''), reason);
  }
  // good flags get as far as looking for the server
  err.length = 0;
  assert.equal(await main(['logs', 'shop', '--level', 'warn', '--trace', TRACE, '--since', '10m', '-f'], ctx), 1);
  assert.match(err.join(''), /no micro server is running/);
});
