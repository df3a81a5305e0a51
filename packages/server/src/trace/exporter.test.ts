import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client,
  defineService,
  disableTracing,
  enableTracing,
  endpoint,
  RemoteSpanExporter,
  Service,
  traceService,
  z,
  type Account,
  type Context,
} from '@micro/sdk';
import { actingAs, silent } from '../auth/testing.js';
import { recordingExporter } from './testing.js';
import { Gateway } from '../gateway/gateway.js';
import { http } from '../gateway/testing.js';
import { startAuthHarness } from '../auth/testing.js';
import { traceHandlers, TraceStore } from './index.js';

after(() => disableTracing());

test('without tracing, the gateway hands an incoming traceparent on and makes no spans', async () => {
  await disableTracing();
  const seen: { traceId: string; parent: string | undefined }[] = [];
  const echo = defineService({ name: 'echo', version: '1.0.0', endpoints: { Call: endpoint({ request: z.object({}), response: z.object({}) }) } });
  const h = await startAuthHarness();
  const svc = new Service(echo, { Call: (_req, ctx: Context) => (seen.push({ traceId: ctx.traceId, parent: ctx.parentSpanId }), {}) }, { namespace: 'micro', registry: h.registry, logger: silent, auth: false });
  await svc.start();
  const gw = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, rateLimit: false });
  await gw.listen();
  try {
    const token = (await h.authAs().Token(h.admin)).token;
    const call = (traceparent?: string) =>
      http(gw.url, 'POST', '/v1/echo/Call', { headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...(traceparent === undefined ? {} : { traceparent }) }, body: '{}' });
    const ok = await call('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.headers.traceresponse, undefined, 'no span, so no traceresponse');
    assert.deepEqual(seen.at(-1), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parent: '00f067aa0ba902b7' });
    // malformed, all-zero, oversized or repeated headers start a new trace, never fail the call
    for (const bad of ['garbage', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01${'x'.repeat(4000)}`]) {
      const r = await call(bad);
      assert.equal(r.status, 200, r.body);
      assert.equal(seen.at(-1)?.parent, undefined, bad.slice(0, 60));
      assert.match(seen.at(-1)?.traceId ?? '', /^[0-9a-f]{32}$/);
      assert.notEqual(seen.at(-1)?.traceId, '0'.repeat(32));
    }
  } finally {
    await gw.close();
    await svc.stop();
    await h.close();
  }
});

test('RemoteSpanExporter sends spans to the trace service, each in the namespace of its call', async () => {
  const store = new TraceStore();
  const admin: Account = { id: 'admin', type: 'user', issuer: 'micro', scopes: ['admin'] };
  // the trace service acting for an admin of micro (auth itself is tested elsewhere)
  const trace = new Service(traceService, traceHandlers(store, (ns, spans) => store.record(ns, spans)), {
    namespace: 'micro',
    address: false,
    logger: silent,
    auth: false,
    middleware: [actingAs(admin)],
  });
  await trace.start();
  const tracing = enableTracing({ exporter: new RemoteSpanExporter(new Client({ namespace: 'micro' })), immediate: true });
  try {
    const work = defineService({ name: 'work', version: '1.0.0', endpoints: { Do: endpoint({ request: z.object({}), response: z.object({}) }) } });
    const a = new Service(work, { Do: () => ({}) }, { namespace: 'tenant-a', address: false, logger: silent, auth: false });
    const b = new Service(work, { Do: () => ({}) }, { namespace: 'tenant-b', address: false, logger: silent, auth: false });
    await a.start();
    await b.start();
    const span = tracing.span('job', 'internal', undefined, { 'micro.namespace': 'tenant-a' });
    await new Client({ namespace: 'tenant-a' }).call('work', 'Do', {}, { parent: span.parent() });
    span.end();
    await new Client({ namespace: 'tenant-b' }).call('work', 'Do', {});
    await tracing.flush();
    const [ta] = store.list('tenant-a', 10).traces;
    assert.equal(ta?.traceId, span.traceId);
    assert.deepEqual(
      store.read('tenant-a', span.traceId)?.map((s) => `${s.kind}:${s.name}:${s.parentSpanId === undefined ? 'root' : 'child'}`).sort(),
      ['client:work.Do:child', 'internal:job:root', 'server:work.Do:child'],
    );
    assert.equal(store.list('tenant-b', 10).traces[0]?.spans, 2);
    assert.equal(store.list('micro', 10).traces.length, 0, 'the trace service does not trace its own Record calls');
    await a.stop();
    await b.stop();
  } finally {
    await disableTracing();
    await trace.stop();
  }
});

test("a core service's span (namespace micro) belongs to the caller's namespace", async () => {
  const exporter = recordingExporter();
  const records = exporter.records;
  enableTracing({ immediate: true, exporter });
  try {
    const core = defineService({ name: 'corething', version: '1.0.0', endpoints: { Do: endpoint({ request: z.object({}), response: z.object({}) }) } });
    const tenant: Account = { id: 'alice', type: 'user', issuer: 'tenant-a', scopes: [] };
    const svc = new Service(core, { Do: () => ({}) }, {
      namespace: 'micro',
      address: false,
      logger: silent,
      auth: false,
      // what the server's guard does: the account is known once auth has run
      middleware: [actingAs(tenant)],
    });
    await svc.start();
    await new Client({ namespace: 'micro' }).call('corething', 'Do', {});
    await svc.stop();
    const server = records.find((r) => r.kind === 'server' && r.name === 'corething.Do');
    assert.equal(server?.attributes?.['micro.namespace'], 'tenant-a');
  } finally {
    await disableTracing();
  }
});
