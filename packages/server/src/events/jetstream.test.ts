import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { MicroError, RemoteEvents, eventsService, type Delivery, type EngineConsumer } from '@micro/sdk';
import type { CoreContext } from '../core.js';
import { eventsCoreService } from './index.js';
import { engineUrl, eventsContract, freePort, testPrefix } from '@micro/sdk/testing';
import { JetStreamEvents, MIN_MAX_AGE, connectJetStreamEvents, durableOf, eventsCoreServiceFor } from './jetstream.js';
import { parseAckSubject, type JetStreamConsumer } from './jetstream-consumer.js';
import { ADMIN, silent, startEventsService } from './testing.js';

/*
 * The events engine on the JetStream of this machine (and CI). Each engine gets a prefix
 * of its own, and its streams are deleted after.
 */

// Skips (printing why) when NATS is away; MICRO_REQUIRE_ENGINES=1 makes that a failure.
const natsUrl = await engineUrl({ skip: () => undefined }, 'nats');
let shared: NatsConnection | undefined;
after(async () => {
  await shared?.close();
});

async function sharedConnection(url: string): Promise<NatsConnection> {
  shared ??= await connect({ servers: new URL(url).host });
  return shared;
}

/** Deletes every stream (and so every group) of a prefix. */
async function dropStreams(nc: NatsConnection, prefix: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for await (const name of jsm.streams.names(`${prefix}.events.>`)) await jsm.streams.delete(name).catch(() => undefined);
}

/**
 * Waits until JetStream applied every stream's limits (it does so itself: at once for
 * counts and bytes, on its own timer for age) — the contract's "sweep".
 */
async function retentionApplied(nc: NatsConnection, prefix: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const end = Date.now() + 10_000;
  for (;;) {
    let pending = false;
    for await (const s of jsm.streams.list(`${prefix}.events.>`)) {
      const { max_msgs, max_bytes } = s.config;
      const { messages, bytes, first_ts } = s.state;
      if (max_msgs > 0 && messages > max_msgs) pending = true;
      if (max_bytes > 0 && bytes > max_bytes) pending = true;
      // the topic's own maxAge (JetStream's max_age is at least 100 ms): its older events must go
      const maxAge = (JSON.parse(s.config.description ?? '{}') as { retention?: { maxAge?: number } }).retention?.maxAge ?? 0;
      if (maxAge > 0 && messages > 0 && Date.parse(first_ts.replace(/(\.\d{3})\d+/, '$1')) + maxAge <= Date.now()) pending = true;
    }
    if (!pending) return;
    if (Date.now() > end) throw new Error('JetStream did not apply the retention within 10 s');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function engine(label: string, options: { ackGrace?: number } = {}): Promise<{ events: JetStreamEvents; nc: NatsConnection; prefix: string; close(): Promise<void> }> {
  const nc = await sharedConnection(natsUrl as string);
  const prefix = testPrefix(label);
  const events = await JetStreamEvents.open(nc, { prefix, logger: silent, ackGrace: options.ackGrace ?? 500 });
  return {
    events,
    nc,
    prefix,
    async close() {
      await events.close();
      await dropStreams(nc, prefix);
    },
  };
}

if (natsUrl) {
  eventsContract('jetstream', async () => {
    const made = await engine('contract');
    return {
      impl: made.events,
      close: () => made.close(),
      sweep: () => retentionApplied(made.nc, made.prefix),
      gaps: { maxPayload: made.events.maxPayload, storedBytes: true, ackAfterRetention: true },
    };
  });

  // the events service of micro server hosted on this engine, with the same handlers, over RPC
  eventsContract('remote (jetstream over RPC)', async () => {
    const made = await engine('remote');
    const platform = await startEventsService(made.events);
    const client = await platform.clientFor(ADMIN);
    return {
      impl: new RemoteEvents(client),
      sweep: () => retentionApplied(made.nc, made.prefix),
      gaps: { maxPayload: made.events.maxPayload, storedBytes: true, ackAfterRetention: true },
      close: async () => {
        await platform.close();
        await made.close();
      },
    };
  });
}

async function take(c: EngineConsumer): Promise<Delivery> {
  const r = await c.next();
  assert.equal(r.done, false);
  return r.value as Delivery;
}

describe('events on JetStream', () => {
  test('NATS unreachable at start: a clear error that names the URL', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    await assert.rejects(connectJetStreamEvents(url, { maxWait: 300 }), (err: Error) => {
      assert.match(err.message, new RegExp(`cannot reach NATS at nats://127\\.0\\.0\\.1:\\d+/?.*start NATS or point the URL elsewhere`));
      return true;
    });
    await assert.rejects(connectJetStreamEvents('http://127.0.0.1:4222'), /invalid NATS URL/);
  });

  test('the core service for a profile: SQLite for local; JetStream for nats, or an error naming the URL', async (t) => {
    assert.equal(eventsCoreServiceFor({ name: 'local' }), eventsCoreService);
    const ctx = { logger: silent } as unknown as CoreContext;
    const profile = { name: 'nats' as const, natsUrl: `nats://127.0.0.1:${await freePort()}`, postgresUrl: '', redisUrl: '', prefix: testPrefix('core') };
    await assert.rejects(Promise.resolve(eventsCoreServiceFor(profile, { maxWait: 200 })(ctx)), /cannot reach NATS at nats:\/\/127\.0\.0\.1/);
    if (!(await engineUrl(t, 'nats'))) return;
    const core = await eventsCoreServiceFor({ ...profile, natsUrl: natsUrl as string })(ctx);
    assert.equal(core.def, eventsService);
    assert.deepEqual(Object.keys(core.handlers).sort(), Object.keys(eventsService.endpoints).sort());
    await core.stop?.();
  });

  test('one stream per topic under the prefix, its limits from the retention, offsets its sequences', async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const { events, nc, prefix, close } = await engine('streams');
    t.after(close);
    const e1 = await events.publish('orders.created', { n: 1 }, { id: 'o-1' });
    await events.publish('orders.created', { n: 2 }, { namespace: 'other' });
    await events.setRetention('orders.created', { maxEvents: 5, maxAge: 50 });
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const n of jsm.streams.names(`${prefix}.events.>`)) names.push(n);
    assert.equal(names.length, 2, 'one stream for each namespace and topic');
    const info = (await Promise.all(names.map((n) => jsm.streams.info(n)))).find((s) => s.config.subjects[0] === `${prefix}.events.micro.orders.created`);
    assert.ok(info, 'the subject is <prefix>.events.<namespace>.<topic>');
    assert.match(info.config.name, new RegExp(`^${prefix}_events_[0-9a-f]{32}$`));
    assert.equal(info.config.max_msgs, 5);
    // JetStream's least max_age; the duplicate window is kept within it
    assert.equal(info.config.max_age, MIN_MAX_AGE * 1e6);
    assert.equal(info.config.duplicate_window, MIN_MAX_AGE * 1e6);
    assert.equal(info.state.last_seq, e1.offset);
    assert.deepEqual((await events.topics())[0]?.retention, { maxEvents: 5, maxAge: 50 }, 'the topic keeps its own policy as given');
    const msg = await jsm.streams.getMessage(info.config.name, { seq: 1 });
    assert.equal(msg?.header?.get('Nats-Msg-Id'), 'e:o-1');
    assert.deepEqual(JSON.parse(new TextDecoder().decode(msg?.data)), { n: 1 });
    // back to the engine's defaults: a week, and the two-minute window
    await events.setRetention('orders.created', {});
    const back = await jsm.streams.info(info.config.name);
    assert.deepEqual([back.config.max_msgs, back.config.max_age, back.config.duplicate_window], [-1, 7 * 24 * 3600 * 1e9, 120 * 1e9]);
  });

  test('hostile namespaces, topics and groups are only names: each stays apart from the others', async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const { events, close } = await engine('hostile');
    t.after(close);
    const namespaces = ['a.b', 'a', 'a=2Eb', 'with space', '>', '*', 'ünï/cödé', '$JS.API', 'n'.repeat(255)];
    for (const namespace of namespaces) await events.publish('t', { namespace }, { namespace });
    for (const namespace of namespaces) {
      assert.deepEqual((await events.read('t', { namespace })).events.map((e) => e.payload), [{ namespace }], `namespace ${namespace.slice(0, 20)}`);
      assert.deepEqual((await events.topics({ namespace })).map((x) => [x.name, x.count]), [['t', 1]]);
    }
    const topics = ['a.b', 'a=2Eb', 'a_b', '$JS.API.STREAM.LIST', 'ünï.cödé.😀', '%00', 'x'.repeat(240)];
    for (const topic of topics) await events.publish(topic, topic, { namespace: 'topics' });
    assert.deepEqual((await events.topics({ namespace: 'topics' })).map((x) => [x.name, x.count]), [...topics].sort().map((x) => [x, 1]));
    for (const topic of topics) assert.deepEqual((await events.read(topic, { namespace: 'topics' })).events.map((e) => e.payload), [topic]);
    await assert.rejects(events.publish('a.>', 1), (err: MicroError) => err.code === 400);
    await assert.rejects(events.publish('a b', 1), (err: MicroError) => err.code === 400);

    const groups = ['g.1', 'g-1', 'g_1', 'G1', '_.', 'g'.repeat(255)];
    for (const group of groups) {
      const c = await events.consume('a.b', { group, offset: 'earliest', namespace: 'topics' });
      await (await take(c)).ack();
      await c.close();
    }
    assert.deepEqual(
      (await events.groups('a.b', { namespace: 'topics' })).map((g) => [g.name, g.committed]),
      [...groups].sort().map((g) => [g, 1]),
    );
    assert.notEqual(durableOf('g.1'), durableOf('g-1'));
    await assert.rejects(events.consume('a.b', { group: 'g~1', namespace: 'topics' }), (err: MicroError) => err.code === 400 && /group/.test(err.detail));
  });

  test('a publish retried with its id is stored once; after retention removed the event the id is free again', async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const { events, close } = await engine('dedup');
    t.after(close);
    const [a, b] = await Promise.all([events.publish('pay', { n: 1 }, { id: 'p-1' }), events.publish('pay', { n: 1 }, { id: 'p-1' })]);
    assert.deepEqual(a, b);
    await events.publish('pay', { n: 2 }, { id: 'p-2' });
    await events.setRetention('pay', { maxEvents: 1 });
    // the first event went; its id (still in the window) names a new event, retried as often as need be
    const again = await events.publish('pay', { n: 1 }, { id: 'p-1' });
    assert.equal(again.offset, 3);
    assert.deepEqual(await events.publish('pay', { n: 1 }, { id: 'p-1' }), again);
    await assert.rejects(events.publish('pay', { n: 9 }, { id: 'p-1' }), (err: MicroError) => err.code === 409);
    assert.deepEqual((await events.read('pay')).events.map((e) => [e.offset, e.id]), [[3, 'p-1']]);
  });

  test("a group's members on two engines (two nodes) share the events; what a dead node held comes back after JetStream's ack wait", async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const prefix = testPrefix('nodes');
    const nodeA = await connect({ servers: new URL(natsUrl as string).host });
    const nodeB = await sharedConnection(natsUrl as string);
    const a = await JetStreamEvents.open(nodeA, { prefix, logger: silent, ackGrace: 200 });
    const b = await JetStreamEvents.open(nodeB, { prefix, logger: silent, ackGrace: 200 });
    t.after(async () => {
      await b.close();
      await dropStreams(nodeB, prefix);
    });
    for (let i = 1; i <= 4; i++) await a.publish('jobs', i);
    const ca = await a.consume('jobs', { group: 'workers', offset: 'earliest', ackWait: 600_000, maxRetries: 10 });
    const cb = await b.consume('jobs', { group: 'workers', ackWait: 600_000, maxRetries: 10 });
    const held = [await take(ca), await take(ca)];
    const fromB = await take(cb);
    assert.deepEqual([...held, fromB].map((d) => d.event.offset), [1, 2, 3]);
    await fromB.ack();
    // node A dies: it gives nothing back. JetStream hands out what it held after the
    // group's ack wait, the longest of its members' (600 s here): an operator's shorter one
    // stands in for the wait
    await nodeA.close();
    const jsm = await jetstreamManager(nodeB);
    const stream = await jsm.streams.find(`${prefix}.events.micro.jobs`);
    await jsm.consumers.update(stream, 'workers', { ack_wait: 1_000 * 1e6 });
    const got = [await take(cb), await take(cb), await take(cb)].sort((x, y) => x.event.offset - y.event.offset);
    assert.deepEqual(
      got.map((d) => [d.event.offset, d.attempt]),
      [
        [1, 2],
        [2, 2],
        [4, 1],
      ],
    );
    for (const d of got) await d.ack();
    assert.deepEqual((await b.groups('jobs')).map((g) => [g.committed, g.inflight]), [[4, 0]]);
  });

  test('the ack subject of a delivery: its attempt, offset and the events waiting after it; anything else is not a delivery', () => {
    assert.deepEqual(parseAckSubject('$JS.ACK.s.c.2.17.40.1700000000000000000.5'), { attempt: 2, seq: 17, pending: 5 });
    assert.deepEqual(parseAckSubject('$JS.ACK.dom.acchash.s.c.1.3.3.1700000000000000000.0.tok'), { attempt: 1, seq: 3, pending: 0 });
    // a pending count that is no count only asks ahead for nothing
    for (const pending of ['x', '-4', '1e400', '', '9007199254740993']) assert.equal(parseAckSubject(`$JS.ACK.s.c.1.3.3.1.${pending}`)?.pending, 0, pending);
    for (const bad of ['', 'x', '$JS.ACK', '$JS.API.s.c.1.3.3.1.0', '$JS.ACK.s.c.0.3.3.1.0', '$JS.ACK.s.c.1.0.3.1.0', '$JS.ACK.s.c.1.x.3.1.0', '$JS.ACK.s.c.1.3.3.1', '$JS.ACK.s.c.1.3.3.1.0.x', 'a.'.repeat(10_000)]) {
      assert.equal(parseAckSubject(bad), undefined, bad.slice(0, 40));
    }
  });

  test('a member whose user reads on asks ahead, within maxInFlight; what it got ahead goes back uncounted (close, idle, release)', async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const { events, nc, prefix, close } = await engine('ahead');
    t.after(close);
    for (let i = 1; i <= 20; i++) await events.publish('work', i);
    const jsm = await jetstreamManager(nc);
    const stream = await jsm.streams.find(`${prefix}.events.micro.work`);
    const ackPending = async () => (await jsm.consumers.info(stream, 'g')).num_ack_pending;
    const until = async (check: () => boolean | Promise<boolean>, what: string) => {
      const end = Date.now() + 10_000;
      while (!(await check())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const member = async (options: { maxInFlight: number; maxRetries?: number; offset?: 'earliest' }) => (await events.consume('work', { group: 'g', ...options })) as JetStreamConsumer;

    // two settled deliveries make a loop that reads on: its member asks ahead for the rest of its window, no more
    const a = await member({ offset: 'earliest', maxInFlight: 5 });
    await (await take(a)).ack();
    await (await take(a)).ack();
    const held = await take(a);
    assert.equal(held.event.offset, 3);
    await until(() => a.aheadCount === 4, 'the rest of the window');
    assert.equal(await ackPending(), 5, 'what its user holds and what it got ahead: maxInFlight');
    assert.deepEqual((await events.groups('work')).map((g) => [g.committed, g.inflight]), [[2, 1]], 'what no user holds is not in flight');
    // closed: what its user held counts as an attempt, what it got ahead does not
    await a.close();
    const b = await member({ maxInFlight: 1 });
    const got: number[][] = [];
    for (let i = 0; i < 5; i++) {
      const d = await take(b);
      got.push([d.event.offset, d.attempt]);
      await d.ack();
    }
    assert.deepEqual(got.sort((x, y) => (x[0] as number) - (y[0] as number)), [[3, 2], [4, 1], [5, 1], [6, 1], [7, 1]]);
    assert.ok(b.aheadCount <= 1, 'maxInFlight 1: one event ahead at most, and then the user holds none');
    await b.close();

    // a user that stops reading: what its member got ahead goes to the group's other members, uncounted
    // (maxRetries 0: one counted attempt too many would send it to the dead letters)
    const c = await member({ maxInFlight: 20, maxRetries: 0 });
    const first = [await take(c), await take(c)];
    for (const d of first) await d.ack();
    const kept = await take(c);
    // the rest of the topic
    const ahead = Array.from({ length: 20 - kept.event.offset }, (_, i) => kept.event.offset + 1 + i);
    await until(() => c.aheadCount === ahead.length, 'the rest of the topic, ahead');
    const d = await member({ maxInFlight: 20, maxRetries: 0 });
    const taken: Delivery[] = [];
    for (let i = 0; i < ahead.length; i++) taken.push(await take(d));
    assert.deepEqual(taken.map((x) => [x.event.offset, x.attempt]).sort((x, y) => (x[0] as number) - (y[0] as number)), ahead.map((o) => [o, 1]));
    assert.equal(c.aheadCount, 0);
    // a release (a remote user never saw it) is no attempt either
    await d.release((taken[0] as Delivery).id);
    const again = await take(d);
    assert.deepEqual([again.event.offset, again.attempt], [(taken[0] as Delivery).event.offset, 1]);
    for (const x of [kept, again, ...taken.slice(1)]) await x.ack();
    assert.equal((await events.topics()).find((x) => x.name === 'work.dead')?.count ?? 0, 0, 'no dead letters');
    await c.close();
    await d.close();
  });

  test('engine closed, or NATS connection closed: calls fail at once with a 503', async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const nc = await connect({ servers: new URL(natsUrl as string).host });
    const prefix = testPrefix('closed');
    const events = await JetStreamEvents.open(nc, { prefix, logger: silent });
    await events.publish('t', 1);
    await nc.close();
    await assert.rejects(events.publish('t', 2), (err: MicroError) => err.code === 503 && /NATS connection is closed/.test(err.detail));
    await assert.rejects(events.read('t'), (err: MicroError) => err.code === 503);
    await events.close();
    await assert.rejects(events.topics(), (err: MicroError) => err.code === 503 && /closed/.test(err.detail));
    await dropStreams(await sharedConnection(natsUrl as string), prefix);
  });
});
