import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { micro, startServer, stopProcess, tempDir, type RunningServer } from '../testing.js';

/**
 * `micro store` as people use it: the `micro` command in its own process against a real
 * `micro server` (records in SQLite under MICRO_HOME/data), including a kill -9 of the
 * server right after a write was acknowledged.
 */
describe('micro store against a running server', () => {
  let home: string;
  let server: RunningServer;

  before(async () => {
    home = tempDir('micro-cli-store-e2e-');
    server = await startServer(home);
  });

  after(async () => {
    if (server) await stopProcess(server.proc);
    rmSync(home, { recursive: true, force: true });
  });

  const ok = async (args: string[], input?: string) => {
    const r = await micro(home, ['store', ...args], { input });
    assert.equal(r.code, 0, `micro store ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  test('write, read, list, delete, databases and tables', async () => {
    assert.match(await ok(['write', 'user:1', '{"name":"Alice"}', '--metadata', 'owner=alice', '--ttl', '1h']), /wrote user:1 in micro\/default/);
    await ok(['write', 'user:2', 'Bob']);
    await ok(['write', 'doc', '-', '--table', 'docs'], '{"from":"stdin"}');
    assert.deepEqual(JSON.parse(await ok(['read', 'user:1'])), { name: 'Alice' });
    assert.equal(await ok(['read', 'user:2']), 'Bob\n');
    const records = JSON.parse(await ok(['read', 'user:', '--prefix', '-o', 'json'])) as { key: string; metadata?: object; expiry?: number }[];
    assert.deepEqual(records.map((r) => r.key), ['user:1', 'user:2']);
    assert.deepEqual(records[0]?.metadata, { owner: 'alice' });
    assert.ok((records[0]?.expiry ?? 0) > Date.now());
    assert.equal(await ok(['list', '--prefix', 'user:', '--order', 'desc']), 'user:2\nuser:1\n');
    assert.deepEqual(JSON.parse(await ok(['tables', '-o', 'json'])), ['default', 'docs']);
    assert.equal(await ok(['databases']), 'micro\n');
    assert.deepEqual(JSON.parse(await ok(['read', 'doc', '--table', 'docs'])), { from: 'stdin' });
    await ok(['delete', 'user:2']);
    assert.equal(await ok(['list']), 'user:1\n');
    const missing = await micro(home, ['store', 'read', 'user:2']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no record at "user:2"/);
    const bad = await micro(home, ['store', 'write', 'k', 'v', '--database', '../x']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /database/);
  });

  test('an acknowledged write survives kill -9 of the server', async () => {
    await ok(['write', 'durable', '"kept"']);
    await stopProcess(server.proc, 'SIGKILL');
    server = await startServer(home);
    assert.equal(await ok(['read', 'durable']), 'kept\n');
  });
});
