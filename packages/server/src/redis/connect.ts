import { Redis } from 'ioredis';
import { connectWithBackoff, type BackoffOptions } from '@micro/sdk';

/**
 * A Redis connection for the engines of the nats profile (cache, rate limits): connected
 * with backoff at start (the error in the end names the URL, password hidden), and
 * failing fast while Redis is away — no offline queue, no retries per command, a short
 * command timeout — so that a call gets a 503 (or falls back) at once instead of
 * queueing; ioredis keeps reconnecting in the background and calls work again when Redis
 * is back.
 */
export async function connectRedis(url: string, options: { timeout: number; backoff?: BackoffOptions }): Promise<Redis> {
  return connectWithBackoff(
    'redis',
    url,
    async () => {
      const r = new Redis(url, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: options.timeout,
        connectTimeout: 5_000,
        retryStrategy: (times) => Math.min(times * 250, 5_000),
      });
      // connection errors surface as failed calls
      r.on('error', () => undefined);
      try {
        await r.connect();
        await r.ping();
      } catch (err) {
        r.disconnect();
        throw err;
      }
      return r;
    },
    options.backoff,
  );
}
