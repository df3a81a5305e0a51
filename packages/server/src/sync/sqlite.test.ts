import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { syncContract } from '@micro/sdk/testing';
import { SqliteLocks, SqliteSync } from './sqlite.js';
import { syncCoreService } from './index.js';
import { silent, tempDir } from '../config/testing.js';
import type { CoreContext } from '../core.js';

const root = tempDir('micro-sync-sqlite-');
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const newPath = () => join(root, `sync-${files++}.db`);

syncContract('sqlite', async () => {
  const impl = new SqliteSync({ path: newPath() });
  return { impl, close: () => impl.close() };
});

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('locks in SQLite', () => {
  test('fencing tokens never go back: not after a release, a passed lease, or a restart', async () => {
    const path = newPath();
    let last = 0;
    for (let round = 0; round < 3; round++) {
      const s = new SqliteSync({ path });
      const a = await s.lock('job', { namespace: 'ns', ttl: 20 });
      assert.ok(a.token > last, `round ${round}: ${a.token} after ${last}`);
      await delay(60); // its lease passes; it is never released
      const b = await s.lock('job', { namespace: 'ns' });
      assert.ok(b.token > a.token);
      await b.release(); // the row goes; the counter stays
      last = b.token;
      await s.close();
    }
    const db = new Database(path, { readonly: true });
    assert.deepEqual(db.prepare('SELECT count(*) AS n FROM locks').get(), { n: 0 }, 'released locks leave no row');
    assert.deepEqual(db.prepare('SELECT fence FROM fences WHERE namespace = ?').get('ns'), { fence: last });
    db.close();
  });

  test('a lock held when the server stops is still held after it starts again, until its lease passes', async () => {
    const path = newPath();
    const a = new SqliteSync({ path });
    const held = await a.lock('kept', { namespace: 'ns', ttl: 60_000, owner: 'me' });
    await a.close();
    const b = new SqliteSync({ path });
    const seen = await b.inspect('kept', { namespace: 'ns' });
    assert.deepEqual(seen, { namespace: 'ns', name: 'kept', token: held.token, owner: 'me', expiresAt: held.expiresAt });
    await assert.rejects(b.lock('kept', { namespace: 'ns' }), /held by me/);
    await b.close();
  });

  test('passed leases are swept from the file a minute after they pass', async (t) => {
    const path = newPath();
    const engine = new SqliteLocks({ path });
    await engine.acquire('old', { namespace: 'ns', ttl: 10 });
    const start = Date.now();
    t.mock.timers.enable({ apis: ['Date'], now: start + 61_000 });
    await engine.acquire('trigger', { namespace: 'ns' });
    t.mock.timers.reset();
    const db = new Database(path, { readonly: true });
    assert.deepEqual(db.prepare('SELECT name FROM locks ORDER BY name').all(), [{ name: 'trigger' }]);
    db.close();
    await engine.close();
  });

  test('a file of a newer schema is refused', async () => {
    const path = newPath();
    await new SqliteSync({ path }).close();
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = '7' WHERE key = 'schema_version'").run();
    db.close();
    assert.throws(() => new SqliteSync({ path }), /sync schema version 7, newer than this micro server knows \(1\)/);
  });

  test('a granted lock is durable: after a kill -9 the next token is larger than every token handed out', async () => {
    const path = newPath();
    const module = pathToFileURL(join(import.meta.dirname, 'sqlite.js')).href;
    const script = `
      const { SqliteLocks } = await import(${JSON.stringify(module)});
      const engine = new SqliteLocks({ path: ${JSON.stringify(path)} });
      for (let i = 0; ; i++) {
        const lease = await engine.acquire('l' + (i % 5), { namespace: 'ns', ttl: 10, wait: 5000 });
        process.stdout.write('token ' + lease.token + '\\n');
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let max = 0;
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        for (const m of d.toString().matchAll(/token (\d+)/g)) max = Math.max(max, Number(m[1]));
        if (max >= 50) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      void exited.then((code) => (max >= 50 ? resolve() : reject(new Error(`the child exited (${code}) early: ${err}`))));
    });
    await exited;
    const engine = new SqliteLocks({ path });
    const next = await engine.acquire('after', { namespace: 'ns' });
    assert.ok(next.token > max, `${next.token} after ${max}`);
    await engine.close();
  });

  test('the factory opens <dataDir>/sync.db', async () => {
    const home = tempDir('micro-sync-factory-');
    const cs = await syncCoreService({ home, dataDir: home, logger: silent } as unknown as CoreContext);
    assert.equal(cs.def.name, 'sync');
    assert.ok(existsSync(join(home, 'sync.db')));
    assert.equal(statSync(join(home, 'sync.db')).mode & 0o777, 0o600);
    await cs.stop?.();
    rmSync(home, { recursive: true, force: true });
  });
});
