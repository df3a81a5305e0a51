import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { redactUrl, type BackoffOptions, type Logger, type Profile } from '@micro/sdk';
import { RateLimiter, type Limiter, type RateLimitOptions } from './ratelimit.js';
import { connectRedis } from '../redis/connect.js';
import { MemoryMonthlyCounter, type MonthlyCounter } from './monthly.js';

/**
 * The gateway's token buckets in Redis, shared by every node of a platform: the same
 * semantics as `RateLimiter` (`rate` tokens a second up to `burst`; `take` answers 0 or
 * the seconds to wait for Retry-After), so a caller gets `burst` calls in a burst from the
 * whole platform, not from each node.
 *
 * - Exact under concurrency: one Lua script reads, refills, takes and writes a bucket
 *   atomically (Redis runs one script at a time), on Redis's clock (`TIME`), so the
 *   nodes' clocks do not matter.
 * - A bucket is a hash `<prefix>:ratelimit:<key>` that expires once it would be full
 *   again (a full bucket and no bucket are the same): no key outlives its use.
 * - Redis lost (down, restarting, slower than `timeout`): **fail open to per-node
 *   limits** — the call is counted by an in-memory `RateLimiter` of this node instead,
 *   with a warning logged once per outage and `fallbacks` counting each such call. The
 *   limiter protects the services from floods; auth still applies to every call, and
 *   refusing every call of the platform because Redis is away would turn a cache outage
 *   into a full one. While it lasts a caller can get up to (nodes × burst). Back to Redis
 *   as soon as it answers again (ioredis reconnects by itself).
 */

export interface RedisRateLimitOptions extends RateLimitOptions {
  /** MICRO_REDIS_URL */
  url: string;
  /** MICRO_PREFIX */
  prefix: string;
  logger?: Logger;
  /** ms a Redis call may take before this call falls back to the node's own limits (default 500) */
  timeout?: number;
  /** how long to wait for Redis at start (connectWithBackoff) */
  backoff?: BackoffOptions;
}

// KEYS[1] the bucket; ARGV rate (tokens/s), burst. Returns 0, or the seconds to wait.
const TAKE = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.max(1, math.ceil((1 - tokens) / rate))
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil((burst - tokens) / rate * 1000) + 1000))
return wait
`;

// KEYS[1] a namespace's month; ARGV max, the month's end (unix s). Returns {counted 0/1, count before}.
const MONTH = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {0, n} end
redis.call('INCR', KEYS[1])
if n == 0 then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return {1, n}
`;

/** keys longer than this are hashed (an IPv6 address or an account id is far shorter) */
const MAX_KEY = 256;

type WithTake = Redis & {
  microRateTake(key: string, rate: number, burst: number): Promise<number>;
  microMonthCount(key: string, max: number, resetAt: number): Promise<[number, number]>;
};

export class RedisRateLimiter implements Limiter, MonthlyCounter {
  /** calls counted by this node's own limits because Redis did not answer */
  fallbacks = 0;
  private degraded = false;
  private readonly rate: number;
  private readonly burst: number;
  private readonly local: RateLimiter;
  private readonly localMonths = new MemoryMonthlyCounter();
  private readonly keyPrefix: string;
  private readonly monthPrefix: string;

  private constructor(
    private readonly redis: WithTake,
    private readonly options: RedisRateLimitOptions,
  ) {
    // the same bounds as RateLimiter
    this.rate = Math.max(0.001, options.rate ?? 50);
    this.burst = Math.max(1, options.burst ?? 100);
    this.local = new RateLimiter(options);
    this.keyPrefix = `${options.prefix}:ratelimit:`;
    this.monthPrefix = `${options.prefix}:month:`;
  }

  /** Connects (with backoff; a clear error naming the URL in the end) and loads the script. */
  static async connect(options: RedisRateLimitOptions): Promise<RedisRateLimiter> {
    // a call while Redis is away fails at once and falls back to this node's limiter
    const redis = await connectRedis(options.url, { timeout: options.timeout ?? 500, backoff: options.backoff });
    redis.defineCommand('microRateTake', { numberOfKeys: 1, lua: TAKE });
    redis.defineCommand('microMonthCount', { numberOfKeys: 1, lua: MONTH });
    return new RedisRateLimiter(redis as WithTake, options);
  }

  take(key: string): Promise<number> {
    return this.takeAt(key, this.rate, this.burst);
  }

  /** A bucket of its own rate and burst (a namespace's requestsPerSecond), shared by the nodes as every bucket is. */
  async takeAt(key: string, rate: number, burst: number): Promise<number> {
    const k = key.length > MAX_KEY ? `h:${createHash('sha256').update(key).digest('hex')}` : key;
    rate = Math.max(0.001, rate);
    burst = Math.max(1, burst);
    return this.shared(async () => Number(await this.redis.microRateTake(this.keyPrefix + k, rate, burst)), () => this.local.takeAt(k, rate, burst));
  }

  /**
   * requestsPerMonth, shared by the nodes: `<prefix>:month:<namespace>:<YYYY-MM>`, counted
   * and checked in one script, expiring when the month ends. Redis lost: this node counts
   * on its own, as the buckets do.
   */
  async count(namespace: string, month: string, max: number, resetAt: number): Promise<{ counted: boolean; used: number }> {
    return this.shared(
      async () => {
        const [counted, used] = await this.redis.microMonthCount(`${this.monthPrefix}${namespace}:${month}`, max, Math.ceil(resetAt / 1000));
        return { counted: counted === 1, used: Number(used) };
      },
      () => this.localMonths.count(namespace, month, max),
    );
  }

  async used(namespace: string, month: string): Promise<number> {
    return this.shared(async () => Number((await this.redis.get(`${this.monthPrefix}${namespace}:${month}`)) ?? 0), () => this.localMonths.used(namespace, month));
  }

  async purge(namespace: string, month: string): Promise<void> {
    await this.redis.del(`${this.monthPrefix}${namespace}:${month}`);
    await this.localMonths.purge(namespace);
  }

  /** A call to Redis, or `fallback` (this node's own) while Redis does not answer. */
  private async shared<T>(call: () => Promise<T>, fallback: () => T | Promise<T>): Promise<T> {
    try {
      const out = await call();
      if (this.degraded) {
        this.degraded = false;
        this.options.logger?.info({ url: redactUrl(this.options.url) }, 'rate limits: redis is back, limits are shared by the nodes again');
      }
      return out;
    } catch (err) {
      this.fallbacks++;
      if (!this.degraded) {
        this.degraded = true;
        this.options.logger?.warn(
          { err: err instanceof Error ? err.message : String(err), url: redactUrl(this.options.url) },
          'rate limits: redis does not answer; each node limits on its own until it is back',
        );
      }
      return fallback();
    }
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/**
 * The gateway's limiter for a profile: undefined for `local` (the gateway makes its own
 * in-memory one), shared buckets in Redis for `nats`. Close it after the gateway.
 */
export async function openRateLimiter(profile: Profile, options: RateLimitOptions & { logger?: Logger } = {}): Promise<RedisRateLimiter | undefined> {
  if (profile.name === 'local') return undefined;
  return RedisRateLimiter.connect({ ...options, url: profile.redisUrl, prefix: profile.prefix, logger: options.logger });
}
