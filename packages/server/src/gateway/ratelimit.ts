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
