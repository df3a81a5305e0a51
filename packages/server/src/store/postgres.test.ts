import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { MemoryStore, MicroError, RemoteBlobStore, RemoteStore, model, readBlob, z, type ModelQuery as Query } from '@micro/sdk';
import { blobStoreContract, engineUrl, storeContract, testPrefix } from '@micro/sdk/testing';
import { openPostgres, SchemaVersionError } from '../postgres/index.js';
import { relay } from '../postgres/testing.js';
import { ADMIN, silent, startPlatform } from '../config/testing.js';
import type { CoreContext } from '../core.js';
import { PostgresStore, postgresStoreCoreService, type PostgresStoreOptions } from './postgres.js';

/*
 * The store and blobs on the real Postgres: both contracts, the model layer compared
 * with the memory store, two nodes on one schema, the purge, a lost connection, a newer
 * schema, and the core service over RPC. Each test has a schema of its own, dropped
 * afterwards.
 */

/** A URL of the same database that makes a pool of its own: another node. */
function node(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', name);
  return u.toString();
}

async function dropSchema(url: string, prefix: string): Promise<void> {
  const db = await openPostgres({ url, prefix, max: 1 });
  await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
  await db.close();
}

interface Ctx {
  skip(message?: string): void;
  after(fn: () => unknown): void;
}

/** A store on a schema of the test's own; undefined (skipped) without Postgres. */
async function testStore(t: Ctx, label: string, options: Partial<PostgresStoreOptions> = {}): Promise<PostgresStore | undefined> {
  const url = await engineUrl(t, 'postgres');
  if (!url) return undefined;
  const prefix = testPrefix(label);
  const store = await PostgresStore.open({ url, prefix, max: 4, purgeInterval: 0, ...options });
  t.after(async () => {
    await store.close();
    await dropSchema(url, prefix);
  });
  return store;
}

// the contracts register their own tests: without Postgres they are left out (the reason printed)
const probe = await engineUrl({ skip: () => undefined }, 'postgres');
if (probe) {
  const made = async (label: string, blobMaxSize?: number) => {
    const prefix = testPrefix(label);
    const store = await PostgresStore.open({ url: probe, prefix, max: 4, purgeInterval: 0, blobMaxSize });
    return {
      store,
      close: async () => {
        await store.close();
        await dropSchema(probe, prefix);
      },
    };
  };
  storeContract('postgres', async () => {
    const { store, close } = await made('storecontract');
    return { impl: store, close };
  });
  blobStoreContract('postgres', async () => {
    const { store, close } = await made('blobcontract', 1024 * 1024);
    return { impl: store.blobs, maxSize: 1024 * 1024, close };
  });
}

const User = z.object({ id: z.string(), email: z.string(), age: z.number(), active: z.boolean(), score: z.number().optional() });
type User = z.output<typeof User>;

describe('store in Postgres', () => {
  test('the model layer gives the same answers on Postgres as on the memory store', async (t) => {
    const store = await testStore(t, 'storemodel');
    if (!store) return;
    const options = { name: 'users', schema: User, indexes: ['email', 'age', 'active', 'score'] as const };
    const pgUsers = model(store, { ...options, indexes: [...options.indexes] });
    const memUsers = model(new MemoryStore(), { ...options, indexes: [...options.indexes] });
    // a fixed pseudo-random sequence of writes and deletes, the same on both
    let seed = 42;
    // mulberry32: small, and its low bits are as random as its high ones
    const next = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) % n;
    };
    for (let i = 0; i < 150; i++) {
      const id = `u${next(40)}`;
      if (next(5) === 0) {
        await pgUsers.delete(id);
        await memUsers.delete(id);
        continue;
      }
      const user: User = { id, email: `${['a', 'b', 'ü', '😀'][next(4)]}${next(10)}@x.io`, age: next(60) - 5, active: next(2) === 0, ...(next(3) ? { score: next(100) / 7 } : {}) };
      await pgUsers.upsert(user);
      await memUsers.upsert(user);
    }
    const someone = (await memUsers.list({ orderBy: 'age' })).at(-1) as User;
    const queries: Query<User>[] = [
      {},
      { limit: 1000 },
      { where: { age: { gte: 10, lt: 30 } }, orderBy: 'age', order: 'desc', limit: 20 },
      { where: { active: true }, orderBy: 'email' },
      { where: { score: null } },
      { where: { score: { gt: 3.5 } }, orderBy: 'score', offset: 3, limit: 5 },
      { where: { email: someone.email } },
      { where: { email: { gte: 'b', lt: '😀' } }, orderBy: 'email' },
      { orderBy: 'email', order: 'desc', limit: 7 },
      { where: { age: { lte: 0 } }, orderBy: 'id' },
    ];
    assert.ok((await pgUsers.list({ limit: 1000 })).length > 10, 'the sequence left users to query');
    assert.ok((await pgUsers.list({ where: { active: true } })).length > 0);
    for (const q of queries) assert.deepEqual(await pgUsers.list(q), await memUsers.list(q), JSON.stringify(q));
    await assert.rejects(pgUsers.create({ id: 'u1x', email: 'e', age: 1, active: true }).then(() => pgUsers.create({ id: 'u1x', email: 'e', age: 1, active: true })), (e: unknown) => (e as MicroError).code === 409);
    await assert.rejects(pgUsers.list({ where: { nope: 1 } as never }), (e: unknown) => (e as MicroError).code === 400);
  });

  test('two nodes on one schema see each other’s writes at once', async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('storetwo');
    const a = await PostgresStore.open({ url: node(url, `${prefix}_a`), prefix, max: 2, purgeInterval: 0 });
    const b = await PostgresStore.open({ url: node(url, `${prefix}_b`), prefix, max: 2, purgeInterval: 0 });
    t.after(async () => {
      await a.close();
      await b.close();
      await dropSchema(url, prefix);
    });
    await a.write({ key: 'k', value: { from: 'a' }, metadata: { n: 1 } }, { namespace: 'ns', table: 't' });
    assert.deepEqual(await b.read('k', { namespace: 'ns', table: 't' }), [{ key: 'k', value: { from: 'a' }, metadata: { n: 1 } }]);
    await b.delete('k', { namespace: 'ns', table: 't' });
    assert.deepEqual(await a.read('k', { namespace: 'ns', table: 't' }), []);
    await a.blobs.put('file', Buffer.from('shared'));
    assert.equal((await readBlob(b.blobs.get('file'))).toString(), 'shared');
  });

  test('the purge deletes expired records and the chunks of puts that died', async (t) => {
    let now = Date.now();
    const store = await testStore(t, 'storepurge', { now: () => now });
    if (!store) return;
    const s = store.db.schema;
    await store.write({ key: 'gone', value: 1 }, { ttl: 1 });
    await store.write({ key: 'kept', value: 1 }, { ttl: 3600 });
    await store.write({ key: 'forever', value: 1 });
    await store.blobs.put('blob', Buffer.alloc(200_000, 7));
    // a put that died two hours ago: its upload row and a chunk, which no blob points to
    const dead = await store.db.query<{ id: string }>(`INSERT INTO ${s}.blob_uploads (started) VALUES ($1) RETURNING id`, [now - 7_200_000]);
    await store.db.query(`INSERT INTO ${s}.blob_chunks (upload, seq, data) VALUES ($1, 0, $2)`, [dead.rows[0]?.id, Buffer.from('orphan')]);
    now += 2_000;
    assert.equal(await store.purge(), 1);
    const keys = await store.db.query<{ key: string }>(`SELECT key FROM ${s}.records ORDER BY key`);
    assert.deepEqual(keys.rows.map((r) => r.key), ['forever', 'kept']);
    assert.equal((await store.db.query(`SELECT 1 FROM ${s}.blob_chunks WHERE upload = $1`, [dead.rows[0]?.id])).rowCount, 0);
    assert.equal((await store.db.query(`SELECT 1 FROM ${s}.blob_uploads`)).rowCount, 0);
    assert.equal((await readBlob(store.blobs.get('blob'))).length, 200_000, 'a blob that was put stays');
  });

  test('blobs: chunks of 64 KiB; a put that fails, a replace and a delete leave no chunk behind', async (t) => {
    const store = await testStore(t, 'storechunks', { blobMaxSize: 300_000 });
    if (!store) return;
    const s = store.db.schema;
    const chunks = async () => (await store.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.blob_chunks`)).rows[0]?.n;
    // one big chunk from the caller is cut into 64 KiB ones
    await store.blobs.put('a', Buffer.alloc(200_000, 1));
    const sizes = await store.db.query<{ n: number }>(`SELECT length(data) AS n FROM ${s}.blob_chunks ORDER BY seq`);
    assert.deepEqual(sizes.rows.map((r) => r.n), [65_536, 65_536, 65_536, 3_392]);
    await assert.rejects(store.blobs.put('b', Buffer.alloc(300_001)), (e: unknown) => (e as MicroError).code === 413);
    async function* broken() {
      yield Buffer.alloc(150_000);
      throw new Error('source broke');
    }
    await assert.rejects(store.blobs.put('a', broken()), /source broke/);
    assert.equal(await chunks(), 4, 'only the chunks of a');
    await store.blobs.put('a', Buffer.alloc(10, 2));
    assert.equal(await chunks(), 1, 'the chunks of the replaced blob went');
    // puts of one new key at once: one wins, nothing leaks
    await Promise.all(Array.from({ length: 6 }, (_, i) => store.blobs.put('race', Buffer.alloc(70_000, i))));
    assert.equal(await chunks(), 3);
    const raced = await readBlob(store.blobs.get('race'));
    assert.ok(raced.every((byte) => byte === raced[0]), 'one put, whole');
    await store.blobs.delete('a');
    await store.blobs.delete('race');
    assert.equal(await chunks(), 0);
    assert.equal((await store.db.query(`SELECT 1 FROM ${s}.blob_uploads`)).rowCount, 0);
  });

  test('a lost connection is a 503 at once; what was acknowledged is there when Postgres returns', async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('storelost');
    const cable = await relay(url);
    const store = await PostgresStore.open({ url: cable.url, prefix, max: 2, purgeInterval: 0 });
    t.after(async () => {
      await cable.close();
      await store.close();
      await dropSchema(url, prefix);
    });
    for (let i = 0; i < 20; i++) await store.write({ key: `k${i}`, value: i });
    await store.blobs.put('b', Buffer.alloc(100_000, 3));
    await cable.cut();
    const unavailable = (err: unknown) => err instanceof MicroError && err.code === 503 && err.id === 'micro.store' && /postgres at .* is unavailable/.test(err.detail);
    await assert.rejects(store.write({ key: 'during', value: 1 }), unavailable);
    await assert.rejects(store.read('k1'), unavailable);
    await assert.rejects(store.list(), unavailable);
    await assert.rejects(store.blobs.put('c', Buffer.alloc(10)), unavailable);
    await assert.rejects(readBlob(store.blobs.get('b')), unavailable);
    await cable.restore();
    assert.equal((await store.list({ limit: 100 })).length, 20);
    assert.equal((await readBlob(store.blobs.get('b'))).length, 100_000);
    await store.write({ key: 'after', value: 1 });
    assert.deepEqual(await store.read('after'), [{ key: 'after', value: 1 }]);
  });

  test('acknowledged writes and puts survive kill -9 of the node that made them', async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('storekill');
    t.after(() => dropSchema(url, prefix));
    const script = `
      import { PostgresStore } from ${JSON.stringify(new URL('./postgres.js', import.meta.url).href)};
      const s = await PostgresStore.open({ url: ${JSON.stringify(url)}, prefix: ${JSON.stringify(prefix)}, max: 2, purgeInterval: 0 });
      for (let i = 0; ; i++) {
        await s.write({ key: 'k' + String(i).padStart(6, '0'), value: { i, pad: 'x'.repeat(500) } });
        if (i % 10 === 0) await s.blobs.put('b' + i, Buffer.alloc(70000, i % 256));
        process.stdout.write(i + '\\n');
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let acked = -1;
    await new Promise<void>((resolve, reject) => {
      let buffer = '';
      child.stdout.on('data', (d: Buffer) => {
        buffer += d.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) acked = Number(line);
        if (acked >= 100) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.once('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`writer exited with ${code}`))));
    });
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    const store = await PostgresStore.open({ url, prefix, max: 2, purgeInterval: 0 });
    t.after(() => store.close());
    const keys = new Set(await store.list({ limit: 1000 }));
    for (let i = 0; i <= acked; i++) assert.ok(keys.has(`k${String(i).padStart(6, '0')}`), `acknowledged write ${i} of ${acked} is there`);
    for (let i = 0; i <= acked; i += 10) assert.ok((await readBlob(store.blobs.get(`b${i}`))).equals(Buffer.alloc(70000, i % 256)), `blob ${i} is whole`);
  });

  test('a schema written by a newer micro server is refused at start', async (t) => {
    const store = await testStore(t, 'storenewer');
    if (!store) return;
    await store.db.query(`UPDATE ${store.db.schema}.schema_version SET version = 99 WHERE component = 'store'`);
    const url = await engineUrl(t, 'postgres');
    await assert.rejects(PostgresStore.open({ url: url as string, prefix: store.db.prefix, max: 1 }), (err: unknown) => {
      assert.ok(err instanceof SchemaVersionError);
      assert.match(err.message, /database schema of store is version 99 .*this micro server knows up to 3: upgrade it/);
      return true;
    });
  });

  test('the core service serves records and blobs over RPC', async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('storesvc');
    const cs = await postgresStoreCoreService({ postgresUrl: url, prefix }, { purgeInterval: 0 })({ logger: silent } as unknown as CoreContext);
    const platform = await startPlatform([{ def: cs.def, handlers: cs.handlers }]);
    t.after(async () => {
      await platform.close();
      await cs.stop?.();
      await dropSchema(url, prefix);
    });
    assert.equal(cs.def.name, 'store');
    const client = await platform.clientFor(ADMIN);
    const remote = new RemoteStore(client);
    await remote.write({ key: 'k', value: [1, 2] }, { namespace: 'ns' });
    assert.deepEqual(await remote.read('k', { namespace: 'ns' }), [{ key: 'k', value: [1, 2] }]);
    const blobs = new RemoteBlobStore(client);
    const data = Buffer.alloc(300_000, 9);
    const info = await blobs.put('big', data, { namespace: 'ns' });
    assert.equal(info.size, data.length);
    assert.ok((await readBlob(blobs.get('big', { namespace: 'ns' }))).equals(data));
    await assert.rejects(remote.write({ key: '', value: 1 }), (e: unknown) => (e as MicroError).code === 400);
  });
});
