import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineService, endpoint, errors, Service, z, type Context } from '@micro/sdk';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { Gateway } from '../gateway/gateway.js';
import { http } from '../gateway/testing.js';
import { SqliteEvents } from '../events/sqlite.js';
import { StatsCollector, statsHandlers } from './index.js';

const greeter = defineService({
  name: 'greeter',
  version: '1.0.0',
  endpoints: {
    Call: endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string() }) }),
    Fail: endpoint({ request: z.object({}), response: z.object({}) }),
  },
});

/** promtool's verdict on the text, or undefined when promtool is not installed (skipped unless required). */
function promtool(t: { skip(msg: string): void }, text: string): { status: number | null; out: string } | undefined {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error) {
    if (process.env.MICRO_REQUIRE_ENGINES === '1') throw new Error(`promtool is required (MICRO_REQUIRE_ENGINES=1; apt-get install prometheus): ${run.error.message}`);
    t.skip(`promtool not found (apt-get install prometheus): ${run.error.message}`);
    return undefined;
  }
  return { status: run.status, out: `${run.stdout}${run.stderr}` };
}

describe('stats: /metrics and stats.Read', () => {
  let h: AuthHarness;
  let gw: Gateway;
  let collector: StatsCollector;
  let events: SqliteEvents;
  let dir: string;
  let aliceToken: string;
  let bobToken: string;
  let adminToken: string;
  const services: Service[] = [];
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const get = (path: string, token?: string, method = 'GET') => http(gw.url, method, path, { headers: token ? bearer(token) : {} });

  before(async () => {
    h = await startAuthHarness();
    dir = await mkdtemp(join(tmpdir(), 'micro-stats-'));
    const admin = h.authAs(h.admin);
    const alice = { id: 'alice', secret: (await admin.CreateAccount({ id: 'alice', namespace: 'tenant-a', scopes: ['dev'] })).secret as string, namespace: 'tenant-a' };
    const bob = { id: 'bob', secret: (await admin.CreateAccount({ id: 'bob', namespace: 'tenant-b', scopes: ['dev'] })).secret as string, namespace: 'tenant-b' };
    aliceToken = (await h.authAs().Token(alice)).token;
    bobToken = (await h.authAs().Token(bob)).token;
    adminToken = (await h.authAs().Token(h.admin)).token;
    for (const namespace of ['tenant-a', 'tenant-b']) {
      await admin.CreateRule({ id: 'all', namespace, resource: 'service:greeter:*', scope: '*', access: 'granted', priority: 1 });
      const svc = new Service(
        greeter,
        { Call: ({ name }) => ({ message: `Hello ${name}` }), Fail: () => { throw errors.NotFound('greeter', 'nothing here'); } },
        { namespace, registry: h.registry, logger: silent, auth: false, address: 'tcp://127.0.0.1:0' },
      );
      await svc.start();
      services.push(svc);
    }
    events = new SqliteEvents({ path: join(dir, 'events.db'), logger: silent });
    collector = new StatsCollector({ registry: h.registry, logger: silent, timeout: 1_000 });
    collector.setEvents(events);
    gw = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, rulesTtl: 0, rateLimit: false, stats: collector });
    await gw.listen();
  });

  after(async () => {
    await gw?.close();
    for (const s of services) await s.stop();
    await events?.close();
    await h?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a tenant sees its namespace only: calls, errors and latency of its instances and of the gateway', async (t) => {
    for (let i = 0; i < 3; i++) assert.equal((await http(gw.url, 'POST', '/v1/greeter/Call', { headers: { ...bearer(aliceToken), 'content-type': 'application/json' }, body: '{"name":"a"}' })).status, 200);
    assert.equal((await http(gw.url, 'POST', '/v1/greeter/Fail', { headers: { ...bearer(aliceToken), 'content-type': 'application/json' }, body: '{}' })).status, 404);
    assert.equal((await http(gw.url, 'POST', '/v1/greeter/Call', { headers: { ...bearer(bobToken), 'content-type': 'application/json' }, body: '{"name":"b"}' })).status, 200);

    const res = await get('/metrics', aliceToken);
    assert.equal(res.status, 200, res.body);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const a = services[0] as Service;
    assert.ok(res.body.includes(`micro_calls_total{code="200",endpoint="Call",instance="${a.nodeId}",namespace="tenant-a",service="greeter"} 3`), res.body);
    assert.ok(res.body.includes(`micro_calls_total{code="404",endpoint="Fail",instance="${a.nodeId}",namespace="tenant-a",service="greeter"} 1`));
    assert.match(res.body, /micro_gateway_requests_total\{code="200",endpoint="Call",namespace="tenant-a",service="greeter"\} 3/);
    // the greeter runs in the gateway's process: its calls are counted but not timed (an
    // in-process call, see CompiledEndpoint.callLocal); the gateway times them
    assert.match(res.body, /micro_call_duration_seconds_count\{endpoint="Call",instance="[^"]+",namespace="tenant-a",service="greeter"\} 0/);
    assert.match(res.body, /micro_gateway_request_duration_seconds_bucket\{endpoint="Call",le="\+Inf",namespace="tenant-a",service="greeter"\} 3/);
    assert.match(res.body, /process_resident_memory_bytes\{instance="[^"]+",namespace="tenant-a"\} \d+/);
    // nothing of the other tenant, nor the gateway-wide failure counts (those are micro's)
    assert.ok(!res.body.includes('tenant-b'));
    assert.ok(!res.body.includes((services[1] as Service).nodeId));
    assert.ok(!/^micro_gateway_errors_total\{/m.test(res.body));
    // Prometheus accepts the text
    const check = promtool(t, res.body);
    if (check) assert.equal(check.status, 0, check.out);
  });

  test('credentials are required; a tenant cannot ask for another namespace, by query or header', async () => {
    assert.equal((await get('/metrics')).status, 401);
    assert.equal((await get('/metrics', 'not-a-token')).status, 401);
    assert.equal((await get('/metrics?namespace=tenant-b', aliceToken)).status, 403);
    assert.equal((await http(gw.url, 'GET', '/metrics', { headers: { ...bearer(aliceToken), 'micro-namespace': 'tenant-b' } })).status, 403);
    assert.equal((await get('/metrics?namespace=tenant-a', aliceToken)).status, 200);
    // hostile namespace values
    for (const bad of ['', '..%2F', 'a%20b', 'x'.repeat(65), '%00']) assert.equal((await get(`/metrics?namespace=${bad}`, adminToken)).status, 400, bad);
    assert.equal((await get('/metrics', aliceToken, 'POST')).status, 405);
    const head = await get('/metrics', aliceToken, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('an admin of micro reads any namespace, and micro holds the gateway-wide failures', async (t) => {
    const b = await get('/metrics?namespace=tenant-b', adminToken);
    assert.equal(b.status, 200);
    assert.ok(b.body.includes('namespace="tenant-b"'));
    assert.ok(!b.body.includes('tenant-a'));
    const micro = await get('/metrics', adminToken);
    assert.equal(micro.status, 200);
    assert.match(micro.body, /^micro_gateway_errors_total\{code="401"\} \d+/m);
    const check = promtool(t, micro.body);
    if (check) assert.equal(check.status, 0, check.out);
  });

  test('stats.Read: the same as a table, with consumer lag and the instances that did not answer', async () => {
    await events.publish('orders', { n: 1 }, { namespace: 'tenant-a' });
    await events.publish('orders', { n: 2 }, { namespace: 'tenant-a' });
    const consumer = await events.consume('orders', { group: 'billing', offset: 'earliest', namespace: 'tenant-a' });
    // an instance that is gone but still registered: reported, not fatal
    await h.registry.register({ name: 'ghost', version: '1', endpoints: [], nodes: [{ id: 'ghost-1', address: 'tcp://127.0.0.1:1' }] }, { namespace: 'tenant-a', ttl: 0 });
    try {
      const read = await collector.read('tenant-a');
      assert.equal(read.namespace, 'tenant-a');
      const call = read.endpoints.find((e) => e.service === 'greeter' && e.endpoint === 'Call');
      assert.ok(call && call.calls >= 3 && call.errors === 0 && call.instances === 1, JSON.stringify(read.endpoints));
      assert.equal(read.endpoints.find((e) => e.endpoint === 'Fail')?.errors, 1);
      assert.ok((read.gateway.find((e) => e.endpoint === 'Call')?.calls ?? 0) >= 3);
      assert.deepEqual(read.unreachable, ['ghost-1']);
      assert.ok(read.instances.some((i) => i.service === 'greeter' && (i.memoryBytes ?? 0) > 0));
      assert.deepEqual(read.groups, [{ topic: 'orders', group: 'billing', pending: 2, inflight: read.groups[0]?.inflight ?? 0 }]);
      const other = await collector.read('tenant-b');
      assert.deepEqual(other.groups, []);
      assert.ok(other.endpoints.every((e) => e.service === 'greeter'));
      await assert.rejects(collector.read('bad namespace'), (err: { code?: number }) => err.code === 400);
    } finally {
      await consumer.close?.();
      await h.registry.deregister({ name: 'ghost', version: '1', endpoints: [], nodes: [{ id: 'ghost-1', address: 'tcp://127.0.0.1:1' }] }, { namespace: 'tenant-a' });
    }
  });

  test('stats handlers apply the namespace rule', async () => {
    const handlers = statsHandlers(collector);
    const as = (account: unknown) => ({ service: 'stats', endpoint: 'Read', account }) as unknown as Context;
    const alice = h.accounts.get('alice', 'tenant-a');
    await assert.rejects(Promise.resolve().then(() => handlers.Read({}, as(undefined))), (err: { code?: number }) => err.code === 401);
    await assert.rejects(Promise.resolve().then(() => handlers.Read({ namespace: 'tenant-b' }, as(alice))), (err: { code?: number }) => err.code === 403);
    assert.equal((await handlers.Read({}, as(alice))).namespace, 'tenant-a');
    const text = (await handlers.Prometheus({}, as(alice))).text;
    assert.ok(text.includes('namespace="tenant-a"') && !text.includes('tenant-b'));
  });
});
