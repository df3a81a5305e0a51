import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Client, MicroError, bearer, createClient } from '@micro/sdk';
import { RemoteEvents, eventsService, type ConsumeRequest, type ConsumeResponse, type Delivery, type Event } from '@micro/sdk';
import { eventsContract } from '@micro/sdk/testing';
import { SqliteEvents } from './sqlite.js';
import { ADMIN, accountOf, silent, startEventsService, type EventsPlatform } from './testing.js';

const root = mkdtempSync(join(tmpdir(), 'micro-events-service-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(root, `events-${n++}.db`);

eventsContract('remote (sqlite over RPC)', async () => {
  const engine = new SqliteEvents({ path: freshPath(), sweepInterval: 0, logger: silent });
  const platform = await startEventsService(engine, { home: mkdtempSync(join(root, 'home-')) });
  const client = await platform.clientFor(ADMIN);
  return {
    impl: new RemoteEvents(client),
    sweep: () => engine.sweep(),
    close: async () => {
      await platform.close();
      await engine.close();
    },
  };
});

async function rejectsWith(p: Promise<unknown>, code: number, detail?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MicroError, String(err));
    assert.equal(err.code, code, err.detail);
    if (detail) assert.match(err.detail, detail);
    return true;
  });
}

/** A raw Consume stream: push messages, read answers. */
function rawConsume(client: Client) {
  const queue: ConsumeRequest[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const requests: AsyncIterable<ConsumeRequest> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const m = queue.shift();
        if (m) {
          yield m;
          continue;
        }
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
  const stream = createClient(eventsService, client).Consume(requests);
  return {
    send(m: ConsumeRequest) {
      queue.push(m);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async next(): Promise<ConsumeResponse> {
      const r = await stream.next();
      assert.equal(r.done, false, 'the stream ended');
      return r.value as ConsumeResponse;
    },
    stream,
  };
}

async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p.then(() => true, () => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  return r;
}

describe('the events service over RPC', () => {
  let engine: SqliteEvents;
  let platform: EventsPlatform;
  let admin: Client;

  before(async () => {
    engine = new SqliteEvents({ path: freshPath(), sweepInterval: 0, logger: silent });
    platform = await startEventsService(engine, { home: mkdtempSync(join(root, 'home-')), handlers: { subscribeTimeout: 300 } });
    admin = await platform.clientFor(ADMIN);
  });

  after(async () => {
    await platform.close();
    await engine.close();
  });

  test('calls without credentials are refused', async () => {
    const anonymous = new RemoteEvents(new Client({ address: platform.address, namespace: 'micro', preferLocal: false }));
    await rejectsWith(anonymous.topics(), 401);
    await rejectsWith(anonymous.publish('t', 1), 401);
    await rejectsWith(anonymous.consume('t', { group: 'g' }), 401);
  });

  test('wrong, missing and oversized fields are a 400 or 413 naming the field', async () => {
    const api = createClient(eventsService, admin);
    await rejectsWith(api.Publish({ topic: 42 } as never), 400, /topic/);
    await rejectsWith(api.Publish({} as never), 400, /topic/);
    await rejectsWith(api.Publish({ topic: 't' } as never), 400, /payload/);
    await rejectsWith(api.Publish({ topic: 't', payload: 1, metadata: { k: 5 } } as never), 400, /metadata/);
    await rejectsWith(api.Publish({ topic: 'x'.repeat(300), payload: 1 }), 400, /topic/);
    await rejectsWith(api.Publish({ topic: 't', payload: 'x'.repeat(1_500_000) }), 413, /payload/);
    // beyond the frame limit the transport refuses it before any handler runs
    await rejectsWith(api.Publish({ topic: 't', payload: 'x'.repeat(5 * 1024 * 1024) }), 413);
    await rejectsWith(api.Read({ topic: 't', limit: 5000 }), 400, /limit/);
    await rejectsWith(api.Read({ topic: 't', offset: -1 }), 400, /offset/);
    await rejectsWith(api.SetRetention({ topic: 't', retention: { maxAge: -1 } }), 400, /maxAge/);
    await rejectsWith(api.SetRetention({ topic: 't', retention: { forever: true } } as never), 400);
    await rejectsWith(api.DeleteGroup({ topic: 't' } as never), 400, /group/);
    await rejectsWith(api.Topics({ namespace: 'n'.repeat(300) }), 400, /namespace/);
    await rejectsWith(api.Topics({ namespace: 42 } as never), 400, /namespace/);
    await rejectsWith(api.Read({} as never), 400, /topic/);
    await rejectsWith(api.Read({ topic: 't', from: 'yesterday' } as never), 400, /from/);
    await rejectsWith(api.Groups({} as never), 400, /topic/);
    await rejectsWith(api.Groups({ topic: 'a.>' }), 400, /wildcard/);
    await rejectsWith(api.DeleteGroup({ topic: 't'.repeat(257), group: 'g' }), 400, /topic/);
    await rejectsWith(api.DeleteGroup({ topic: 't', group: 'g'.repeat(256) }), 400, /group/);
    await rejectsWith(api.SetRetention({ topic: 't' } as never), 400, /retention/);
  });

  test('hostile payloads and metadata are refused or stored as plain data', async () => {
    const api = createClient(eventsService, admin);
    // nesting deep enough to break a recursive parser or serializer
    const nested = (depth: number) => JSON.parse(`${'['.repeat(depth)}"[{"${']'.repeat(depth)}`) as unknown;
    const stored = await api.Publish({ topic: 'hostile', payload: nested(256) });
    assert.deepEqual((await api.Read({ topic: 'hostile', offset: stored.event.offset })).events[0]?.payload, nested(256));
    await rejectsWith(api.Publish({ topic: 'hostile', payload: nested(257) }), 400, /payload nests deeper than 256 levels/);
    // JSON.parse takes any depth (it is iterative), so such a payload can reach the engine
    let tooDeep: unknown = [];
    for (let i = 0; i < 200_000; i++) tooDeep = [tooDeep];
    await rejectsWith(engine.publish('hostile', tooDeep), 400, /payload nests deeper/);
    await rejectsWith(new RemoteEvents(admin).publish('hostile', tooDeep), 400, /payload nests deeper/);
    const pollution = JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}') as unknown;
    const evil = await api.Publish({ topic: 'hostile', payload: pollution, metadata: JSON.parse('{"__proto__": "x", "toString": "y"}') as Record<string, string> });
    assert.equal(({} as { polluted?: unknown }).polluted, undefined);
    const [read] = (await api.Read({ topic: 'hostile', offset: evil.event.offset })).events;
    assert.equal(Object.getPrototypeOf(read?.payload), Object.prototype);
    assert.equal(read?.metadata?.toString, 'y');
    // control characters and long strings in names are refused without being echoed whole
    await rejectsWith(api.Publish({ topic: `a\u0000b`, payload: 1 }), 400, /control character/);
    const longGroup = rawConsume(admin);
    longGroup.send({ subscribe: { topic: 'hostile', group: `g\u001b[2J${'x'.repeat(200)}` } });
    await assert.rejects(longGroup.next(), (err: unknown) => err instanceof MicroError && err.code === 400 && !err.detail.includes('\u001b') && err.detail.length < 400);
  });

  test('Consume: the first message must subscribe, within the time allowed', async () => {
    const noSubscribe = rawConsume(admin);
    noSubscribe.send({ credit: 1 });
    await rejectsWith(noSubscribe.next(), 400, /first message of Consume must be \{subscribe/);

    const silentClient = rawConsume(admin);
    await rejectsWith(silentClient.next(), 400, /within 300 ms/);

    const endsAtOnce = rawConsume(admin);
    endsAtOnce.end();
    await rejectsWith(endsAtOnce.next(), 400, /ended before its subscribe/);

    const mixed = rawConsume(admin);
    mixed.send({ subscribe: { topic: 't', group: 'g' }, ack: '1.1' });
    await rejectsWith(mixed.next(), 400, /cannot also ack/);

    const badTopic = rawConsume(admin);
    badTopic.send({ subscribe: { topic: 'a.*', group: 'g' } });
    await rejectsWith(badTopic.next(), 400, /topic/);

    const hostile = rawConsume(admin);
    hostile.send({ subscribe: { topic: 't', group: 'g', maxInFlight: 1e9 } });
    await rejectsWith(hostile.next(), 400, /maxInFlight/);
  });

  test('Consume: protocol mistakes end the stream with a 400; settles of unknown deliveries are answered with their error', async () => {
    await engine.publish('proto', 'a', { namespace: 'micro' });
    const s = rawConsume(admin);
    s.send({ subscribe: { topic: 'proto', group: 'g', offset: 'earliest' }, credit: 10 });
    assert.equal((await s.next()).subscribed?.topic, 'proto');
    const d = (await s.next()).delivery;
    assert.equal(d?.event.payload, 'a');
    s.send({ seq: 1, ack: 'nope' });
    const unknown = await s.next();
    assert.deepEqual([unknown.seq, unknown.error?.code], [1, 404]);
    s.send({ seq: 2, ack: d?.id });
    assert.deepEqual(await s.next(), { seq: 2 });
    s.send({ seq: 3, ack: d?.id });
    const twice = await s.next();
    assert.deepEqual([twice.seq, twice.error?.code], [3, 409]);
    s.send({ seq: 4, nack: d?.id, delay: -5 });
    await rejectsWith(s.next(), 400, /delay/);

    for (const bad of [{ seq: 1 }, { seq: 1, ack: 'x', nack: 'y' }, { seq: 1, delay: 5 }, { subscribe: { topic: 'proto', group: 'g' } }, { seq: 1, reason: 'r'.repeat(70_000), nack: 'x' }] as ConsumeRequest[]) {
      const t = rawConsume(admin);
      t.send({ subscribe: { topic: 'proto', group: 'h' } });
      assert.ok((await t.next()).subscribed);
      t.send(bad);
      await rejectsWith(t.next(), 400);
    }
  });

  test('Consume: deliveries go out only as far as the credit given', async () => {
    for (let i = 0; i < 5; i++) await engine.publish('credit', i);
    const s = rawConsume(admin);
    s.send({ subscribe: { topic: 'credit', group: 'g', offset: 'earliest' }, credit: 2 });
    assert.ok((await s.next()).subscribed);
    assert.equal((await s.next()).delivery?.event.offset, 1);
    assert.equal((await s.next()).delivery?.event.offset, 2);
    const third = s.next();
    assert.equal(await settlesWithin(third, 300), false, 'no credit, no delivery');
    s.send({ credit: 1 });
    assert.equal((await third).delivery?.event.offset, 3);
    s.end();
    assert.equal((await s.stream.next()).done, true, 'ending our side ends the stream');
    const [g] = await engine.groups('credit');
    assert.deepEqual([g?.committed, g?.inflight, g?.members], [0, 3, 0], 'what it held went back');
  });

  test('a consumer whose connection breaks gives back what it held at once', async () => {
    await engine.publish('crashy', 'a');
    await engine.publish('crashy', 'b');
    const dying = await platform.clientFor(ADMIN);
    const victim = await new RemoteEvents(dying).consume('crashy', { group: 'g', offset: 'earliest', ackWait: 3_600_000 });
    const held = [(await victim.next()).value as Delivery, (await victim.next()).value as Delivery];
    assert.deepEqual(held.map((d) => d.event.payload), ['a', 'b']);
    const survivor = await new RemoteEvents(admin).consume('crashy', { group: 'g', ackWait: 3_600_000 });
    const waiting = survivor.next();
    assert.equal(await settlesWithin(waiting, 200), false);
    // the process of the victim dies: its connections go
    platform.cut(dying);
    const got = [(await waiting).value as Delivery, (await survivor.next()).value as Delivery];
    assert.deepEqual(got.map((d) => [d.event.payload, d.attempt]), [['a', 2], ['b', 2]]);
    for (const d of got) await d.ack();
    await rejectsWith(held[0]!.ack(), 503);
    await survivor.close();
  });

  test('the stream works in-process too', async () => {
    const { token } = await platform.tokens.issue(ADMIN);
    const local = new Client({ namespace: 'micro', preferLocal: true, middleware: [bearer(token)] });
    const events = new RemoteEvents(local);
    const c = await events.consume('local', { group: 'g' });
    await events.publish('local', 'here');
    const d = (await c.next()).value as Delivery;
    assert.equal(d.event.payload, 'here');
    await d.ack();
    await rejectsWith(d.ack(), 409);
    await c.close();
  });
});

describe('namespaces over RPC', () => {
  let engine: SqliteEvents;
  let platform: EventsPlatform;
  const A = 'tenant-a';
  const B = 'tenant-b';
  let a: RemoteEvents;
  let b: RemoteEvents;

  before(async () => {
    engine = new SqliteEvents({ path: freshPath(), sweepInterval: 0, logger: silent });
    platform = await startEventsService(engine, { home: mkdtempSync(join(root, 'home-')) });
    a = new RemoteEvents(await platform.clientFor(accountOf(A)));
    b = new RemoteEvents(await platform.clientFor(accountOf(B)));
    // B's data: topics, events with secrets, a group with a position, a retention
    for (const topic of ['orders', 'payments.secret']) {
      for (let i = 0; i < 3; i++) await b.publish(topic, { secret: `b-${topic}-${i}` }, { metadata: { owner: 'b' } });
    }
    const c = await b.consume('orders', { group: 'billing', offset: 'earliest' });
    await ((await c.next()).value as Delivery).ack();
    await c.close();
    await b.setRetention('orders', { maxEvents: 50 });
  });

  after(async () => {
    await platform.close();
    await engine.close();
  });

  /** Everything B has, as B sees it. */
  async function snapshot(): Promise<unknown> {
    const topics = await b.topics();
    const out: Record<string, unknown> = { topics };
    for (const t of topics) out[t.name] = { events: (await b.read(t.name, { limit: 1000 })).events, groups: await b.groups(t.name) };
    return out;
  }

  test('an account acts in its own namespace by default', async () => {
    const e = await a.publish('orders', { mine: true });
    assert.equal(e.offset, 1, "A's orders is its own topic");
    assert.deepEqual((await a.read('orders')).events.map((x) => x.payload), [{ mine: true }]);
    assert.deepEqual((await b.read('orders')).events.length, 3);
  });

  test('property: an account of namespace A can neither read nor change anything of namespace B', async () => {
    const before = await snapshot();
    const namespace = fc.constantFrom<string | undefined>(undefined, A, B, 'micro', 'tenant-c', 'tenant-b ', 'TENANT-B');
    const topic = fc.constantFrom('orders', 'payments.secret', 'other', 'payments.secret.dead');
    const group = fc.constantFrom('billing', 'g2');
    type Op =
      | { op: 'publish' | 'read' | 'groups' | 'deleteGroup' | 'retention' | 'consume'; ns: string | undefined; topic: string; group: string }
      | { op: 'topics'; ns: string | undefined };
    const ops = fc.array(
      fc.oneof(
        fc.record({ op: fc.constantFrom('publish' as const, 'read' as const, 'groups' as const, 'deleteGroup' as const, 'retention' as const, 'consume' as const), ns: namespace, topic, group }),
        fc.record({ op: fc.constant('topics' as const), ns: namespace }),
      ),
      { minLength: 1, maxLength: 8 },
    );
    await fc.assert(
      fc.asyncProperty(ops, async (list: Op[]) => {
        for (const o of list) {
          const foreign = o.ns !== undefined && o.ns !== A;
          const opts = { namespace: o.ns };
          let result: unknown;
          try {
            switch (o.op) {
              case 'topics':
                result = await a.topics(opts);
                break;
              case 'publish':
                result = await a.publish(o.topic, { from: 'a' }, opts);
                break;
              case 'read':
                result = await a.read(o.topic, opts);
                break;
              case 'groups':
                result = await a.groups(o.topic, opts);
                break;
              case 'deleteGroup':
                await a.deleteGroup(o.topic, o.group, opts);
                break;
              case 'retention':
                result = await a.setRetention(o.topic, { maxEvents: 1 }, opts);
                break;
              case 'consume': {
                const c = await a.consume(o.topic, { ...opts, group: o.group, offset: 'earliest', ackWait: 60_000 });
                const r = await Promise.race([c.next(), new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 20))]);
                if (r && !r.done) {
                  result = r.value.event;
                  await r.value.ack();
                }
                await c.close();
                break;
              }
            }
            assert.ok(!foreign, `${o.op} in namespace ${String(o.ns)} must be refused`);
          } catch (err) {
            if (!(err instanceof MicroError)) throw err;
            if (foreign) assert.equal(err.code, 403, `${o.op} in ${String(o.ns)}: ${err.code} ${err.detail}`);
            else assert.ok([404, 409].includes(err.code), `${o.op} in A: ${err.code} ${err.detail}`);
          }
          assert.doesNotMatch(JSON.stringify(result ?? null), /b-orders|b-payments|"owner":"b"/, "nothing of B's shows");
        }
      }),
      { numRuns: 40 },
    );
    assert.deepEqual(await snapshot(), before, "B's namespace is as it was");
    // and an admin of micro may act in any namespace
    const admin = new RemoteEvents(await platform.clientFor(ADMIN));
    assert.equal((await admin.read('orders', { namespace: B })).events.length, 3);
    const event = (await admin.read('orders', { namespace: B })).events[0] as Event;
    assert.deepEqual(event.metadata, { owner: 'b' });
  });
});
