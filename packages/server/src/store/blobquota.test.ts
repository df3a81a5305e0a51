import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { isMicroError, type BlobStore } from '@micro/sdk';
import { BUILT_IN_DEFAULTS, resolveLimits, type LimitSettings } from '../quota/limits.js';
import { FileBlobStore } from './blobs.js';
import { SqliteStore } from './sqlite.js';
import { testPostgresStore } from './testing.js';
import type { StoreLimits, StoreUsage } from './usage.js';

/* blobBytes on both blob engines: refused exactly at the boundary, in the put's final transaction. */

interface Engine {
  blobs: BlobStore;
  usage(namespace: string): Promise<StoreUsage>;
}

type Open = (t: test.TestContext, limits: StoreLimits) => Promise<Engine | undefined>;

const openFiles: Open = async (t, limits) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-blob-quota-'));
  const store = new SqliteStore({ path: join(dir, 'store.db'), purgeInterval: 0, limits });
  mkdirSync(join(dir, 'blobs'), { mode: 0o700 });
  const blobs = new FileBlobStore({ db: store.db, dir: join(dir, 'blobs'), limits });
  t.after(async () => {
    await blobs.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { blobs, usage: (ns) => store.usage(ns) };
};

const openPg: Open = async (t, limits) => {
  const store = await testPostgresStore(t, 'blobquota', limits);
  return store && { blobs: store.blobs, usage: (ns) => store.usage(ns) };
};

function limitsOf(settings: Record<string, LimitSettings>): StoreLimits {
  return async (ns) => resolveLimits(ns, settings[ns] ?? {}, BUILT_IN_DEFAULTS);
}

const refusal = (used: number, max: number, namespace = 'acme') => (err: unknown) =>
  isMicroError(err) && err.code === 403 && err.id === 'quota' && err.detail === `quota exceeded: blobBytes ${used} of ${max} used in namespace ${namespace}; delete blobs or ask for a larger quota (micro quota)`;

const bytes = (n: number, fill = 1) => Buffer.alloc(n, fill);

for (const [name, open] of [['file', openFiles], ['postgres', openPg]] as const) {
  test(`${name}: N parallel puts with room for k: exactly k succeed, the rest are 403 naming the usage`, async (t) => {
    const engine = await open(t, limitsOf({ acme: { blobBytes: 5000 } }));
    if (!engine) return;
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => engine.blobs.put(`b${i}`, bytes(1000), { namespace: 'acme' })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
    for (const r of results) if (r.status === 'rejected') assert.ok(refusal(5000, 5000)(r.reason), String(r.reason));
    assert.equal((await engine.usage('acme')).blobBytes, 5000);
    // nothing of a refused put stays
    assert.equal((await engine.blobs.list({ namespace: 'acme' })).length, 5);
  });

  test(`${name}: a replacement counts the difference; a delete gives room back; shrinking always passes`, async (t) => {
    const engine = await open(t, limitsOf({ acme: { blobBytes: 3000 } }));
    if (!engine) return;
    const { blobs } = engine;
    await blobs.put('a', bytes(2000), { namespace: 'acme' });
    await blobs.put('a', bytes(3000, 2), { namespace: 'acme' });
    await assert.rejects(blobs.put('b', bytes(1), { namespace: 'acme' }), refusal(3000, 3000));
    await assert.rejects(blobs.put('a', bytes(3001), { namespace: 'acme' }), refusal(3000, 3000));
    await blobs.put('a', bytes(10), { namespace: 'acme' });
    assert.equal((await engine.usage('acme')).blobBytes, 10);
    await blobs.delete('a', { namespace: 'acme' });
    await blobs.put('b', bytes(3000), { namespace: 'acme' });
    // other namespaces have their own room; micro has no limit
    await blobs.put('b', bytes(3000), { namespace: 'globex' });
    await blobs.put('big', bytes(200_000), { namespace: 'micro' });
  });

  test(`${name}: a blob larger than the whole limit is refused while it streams`, async (t) => {
    const engine = await open(t, limitsOf({ acme: { blobBytes: 100_000 } }));
    if (!engine) return;
    await engine.blobs.put('small', bytes(10), { namespace: 'acme' });
    let produced = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        produced += 65536;
        yield bytes(65536);
      }
    }
    await assert.rejects(engine.blobs.put('huge', endless(), { namespace: 'acme' }), refusal(10, 100_000));
    assert.ok(produced < 1_000_000, `stopped early, after ${produced} bytes`);
    assert.equal((await engine.usage('acme')).blobBytes, 10);
  });
}
