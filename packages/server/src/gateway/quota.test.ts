import assert from 'node:assert/strict';
import test from 'node:test';
import { isMicroError } from '@micro/sdk';
import { NamespaceRates, RateLimited } from './quota.js';
import { RateLimiter } from './ratelimit.js';

/* A namespace's requestsPerSecond: the bucket, the refusals, the cached lookup. */

test('RateLimiter.takeAt: a bucket of its own rate and burst, exact with a clock; a changed rate applies at once', () => {
  const limiter = new RateLimiter({ rate: 50, burst: 100 });
  const now = 1_000_000;
  const answers = Array.from({ length: 10 }, () => limiter.takeAt('ns:acme', 3, 3, now));
  assert.deepEqual(answers, [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]);
  // a second later: 3 more
  assert.equal([1, 2, 3, 4].map(() => limiter.takeAt('ns:acme', 3, 3, now + 1000)).filter((w) => w === 0).length, 3);
  // a lower rate: the tokens the bucket has, no more
  assert.equal(limiter.takeAt('ns:acme', 1, 1, now + 3000), 0);
  assert.equal(limiter.takeAt('ns:acme', 1, 1, now + 3000), 1);
  // the caller buckets are apart
  assert.equal(limiter.take('acct:acme/alice', now), 0);
});

test('NamespaceRates: 429 with Retry-After naming the limit; 0 is a 403; micro and unlimited namespaces pass', async () => {
  const limits: Record<string, number | null> = { acme: 2, zero: 0, free: null };
  const rates = new NamespaceRates({ lookup: async (ns) => limits[ns] ?? 100 });
  await rates.admit('acme');
  await rates.admit('acme');
  const refused = await rates.admit('acme').then(() => undefined, (err: unknown) => err);
  assert.ok(refused instanceof RateLimited);
  assert.equal(refused.code, 429);
  assert.equal(refused.id, 'quota');
  assert.ok(refused.retryAfter >= 1);
  assert.equal(refused.detail, `quota exceeded: requestsPerSecond 2 of 2 used in namespace acme; slow down or ask for a larger quota (micro quota); retry in ${refused.retryAfter} s`);
  await assert.rejects(rates.admit('zero'), (err) => isMicroError(err) && err.code === 403 && /requestsPerSecond 0 of 0 used in namespace zero/.test(err.detail));
  for (let i = 0; i < 50; i++) {
    await rates.admit('free');
    await rates.admit('micro');
  }
});

test('NamespaceRates: a limit is read once per ttl; quotas out of reach let calls go and are asked again', async () => {
  let lookups = 0;
  let down = false;
  const rates = new NamespaceRates({
    lookup: async () => {
      lookups++;
      if (down) throw new Error('postgres away');
      return 1000;
    },
    ttl: 60_000,
  });
  await Promise.all(Array.from({ length: 20 }, () => rates.admit('acme')));
  assert.equal(lookups, 1);
  down = true;
  await rates.admit('globex');
  await rates.admit('globex');
  assert.equal(lookups, 3, 'a failed lookup is not kept');
});
