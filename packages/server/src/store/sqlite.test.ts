import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { createLogger, MemoryBroker, MemoryRegistry, type MicroError } from '@micro/sdk';
import { readBlob } from '@micro/sdk';
import { blobStoreContract, storeContract } from '@micro/sdk/testing';
import { SqliteStore, STORE_SCHEMA_VERSION } from './sqlite.js';
import { FileBlobStore } from './blobs.js';
import { storeCoreService } from './index.js';
import type { CoreContext } from '../core.js';

const root = mkdtempSync(join(tmpdir(), 'micro-store-sqlite-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = () => {
  const dir = join(root, `d${dirs++}`);
  mkdirSync(join(dir, 'blobs'), { recursive: true });
  return dir;
};

storeContract('sqlite', async () => {
  const impl = new SqliteStore({ path: join(newDir(), 'store.db') });
  return { impl, close: () => impl.close() };
});

blobStoreContract('files indexed in sqlite', async () => {
  const dir = newDir();
  const store = new SqliteStore({ path: join(dir, 'store.db') });
  const impl = new FileBlobStore({ db: store.db, dir: join(dir, 'blobs'), maxSize: 1024 * 1024 });
  return {
    impl,
    maxSize: 1024 * 1024,
    close: async () => {
      await impl.close();
      await store.close();
    },
  };
});

describe('store in SQLite', () => {
  test('what was written is there after a reopen; the schema has its version', async () => {
    const path = join(newDir(), 'store.db');
    const a = new SqliteStore({ path });
    await a.write({ key: 'k', value: { n: 1 }, metadata: { m: 'x' } }, { namespace: 'ns', database: 'db', table: 't', ttl: 3600 });
    await a.close();
    const b = new SqliteStore({ path });
    const [r] = await b.read('k', { namespace: 'ns', database: 'db', table: 't' });
    assert.deepEqual({ ...r, expiry: 0 }, { key: 'k', value: { n: 1 }, metadata: { m: 'x' }, expiry: 0 });
    assert.equal(b.db.pragma('user_version', { simple: true }), STORE_SCHEMA_VERSION);
    assert.equal(b.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(b.db.pragma('synchronous', { simple: true }), 2, 'synchronous = FULL');
    await b.close();
    await assert.rejects(b.read('k'), (err: MicroError) => err.code === 503);
  });

  test('a database of a newer schema is refused, not misread', () => {
    const path = join(newDir(), 'store.db');
    const db = new Database(path);
    db.pragma(`user_version = ${STORE_SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(() => new SqliteStore({ path }), /newer than this micro server/);
  });

  test('expired rows are invisible at once and purged in batches', async () => {
    let now = 1_000_000;
    const s = new SqliteStore({ path: join(newDir(), 'store.db'), now: () => now, purgeInterval: 0 });
    const insert = s.db.transaction(() => {
      for (let i = 0; i < 2500; i++) void s.write({ key: `e${i}`, value: i }, { ttl: 1 });
    });
    insert();
    await s.write({ key: 'stays', value: 1 });
    assert.equal((await s.list({ limit: 1000 })).length, 1000);
    now += 1000;
    assert.deepEqual(await s.list(), ['stays']);
    const count = () => (s.db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n;
    assert.equal(count(), 2501, 'not purged yet');
    assert.equal(s.purge(), 2500);
    assert.equal(count(), 1);
    assert.equal(s.purge(), 0);
    await s.close();
  });

  test('prefix, suffix and window scans use the indexes, not a scan of the table', async () => {
    const s = new SqliteStore({ path: join(newDir(), 'store.db') });
    const plan = (sql: string) => (s.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...Array.from(sql.matchAll(/\?/g), () => 'x')) as { detail: string }[]).map((r) => r.detail).join('; ');
    assert.match(plan('SELECT key FROM records WHERE namespace = ? AND "database" = ? AND tbl = ? AND key >= ? AND key < ? ORDER BY key'), /SEARCH records USING (COVERING )?INDEX sqlite_autoindex_records_1 \(namespace=\? AND database=\? AND tbl=\? AND key>\? AND key<\?\)/);
    assert.match(plan('SELECT key FROM records WHERE namespace = ? AND "database" = ? AND tbl = ? AND rkey >= ? AND rkey < ? ORDER BY key'), /USING INDEX records_suffix/);
    await s.close();
  });

  test('an acknowledged write survives kill -9 of the process that made it', async () => {
    const dir = newDir();
    const path = join(dir, 'store.db');
    const sqliteUrl = pathToFileURL(fileURLToPath(new URL('./sqlite.js', import.meta.url))).href;
    const script = join(dir, 'writer.mjs');
    writeFileSync(
      script,
      `import { SqliteStore } from ${JSON.stringify(sqliteUrl)};
       const s = new SqliteStore({ path: ${JSON.stringify(path)} });
       for (let i = 0; ; i++) {
         await s.write({ key: 'k' + String(i).padStart(6, '0'), value: { i, pad: 'x'.repeat(500) } });
         process.stdout.write(i + '\\n');
       }`,
    );
    // the script imports the SDK through the package: run it from where node_modules is
    const child = spawn(process.execPath, [script], { cwd: fileURLToPath(new URL('.', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] });
    let acked = -1;
    await new Promise<void>((resolve, reject) => {
      let buffer = '';
      child.stdout.on('data', (d: Buffer) => {
        buffer += d.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) acked = Number(line);
        if (acked >= 200) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.once('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`writer exited with ${code}`))));
    });
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    const s = new SqliteStore({ path });
    const keys = new Set(await s.list({ limit: 1000 }));
    for (let i = 0; i <= acked; i++) assert.ok(keys.has(`k${String(i).padStart(6, '0')}`), `acknowledged write ${i} of ${acked} is there`);
    await s.close();
  });
});

describe('blobs as files', () => {
  test('files are private, and files no row points to are removed when the engine opens', async () => {
    const dir = newDir();
    const store = new SqliteStore({ path: join(dir, 'store.db') });
    const blobsDir = join(dir, 'blobs');
    let blobs = new FileBlobStore({ db: store.db, dir: blobsDir });
    await blobs.put('a', Buffer.from('kept'));
    const [file] = readdirSync(blobsDir);
    assert.equal(statSync(join(blobsDir, file as string)).mode & 0o777, 0o600);
    // a put that died before its commit, and a delete cut short after its commit
    writeFileSync(join(blobsDir, 'deadbeef'), 'half a blob');
    await blobs.close();
    blobs = new FileBlobStore({ db: store.db, dir: blobsDir });
    assert.deepEqual(readdirSync(blobsDir), [file]);
    assert.equal((await readBlob(blobs.get('a'))).toString(), 'kept');
    await blobs.put('a', Buffer.from('replaced'));
    await blobs.put('b', Buffer.from('other'));
    assert.equal(readdirSync(blobsDir).length, 2, 'the replaced file is gone');
    await blobs.delete('a');
    await blobs.delete('b');
    assert.deepEqual(readdirSync(blobsDir), []);
    await blobs.close();
    await store.close();
  });

  test('a put refused half way leaves no file behind', async () => {
    const dir = newDir();
    const store = new SqliteStore({ path: join(dir, 'store.db') });
    const blobs = new FileBlobStore({ db: store.db, dir: join(dir, 'blobs'), maxSize: 100_000 });
    await assert.rejects(blobs.put('big', [Buffer.alloc(60_000), Buffer.alloc(60_000)]), (err: MicroError) => err.code === 413);
    assert.deepEqual(readdirSync(join(dir, 'blobs')), []);
    await blobs.close();
    await store.close();
  });
});

describe('the store core service factory', () => {
  const context = (dataDir: string): CoreContext =>
    ({
      home: dataDir,
      dataDir,
      logger: createLogger({ level: 'silent' }),
      registry: new MemoryRegistry(),
      broker: new MemoryBroker(),
    }) as unknown as CoreContext;

  test('opens store.db and the blob folder under the data folder, and closes them on stop', async () => {
    const dataDir = newDir();
    rmSync(join(dataDir, 'blobs'), { recursive: true });
    const cs = await storeCoreService({ blobMaxSize: 10 })(context(dataDir));
    assert.equal(cs.def.name, 'store');
    assert.ok(existsSync(join(dataDir, 'store.db')));
    assert.equal(statSync(join(dataDir, 'blobs')).mode & 0o777, 0o700);
    await cs.stop?.();
  });

  test('a bad MICRO_STORE_BLOB_MAX_SIZE stops the start with a clear message', async () => {
    const saved = process.env.MICRO_STORE_BLOB_MAX_SIZE;
    process.env.MICRO_STORE_BLOB_MAX_SIZE = 'lots';
    try {
      await assert.rejects(async () => storeCoreService()(context(newDir())), /MICRO_STORE_BLOB_MAX_SIZE/);
    } finally {
      if (saved === undefined) delete process.env.MICRO_STORE_BLOB_MAX_SIZE;
      else process.env.MICRO_STORE_BLOB_MAX_SIZE = saved;
    }
  });
});
