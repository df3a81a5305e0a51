import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { createLogger, MemoryRegistry, type Account } from '@micro/sdk';
import { engineUrl, freePort, privateRedis, REDIS_SERVER_BIN, testPrefix } from '@micro/sdk/testing';
import { openPgAuth } from '../auth/pg/index.js';
import { relay } from '../postgres/testing.js';
import { dropSchema, TEST_AUTH_KEY } from '../auth/testing.js';
import { Gateway } from './gateway.js';
import { RateLimiter } from './ratelimit.js';
import { RedisRateLimiter } from './ratelimit-redis.js';
import { http } from './testing.js';

/** Deletes every key of a test's prefix. */
async function cleanup(url: string, prefix: string): Promise<void> {
  const r = new Redis(url);
  try {
    const keys = await r.keys(`${prefix}:*`);
    if (keys.length > 0) await r.del(...keys);
  } finally {
    r.disconnect();
  }
}

test('two limiters (two nodes) hammering one key concurrently: exactly burst calls pass', async (t) => {
  const url = await engineUrl(t, 'redis');
  if (!url) return;
  const prefix = testPrefix('rl');
  t.after(() => cleanup(url, prefix));
  // a token per 1000 s: no refill while the test runs, so exactly `burst` may pass
  // a generous timeout: a busy test machine must not turn a slow answer into a fallback
  const options = { url, prefix, rate: 0.001, burst: 50, timeout: 10_000 };
  const [a, b] = await Promise.all([RedisRateLimiter.connect(options), RedisRateLimiter.connect(options)]);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  for (const round of [0, 1]) {
    const key = `acct:tenant-a/alice-${round}`;
    const answers = await Promise.all(Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? a : b).take(key)));
    assert.equal(answers.filter((w) => w === 0).length, 50, 'exactly burst calls pass');
    // the others are told to come back when a token is there (1000 s at this rate)
    for (const w of answers.filter((w) => w !== 0)) assert.ok(w >= 999 && w <= 1000, String(w));
  }
  assert.equal(a.fallbacks + b.fallbacks, 0);
  // the buckets are under <prefix>:ratelimit:, with an expiry
  const r = new Redis(url);
  try {
    const keys = (await r.keys(`${prefix}:*`)).sort();
    assert.deepEqual(keys, [`${prefix}:ratelimit:acct:tenant-a/alice-0`, `${prefix}:ratelimit:acct:tenant-a/alice-1`]);
    assert.ok((await r.pttl(keys[0] as string)) > 0);
  } finally {
    r.disconnect();
  }
});

test('the same answers as the in-memory RateLimiter: burst, then Retry-After seconds; keys are apart', async (t) => {
  const url = await engineUrl(t, 'redis');
  if (!url) return;
  const prefix = testPrefix('rlsem');
  t.after(() => cleanup(url, prefix));
  const options = { rate: 0.5, burst: 2 };
  const redis = await RedisRateLimiter.connect({ url, prefix, timeout: 10_000, ...options });
  t.after(() => redis.close());
  const memory = new RateLimiter(options);
  for (const key of ['ip:10.0.0.1', 'ip:10.0.0.2']) {
    // two pass, the third waits for a token: (1 - ~0) / 0.5 → 2 s
    const expected = [memory.take(key), memory.take(key), memory.take(key)];
    assert.deepEqual(expected, [0, 0, 2]);
    assert.deepEqual([await redis.take(key), await redis.take(key), await redis.take(key)], expected);
  }
});

test('hostile keys: long, binary, with the prefix separator: each its own bucket, no error', async (t) => {
  const url = await engineUrl(t, 'redis');
  if (!url) return;
  const prefix = testPrefix('rlkey');
  t.after(() => cleanup(url, prefix));
  const limiter = await RedisRateLimiter.connect({ url, prefix, rate: 0.001, burst: 1, timeout: 10_000 });
  t.after(() => limiter.close());
  const keys = ['x'.repeat(100_000), 'x'.repeat(100_001), 'ip:\u0000\r\n*3', `${prefix}:ratelimit:`, '', 'ip:::1', '\u{1F600}'];
  for (const key of keys) assert.equal(await limiter.take(key), 0, 'a new bucket');
  for (const key of keys) assert.ok((await limiter.take(key)) > 0, 'the same bucket');
  assert.equal(limiter.fallbacks, 0);
  const r = new Redis(url);
  try {
    // the long keys are hashed: no key is longer than the prefix plus 256
    for (const k of await r.keys(`${prefix}:*`)) assert.ok(k.length <= prefix.length + 11 + 256, `${k.length}`);
  } finally {
    r.disconnect();
  }
});

test('redis down at start: a clear error naming the URL', async () => {
  const port = await freePort();
  await assert.rejects(
    RedisRateLimiter.connect({ url: `redis://:secret@127.0.0.1:${port}`, prefix: 'micro', backoff: { maxWait: 0 } }),
    (err: Error) => /cannot reach redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+/.test(err.message) && !err.message.includes('secret'),
  );
});

test('redis lost while running: calls fall back to the node\'s own limits, counted; back to redis when it returns', { skip: !existsSync(REDIS_SERVER_BIN) && `no redis-server binary (${REDIS_SERVER_BIN})` }, async (t) => {
  // a redis-server of this test's own, to kill and restart
  const server = await privateRedis(t);
  const url = server.url;
  const limiter = await RedisRateLimiter.connect({ url, prefix: 'micro', rate: 0.001, burst: 3 });
  t.after(() => limiter.close());
  assert.equal(await limiter.take('acct:a/x'), 0);
  await server.kill();
  // no throw, no wait for a dead Redis: the node's own bucket (full, a new one) answers
  const during = [await limiter.take('acct:a/x'), await limiter.take('acct:a/x'), await limiter.take('acct:a/x'), await limiter.take('acct:a/x')];
  assert.deepEqual(during, [0, 0, 0, 1000]);
  assert.equal(limiter.fallbacks, 4);
  await server.start();
  // ioredis reconnects by itself; the limiter uses Redis again (a new server: a full bucket)
  for (let i = 0; ; i++) {
    const before: number = limiter.fallbacks;
    const wait = await limiter.take('acct:a/y');
    if (limiter.fallbacks === before) {
      assert.equal(wait, 0);
      break;
    }
    assert.ok(i < 200, 'back on redis within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  const r = new Redis(url);
  try {
    assert.equal(await r.exists('micro:ratelimit:acct:a/y'), 1);
  } finally {
    r.disconnect();
  }
});

test('two gateways (two nodes): an API key made at one works at the other, and the rate limit is the platform\'s', async (t) => {
  const pgUrl = await engineUrl(t, 'postgres');
  if (!pgUrl) return;
  const redisUrl = await engineUrl(t, 'redis');
  if (!redisUrl) return;
  const prefix = testPrefix('gw2');
  t.after(() => cleanup(redisUrl, prefix));
  t.after(() => dropSchema(pgUrl, prefix));
  const logger = createLogger({ level: 'silent' });
  const registry = new MemoryRegistry();
  t.after(() => registry.close());
  // node B reaches Postgres through a cable the test can cut
  const cable = await relay(pgUrl);
  t.after(() => cable.close());
  const nodes = await Promise.all(
    ['node-a', 'node-b'].map(async (node) => {
      const auth = await openPgAuth({ url: node === 'node-b' ? cable.url : pgUrl, prefix, node, authKey: TEST_AUTH_KEY, scrypt: { N: 1024 } });
      const limiter = await RedisRateLimiter.connect({ url: redisUrl, prefix, rate: 0.001, burst: 5, timeout: 10_000 });
      const gateway = new Gateway({ address: '127.0.0.1:0', registry, tokens: auth.tokens, accounts: auth.accounts, limiter, logger, preferLocal: false });
      await gateway.listen();
      t.after(async () => {
        await gateway.close();
        await limiter.close();
        await auth.close();
      });
      return { auth, gateway };
    }),
  );
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  await a.auth.accounts.create({ id: 'alice', namespace: 'tenant-a', type: 'user', scopes: ['dev'] });
  const { key } = await a.auth.accounts.keys.create((await a.auth.accounts.get('alice', 'tenant-a')) as Account, 'ci', ['dev']);
  const call = (g: Gateway) => http(g.url, 'POST', '/v1/nowhere/Call', { headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' });
  // past authentication and the limiter, the call finds no service (404); the sixth is refused at either gateway
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => call(i % 2 === 0 ? b.gateway : a.gateway)));
  assert.equal(answers.filter((r) => r.status === 404).length, 5, answers.map((r) => r.status).join(','));
  const refused = answers.filter((r) => r.status === 429);
  assert.equal(refused.length, 7);
  for (const r of refused) assert.equal(r.headers['retry-after'], '1000');
  // a wrong secret of the same key id is a 401 at B
  const wrong = await http(b.gateway.url, 'POST', '/v1/nowhere/Call', { headers: { authorization: `Bearer ${key.slice(0, -4)}AAAA` }, body: '{}' });
  assert.equal(wrong.status, 401);
  // Postgres out of B's reach: an API key cannot be checked there — a 503, not a 401
  await cable.cut();
  const away = await call(b.gateway);
  assert.equal(away.status, 503, away.body);
  assert.match(String((away.json as { detail: string }).detail), /postgres .* is unavailable/);
  await cable.restore();
});
