import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { isMicroError } from '@micro/sdk';
import { BUILT_IN_DEFAULTS, resolveLimits, type LimitSettings } from '../quota/limits.js';
import { SqliteStore } from './sqlite.js';
import { testPostgresStore } from './testing.js';
import { recordSize, type StoreLimits, type StoreUsage } from './usage.js';

/*
 * Store quotas on both engines: usage counted exactly (writes, overwrites, deletes, purges)
 * and the boundary held under concurrent writes.
 */

interface Engine {
  write(record: { key: string; value: unknown }, options?: { namespace?: string; ttl?: number }): Promise<void>;
  delete(key: string, options?: { namespace?: string }): Promise<void>;
  usage(namespace: string): Promise<StoreUsage>;
  purge(): Promise<number> | number;
}

type Open = (t: test.TestContext, limits: StoreLimits) => Promise<Engine | undefined>;

const openSqlite: Open = async (t, limits) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-store-quota-'));
  const store = new SqliteStore({ path: join(dir, 'store.db'), purgeInterval: 0, limits });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
};

const openPg: Open = (t, limits) => testPostgresStore(t, 'storequota', limits);

function limitsOf(settings: Record<string, LimitSettings>): StoreLimits {
  return async (ns) => resolveLimits(ns, settings[ns] ?? {}, BUILT_IN_DEFAULTS);
}

/** The size the engines count for a record of value v (a JSON string). */
const size = (key: string, v: unknown) => recordSize(key, JSON.stringify(v), null);

function isRefusal(limit: string, namespace = 'acme') {
  return (err: unknown) => isMicroError(err) && err.code === 403 && new RegExp(`^quota exceeded: ${limit} \\d+ of \\d+ used in namespace ${namespace}; delete records or ask for a larger quota \\(micro quota\\)$`).test(err.detail);
}

for (const [name, open] of [['sqlite', openSqlite], ['postgres', openPg]] as const) {
  test(`${name}: N parallel writes with room for k records: exactly k succeed, a delete gives room back`, async (t) => {
    const store = await open(t, limitsOf({ acme: { storeRecords: 5 } }));
    if (!store) return;
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => store.write({ key: `k${i}`, value: i }, { namespace: 'acme' })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
    for (const r of results) if (r.status === 'rejected') assert.ok(isRefusal('storeRecords')(r.reason), String(r.reason));
    assert.equal((await store.usage('acme')).storeRecords, 5);
    // an overwrite is no new record
    const kept = results.findIndex((r) => r.status === 'fulfilled');
    await store.write({ key: `k${kept}`, value: 'again' }, { namespace: 'acme' });
    await store.delete(`k${kept}`, { namespace: 'acme' });
    await store.write({ key: 'new', value: 1 }, { namespace: 'acme' });
    await assert.rejects(store.write({ key: 'one-more', value: 1 }, { namespace: 'acme' }), isRefusal('storeRecords'));
    // another namespace has its own count
    await store.write({ key: 'k0', value: 0 }, { namespace: 'globex' });
    assert.equal((await store.usage('globex')).storeRecords, 1);
  });

  test(`${name}: bytes are counted exactly: parallel writes at the boundary, overwrites count the difference`, async (t) => {
    const one = size('k00', 'x'.repeat(100));
    const store = await open(t, limitsOf({ acme: { storeBytes: 3 * one } }));
    if (!store) return;
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => store.write({ key: `k${String(i).padStart(2, '0')}`, value: 'x'.repeat(100) }, { namespace: 'acme' })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
    for (const r of results) if (r.status === 'rejected') assert.ok(isRefusal('storeBytes')(r.reason), String(r.reason));
    assert.deepEqual(await store.usage('acme'), { storeBytes: 3 * one, storeRecords: 3, blobBytes: 0 });
    const key = `k${String(results.findIndex((r) => r.status === 'fulfilled')).padStart(2, '0')}`;
    // shrinking makes room, which a bigger overwrite then takes to the byte
    await store.write({ key, value: 'x' }, { namespace: 'acme' });
    assert.equal((await store.usage('acme')).storeBytes, 2 * one + size(key, 'x'));
    await assert.rejects(store.write({ key, value: 'x'.repeat(101) }, { namespace: 'acme' }), isRefusal('storeBytes'));
    await store.write({ key, value: 'x'.repeat(100) }, { namespace: 'acme' });
    assert.equal((await store.usage('acme')).storeBytes, 3 * one);
    // multi-byte characters count as their UTF-8 bytes, in JS and in SQL alike
    await store.delete(key, { namespace: 'acme' });
    await store.write({ key: 'é', value: '€'.repeat(10) }, { namespace: 'acme' });
    assert.equal((await store.usage('acme')).storeBytes, 2 * one + size('é', '€'.repeat(10)));
  });

  test(`${name}: a purge of expired records gives their room back`, async (t) => {
    const store = await open(t, limitsOf({ acme: { storeRecords: 1 } }));
    if (!store) return;
    await store.write({ key: 'short', value: 1 }, { namespace: 'acme', ttl: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    // expired but not purged yet: it still counts
    await assert.rejects(store.write({ key: 'next', value: 1 }, { namespace: 'acme' }), isRefusal('storeRecords'));
    await store.purge();
    assert.equal((await store.usage('acme')).storeRecords, 0);
    await store.write({ key: 'next', value: 1 }, { namespace: 'acme' });
  });

  test(`${name}: namespace micro is never limited`, async (t) => {
    const store = await open(t, limitsOf({ micro: { storeRecords: 0 } }));
    if (!store) return;
    await store.write({ key: 'a', value: 1 }, { namespace: 'micro' });
    assert.equal((await store.usage('micro')).storeRecords, 1);
  });
}

test('sqlite: a store.db of version 1 is counted when it is upgraded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-store-v1-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'store.db');
  const v1 = new SqliteStore({ path, purgeInterval: 0 });
  await v1.write({ key: 'a', value: 'x' }, { namespace: 'acme' });
  await v1.write({ key: 'b', value: 'yy', metadata: { m: 1 } }, { namespace: 'acme' });
  // back to version 1: no usage table, no triggers
  v1.db.exec('DROP TABLE store_usage; DROP TRIGGER records_usage_insert; DROP TRIGGER records_usage_update; DROP TRIGGER records_usage_delete; DROP TRIGGER blobs_usage_insert; DROP TRIGGER blobs_usage_update; DROP TRIGGER blobs_usage_delete');
  v1.db.exec("INSERT INTO records (namespace, \"database\", tbl, key, rkey, value) VALUES ('acme', 'micro', 'default', 'c', 'c', '1')");
  v1.db.pragma('user_version = 1');
  await v1.close();
  const v2 = new SqliteStore({ path, purgeInterval: 0 });
  t.after(() => v2.close());
  const expected = size('a', 'x') + recordSize('b', '"yy"', '{"m":1}') + size('c', 1);
  assert.deepEqual(await v2.usage('acme'), { storeBytes: expected, storeRecords: 3, blobBytes: 0 });
});
