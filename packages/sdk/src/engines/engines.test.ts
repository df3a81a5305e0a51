import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { connectWithBackoff } from './connect.js';
import { checkPrefix, profileFromEnv, redactUrl } from './profile.js';
import { engineUrl, testPrefix } from './testing.js';

test('profileFromEnv: local by default, nats with defaults, clear errors', () => {
  assert.deepEqual(profileFromEnv({}), { name: 'local' });
  const p = profileFromEnv({ MICRO_PROFILE: 'nats', MICRO_POSTGRES_URL: 'postgres://u:p@db/x', MICRO_PREFIX: 'prod' });
  assert.equal(p.name, 'nats');
  if (p.name !== 'nats') return;
  assert.equal(p.natsUrl, 'nats://127.0.0.1:4222');
  assert.equal(p.postgresUrl, 'postgres://u:p@db/x');
  assert.equal(p.redisUrl, 'redis://127.0.0.1:6379');
  assert.equal(p.prefix, 'prod');
  assert.throws(() => profileFromEnv({ MICRO_PROFILE: 'kafka' }), /MICRO_PROFILE must be "local" or "nats", not "kafka"/);
  for (const bad of ['', 'A', '1abc', 'a.b', 'a>b', 'a*', 'x'.repeat(33), 'a b', 'a\u0000']) {
    assert.throws(() => checkPrefix(bad), /MICRO_PREFIX must be/);
  }
  assert.throws(() => profileFromEnv({ MICRO_PROFILE: 'nats', MICRO_PREFIX: 'a.>' }), /MICRO_PREFIX/);
});

test('redactUrl hides passwords only', () => {
  assert.equal(redactUrl('postgres://user:secret@db:5432/x'), 'postgres://user:***@db:5432/x');
  assert.equal(redactUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
  assert.equal(redactUrl('x://user:secret@host'), 'x://user:***@host');
});

test('connectWithBackoff retries, then names the engine, the URL and the cause', async () => {
  let calls = 0;
  const retries: string[] = [];
  const value = await connectWithBackoff(
    'PostgreSQL',
    'postgres://u:pw@127.0.0.1:1/x',
    async () => {
      if (++calls < 3) throw new Error('ECONNREFUSED');
      return 42;
    },
    { initialDelay: 5, onRetry: (m) => retries.push(m) },
  );
  assert.equal(value, 42);
  assert.equal(retries.length, 2);
  assert.match(retries[0] ?? '', /cannot reach PostgreSQL at postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/x \(ECONNREFUSED\); retrying in 5 ms/);
  await assert.rejects(
    connectWithBackoff('Redis', 'redis://127.0.0.1:1', () => Promise.reject(new Error('refused')), { maxWait: 30, initialDelay: 10 }),
    (err: Error) => /cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(refused\) after \d+ attempts? in [\d.]+s: start Redis/.test(err.message),
  );
});

test('engineUrl skips (or fails under MICRO_REQUIRE_ENGINES) when the engine is away, and testPrefix is unique and valid', async () => {
  const a = testPrefix('Store Tests!');
  assert.match(a, /^t_store_tests_[0-9a-f]{8}$/);
  assert.notEqual(a, testPrefix('Store Tests!'));
  assert.equal(checkPrefix(a), a);
  // a port that nothing listens on
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  const { TEST_ENGINE_URLS } = await import('./testing.js');
  const saved = TEST_ENGINE_URLS.redis;
  const savedRequire = process.env.MICRO_REQUIRE_ENGINES;
  TEST_ENGINE_URLS.redis = `redis://127.0.0.1:${port}`;
  try {
    let skipped = '';
    delete process.env.MICRO_REQUIRE_ENGINES;
    assert.equal(await engineUrl({ skip: (m) => (skipped = m ?? '') }, 'redis'), undefined);
    assert.match(skipped, /redis is not reachable at redis:\/\/127\.0\.0\.1:\d+/);
    process.env.MICRO_REQUIRE_ENGINES = '1';
    await assert.rejects(engineUrl({ skip: () => undefined }, 'redis'), /MICRO_REQUIRE_ENGINES=1 makes the engine tests mandatory/);
  } finally {
    TEST_ENGINE_URLS.redis = saved;
    if (savedRequire === undefined) delete process.env.MICRO_REQUIRE_ENGINES;
    else process.env.MICRO_REQUIRE_ENGINES = savedRequire;
  }
});
