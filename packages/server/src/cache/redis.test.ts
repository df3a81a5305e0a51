import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { MicroError, RemoteCache } from '@micro/sdk';
import { cacheContract, engineUrl, freePort, privateRedis, REDIS_SERVER_BIN, testPrefix } from '@micro/sdk/testing';
import { ADMIN, silent, startPlatform } from '../config/testing.js';
import type { CoreContext } from '../core.js';
import { globEscape, RedisCache, redisCacheCoreService } from './redis.js';

/*
 * The cache on the real Redis: the contract (directly and over RPC through the core
 * service), the key layout, two nodes, scans over many keys, Redis away at start and lost
 * while running (a redis-server of the test's own). Each test has a prefix of its own,
 * whose keys are deleted afterwards.
 */

/** Deletes every key of a test's prefix. */
async function cleanup(url: string, prefix: string): Promise<void> {
  const r = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await r.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

const context = { logger: silent } as CoreContext;

// the contracts register their own tests: without Redis they are left out (the reason printed)
const probe = await engineUrl({ skip: () => undefined }, 'redis');
if (probe) {
  cacheContract('redis', async () => {
    const prefix = testPrefix('cache');
    // a generous timeout: a busy test machine must not turn a slow answer into a 503
    const impl = await RedisCache.connect({ url: probe, prefix, timeout: 10_000 });
    return {
      impl,
      close: async () => {
        await impl.close();
        await cleanup(probe, prefix);
      },
    };
  });

  cacheContract('remote over the cache service (redis)', async () => {
    const prefix = testPrefix('cachesvc');
    const core = await redisCacheCoreService({ redisUrl: probe, prefix }, { timeout: 10_000 })(context);
    const platform = await startPlatform([{ def: core.def, handlers: core.handlers }]);
    return {
      impl: new RemoteCache(await platform.clientFor(ADMIN, { timeout: 20_000 })),
      close: async () => {
        await platform.close();
        await core.stop?.();
        await cleanup(probe, prefix);
      },
    };
  });
}

interface Ctx {
  skip(message?: string): void;
  after(fn: () => unknown): void;
}

/** A cache on a prefix of the test's own, and a plain client to look at Redis with. */
async function testCache(t: Ctx, label: string): Promise<{ cache: RedisCache; redis: Redis; url: string; prefix: string } | undefined> {
  const url = await engineUrl(t, 'redis');
  if (!url) return undefined;
  const prefix = testPrefix(label);
  const cache = await RedisCache.connect({ url, prefix, timeout: 10_000 });
  const redis = new Redis(url);
  t.after(async () => {
    await cache.close();
    await cleanup(url, prefix);
    redis.disconnect();
  });
  return { cache, redis, url, prefix };
}

describe('the redis cache', () => {
  test('keys are <prefix>:cache:<namespace>:<key> holding the JSON, the TTL as PX; ":" and "%" of a namespace are encoded', async (t) => {
    const made = await testCache(t, 'layout');
    if (!made) return;
    const { cache, redis, prefix } = made;
    await cache.set('user:1', { name: 'Ada' }, { ttl: 60 });
    await cache.set('k', 'v', { namespace: 'a:b%c' });
    await cache.increment('n', 3, { namespace: 'tenant-a' });
    const keys = (await redis.keys(`${prefix}:cache:*`)).sort();
    assert.deepEqual(keys, [`${prefix}:cache:a%3Ab%25c:k`, `${prefix}:cache:micro:user:1`, `${prefix}:cache:tenant-a:n`]);
    // each namespace's bytes (cacheBytes) are kept beside: a hash of sizes, the expiries, the total
    const counting = (await redis.keys(`${prefix}:cachequota:*`)).sort();
    assert.deepEqual(counting, ['a%3Ab%25c', 'micro', 'tenant-a'].flatMap((ns) => ['bytes', 'expiry', 'sizes'].map((k) => `${prefix}:cachequota:${ns}:${k}`)).filter((k) => !k.endsWith('a%3Ab%25c:expiry') && !k.endsWith('tenant-a:expiry')));
    assert.equal(await redis.hget(`${prefix}:cachequota:micro:sizes`, 'user:1'), String('user:1{"name":"Ada"}'.length));
    assert.equal(await redis.get(`${prefix}:cache:micro:user:1`), '{"name":"Ada"}');
    const pttl = await redis.pttl(`${prefix}:cache:micro:user:1`);
    assert.ok(pttl > 50_000 && pttl <= 60_000, String(pttl));
    assert.equal(await redis.get(`${prefix}:cache:tenant-a:n`), '3');
    assert.equal(await redis.pttl(`${prefix}:cache:tenant-a:n`), -1);
    // what another program wrote there is read as JSON too; a counter over it is a 409
    await redis.set(`${prefix}:cache:micro:foreign`, 'not json at all');
    await assert.rejects(cache.increment('foreign'), (err) => err instanceof MicroError && err.code === 409);
    assert.equal(await redis.get(`${prefix}:cache:micro:foreign`), 'not json at all');
  });

  test('two nodes share one cache: concurrent counters on both lose nothing', async (t) => {
    const made = await testCache(t, 'nodes');
    if (!made) return;
    const other = await RedisCache.connect({ url: made.url, prefix: made.prefix, timeout: 10_000 });
    t.after(() => other.close());
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? made.cache : other).increment('hits')));
    assert.deepEqual(
      results.sort((a, b) => a - b),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    await made.cache.set('shared', { from: 'a' });
    assert.deepEqual((await other.get('shared'))?.value, { from: 'a' });
  });

  test('ListKeys scans past many keys and pages: the prefix found wherever it is, the limit held', async (t) => {
    const made = await testCache(t, 'scan');
    if (!made) return;
    const { cache, redis, prefix } = made;
    // 3000 keys written straight to Redis (fast), 5 of them with the prefix asked for
    const pipeline = redis.pipeline();
    for (let i = 0; i < 3000; i++) pipeline.set(`${prefix}:cache:micro:${i % 600 === 0 ? 'wanted' : 'other'}-${i}`, '1');
    // keys of namespaces that share the start of this one's name are not this one's
    pipeline.set(`${prefix}:cache:micro2:wanted-x`, '1');
    pipeline.set(`${prefix}:cache:micr:wanted-y`, '1');
    await pipeline.exec();
    assert.deepEqual(await cache.listKeys({ prefix: 'wanted' }), ['wanted-0', 'wanted-1200', 'wanted-1800', 'wanted-2400', 'wanted-600']);
    const page = await cache.listKeys({ limit: 1000 });
    assert.equal(page.length, 1000);
    assert.equal(new Set(page).size, 1000);
    for (const k of page) assert.match(k, /^(wanted|other)-\d+$/);
  });

  test('a glob in a prefix matches only itself', () => {
    assert.equal(globEscape('a*b?c[d]e\\f'), 'a\\*b\\?c\\[d\\]e\\\\f');
    assert.equal(globEscape('plain:key-1'), 'plain:key-1');
  });

  test('redis down at start: a clear error naming the URL, the password hidden', async () => {
    const port = await freePort();
    await assert.rejects(
      RedisCache.connect({ url: `redis://:secret@127.0.0.1:${port}`, prefix: 'micro', backoff: { maxWait: 0 } }),
      (err: Error) => /cannot reach redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+/.test(err.message) && !err.message.includes('secret'),
    );
  });

  test('redis lost while running: every call is a 503 naming the URL, over RPC too; calls succeed again once it is back', { skip: !existsSync(REDIS_SERVER_BIN) && `no redis-server binary (${REDIS_SERVER_BIN})` }, async (t) => {
    // a redis-server of this test's own, to kill and restart
    const server = await privateRedis(t);
    const url = server.url;
    const port = new URL(url).port;
    const core = await redisCacheCoreService({ redisUrl: url, prefix: 'micro' })(context);
    t.after(() => core.stop?.());
    const platform = await startPlatform([{ def: core.def, handlers: core.handlers }]);
    t.after(() => platform.close());
    const cache = new RemoteCache(await platform.clientFor(ADMIN));
    await cache.set('k', 'v');
    assert.equal(await cache.increment('n'), 1);
    await server.kill();
    const unavailable = (err: unknown) => {
      assert.ok(err instanceof MicroError, String(err));
      assert.equal(err.code, 503, err.detail);
      assert.equal(err.id, 'micro.cache');
      assert.match(err.detail, new RegExp(`redis at redis://127\\.0\\.0\\.1:${port} is unavailable`));
      return true;
    };
    for (const call of [() => cache.get('k'), () => cache.set('k', 'w'), () => cache.increment('n'), () => cache.delete('k'), () => cache.listKeys()]) {
      await assert.rejects(call(), unavailable);
    }
    // bad input is still a 400 (checked before Redis is asked)
    await assert.rejects(cache.set('', 1), (err) => err instanceof MicroError && err.code === 400);
    await server.start();
    // ioredis reconnects by itself; the cache serves again (a new server: empty, --save "")
    for (let i = 0; ; i++) {
      try {
        await cache.set('k', 'back');
        break;
      } catch (err) {
        unavailable(err);
        assert.ok(i < 200, 'back on redis within 10 s');
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.equal((await cache.get('k'))?.value, 'back');
    assert.equal(await cache.increment('n'), 1, 'scripts are loaded again on the new server');
  });
});
