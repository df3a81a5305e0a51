import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineService, endpoint, serverStream, z, type Engines } from '@micro/sdk';
import { m3oRequest, i64, i64Out, publicService, str64, tenantStore } from './index.js';
import { startPlatform } from './testing.js';

/** A public service as the value-add services are: it keeps what it is given per tenant. */
const memo = defineService({
  name: 'memo',
  public: true,
  endpoints: {
    Save: endpoint({ request: m3oRequest({ memo_id: z.string().min(1).max(64), text: z.string().max(100), count: i64().optional() }), response: z.object({ count: i64Out }) }),
    Read: endpoint({ request: m3oRequest({ memo_id: z.string().min(1).max(64) }), response: z.object({ text: z.string(), tenant: z.string() }) }),
    Watch: serverStream({ request: z.object({ times: z.number().int().min(1).max(5) }), response: z.object({ tenant: z.string(), i: z.number() }) }),
  },
});

const hosted = publicService(memo, (engines: Engines) => ({
    Save: async ({ memo_id, text, count }, ctx) => {
      await tenantStore(engines.store, ctx, 'memo').write({ key: memo_id, value: text });
      return { count: str64(count ?? 0) };
    },
    Read: async ({ memo_id }, ctx) => {
      const [rec] = await tenantStore(engines.store, ctx, 'memo').read(memo_id);
      return { text: (rec?.value as string | undefined) ?? '', tenant: ctx.tenant };
    },
    async *Watch({ times }, ctx) {
      for (let i = 0; i < times; i++) yield { tenant: ctx.tenant, i };
    },
  }));

for (const profile of ['local', 'nats'] as const) {
  test(`public services of micro serve every tenant apart (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [hosted], profile });
    if (!p) return;
    t.after(() => p.close());

    // M3O's wire: POST with a Bearer API key, i64 in as a string or a number, out as a string,
    // lowerCamelCase accepted for snake_case, service names in any case
    const saved = await p.call(p.a.key, 'memo', 'Save', { memoId: 'x', text: 'of a', count: '42' });
    assert.equal(saved.status, 200, JSON.stringify(saved.body));
    assert.deepEqual(saved.body, { count: '42' });
    assert.equal((await p.call(p.b.key, 'MEMO', 'save', { memo_id: 'x', text: 'of b', count: 7 })).body.count, '7');

    // each reads its own, in its own namespace
    assert.deepEqual((await p.call(p.a.key, 'memo', 'Read', { memo_id: 'x' })).body, { text: 'of a', tenant: 'tenant-a' });
    assert.deepEqual((await p.call(p.b.key, 'memo', 'Read', { memo_id: 'x' })).body, { text: 'of b', tenant: 'tenant-b' });

    // the data is in the tenant's own namespace of the store (quotas count it, purge deletes it)
    const own = await p.call(p.adminToken, 'store', 'Read', { key: 'x', namespace: 'tenant-a', database: 'memo' });
    assert.equal(own.body.records[0].value, 'of a');

    // an admin of micro acts in a tenant's namespace with Micro-Namespace
    const res = await fetch(`${p.url}/v1/memo/Read`, { method: 'POST', headers: { authorization: `Bearer ${p.adminToken}`, 'content-type': 'application/json', 'micro-namespace': 'tenant-b' }, body: '{"memo_id":"x"}' });
    assert.deepEqual(await res.json(), { text: 'of b', tenant: 'tenant-b' });

    // streams over the WebSocket, one JSON text frame each
    const frames = await p.stream(p.a.key, 'memo', 'Watch', { times: 3 }).frames;
    assert.deepEqual(frames, [0, 1, 2].map((i) => ({ tenant: 'tenant-a', i })));

    // bad input: a 400 naming the field, in M3O's error shape
    const bad = await p.call(p.a.key, 'memo', 'Save', { memo_id: 'x', text: 'y', count: '1.5' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 400);
    assert.equal(bad.body.status, 'Bad Request');
    assert.match(bad.body.detail, /count/);
    // no credentials: 401
    assert.equal((await p.call(undefined, 'memo', 'Read', { memo_id: 'x' })).status, 401);
    // /openapi.json of a tenant lists the public service
    const doc = (await (await fetch(`${p.url}/openapi.json`, { headers: { authorization: `Bearer ${p.a.key}` } })).json()) as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/v1/memo/Save'], Object.keys(doc.paths).join(' '));
  });
}

test('a tenant\'s own service of the same name comes first', async (t) => {
  // the tenant's service runs here in the test's process, not in a sandbox
  process.env.MICRO_RUNTIME_SANDBOX = 'off';
  const p = await startPlatform(t, { services: [hosted] });
  if (!p) return;
  t.after(() => p.close());
  const { Service, ServiceAuth, createLogger } = await import('@micro/sdk');
  const { RemoteRegistry, platformClient, bearer, TokenSource, Client } = await import('@micro/sdk');
  const owner = p.a.owner;
  const tokens = new TokenSource(owner, new Client({ address: p.server.address, namespace: 'micro', preferLocal: false }));
  const registry = new RemoteRegistry(platformClient(p.server.address, [bearer(tokens)]));
  const mine = defineService({ name: 'memo', endpoints: { Read: endpoint({ request: z.object({}).passthrough(), response: z.object({ text: z.string(), tenant: z.string() }) }) } });
  const svc = new Service(mine, { Read: () => ({ text: 'my own memo', tenant: 'mine' }) }, {
    namespace: 'tenant-a',
    registry,
    address: 'tcp://127.0.0.1:0',
    logger: createLogger({ level: 'silent' }),
    auth: new ServiceAuth({ address: p.server.address, credentials: owner, refreshInterval: 0 }),
  });
  await svc.start();
  t.after(() => svc.stop());
  // the gateway's endpoint cache lives a second
  await new Promise((r) => setTimeout(r, 1_100));
  assert.deepEqual((await p.call(p.a.key, 'memo', 'Read', { memo_id: 'x' })).body, { text: 'my own memo', tenant: 'mine' });
  // the other tenant still reaches the public one
  assert.equal((await p.call(p.b.key, 'memo', 'Read', { memo_id: 'x' })).body.tenant, 'tenant-b');
});

test('tenants find and call public services over RPC too (the CLI\'s way), and see nothing else of micro', async (t) => {
  const p = await startPlatform(t, { services: [hosted] });
  if (!p) return;
  t.after(() => p.close());
  const { RemoteRegistry, platformClient, bearer, TokenSource, Client, createClient } = await import('@micro/sdk');
  const tokens = new TokenSource(p.a.owner, new Client({ address: p.server.address, namespace: 'micro', preferLocal: false }));
  const registry = new RemoteRegistry(platformClient(p.server.address, [bearer(tokens)]));
  // micro's registry shows a stranger its public services only
  const listed = await registry.listServices({ namespace: 'micro' });
  assert.deepEqual([...new Set(listed.map((r) => r.name))], ['memo']);
  assert.equal((await registry.getService('auth', { namespace: 'micro' })).length, 0);
  assert.equal((await registry.getService('memo', { namespace: 'micro' })).length, 1);
  // auth.Scope mints a token for micro's public service; the service sees the tenant
  const client = createClient(memo, new Client({ namespace: 'micro', registry, preferLocal: false, middleware: [bearer(tokens)] }));
  await client.Save({ memo_id: 'rpc', text: 'over rpc' });
  assert.deepEqual(await client.Read({ memo_id: 'rpc' }), { text: 'over rpc', tenant: 'tenant-a' });
  // b does not see it
  assert.equal((await p.call(p.b.key, 'memo', 'Read', { memo_id: 'rpc' })).body.text, '');
  // but not for micro's other services: a tenant's token is not scoped to them
  const { authApi } = await import('@micro/sdk');
  const scope = await createClient(authApi, platformClient(p.server.address, [bearer(tokens)])).Scope({ audience: 'micro/notpublic' }).catch((e: unknown) => e);
  assert.equal((scope as { code?: number }).code, 403);
});

test('a public service\'s calls are metered to the calling tenant: free within the quota, then charged from its balance', async (t) => {
  const priced = defineService({
    name: 'priced',
    public: true,
    endpoints: { Echo: endpoint({ request: z.object({ text: z.string().max(10) }), response: z.object({ text: z.string(), tenant: z.string() }), price: 100, freeQuota: 2 }) },
  });
  const p = await startPlatform(t, { services: [publicService(priced, () => ({ Echo: ({ text }, ctx) => ({ text, tenant: ctx.tenant }) }))], platform: true });
  if (!p) return;
  t.after(() => p.close());
  const echo = (key: string) => p.call(key, 'priced', 'Echo', { text: 'hi' });
  // the free quota of the month: two calls
  assert.equal((await echo(p.a.key)).status, 200);
  assert.equal((await echo(p.a.key)).status, 200);
  // then the price, which a tenant without credit cannot pay: M3O's answer
  const refused = await echo(p.a.key);
  assert.equal(refused.status, 403, JSON.stringify(refused.body));
  assert.equal(refused.body.id, 'v1.blocked');
  assert.match(refused.body.detail, /insufficient credit/);
  // the staff credit tenant a; its next call is charged to it, not to b or to micro
  const credit = await p.call(p.adminToken, 'balance', 'Credit', { namespace: 'tenant-a', amount: 1_000, reason: 'a test credit' });
  assert.equal(credit.status, 200, JSON.stringify(credit.body));
  assert.deepEqual((await echo(p.a.key)).body, { text: 'hi', tenant: 'tenant-a' });
  // the call was recorded before its answer; its ledger posting follows within a round of the outbox
  let balance = await p.call(p.a.key, 'balance', 'Read', {});
  for (let i = 0; i < 50 && balance.body.balance !== 900; i++) {
    await new Promise((r) => setTimeout(r, 100));
    balance = await p.call(p.a.key, 'balance', 'Read', {});
  }
  assert.equal(balance.body.balance, 900, JSON.stringify(balance.body));
  // b has its own free quota, untouched by a's calls
  assert.equal((await echo(p.b.key)).status, 200);
  assert.equal((await p.call(p.b.key, 'balance', 'Read', {})).body.balance, 0);
});
