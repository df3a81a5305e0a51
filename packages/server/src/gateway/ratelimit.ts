/**
 * Token buckets in memory, one per key (an account, or the IP of anonymous callers):
 * `rate` tokens a second, up to `burst`. `take` answers 0 when the call may go, else the
 * seconds until a token is there (for Retry-After).
 */
export interface RateLimitOptions {
  /** tokens added per second (default 50) */
  rate?: number;
  /** the most tokens a bucket holds (default 100) */
  burst?: number;
  /** the most buckets kept (default 10,000; full buckets are dropped first) */
  maxKeys?: number;
}

/**
 * What the gateway asks of a rate limiter: `take` answers 0 when the call may go, else
 * the seconds (≥ 1) until a token is there (Retry-After). The in-memory `RateLimiter`
 * answers at once (one node); `RedisRateLimiter` (ratelimit-redis.ts) with a Promise
 * (every node shares the buckets).
 */
export interface Limiter {
  take(key: string): number | Promise<number>;
  /** the same with a rate and burst of its own for this key (a namespace's requestsPerSecond) */
  takeAt?(key: string, rate: number, burst: number): number | Promise<number>;
}

interface Bucket {
  tokens: number;
  at: number;
  rate: number;
  burst: number;
}

export class RateLimiter implements Limiter {
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: RateLimitOptions = {}) {
    this.rate = Math.max(0.001, options.rate ?? 50);
    this.burst = Math.max(1, options.burst ?? 100);
    this.maxKeys = Math.max(1, options.maxKeys ?? 10_000);
  }

  /** 0 when a token was taken, else the seconds (≥ 1) to wait. */
  take(key: string, now = Date.now()): number {
    return this.takeAt(key, this.rate, this.burst, now);
  }

  /** 0 when a token was taken from `key`'s bucket of `rate` a second up to `burst`, else the seconds (≥ 1) to wait. */
  takeAt(key: string, rate: number, burst: number, now = Date.now()): number {
    rate = Math.max(0.001, rate);
    burst = Math.max(1, burst);
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.evict(now);
      b = { tokens: burst, at: now, rate, burst };
      this.buckets.set(key, b);
    } else {
      // a changed quota applies at once, to the tokens the bucket has
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
      Object.assign(b, { at: now, rate, burst });
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / rate));
  }

  /** Drops the buckets that have refilled (they are the same as new ones); all when none has. */
  private evict(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * b.rate >= b.burst) this.buckets.delete(key);
    }
    if (this.buckets.size >= this.maxKeys) this.buckets.clear();
  }
}

/** The largest rate (calls a second) or burst the gateway's per-caller limit takes. */
export const MAX_GATEWAY_RATE = 1_000_000_000;

/**
 * The gateway's per-caller limit as set: `rate` calls a second in bursts of up to `burst`
 * (default twice the rate), or false for none.
 */
export type GatewayRate = { rate: number; burst?: number } | false;

/**
 * Checks a per-caller limit and fills in its burst; a clear error naming `name` (the
 * setting it came from) when the rate is not a number above 0 or the burst not a whole
 * number of at least 1, or either is above MAX_GATEWAY_RATE.
 */
export function checkGatewayRate(value: GatewayRate, name: string): { rate: number; burst: number } | false {
  if (value === false) return false;
  const { rate } = value;
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || rate > MAX_GATEWAY_RATE) {
    throw new Error(`${name}: the rate must be a number of calls a second above 0 and at most ${MAX_GATEWAY_RATE}, not ${String(rate)}`);
  }
  const burst = value.burst ?? Math.max(1, Math.ceil(rate * 2));
  if (!Number.isSafeInteger(burst) || burst < 1 || burst > MAX_GATEWAY_RATE) {
    throw new Error(`${name}: the burst must be a whole number of calls from 1 to ${MAX_GATEWAY_RATE}, not ${String(burst)}`);
  }
  return { rate, burst };
}

/**
 * MICRO_GATEWAY_RATE's text: `<rate>` or `<rate>/<burst>` (`50/100`), or `off`.
 * Throws a clear error naming `name` for anything else.
 */
export function parseGatewayRate(text: string, name = 'MICRO_GATEWAY_RATE'): { rate: number; burst: number } | false {
  const t = text.trim();
  if (t.toLowerCase() === 'off') return false;
  const m = /^([0-9]+(?:\.[0-9]+)?)(?:\/([0-9]+))?$/.exec(t);
  if (!m) throw new Error(`${name} must be <calls a second>[/<burst>] (e.g. 50/100) or off, not "${text}"`);
  return checkGatewayRate({ rate: Number(m[1]), burst: m[2] === undefined ? undefined : Number(m[2]) }, name);
}
