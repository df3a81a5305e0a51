import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { activeTracing, Client, defineService, MemoryBroker, MemoryEvents, tracedBroker, tracedEvents, type Broker, type Events, endpoint, Service, traceService, z, type Account, type Context, type SpanRecord } from '@micro/sdk';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { Gateway } from '../gateway/gateway.js';
import { http } from '../gateway/testing.js';
import type { CoreContext, CoreService } from '../core.js';
import { traceCoreService, TraceStore } from './index.js';

const back = defineService({ name: 'back', version: '1.0.0', endpoints: { Call: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }) } });
const front = defineService({ name: 'front', version: '1.0.0', endpoints: { Call: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }) } });

const account = (id: string, issuer: string, scopes = ['dev']): Account => ({ id, type: 'user', issuer, scopes });
const ctxOf = (acc: Account | undefined) => ({ service: 'trace', endpoint: 'Read', account: acc }) as unknown as Context;
const span = (traceId: string, spanId: string, extra: Partial<SpanRecord> = {}): SpanRecord => ({
  traceId,
  spanId,
  name: 'x.Call',
  kind: 'server',
  service: 'x',
  start: Date.now(),
  duration: 1,
  status: 'ok',
  ...extra,
});
const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');

describe('trace service', () => {
  let h: AuthHarness;
  let core: CoreService;
  let gw: Gateway;
  let aliceToken: string;
  const services: Service[] = [];
  let otlp: Server;
  const otlpBodies: string[] = [];
  let events: Events;
  let broker: Broker;
  let delivered: Promise<void>;

  before(async () => {
    // an OTLP/HTTP collector: what it receives is what the server exports
    otlp = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        otlpBodies.push(`${req.url} ${Buffer.concat(chunks).toString('utf8')}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => otlp.listen(0, '127.0.0.1', r));
    const port = (otlp.address() as { port: number }).port;
    // the trace core service as micro server makes it: it turns tracing on in this process
    core = await traceCoreService({ tracing: true, otlpEndpoint: `http://127.0.0.1:${port}` })({ logger: silent } as unknown as CoreContext);
    h = await startAuthHarness();
    const admin = h.authAs(h.admin);
    const secret = (await admin.CreateAccount({ id: 'alice', namespace: 'tenant-a', scopes: ['dev'] })).secret as string;
    aliceToken = (await h.authAs().Token({ id: 'alice', secret, namespace: 'tenant-a' })).token;
    const client = new Client({ namespace: 'tenant-a', registry: h.registry });
    // the engines as events() and broker() give them to a service of a traced process
    events = tracedEvents(new MemoryEvents());
    broker = tracedBroker(new MemoryBroker());
    // a subscriber that calls back without naming a parent: the delivery is its parent
    delivered = new Promise<void>((resolve, reject) => {
      void broker.subscribe('pings', async () => {
        await client.call('back', 'Call', {}).then(() => resolve(), reject);
      });
    });
    services.push(new Service(back, { Call: () => ({ ok: true }) }, { namespace: 'tenant-a', registry: h.registry, logger: silent, auth: false }));
    services.push(
      new Service(
        front,
        {
          Call: async (_req, ctx) => {
            const out = (await client.call('back', 'Call', {}, { parent: ctx })) as { ok: boolean };
            await events.publish('orders', { n: 1 }, { namespace: 'tenant-a' });
            await broker.publish('pings', {});
            return out;
          },
        },
        { namespace: 'tenant-a', registry: h.registry, logger: silent, auth: false },
      ),
    );
    for (const s of services) await s.start();
    gw = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, rateLimit: false });
    await gw.listen();
  });

  after(async () => {
    await gw?.close();
    for (const s of services) await s.stop();
    await core?.stop?.();
    await h?.close();
    otlp?.close();
  });

  test('a call through the gateway into a service that calls another is one trace, in the right tree', async () => {
    const traceId = hex(0xabc, 32);
    const caller = hex(0x1234, 16);
    const res = await http(gw.url, 'POST', '/v1/front/Call', {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${aliceToken}`, traceparent: `00-${traceId}-${caller}-01` },
      body: '{}',
    });
    assert.equal(res.status, 200, res.body);
    assert.match(String(res.headers.traceresponse), new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    // the event is consumed, the ping delivered and its nested call made
    const consumer = await events.consume('orders', { group: 'g', offset: 'earliest', namespace: 'tenant-a' });
    const first = await consumer.next();
    assert.equal(first.done, false);
    await first.value.ack();
    await consumer.close();
    await delivered;
    await activeTracing()?.flush();
    const read = core.handlers as { Read: (req: unknown, ctx: Context) => { spans: SpanRecord[] }; List: (req: unknown, ctx: Context) => { traces: { traceId: string }[] } };
    const { spans } = read.Read({ traceId }, ctxOf(account('alice', 'tenant-a')));
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (s: SpanRecord) => (s.parentSpanId ? byId.get(s.parentSpanId) : undefined);
    const chain = (s: SpanRecord): string[] => [...(parentOf(s) ? chain(parentOf(s) as SpanRecord) : []), `${s.kind}:${s.name}`];
    const leaves = spans.filter((s) => !spans.some((c) => c.parentSpanId === s.spanId)).map(chain);
    const top = ['server:POST /v1/front/Call', 'client:front.Call', 'server:front.Call'];
    assert.deepEqual(
      leaves.map((l) => l.join(' > ')).sort(),
      [
        [...top, 'client:back.Call', 'server:back.Call'],
        [...top, 'producer:publish orders', 'consumer:deliver orders'],
        [...top, 'producer:publish pings', 'consumer:deliver pings', 'client:back.Call', 'server:back.Call'],
      ]
        .map((l) => l.join(' > '))
        .sort(),
      JSON.stringify(spans, null, 1),
    );
    const root = spans.find((s) => s.name === 'POST /v1/front/Call');
    assert.equal(root?.parentSpanId, caller, 'the gateway span continues the incoming traceparent');
    assert.equal(spans.length, 11);
    assert.ok(spans.every((s) => s.status === 'ok' && s.traceId === traceId));
    assert.equal(read.List({ limit: 10 }, ctxOf(account('alice', 'tenant-a'))).traces[0]?.traceId, traceId);
    // and the collector got them over OTLP/HTTP
    for (let i = 0; i < 100 && !otlpBodies.some((b) => b.includes(traceId)); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(otlpBodies.some((b) => b.startsWith('/v1/traces ') && b.includes(traceId)), 'exported over OTLP');
  });

  test('a call without traceparent starts a trace at the gateway', async () => {
    const res = await http(gw.url, 'POST', '/v1/front/Call', { headers: { 'content-type': 'application/json', authorization: `Bearer ${aliceToken}`, traceparent: 'garbage' }, body: '{}' });
    assert.equal(res.status, 200, res.body);
    const traceId = /^00-([0-9a-f]{32})-/.exec(String(res.headers.traceresponse))?.[1];
    assert.ok(traceId);
    await activeTracing()?.flush();
    const read = core.handlers as { Read: (req: unknown, ctx: Context) => { spans: SpanRecord[] } };
    const { spans } = read.Read({ traceId }, ctxOf(account('alice', 'tenant-a')));
    assert.equal(spans.find((s) => s.name === 'POST /v1/front/Call')?.parentSpanId, undefined);
  });

  test('a traceparent whose sampled flag is off is handed on, and nothing of its trace is recorded', async () => {
    const traceId = hex(0xdef, 32);
    const res = await http(gw.url, 'POST', '/v1/front/Call', {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${aliceToken}`, traceparent: `00-${traceId}-${hex(5, 16)}-00` },
      body: '{}',
    });
    assert.equal(res.status, 200, res.body);
    assert.match(String(res.headers.traceresponse), new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
    // the nested call, the event and the message all went out under the same unsampled trace
    const consumer = await events.consume('orders', { group: 'unsampled', offset: 'earliest', namespace: 'tenant-a' });
    const metadata: string[] = [];
    // the events of the three calls made so far (the tests before this one made one each)
    for (let i = 0; i < 3; i++) {
      const next = await consumer.next();
      if (next.done) break;
      metadata.push(String(next.value.event.metadata?.traceparent));
      await next.value.ack();
    }
    await consumer.close();
    assert.ok(metadata.some((tp) => new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`).test(tp)), JSON.stringify(metadata));
    await activeTracing()?.flush();
    const read = core.handlers as { Read: (req: unknown, ctx: Context) => unknown };
    assert.throws(() => read.Read({ traceId }, ctxOf(account('alice', 'tenant-a'))), (e: { code: number }) => e.code === 404);
  });

  test('a tenant cannot read or list another namespace\'s traces', () => {
    const store = new TraceStore();
    const handlers = core.handlers as {
      Record: (req: unknown, ctx: Context) => unknown;
      Read: (req: unknown, ctx: Context) => unknown;
      List: (req: unknown, ctx: Context) => { traces: unknown[] };
    };
    const traceId = hex(0xbeef, 32);
    handlers.Record({ spans: [span(traceId, hex(1, 16))] }, ctxOf(account('bob', 'tenant-b')));
    assert.throws(() => handlers.Read({ traceId }, ctxOf(account('alice', 'tenant-a'))), (e: { code: number }) => e.code === 404);
    assert.throws(() => handlers.Read({ traceId, namespace: 'tenant-b' }, ctxOf(account('alice', 'tenant-a'))), (e: { code: number }) => e.code === 403);
    assert.throws(() => handlers.List({ namespace: 'tenant-b' }, ctxOf(account('alice', 'tenant-a'))), (e: { code: number }) => e.code === 403);
    assert.throws(() => handlers.Record({ spans: [], namespace: 'tenant-b' }, ctxOf(account('alice', 'tenant-a'))), (e: { code: number }) => e.code === 403);
    assert.throws(() => handlers.Read({ traceId }, ctxOf(undefined)), (e: { code: number }) => e.code === 401);
    assert.ok(!handlers.List({}, ctxOf(account('alice', 'tenant-a'))).traces.some((t) => (t as { traceId: string }).traceId === traceId));
    // bob and an admin of micro see it
    assert.ok(handlers.Read({ traceId }, ctxOf(account('bob', 'tenant-b'))));
    assert.ok(handlers.Read({ traceId, namespace: 'tenant-b' }, ctxOf(account('admin', 'micro', ['admin']))));
    assert.equal(store.read('tenant-a', traceId), undefined);
  });

  test('hostile trace ids and spans are refused by the schema', () => {
    const read = traceService.endpoints.Read.request;
    for (const traceId of ['', 'abc', hex(1, 32).toUpperCase().replace('0', 'A'), '__proto__', '../'.repeat(20), 'g'.repeat(32), 'a'.repeat(33), 'a'.repeat(100_000), 42, null, { $ne: 1 }, hex(1, 31) + '\n']) {
      assert.equal(read.safeParse({ traceId }).success, false, JSON.stringify(traceId).slice(0, 50));
    }
    assert.equal(read.safeParse({ traceId: hex(1, 32) }).success, true);
    const record = traceService.endpoints.Record.request;
    const ok = span(hex(1, 32), hex(1, 16));
    assert.equal(record.safeParse({ spans: [ok] }).success, true);
    for (const bad of [
      { ...ok, spanId: 'x' },
      { ...ok, parentSpanId: hex(1, 32) },
      { ...ok, name: '' },
      { ...ok, name: 'n'.repeat(201) },
      { ...ok, kind: 'evil' },
      { ...ok, duration: -1 },
      { ...ok, start: Number.NaN },
      { ...ok, attributes: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 1])) },
      { ...ok, attributes: { k: { nested: true } } },
    ]) {
      assert.equal(record.safeParse({ spans: [bad] }).success, false, JSON.stringify(bad).slice(0, 120));
    }
    assert.equal(record.safeParse({ spans: Array.from({ length: 1_001 }, () => ok) }).success, false, 'too many spans in one call');
  });

  test('the store is bounded per namespace: the oldest traces go first, counted', () => {
    const store = new TraceStore({ maxTraces: 3, maxSpans: 2 });
    for (let i = 0; i < 5; i++) store.record('ns', [span(hex(i + 1, 32), hex(1, 16))]);
    store.record('other', [span(hex(9, 32), hex(1, 16))]);
    const { traces, dropped } = store.list('ns', 10);
    assert.deepEqual(
      traces.map((t) => t.traceId),
      [hex(5, 32), hex(4, 32), hex(3, 32)],
    );
    assert.equal(dropped, 2);
    assert.equal(store.read('ns', hex(1, 32)), undefined);
    assert.equal(store.list('other', 10).traces.length, 1, 'another namespace keeps its own');
    // spans past maxSpans are dropped; a span sent twice is kept once
    assert.equal(store.record('ns', [span(hex(5, 32), hex(1, 16)), span(hex(5, 32), hex(2, 16)), span(hex(5, 32), hex(3, 16))]), 1);
    assert.equal(store.read('ns', hex(5, 32))?.length, 2);
    assert.equal(store.droppedSpans('ns'), 1);
  });
});
