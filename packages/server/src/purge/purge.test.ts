import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { ConfigCipher, createLogger, isMicroError, MemoryCache, privateDir } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { Accounts } from '../auth/accounts.js';
import { SqliteConfig } from '../config/sqlite.js';
import { SqliteEvents } from '../events/sqlite.js';
import { openPostgres } from '../postgres/index.js';
import { checkPurgeNamespace, purgeAuth, purgeNamespace } from './index.js';
import { MicroServer } from '../server.js';
import { FileBlobStore } from '../store/blobs.js';
import { PostgresStore } from '../store/postgres.js';
import { SqliteStore } from '../store/sqlite.js';

/*
 * The purge of a namespace, engine by engine: everything of the purged namespace goes, the
 * usage counters stay right, the neighbour keeps everything; and the entry point refuses
 * `micro` and anything not a namespace name. (The purge end to end, with a running server,
 * `micro run` and the signup service: packages/cli/src/purge.e2e.test.ts.)
 */

function tempDir(t: test.TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-purge-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const is = (code: number, pattern: RegExp) => (err: unknown) => isMicroError(err) && err.code === code && pattern.test(err.detail);

test('the entry point refuses micro and anything not a namespace name, before any step runs', async () => {
  let ran = 0;
  const steps = [{ name: 'count', run: async () => void ran++ }];
  await assert.rejects(purgeNamespace('micro', steps), is(403, /^namespace: micro is the platform's own/));
  for (const bad of ['', '../acme', 'acme/x', 'a b', 'acme\n', '-acme', 'é', 'a'.repeat(64), 42, null, undefined, { toString: () => 'acme' }]) {
    await assert.rejects(purgeNamespace(bad, steps), is(400, /^namespace: .* is not a namespace name$/), String(bad));
  }
  assert.equal(ran, 0);
  assert.equal(checkPurgeNamespace('a'.repeat(63)), 'a'.repeat(63));
});

test('a failing step does not stop the others; the purge says which failed (503: purge again)', async () => {
  const ran: string[] = [];
  const steps = [
    { name: 'one', run: async () => void ran.push('one') },
    { name: 'broken', run: async () => Promise.reject(new Error('disk on fire')) },
    { name: 'three', run: async (ns: string) => void ran.push(`three ${ns}`) },
  ];
  await assert.rejects(purgeNamespace('acme', steps), is(503, /^the purge of namespace acme is not complete \(broken: disk on fire\); purge it again$/));
  assert.deepEqual(ran, ['one', 'three acme']);
  assert.deepEqual(await purgeNamespace('acme', [steps[0] as (typeof steps)[0]]), { namespace: 'acme', purged: ['one'] });
});

interface StoreUnderTest {
  write(record: { key: string; value: unknown }, options?: { namespace?: string; database?: string; table?: string }): Promise<void>;
  list(options?: { namespace?: string; database?: string; table?: string }): Promise<string[]>;
  usage(namespace: string): Promise<{ storeBytes: number; storeRecords: number; blobBytes: number }>;
  blobs: { put(key: string, data: Uint8Array, options: { namespace: string }): Promise<unknown>; list(options: { namespace: string }): Promise<unknown[]> };
  purge(namespace: string): Promise<void>;
  /** blob files on disk (SQLite), or undefined */
  files?(): string[];
}

async function openSqliteStore(t: test.TestContext): Promise<StoreUnderTest> {
  const dir = tempDir(t);
  const store = new SqliteStore({ path: join(dir, 'store.db'), purgeInterval: 0 });
  const blobs = new FileBlobStore({ db: store.db, dir: privateDir(join(dir, 'blobs')) });
  t.after(() => store.close());
  return Object.assign(store, {
    blobs,
    purge: async (ns: string) => {
      await blobs.purgeNamespace(ns);
      store.purgeNamespace(ns);
    },
    files: () => readdirSync(blobs.dir),
  });
}

async function openPgStore(t: test.TestContext): Promise<StoreUnderTest | undefined> {
  const url = await engineUrl(t, 'postgres');
  if (!url) return undefined;
  const prefix = testPrefix('purgestore');
  const store = await PostgresStore.open({ url, prefix, purgeInterval: 0, max: 4 });
  t.after(async () => {
    await store.close();
    const db = await openPostgres({ url, prefix, max: 1 });
    await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
    await db.close();
  });
  return Object.assign(store, { purge: (ns: string) => store.purgeNamespace(ns) });
}

for (const [name, open] of [['sqlite', openSqliteStore], ['postgres', openPgStore]] as const) {
  test(`store on ${name}: a purge deletes every record and blob of the namespace, counted out; the neighbour keeps all`, async (t) => {
    const store = await open(t);
    if (!store) return;
    for (const ns of ['acme', 'acme-2', 'globex']) {
      for (let i = 0; i < 30; i++) await store.write({ key: `k${i}`, value: `${ns} ${i}` }, { namespace: ns, database: `db${i % 3}`, table: `t${i % 2}` });
      await store.blobs.put('photo', randomBytes(5000), { namespace: ns });
      await store.blobs.put('doc', randomBytes(300), { namespace: ns });
    }
    const neighbour = await store.usage('globex');
    const lookalike = await store.usage('acme-2');
    await store.purge('acme');
    assert.deepEqual(await store.usage('acme'), { storeBytes: 0, storeRecords: 0, blobBytes: 0 });
    for (let i = 0; i < 3; i++) assert.deepEqual(await store.list({ namespace: 'acme', database: `db${i}`, table: 't0' }), []);
    assert.deepEqual(await store.blobs.list({ namespace: 'acme' }), []);
    assert.deepEqual(await store.usage('globex'), neighbour);
    assert.deepEqual(await store.usage('acme-2'), lookalike, 'a namespace whose name starts with the purged one is untouched');
    assert.equal((await store.blobs.list({ namespace: 'globex' })).length, 2);
    if (store.files) assert.equal(store.files().length, 4, 'the blob files of acme are gone from the disk');
    // the name starts afresh: counted from zero, and purging again is harmless
    await store.write({ key: 'new', value: 'x' }, { namespace: 'acme' });
    assert.equal((await store.usage('acme')).storeRecords, 1);
    await store.purge('acme');
    await store.purge('acme');
    assert.deepEqual(await store.usage('acme'), { storeBytes: 0, storeRecords: 0, blobBytes: 0 });
  });
}

test('config, events and cache (local engines): the purged namespace is empty, secrets included; the neighbour keeps all', async (t) => {
  const dir = tempDir(t);
  const config = new SqliteConfig({ path: join(dir, 'config.db'), cipher: new ConfigCipher(randomBytes(32)) });
  const events = new SqliteEvents({ path: join(dir, 'events.db'), sweepInterval: 0 });
  const cache = new MemoryCache();
  t.after(async () => {
    await config.close();
    await events.close();
    await cache.close();
  });
  for (const ns of ['acme', 'globex']) {
    await config.set('db.password', `pw-${ns}`, { namespace: ns, secret: true });
    await config.set('site', ns, { namespace: ns });
    for (let i = 0; i < 3; i++) await events.publish('orders', { n: i }, { namespace: ns });
    await events.consume('orders', { namespace: ns, group: 'billing' }).then((c) => c.close());
    await cache.set('k', ns, { namespace: ns });
  }
  // a consumer of acme connected while the purge runs ends
  const live = await events.consume('orders', { namespace: 'acme', group: 'live' });
  const neighbourBytes = events.namespaceBytes('globex');
  assert.ok(events.namespaceBytes('acme') > 0);
  config.purgeNamespace('acme');
  await events.purgeNamespace('acme');
  cache.purgeNamespace('acme');
  assert.deepEqual(await config.get('', { namespace: 'acme', secrets: true }), {});
  assert.deepEqual(await events.topics({ namespace: 'acme' }), []);
  assert.equal(events.namespaceBytes('acme'), 0, 'its eventsBytes count goes with it');
  assert.equal(events.namespaceBytes('globex'), neighbourBytes);
  assert.deepEqual((await live.next()).done, true);
  assert.deepEqual(await cache.listKeys({ namespace: 'acme' }), []);
  // a topic made again under the name starts at offset 1 and shows none of the old events
  const again = await events.publish('orders', { n: 'new' }, { namespace: 'acme' });
  assert.equal(again.offset, 1);
  assert.deepEqual((await events.read('orders', { namespace: 'acme' })).events.map((e) => e.payload), [{ n: 'new' }]);
  assert.equal(await config.get('db.password', { namespace: 'globex', secrets: true }), 'pw-globex');
  assert.equal((await events.read('orders', { namespace: 'globex' })).events.length, 3);
  assert.equal((await events.groups('orders', { namespace: 'globex' })).length, 1);
  assert.equal((await cache.get('k', { namespace: 'globex' }))?.value, 'globex');
});

test('auth (SQLite): accounts, secrets, API keys, sessions and rules of the namespace go; their tokens are revoked', async (t) => {
  const dir = tempDir(t);
  const accounts = new Accounts(join(dir, 'auth.db'), { scrypt: { N: 2 } });
  t.after(() => accounts.close());
  const made: Record<string, { key: string; refresh: string }> = {};
  for (const ns of ['acme', 'globex']) {
    accounts.ensureNamespace(ns);
    await accounts.create({ id: 'owner', namespace: ns, type: 'user', secret: 'owner-password' });
    const owner = accounts.get('owner', ns);
    assert.ok(owner);
    accounts.rules.create(ns, { id: 'open', resource: 'service:*:*', scope: '', access: 'granted', priority: 1 });
    made[ns] = { key: accounts.keys.create(owner, 'ci', []).key, refresh: accounts.sessions.start(owner).refreshToken };
  }
  await purgeAuth(accounts, 'acme');
  assert.deepEqual(accounts.list('acme').accounts, []);
  assert.deepEqual(accounts.rules.list('acme'), []);
  assert.equal(accounts.keys.verify(made.acme?.key ?? ''), undefined);
  assert.throws(() => accounts.sessions.rotate(made.acme?.refresh ?? ''));
  assert.equal(await accounts.verify('owner', 'acme', 'owner-password'), undefined);
  assert.ok(accounts.revocations.list.match({ sub: 'owner', iss: 'acme', iat: Math.floor(Date.now() / 1000), jti: 'j' }), 'tokens of acme/owner issued until now are dead');
  // the neighbour
  assert.equal(accounts.list('globex').accounts.length, 1);
  assert.equal(accounts.rules.list('globex').some((r) => r.id === 'open'), true);
  assert.ok(accounts.keys.verify(made.globex?.key ?? ''));
  assert.ok(await accounts.verify('owner', 'globex', 'owner-password'));
  assert.equal(accounts.revocations.list.match({ sub: 'owner', iss: 'globex', iat: Math.floor(Date.now() / 1000), jti: 'j' }), undefined);
});

test('micro server: purgeNamespace refuses micro, and its data stays', async (t) => {
  const home = tempDir(t);
  const server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: false, logger: createLogger({ level: 'silent' }) });
  await server.start();
  t.after(() => server.stop());
  await assert.rejects(server.purgeNamespace('micro'), is(403, /micro is the platform's own/));
  await assert.rejects(server.purgeNamespace('../micro'), is(400, /not a namespace name/));
  const registered = (await server.registry.listServices({ namespace: 'micro' })).length;
  assert.ok(registered > 0);
  // an unknown namespace: every step runs and finds nothing
  const report = await server.purgeNamespace('nobody-here');
  assert.deepEqual(report.purged.slice(0, 3), ['runtime', 'auth', 'registry']);
  assert.ok(report.purged.includes('store') && report.purged.includes('config') && report.purged.includes('events') && report.purged.includes('cache') && report.purged.includes('quota') && report.purged.includes('requestsPerMonth'), report.purged.join(' '));
  assert.equal((await server.registry.listServices({ namespace: 'micro' })).length, registered);
});
