import assert from 'node:assert/strict';
import test, { describe } from 'node:test';
import { Redis } from 'ioredis';
import { isMicroError, MemoryCache, type Cache } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { quotaExceeded } from '../quota/limits.js';
import { RedisCache } from './redis.js';

/*
 * cacheBytes on both cache engines (memory: local profile; Redis: nats, two "nodes"): the
 * bytes counted exactly through set, overwrite, increment, delete and expiry; the boundary
 * held under concurrent writes; shrinking always allowed; namespaces kept apart, hostile
 * names included.
 */

interface Engine {
  /** the first node's cache */
  cache: Cache;
  /** the caches of the "nodes" (memory: one) */
  nodes: Cache[];
  usage(namespace: string): Promise<number>;
  /** lets keys with a TTL of 1 s expire; returns once `key` (of acme) is gone, counting nothing itself */
  expire(key: string): Promise<void>;
}

type Limits = Record<string, number>;
const quota = (limits: Limits) => ({
  limit: async (ns: string) => limits[ns] ?? null,
  refuse: (ns: string, used: number, max: number) => quotaExceeded('cacheBytes', used, max, ns),
});

async function memory(_t: test.TestContext, limits: Limits): Promise<Engine> {
  let now = 1_000_000;
  const cache = new MemoryCache({ quota: quota(limits), now: () => now });
  return {
    cache,
    nodes: [cache],
    usage: async (ns) => cache.usage(ns).bytes,
    expire: async (key) => {
      now += 2_000;
      assert.equal(await cache.get(key, { namespace: 'acme' }), undefined);
    },
  };
}

async function redis(t: test.TestContext, limits: Limits): Promise<Engine | undefined> {
  const url = await engineUrl(t, 'redis');
  if (!url) return undefined;
  const prefix = testPrefix('cachequota');
  const [first, second] = await Promise.all([0, 1].map(() => RedisCache.connect({ url, prefix, timeout: 10_000, quota: quota(limits) })));
  const nodes: [RedisCache, RedisCache] = [first as RedisCache, second as RedisCache];
  t.after(async () => {
    for (const n of nodes) await n.close();
    const r = new Redis(url);
    const keys = await r.keys(`${prefix}:*`);
    if (keys.length > 0) await r.del(...keys);
    r.disconnect();
  });
  return {
    cache: nodes[0],
    nodes,
    usage: (ns) => nodes[0].usage(ns),
    expire: async (key) => {
      for (let i = 0; i < 100 && (await nodes[0].get(key, { namespace: 'acme' })) !== undefined; i++) await new Promise((r) => setTimeout(r, 100));
    },
  };
}

const size = (key: string, json: string) => Buffer.byteLength(key) + Buffer.byteLength(json);

function isQuota(err: unknown): boolean {
  return isMicroError(err) && err.code === 403 && err.id === 'quota' && /cacheBytes/.test(err.detail);
}

for (const [name, open] of [['memory', memory], ['redis', redis]] as const) {
  describe(`cacheBytes on ${name}`, () => {
    test('counts keys and JSON values through set, overwrite, increment, delete and expiry', async (t) => {
      const e = await open(t, {});
      if (!e) return;
      const c = e.cache;
      await c.set('k', { a: 'ü' }, { namespace: 'acme' });
      assert.equal(await e.usage('acme'), size('k', '{"a":"ü"}'));
      await c.set('k', 'xy', { namespace: 'acme' });
      assert.equal(await e.usage('acme'), size('k', '"xy"'));
      await c.increment('n', 1234, { namespace: 'acme' });
      await c.decrement('n', 2468, { namespace: 'acme' });
      assert.equal(await e.usage('acme'), size('k', '"xy"') + size('n', '-1234'));
      await c.delete('k', { namespace: 'acme' });
      await c.delete('missing', { namespace: 'acme' });
      assert.equal(await e.usage('acme'), size('n', '-1234'));
      await c.delete('n', { namespace: 'acme' });
      await c.set('t', 'soon gone', { namespace: 'acme', ttl: 1 });
      assert.equal(await e.usage('acme'), size('t', '"soon gone"'));
      await e.expire('t');
      assert.equal(await e.usage('acme'), 0);
    });

    test('of concurrent sets with room for k exactly k pass, on every node', async (t) => {
      const one = size('key-00', '"0123456789"');
      const e = await open(t, { acme: one * 7 + one - 1 });
      if (!e) return;
      const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => (e.nodes[i % e.nodes.length] ?? e.cache).set(`key-${String(i).padStart(2, '0')}`, '0123456789', { namespace: 'acme' })));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 7);
      for (const r of results) if (r.status === 'rejected') assert.ok(isQuota(r.reason), String(r.reason));
      assert.equal(await e.usage('acme'), one * 7);
    });

    test('the refusal names the limit and usage; increments of new keys are refused too; shrinking passes', async (t) => {
      const limits: Limits = { acme: 20 };
      const e = await open(t, limits);
      if (!e) return;
      const c = e.cache;
      await c.set('a', '0123456789', { namespace: 'acme' }); // 13 bytes
      await assert.rejects(c.set('b', '0123456', { namespace: 'acme' }), (err: unknown) => isQuota(err) && /13 of 20 used in namespace acme/.test((err as Error).message));
      await assert.rejects(c.increment('cc', 1_000_000, { namespace: 'acme' }), isQuota);
      await c.increment('c', 1, { namespace: 'acme' }); // 2 bytes: 15
      assert.equal(await e.usage('acme'), 15);
      // a refused write leaves nothing behind
      assert.equal(await c.get('b', { namespace: 'acme' }), undefined);
      limits.acme = 5;
      await c.set('a', 'x', { namespace: 'acme' }); // shrinks: passes over the lowered limit
      await assert.rejects(c.set('a', 'xy', { namespace: 'acme' }), isQuota);
      assert.equal((await c.get('a', { namespace: 'acme' }))?.value, 'x');
    });

    test('expired keys never hold room: a write past the limit first drops them', async (t) => {
      const e = await open(t, { acme: 100 });
      if (!e) return;
      const c = e.cache;
      for (let i = 0; i < 4; i++) await c.set(`old${i}`, 'x'.repeat(15), { namespace: 'acme', ttl: 1 }); // 4 x 21 bytes
      await assert.rejects(c.set('new', 'y'.repeat(40), { namespace: 'acme' }), isQuota);
      await e.expire('old0');
      await c.set('new', 'y'.repeat(40), { namespace: 'acme' });
      assert.equal(await e.usage('acme'), size('new', `"${'y'.repeat(40)}"`));
    });

    test('namespaces are counted apart, hostile names included', async (t) => {
      const e = await open(t, { 'a:b': 10, 'a%3Ab': 1_000, victim: 1_000 });
      if (!e) return;
      const c = e.cache;
      await c.set('x', 'y'.repeat(500), { namespace: 'a%3Ab' });
      await c.set('x', 'y', { namespace: 'a:b' });
      assert.equal(await e.usage('a:b'), size('x', '"y"'));
      await assert.rejects(c.set('z', 'y'.repeat(20), { namespace: 'a:b' }), isQuota);
      // a key that looks like the counting keys changes nothing
      await c.set('sizes', 1, { namespace: 'victim' });
      await c.set(':bytes', 1, { namespace: 'victim' });
      assert.equal(await e.usage('victim'), size('sizes', '1') + size(':bytes', '1'));
      assert.equal(await e.usage('a%3Ab'), size('x', `"${'y'.repeat(500)}"`));
      await assert.rejects(c.set('', 'v', { namespace: 'victim' }), (err: unknown) => isMicroError(err) && err.code === 400);
    });
  });
}
