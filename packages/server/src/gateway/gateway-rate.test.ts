import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@micro/sdk';
import { engineUrl, privateNats, privateRedis, REDIS_SERVER_BIN, testPrefix } from '@micro/sdk/testing';
import { dropSchema } from '../auth/testing.js';
import { MicroServer, type MicroServerOptions } from '../server.js';
import { MAX_GATEWAY_RATE, parseGatewayRate } from './ratelimit.js';
import { http, type HttpAnswer } from './testing.js';

/* The gateway's per-caller rate limit, as micro server is configured: MICRO_GATEWAY_RATE or the gatewayRate option. */

const silent = createLogger({ level: 'silent' });
const json = { 'content-type': 'application/json' };
type Profile = 'local' | 'nats';

const NATS_BIN = process.env.MICRO_TEST_NATS_SERVER || '/usr/sbin/nats-server';
const pgUrl = await engineUrl({ skip: () => undefined }, 'postgres');
const natsWhy = !pgUrl ? 'postgres is not reachable' : !existsSync(NATS_BIN) ? `no ${NATS_BIN}` : !existsSync(REDIS_SERVER_BIN) ? `no ${REDIS_SERVER_BIN}` : undefined;
if (natsWhy && process.env.MICRO_REQUIRE_ENGINES === '1') throw new Error(`the nats profile cannot run (${natsWhy}), and MICRO_REQUIRE_ENGINES=1 makes it mandatory`);
const skipOn = (profile: Profile) => ({ skip: profile === 'nats' ? natsWhy : false });

/** The environment of a server of `profile`: on nats, engines of the test's own (its Redis holds the shared buckets). */
async function profileEnv(t: { after(fn: () => unknown): void }, profile: Profile): Promise<Record<string, string>> {
  if (profile === 'local') return { MICRO_PROFILE: 'local' };
  const [nats, redis] = [await privateNats(t), await privateRedis(t)];
  const prefix = testPrefix('gwrate');
  t.after(() => dropSchema(pgUrl as string, prefix));
  return { MICRO_PROFILE: 'nats', MICRO_NATS_URL: nats.url, MICRO_POSTGRES_URL: pgUrl as string, MICRO_REDIS_URL: redis.url, MICRO_PREFIX: prefix, MICRO_AUTH_KEY: randomBytes(24).toString('hex') };
}

test('MICRO_GATEWAY_RATE: a rate, a rate and a burst, or off', () => {
  assert.deepEqual(parseGatewayRate('50'), { rate: 50, burst: 100 });
  assert.deepEqual(parseGatewayRate(' 200/10 '), { rate: 200, burst: 10 });
  assert.deepEqual(parseGatewayRate('0.5'), { rate: 0.5, burst: 1 });
  assert.deepEqual(parseGatewayRate('2.5/1'), { rate: 2.5, burst: 1 });
  assert.deepEqual(parseGatewayRate(`${MAX_GATEWAY_RATE}/${MAX_GATEWAY_RATE}`), { rate: MAX_GATEWAY_RATE, burst: MAX_GATEWAY_RATE });
  assert.equal(parseGatewayRate('off'), false);
  assert.equal(parseGatewayRate('OFF'), false);
});

test('MICRO_GATEWAY_RATE: anything else is an error naming the setting and what it takes', () => {
  for (const bad of ['', 'fast', '-5', '0', '0/10', '50/0', '50/2.5', '50/-1', '5e3', 'Infinity', 'NaN', '50/100/1', '50 / 100', '1/', '/5', '0x10', `${MAX_GATEWAY_RATE + 1}`, `1/${MAX_GATEWAY_RATE + 1}`, 'none', 'false']) {
    assert.throws(() => parseGatewayRate(bad), (err: Error) => err.message.startsWith('MICRO_GATEWAY_RATE') && /calls/.test(err.message), `"${bad}" was taken`);
  }
});

/** A server on free ports in a new home, with `env` set while it is made (and put back after). */
async function withServer(options: MicroServerOptions, env: Record<string, string>, run: (url: string, home: string) => Promise<void>): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'micro-gw-rate-'));
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  let server: MicroServer | undefined;
  try {
    server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent, ...options }).start();
    await run(server.gatewayUrl as string, home);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await server?.stop();
    rmSync(home, { recursive: true, force: true });
  }
}

/** `n` anonymous calls one after another from this machine's address: their statuses. */
async function anonymousCalls(url: string, n: number): Promise<HttpAnswer[]> {
  const out: HttpAnswer[] = [];
  for (let i = 0; i < n; i++) out.push(await http(url, 'POST', '/v1/registry/ListServices', { headers: json, body: '{}' }));
  return out;
}

test('a bad MICRO_GATEWAY_RATE or gatewayRate stops micro server before it starts anything', () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-gw-rate-'));
  const saved = process.env.MICRO_GATEWAY_RATE;
  try {
    process.env.MICRO_GATEWAY_RATE = '100/fast';
    assert.throws(() => new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent }), /^Error: MICRO_GATEWAY_RATE must be <calls a second>\[\/<burst>\] \(e\.g\. 50\/100\) or off, not "100\/fast"$/);
    delete process.env.MICRO_GATEWAY_RATE;
    assert.throws(() => new MicroServer({ home, logger: silent, gatewayRate: { rate: 0 } }), /^Error: gatewayRate: the rate must be a number of calls a second above 0/);
    assert.throws(() => new MicroServer({ home, logger: silent, gatewayRate: { rate: 10, burst: 0.5 } }), /^Error: gatewayRate: the burst must be a whole number/);
    assert.throws(() => new MicroServer({ home, logger: silent, gatewayRate: { rate: Number.NaN } }), /gatewayRate: the rate/);
    // nothing was made: no lock, no server folder
    assert.equal(existsSync(join(home, 'server')), false);
  } finally {
    if (saved === undefined) delete process.env.MICRO_GATEWAY_RATE;
    else process.env.MICRO_GATEWAY_RATE = saved;
    rmSync(home, { recursive: true, force: true });
  }
});

for (const profile of ['local', 'nats'] as const) {
  test(`MICRO_GATEWAY_RATE=1/3: the fourth quick call of a caller is a 429 with Retry-After (${profile} profile)`, skipOn(profile), async (t) => {
    await withServer({}, { ...(await profileEnv(t, profile)), MICRO_GATEWAY_RATE: '1/3' }, async (url) => {
      const answers = await anonymousCalls(url, 4);
      assert.deepEqual(answers.map((a) => a.status), [401, 401, 401, 429]);
      assert.ok(Number(answers[3]?.headers['retry-after']) >= 1);
    });
  });
}

test('the gatewayRate option wins over MICRO_GATEWAY_RATE', async () => {
  await withServer({ gatewayRate: { rate: 1, burst: 2 } }, { MICRO_GATEWAY_RATE: 'off' }, async (url) => {
    assert.deepEqual((await anonymousCalls(url, 3)).map((a) => a.status), [401, 401, 429]);
  });
});

test('by default a caller gets bursts of 100', async () => {
  await withServer({}, { MICRO_GATEWAY_RATE: '' }, async (url) => {
    // at once, so that few tokens come back (50 a second) while they are made
    const statuses = (await Promise.all(Array.from({ length: 160 }, () => http(url, 'POST', '/v1/registry/ListServices', { headers: json, body: '{}' })))).map((a) => a.status);
    const passed = statuses.filter((s) => s === 401).length;
    assert.ok(passed >= 100 && passed < 160, `${passed} of 160 passed`);
    assert.equal(passed + statuses.filter((s) => s === 429).length, 160);
  });
});

for (const profile of ['local', 'nats'] as const) {
  test(`MICRO_GATEWAY_RATE=off: no per-caller limit, but a namespace's requestsPerSecond quota still holds (${profile} profile)`, skipOn(profile), async (t) => {
    await withServer({}, { ...(await profileEnv(t, profile)), MICRO_GATEWAY_RATE: 'off' }, async (url, home) => {
      assert.ok((await anonymousCalls(url, 250)).every((a) => a.status === 401));

      const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
      const token = async (id: string, secret: string, namespace: string) =>
        (JSON.parse((await http(url, 'POST', '/v1/auth/Token', { headers: json, body: JSON.stringify({ id, secret, namespace }) })).body) as { token: string }).token;
      const as = (t: string) => ({ ...json, authorization: `Bearer ${t}` });
      const adminToken = await token(admin.id, admin.secret, 'micro');
      const made = await http(url, 'POST', '/v1/auth/CreateAccount', { headers: as(adminToken), body: JSON.stringify({ id: 'ann', secret: 'a-long-enough-secret', namespace: 'acme', scopes: ['admin'] }) });
      assert.equal(made.status, 200, made.body);
      const set = await http(url, 'POST', '/v1/quota/Set', { headers: as(adminToken), body: JSON.stringify({ namespace: 'acme', limits: { requestsPerSecond: 3 } }) });
      assert.equal(set.status, 200, set.body);
      const tenant = await token('ann', 'a-long-enough-secret', 'acme');
      const statuses: number[] = [];
      let refused: HttpAnswer | undefined;
      for (let i = 0; i < 6; i++) {
        const a = await http(url, 'POST', '/v1/registry/ListServices', { headers: as(tenant), body: '{}' });
        statuses.push(a.status);
        if (a.status === 429) refused ??= a;
      }
      assert.deepEqual(statuses.slice(0, 3), [200, 200, 200]);
      assert.ok(refused, `no call was refused: ${statuses.join(' ')}`);
      assert.match(refused.body, /requestsPerSecond 3 of 3 used in namespace acme/);
    });
  });
}
