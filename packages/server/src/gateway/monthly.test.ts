import assert from 'node:assert/strict';
import test from 'node:test';
import { Redis } from 'ioredis';
import { isMicroError } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { MemoryMonthlyCounter, monthOf, NamespaceMonths, type MonthlyCounter } from './monthly.js';
import { RedisRateLimiter } from './ratelimit-redis.js';

/*
 * requestsPerMonth: calendar months in UTC, the refusal (403 naming the limit and the
 * reset), exact at the boundary under concurrency on one node (memory) and across two
 * nodes (Redis), namespaces apart.
 */

// the last instant of next year's December: Redis expires real keys on its own clock, so the test's months lie ahead
const YEAR = new Date().getUTCFullYear() + 1;
const DEC = Date.UTC(YEAR, 11, 31, 23, 59, 59, 999);
const JAN = `${YEAR + 1}-01-01T00:00:00.000Z`;

test('monthOf: the UTC month and the instant the next one begins', () => {
  assert.deepEqual(monthOf(DEC), { month: `${YEAR}-12`, resetAt: Date.UTC(YEAR + 1, 0, 1) });
  assert.deepEqual(monthOf(Date.UTC(2027, 0, 1)), { month: '2027-01', resetAt: Date.UTC(2027, 1, 1) });
  assert.equal(monthOf(Date.UTC(2028, 1, 29, 12)).resetAt, Date.UTC(2028, 2, 1), 'a leap February');
});

const refusedAt = (used: number, max: number, ns: string, reset: string) => (err: unknown) =>
  isMicroError(err) && err.code === 403 && err.id === 'quota' && err.detail === `quota exceeded: requestsPerMonth ${used} of ${max} used in namespace ${ns}; wait for the next month or ask for a larger quota (micro quota); the count resets at ${reset}`;

async function boundary(counters: MonthlyCounter[]): Promise<void> {
  let now = DEC - 1000;
  const limits: Record<string, number | null> = { acme: 7, zero: 0, free: null };
  const nodes = counters.map((c) => new NamespaceMonths({ lookup: async (ns) => (ns in limits ? (limits[ns] as number | null) : 100), now: () => now }, c));
  const node = (i: number) => nodes[i % nodes.length] as NamespaceMonths;
  const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => node(i).admit('acme')));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 7);
  for (const r of results) if (r.status === 'rejected') assert.ok(refusedAt(7, 7, 'acme', JAN)(r.reason), String(r.reason));
  assert.equal(await node(1).used('acme'), 7, 'refused calls are not counted');
  // another namespace has its own count; 0 refuses the first call; micro and unlimited are not counted
  await node(0).admit('globex');
  await assert.rejects(node(0).admit('zero'), refusedAt(0, 0, 'zero', JAN));
  for (let i = 0; i < 20; i++) await Promise.all([node(i).admit('free'), node(i).admit('micro')]);
  assert.equal(await node(0).used('free'), 0);
  // the next month starts again
  now = DEC + 1;
  await node(0).admit('acme');
  assert.equal(await node(1).used('acme'), 1);
  // the namespace purge forgets the count
  await node(1).purge('acme');
  assert.equal(await node(0).used('acme'), 0);
}

test('NamespaceMonths on one node (memory): exact at the boundary, months apart', async () => {
  await boundary([new MemoryMonthlyCounter()]);
});

test('NamespaceMonths on two nodes sharing Redis: exact across nodes; the count expires with its month', async (t) => {
  const url = await engineUrl(t, 'redis');
  if (!url) return;
  const prefix = testPrefix('month');
  const nodes = await Promise.all([0, 1].map(() => RedisRateLimiter.connect({ url, prefix, timeout: 10_000 })));
  const redis = new Redis(url);
  t.after(async () => {
    for (const n of nodes) await n.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });
  await boundary(nodes);
  assert.equal(await redis.get(`${prefix}:month:acme:${YEAR}-12`), '7');
  // each month's count expires when the month ends
  assert.equal(await redis.expiretime(`${prefix}:month:acme:${YEAR}-12`), Date.UTC(YEAR + 1, 0, 1) / 1000);
  assert.equal(await redis.exists(`${prefix}:month:acme:${YEAR + 1}-01`), 0, 'purged');
  assert.equal(nodes[0]?.fallbacks, 0);
});
