/**
 * Durable events on JetStream: Micro's JetStream events engine (the one micro server
 * hosts with MICRO_PROFILE=nats) against raw nats.js JetStream doing the same work, both
 * in this process against the same nats-server (MICRO_BENCH_NATS_URL, default
 * nats://127.0.0.1:4222), each in streams of its own that are deleted afterwards.
 *
 * - publish: 50 publishes in flight, each awaited until JetStream acknowledged it
 *   (stored): raw `js.publish` with a message id, vs `events.publish`.
 * - consume: a topic filled with 2,000 events first, then drained by one consumer of a
 *   durable group acking each event: raw pull consumer (`consume()`, explicit ack), vs
 *   `events.consume(topic, { group })` and `delivery.ack()`.
 *
 * The ratio is what Micro's engine (its subjects, ids, metadata, groups, checks) costs
 * over bare JetStream; the target (issue 6) is within 0.8x.
 */
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Delivery } from '@micro/sdk';
import { connectJetStreamEvents } from '@micro/server/nats';
import { closedLoopThroughput, type Benchmark, type Contestant } from './harness.js';

const INFLIGHT = 50;
const ROUND_MS = 2_000;
const CONSUME = 2_000;
const natsUrl = () => process.env.MICRO_BENCH_NATS_URL || 'nats://127.0.0.1:4222';
const VALUE = { name: 'bench', count: 42, tags: ['a', 'b'] };

/** Both sides do this: publish (50 in flight), then fill a topic and drain it with one acking consumer. */
interface Side {
  publish(): Promise<unknown>;
  /** a new topic filled with `n` events, drained by one consumer acking each: events/s of the drain */
  drain(n: number): Promise<number>;
  close(): Promise<void>;
}

function contestant(side: Side): Contestant {
  return {
    async warmUp() {
      await closedLoopThroughput(() => side.publish(), INFLIGHT, 500);
      await side.drain(500);
    },
    async round() {
      return {
        'jetstream.publish': await closedLoopThroughput(() => side.publish(), INFLIGHT, ROUND_MS),
        'jetstream.consume': await side.drain(CONSUME),
      };
    },
    close: () => side.close(),
  };
}

/** What the micro side uses of an events engine (the Events interface, or the engine micro server serves). */
interface EventsEngine {
  publish(topic: string, payload: unknown): Promise<unknown>;
  consume(topic: string, options: { group: string; offset: 'earliest'; maxInFlight: number }): Promise<AsyncIterable<Delivery> & { close(): Promise<void> }>;
}

/** Micro: an events engine, used through its interface. */
function eventsSide(events: EventsEngine, close: () => Promise<void>): Side {
  let round = 0;
  return {
    publish: () => events.publish('bench.published', VALUE),
    async drain(n) {
      const topic = `bench.consume.${round++}`;
      const consumer = await events.consume(topic, { group: 'bench', offset: 'earliest', maxInFlight: 100 });
      await Promise.all(Array.from({ length: n }, () => events.publish(topic, VALUE)));
      const started = performance.now();
      let got = 0;
      for await (const delivery of consumer) {
        await delivery.ack();
        if (++got === n) break;
      }
      await consumer.close();
      return got / ((performance.now() - started) / 1000);
    },
    close,
  };
}

/** Raw nats.js JetStream: one stream for the run, a subject and a durable consumer per drain. */
async function rawSide(): Promise<Side> {
  const nc: NatsConnection = await connect({ servers: natsUrl() });
  const jsm: JetStreamManager = await jetstreamManager(nc);
  const js: JetStreamClient = jetstream(nc);
  const name = `BENCH_RAW_${randomBytes(4).toString('hex')}`;
  const subject = name.toLowerCase();
  await jsm.streams.add({ name, subjects: [`${subject}.>`] });
  const payload = new TextEncoder().encode(JSON.stringify(VALUE));
  let n = 0;
  let round = 0;
  return {
    publish: () => js.publish(`${subject}.published`, payload, { msgID: `m${n++}` }),
    async drain(count) {
      const topic = `${subject}.consume.${round}`;
      const durable = `bench_${round++}`;
      await jsm.consumers.add(name, { durable_name: durable, ack_policy: AckPolicy.Explicit, filter_subject: topic, max_ack_pending: 100 });
      await Promise.all(Array.from({ length: count }, () => js.publish(topic, payload, { msgID: `c${n++}` })));
      const consumer = await js.consumers.get(name, durable);
      const messages = await consumer.consume({ max_messages: 100 });
      const started = performance.now();
      let got = 0;
      for await (const m of messages) {
        // the payload is decoded as Micro's consumer decodes it, so both sides parse JSON
        JSON.parse(m.string());
        await m.ackAck();
        if (++got === count) break;
      }
      await messages.close();
      return got / ((performance.now() - started) / 1000);
    },
    async close() {
      await jsm.streams.delete(name).catch(() => undefined);
      await nc.close();
    },
  };
}

/**
 * Micro: the JetStream engine micro server hosts (packages/server/src/events/jetstream.ts),
 * under a prefix of its own; its streams are deleted at the end.
 */
async function microSide(): Promise<Side> {
  const prefix = `bench_${randomBytes(4).toString('hex')}`;
  const { events, close } = await connectJetStreamEvents(natsUrl(), { prefix, maxWait: 5_000 });
  return eventsSide(events, async () => {
    await deleteStreams(prefix);
    await close();
  });
}

async function deleteStreams(prefix: string): Promise<void> {
  const nc = await connect({ servers: natsUrl() });
  try {
    const jsm = await jetstreamManager(nc);
    for await (const s of jsm.streams.list()) if (s.config.name.toLowerCase().startsWith(prefix)) await jsm.streams.delete(s.config.name).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

export const eventsJetStream: Benchmark = {
  name: 'events-jetstream',
  title: 'Durable events on JetStream',
  peerName: 'raw nats.js JetStream',
  figures: [
    { id: 'jetstream.publish', label: `events published/s, ${INFLIGHT} in flight, acknowledged by JetStream`, unit: 'calls/s', better: 'higher', target: 0.8 },
    { id: 'jetstream.consume', label: 'events consumed and acked/s, one consumer (durable group)', unit: 'calls/s', better: 'higher', target: 0.8 },
  ],
  async setup() {
    const m = contestant(await microSide());
    try {
      return { micro: m, peer: contestant(await rawSide()) };
    } catch (err) {
      await m.close();
      throw err;
    }
  },
};
