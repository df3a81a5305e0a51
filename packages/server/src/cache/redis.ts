import { Redis, ReplyError } from 'ioredis';
import {
  CACHE_ERROR_ID,
  cacheEngine as C,
  cacheService,
  errors,
  redactUrl,
  storeEngine,
  type BackoffOptions,
  type Cache,
  type CacheItem,
  type CacheListOptions,
  type CacheOptions,
  type CacheSetOptions,
  type Logger,
  type MemoryCacheQuota,
  type NatsProfile,
} from '@micro/sdk';
import type { CoreServiceFactory } from '../core.js';
import { cacheServiceHandlers } from './handlers.js';
import { connectRedis } from '../redis/connect.js';
import { cacheQuota } from './quota.js';

/**
 * The cache in Redis, shared by every micro server node of a platform (MICRO_PROFILE=nats,
 * MICRO_REDIS_URL). The same behaviour as the memory cache (cacheContract):
 *
 * - A key is the string `<prefix>:cache:<namespace>:<key>`, its value the JSON text. The
 *   namespace has `%` and `:` percent-encoded, so no two (namespace, key) pairs share a
 *   Redis key; the key goes as it is (it is the rest of the name).
 * - Set is `SET … PX <ms>` (or no PX: a set replaces the TTL); Get reads the value and
 *   its PTTL in one script; Delete is `DEL`.
 * - Increment/Decrement: one script checks that the key holds a safe integer and that the
 *   result stays one, then `INCRBY` (atomic, keeps the TTL). Redis runs one script at a
 *   time, so concurrent counters on several nodes lose nothing.
 * - ListKeys: `SCAN … MATCH <escaped prefix>* COUNT 1000`, the prefix's glob characters
 *   (`* ? [ ] \`) escaped so they match only themselves; the scan stops once it has
 *   `limit` keys or after `MAX_SCAN_CALLS` calls (~1M keys examined), then sorts. On a
 *   huge Redis it may thus see only part of the keys.
 * - Redis away at start: connectWithBackoff, then a clear error naming the URL. Redis
 *   lost while running: every call fails at once with a 503 naming the URL (no queue of
 *   calls waiting for it; a warning is logged once per outage); ioredis reconnects by
 *   itself and calls succeed again as soon as Redis answers. What the cache held is as
 *   durable as Redis makes it (a cache may forget).
 * - Bounds: Redis's own (`maxmemory` and `maxmemory-policy`, e.g. allkeys-lru for a Redis
 *   that only caches). A full Redis that refuses writes (OOM) is a 503 too.
 */

export interface RedisCacheOptions {
  /** MICRO_REDIS_URL */
  url: string;
  /** MICRO_PREFIX */
  prefix: string;
  logger?: Logger;
  /** ms a Redis call may take before it fails with a 503 (default 2,000) */
  timeout?: number;
  /** how long to wait for Redis at start (connectWithBackoff) */
  backoff?: BackoffOptions;
  /** the namespace of calls that name none (default `micro`) */
  namespace?: string;
  /** the per-namespace byte quota (cacheBytes) that refuses a growing Set; default none (bytes are counted all the same) */
  quota?: MemoryCacheQuota;
}

/** SCAN calls per ListKeys, at COUNT 1000 each: the bound on its work. */
export const MAX_SCAN_CALLS = 1000;
const SCAN_COUNT = 1000;

// KEYS[1]: the value and its PTTL (-1: none), or nil
const GET = `
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}
`;

// Every write runs in one script that also keeps the namespace's byte count (cacheBytes),
// so the check and the write are one step on every node. KEYS[1] the cache key, KEYS[2]
// a hash key -> its bytes, KEYS[3] a sorted set key -> its expiry (ms, Redis's clock),
// KEYS[4] the namespace's total. ARGV[1] the key (the hash field). An expired key's bytes
// leave the total when a later write of the namespace meets them (up to 100 a write, up to
// 10,000 more before a refusal).
const ACCOUNT = `
local function now() local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000) end
local function forget(f)
  local s = tonumber(redis.call('HGET', KEYS[2], f) or '0')
  if s ~= 0 then redis.call('DECRBY', KEYS[4], s) end
  redis.call('HDEL', KEYS[2], f)
  redis.call('ZREM', KEYS[3], f)
end
local function sweep(n)
  for _, f in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now(), 'LIMIT', 0, n or 100)) do forget(f) end
end
-- the bytes the key holds now (0 when it is gone: expired or evicted), and the namespace's
local function held()
  sweep()
  if redis.call('EXISTS', KEYS[1]) == 0 then forget(ARGV[1]) return 0 end
  return tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
end
-- before a refusal, up to 10,000 more expired keys leave the count (they are gone already)
local function admit(old, bytes, max)
  if max < 0 or bytes <= old then return nil end
  local used = tonumber(redis.call('GET', KEYS[4]) or '0')
  if used + bytes - old <= max then return nil end
  sweep(10000)
  used = tonumber(redis.call('GET', KEYS[4]) or '0')
  if used + bytes - old > max then return redis.error_reply('QUOTA ' .. used .. ' ' .. max) end
  return nil
end
local function count(old, bytes)
  redis.call('HSET', KEYS[2], ARGV[1], bytes)
  redis.call('INCRBY', KEYS[4], bytes - old)
end
`;

// ARGV[2] the JSON, [3] its bytes with the key's, [4] PX ms (0: none), [5] the limit (-1: none)
const SET = `${ACCOUNT}
local old = held()
local refused = admit(old, tonumber(ARGV[3]), tonumber(ARGV[5]))
if refused then return refused end
local ms = tonumber(ARGV[4])
if ms > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ms)
  redis.call('ZADD', KEYS[3], now() + ms, ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
count(old, tonumber(ARGV[3]))
return 1
`;

const DELETE = `${ACCOUNT}
sweep()
redis.call('DEL', KEYS[1])
forget(ARGV[1])
return 1
`;

// the namespace's bytes, expired keys swept first (KEYS[1] unused)
const USAGE = `${ACCOUNT}
sweep()
return tonumber(redis.call('GET', KEYS[4]) or '0')
`;

// ARGV[2] the delta, [3] the key's bytes, [5] the limit: INCRBY when the key holds a safe
// integer (or nothing) and the result stays one. Lua numbers are doubles: exact up to
// 2^53, and a sum past the bound compares past it. The result goes back as the stored
// text: ioredis parses integer replies near 2^53 inexactly.
const ADD = `${ACCOUNT}
local MAX = 9007199254740991
local old = held()
local v = redis.call('GET', KEYS[1])
local n = 0
if v then
  if v ~= '0' and not string.match(v, '^%-?[1-9]%d*$') then return redis.error_reply('NOTINT') end
  n = tonumber(v)
  if n > MAX or n < -MAX then return redis.error_reply('NOTINT') end
end
local r = n + tonumber(ARGV[2])
if r > MAX or r < -MAX then return redis.error_reply('OVERFLOW') end
local bytes = tonumber(ARGV[3]) + #string.format('%.0f', r)
local refused = admit(old, bytes, tonumber(ARGV[5]))
if refused then return refused end
redis.call('INCRBY', KEYS[1], ARGV[2])
count(old, bytes)
return redis.call('GET', KEYS[1])
`;

type Keys = [string, string, string, string];
type Scripted = Redis & {
  microCacheGet(key: string): Promise<[string, number] | null>;
  microCacheSet(...args: [...Keys, string, string, number, number, number]): Promise<number>;
  microCacheDelete(...args: [...Keys, string]): Promise<number>;
  microCacheUsage(...args: [...Keys, string]): Promise<number>;
  microCacheAdd(...args: [...Keys, string, string, number, string, number]): Promise<string>;
};

/** Redis answers that mean it cannot serve now (full, a replica, loading, busy): 503s. */
const UNAVAILABLE_REPLY = /^(OOM|READONLY|LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;

export class RedisCache implements Cache {
  readonly name = 'redis';
  private readonly base: string;
  private readonly url: string;
  private readonly namespace: string;
  private degraded = false;
  private closed = false;

  private constructor(
    private readonly redis: Scripted,
    private readonly options: RedisCacheOptions,
  ) {
    this.base = `${options.prefix}:cache:`;
    this.url = redactUrl(options.url);
    this.namespace = C.checkNamespace(options.namespace);
  }

  /** Connects (with backoff; a clear error naming the URL in the end). */
  static async connect(options: RedisCacheOptions): Promise<RedisCache> {
    const redis = await connectRedis(options.url, { timeout: options.timeout ?? 2_000, backoff: options.backoff });
    redis.defineCommand('microCacheGet', { numberOfKeys: 1, lua: GET });
    redis.defineCommand('microCacheSet', { numberOfKeys: 4, lua: SET });
    redis.defineCommand('microCacheDelete', { numberOfKeys: 4, lua: DELETE });
    redis.defineCommand('microCacheUsage', { numberOfKeys: 4, lua: USAGE });
    redis.defineCommand('microCacheAdd', { numberOfKeys: 4, lua: ADD });
    return new RedisCache(redis as Scripted, options);
  }

  async set(key: string, value: unknown, options: CacheSetOptions = {}): Promise<void> {
    const k = C.checkKey(key);
    const json = C.checkValue(value);
    const ms = C.ttlMillis(C.checkTtl(options.ttl));
    const ns = C.checkNamespace(options.namespace, this.namespace);
    const bytes = Buffer.byteLength(k, 'utf8') + Buffer.byteLength(json, 'utf8');
    const max = await this.limitOf(ns);
    await this.call(k, () => this.redis.microCacheSet(...this.keys(ns, k), k, json, bytes, ms, max), 0, ns);
  }

  async get(key: string, options: CacheOptions = {}): Promise<CacheItem | undefined> {
    const k = C.checkKey(key);
    const rk = this.redisKey(options.namespace, k);
    const found = await this.call(k, () => this.redis.microCacheGet(rk));
    if (!found) return undefined;
    const [json, pttl] = found;
    return { key: k, value: JSON.parse(json), ttl: pttl < 0 ? 0 : C.secondsLeft(pttl) };
  }

  async delete(key: string, options: CacheOptions = {}): Promise<void> {
    const k = C.checkKey(key);
    const ns = C.checkNamespace(options.namespace, this.namespace);
    await this.call(k, () => this.redis.microCacheDelete(...this.keys(ns, k), k));
  }

  /** The bytes of keys and JSON values a namespace holds (cacheBytes), expired keys swept first. */
  async usage(namespace: string): Promise<number> {
    const ns = C.checkNamespace(namespace);
    return Number(await this.call('', () => this.redis.microCacheUsage(...this.keys(ns, ''), '')));
  }

  async increment(key: string, delta?: number, options: CacheOptions = {}): Promise<number> {
    return this.add(key, C.checkDelta(delta), options);
  }

  async decrement(key: string, delta?: number, options: CacheOptions = {}): Promise<number> {
    return this.add(key, -C.checkDelta(delta), options);
  }

  async listKeys(options: CacheListOptions = {}): Promise<string[]> {
    const prefix = options.prefix === undefined ? '' : C.checkKey(options.prefix, 'prefix', true);
    const limit = C.checkLimit(options.limit);
    const space = this.space(options.namespace);
    const match = `${globEscape(space + prefix)}*`;
    const found = new Set<string>();
    await this.call(prefix, async () => {
      let cursor = '0';
      for (let calls = 0; calls < MAX_SCAN_CALLS && found.size < limit; calls++) {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT);
        // SCAN may return a key twice
        for (const rk of keys) if (rk.startsWith(space)) found.add(rk.slice(space.length));
        cursor = next;
        if (cursor === '0') break;
      }
    });
    return [...found].sort(storeEngine.compareKeys).slice(0, limit);
  }

  /**
   * Deletes every key of a namespace (the server's namespace purge): SCAN over the whole
   * keyspace of `<prefix>:cache:<namespace>:` (no bound: all of them must go), UNLINKed as
   * they are found. A key set meanwhile by a caller already let in may survive; a retry
   * takes it.
   */
  async purgeNamespace(namespace: string): Promise<number> {
    const space = this.space(C.checkNamespace(namespace));
    const match = `${globEscape(space)}*`;
    let removed = 0;
    await this.call('', async () => {
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT);
        const mine = keys.filter((k) => k.startsWith(space));
        if (mine.length > 0) removed += await this.redis.unlink(...mine);
        cursor = next;
      } while (cursor !== '0');
      await this.redis.unlink(...this.keys(namespace, '').slice(1));
    });
    return removed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private async add(key: string, delta: number, options: CacheOptions): Promise<number> {
    const k = C.checkKey(key);
    const ns = C.checkNamespace(options.namespace, this.namespace);
    const max = await this.limitOf(ns);
    const next = Number(await this.call(k, () => this.redis.microCacheAdd(...this.keys(ns, k), k, String(delta), Buffer.byteLength(k, 'utf8'), '', max), delta, ns));
    return next === 0 ? 0 : next;
  }

  /** The namespace's cacheBytes (-1: none), read on every growing write so a Set applies at once. */
  private async limitOf(ns: string): Promise<number> {
    return (await this.options.quota?.limit(ns)) ?? -1;
  }

  /** The cache key and the namespace's counting keys (`<prefix>:cachequota:<namespace>:…`), for the scripts. */
  private keys(ns: string, key: string): Keys {
    const meta = `${this.options.prefix}:cachequota:${escapeNamespace(ns)}:`;
    return [this.space(ns) + key, `${meta}sizes`, `${meta}expiry`, `${meta}bytes`];
  }

  /** `<prefix>:cache:<namespace>:` with `%` and `:` of the namespace percent-encoded. */
  private space(namespace: string | undefined): string {
    const ns = C.checkNamespace(namespace, this.namespace);
    return `${this.base}${escapeNamespace(ns)}:`;
  }

  private redisKey(namespace: string | undefined, key: string): string {
    return this.space(namespace) + key;
  }

  /** Runs one Redis call; what fails becomes a typed error (409, 503) naming the key or URL. */
  private async call<T>(key: string, fn: () => Promise<T>, delta = 0, namespace = ''): Promise<T> {
    if (this.closed) throw errors.ServiceUnavailable(CACHE_ERROR_ID, 'cache is closed');
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      throw this.failure(err, key, delta, namespace);
    }
    if (this.degraded) {
      this.degraded = false;
      this.options.logger?.info({ url: this.url }, 'cache: redis is back');
    }
    return result;
  }

  private failure(err: unknown, key: string, delta: number, namespace: string): Error {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof ReplyError) {
      const quota = /QUOTA (\d+) (\d+)/.exec(message);
      if (quota && this.options.quota) return this.options.quota.refuse(namespace, Number(quota[1]), Number(quota[2]));
      if (message.includes('NOTINT')) return C.notAnInteger(key);
      if (message.includes('OVERFLOW')) return C.overflow(key, delta);
      if (!UNAVAILABLE_REPLY.test(message)) return errors.InternalServerError(CACHE_ERROR_ID, `redis at ${this.url} refused a call: ${message}`);
    }
    if (!this.degraded) {
      this.degraded = true;
      this.options.logger?.warn({ err: message, url: this.url }, 'cache: redis does not answer; cache calls fail with 503 until it is back');
    }
    return errors.ServiceUnavailable(CACHE_ERROR_ID, `redis at ${this.url} is unavailable: ${message}`);
  }
}

/** A namespace in a Redis key: `%` and `:` percent-encoded, so no two namespaces meet. */
function escapeNamespace(ns: string): string {
  return ns.replace(/%/g, '%25').replace(/:/g, '%3A');
}

/** A glob (SCAN MATCH) that matches exactly `text`: its special characters escaped. */
export function globEscape(text: string): string {
  return text.replace(/[\\*?[\]]/g, (c) => `\\${c}`);
}

export interface RedisCacheServiceOptions {
  logger?: Logger;
  /** ms a Redis call may take (default 2,000) */
  timeout?: number;
  backoff?: BackoffOptions;
}

/**
 * The cache core service on Redis (the nats profile): keys under `<prefix>:cache:`.
 * `redisCacheCoreService(profile)`.
 */
export function redisCacheCoreService(profile: Pick<NatsProfile, 'redisUrl' | 'prefix'>, options: RedisCacheServiceOptions = {}): CoreServiceFactory {
  return async (ctx) => {
    const logger = (options.logger ?? ctx.logger).child({ component: 'cache' });
    const cache = await RedisCache.connect({
      url: profile.redisUrl,
      prefix: profile.prefix,
      logger,
      timeout: options.timeout,
      backoff: { onRetry: (message) => logger.warn(message), ...options.backoff },
      quota: cacheQuota(ctx),
    });
    ctx.quotas?.addSource(async (namespace) => ({ cacheBytes: await cache.usage(namespace) }));
    return { def: cacheService, handlers: cacheServiceHandlers(cache), stop: () => cache.close(), purge: async (namespace) => void (await cache.purgeNamespace(namespace)) };
  };
}
