/**
 * The event service (services/event) through the gateway, against the events engine it
 * keeps events in used directly: what the gateway, the API key, the service and the RPC
 * to the server's events core service cost on top of the engine.
 *
 * - micro: `micro server` in a child process on the servers' CPU (servers/micro-event.ts:
 *   local profile, events in SQLite, the event service hosted, a tenant with an API key,
 *   its rate limits raised); this process calls it as a tenant would: `POST
 *   /v1/event/Publish` on keep-alive connections (http-load.ts), `Consume` over the
 *   gateway's WebSocket (one JSON text frame, the request; one frame per event).
 * - peer: the local profile's events engine (`SqliteEvents`, the one that server uses) in
 *   this process, on a database of its own, called with the same topics, namespace, groups
 *   and options as the service calls it.
 *
 * Each round, on each side:
 * - publish: 50 publishes in flight for 2 s (each stored before it is answered):
 *   calls/s, p50 and p99;
 * - delivery: a new topic filled with 2,000 events (untimed), then drained by one consumer
 *   starting at the time the filling began; events/s from the consumer's request to its
 *   2,000th event. The service acknowledges each event as it hands it on; so does the peer;
 * - publish→receive: a consumer in place on a new topic, 200 events published one at a
 *   time, each after the last arrived: µs from the publish to its arrival, p50 and p99.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import type { Consumer } from '@micro/sdk';
import { SqliteEvents } from '@micro/server';
import { percentile, startChild, type Benchmark, type ChildServer, type Contestant, type FigureSpec } from './harness.js';
import { HttpLoad, jsonPost } from './http-load.js';

const NAME = 'event';
const INFLIGHT = 50;
const ROUND_MS = 2_000;
const WARMUP_MS = 1_000;
const DELIVER = 2_000;
const LATENCIES = 200;
/** how long a side may take to deliver what it was given before the round fails */
const DELIVERY_WAIT_MS = 60_000;
const VALUE = { name: 'bench', count: 42, tags: ['a', 'b'] };
/** the namespace the service keeps the tenant's events in (its API key's) */
const NAMESPACE = 'bench';

const script = new URL('./servers/micro-event.js', import.meta.url).pathname;

interface Publishing {
  rate: number;
  p50: number;
  p99: number;
}

/** What both sides do, each its own way. */
interface Side {
  /** `INFLIGHT` publishes in flight for `ms` */
  publish(ms: number): Promise<Publishing>;
  /** `n` events on `topic`, published untimed */
  fill(topic: string, n: number): Promise<void>;
  /**
   * A consumer of `topic` from `from` (epoch ms), resolved once it is asked for (micro) or
   * in place (engine); `onError` when it fails or ends before it is closed
   */
  consume(topic: string, from: number, onEvent: (message: Record<string, unknown>) => void, onError: (err: Error) => void): Promise<{ close(): Promise<void> }>;
  /** publishes one event holding `message`, resolved once it is stored */
  publishOne(topic: string, message: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

function sorted(values: number[]): Float64Array {
  return Float64Array.from(values).sort();
}

/** Resolves when `count()` reaches `n`; rejects on `fail` or after DELIVERY_WAIT_MS. */
function arrival(count: () => number, n: number, what: string): { promise: Promise<void>; check(): void; fail(err: Error): void } {
  let done!: () => void;
  let failed!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    done = resolve;
    failed = reject;
  });
  const timer = setTimeout(() => failed(new Error(`${what}: ${count()} of ${n} events arrived in ${DELIVERY_WAIT_MS} ms`)), DELIVERY_WAIT_MS);
  return {
    promise: promise.finally(() => clearTimeout(timer)),
    check() {
      if (count() >= n) done();
    },
    fail: (err) => failed(err),
  };
}

function contestant(side: Side, label: string): Contestant {
  let topics = 0;
  const fresh = (what: string) => `bench.${what}.${topics++}.${randomUUID().slice(0, 8)}`;

  async function deliver(n: number): Promise<number> {
    const topic = fresh('deliver');
    const from = Date.now() - 1;
    await side.fill(topic, n);
    let got = 0;
    const all = arrival(() => got, n, `${label} delivery`);
    const started = performance.now();
    const consumer = await side.consume(
      topic,
      from,
      () => {
        got++;
        all.check();
      },
      all.fail,
    );
    try {
      await all.promise;
      return n / ((performance.now() - started) / 1000);
    } finally {
      await consumer.close();
    }
  }

  /** publish→receive in µs of `n` events, one at a time, after `skip` untimed ones (the consumer's first fetches) */
  async function latencies(n: number, skip = 5): Promise<Float64Array> {
    const topic = fresh('latency');
    let waiting: { seq: number; arrived: () => void; failed: (err: Error) => void } | undefined;
    const consumer = await side.consume(
      topic,
      Date.now() - 1,
      (message) => {
        if (waiting && message.seq === waiting.seq) waiting.arrived();
      },
      (err) => waiting?.failed(err),
    );
    const out: number[] = [];
    try {
      for (let seq = 0; seq < n + skip; seq++) {
        const t0 = process.hrtime.bigint();
        const arrived = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${label}: event ${seq} did not arrive in ${DELIVERY_WAIT_MS} ms`)), DELIVERY_WAIT_MS);
          waiting = {
            seq,
            arrived: () => {
              clearTimeout(timer);
              resolve();
            },
            failed: (err) => {
              clearTimeout(timer);
              reject(err);
            },
          };
        });
        await side.publishOne(topic, { seq, ...VALUE });
        await arrived;
        if (seq >= skip) out.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
    } finally {
      await consumer.close();
    }
    return sorted(out);
  }

  return {
    async warmUp() {
      await side.publish(WARMUP_MS);
      await deliver(500);
      await latencies(50);
    },
    async round() {
      const published = await side.publish(ROUND_MS);
      const delivered = await deliver(DELIVER);
      const lat = await latencies(LATENCIES);
      return {
        [`${NAME}.publish`]: published.rate,
        [`${NAME}.publish.p50`]: published.p50,
        [`${NAME}.publish.p99`]: published.p99,
        [`${NAME}.deliver`]: delivered,
        [`${NAME}.latency.p50`]: percentile(lat, 50),
        [`${NAME}.latency.p99`]: percentile(lat, 99),
      };
    },
    close: () => side.close(),
  };
}

// ---- micro: the event service through the gateway ------------------------------------

interface Info {
  url: string;
  key: string;
}

/** A Consume stream over the gateway's WebSocket; an error frame, a socket error or a close not asked for fail it. */
function openStream(info: Info, request: unknown, onEvent: (message: Record<string, unknown>) => void, onError: (err: Error) => void): Promise<{ close(): Promise<void> }> {
  const ws = new WebSocket(`${info.url.replace(/^http/, 'ws')}/v1/event/Consume`, { headers: { authorization: `Bearer ${info.key}` }, perMessageDeflate: false });
  let closing = false;
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as { error?: unknown; message?: Record<string, unknown> };
    if (frame.error || !frame.message) onError(new Error(`Consume answered ${data.toString().slice(0, 300)}`));
    else onEvent(frame.message);
  });
  ws.on('close', (code) => {
    if (!closing) onError(new Error(`the Consume stream closed (${code}) before it was asked to`));
  });
  return new Promise((resolve, reject) => {
    ws.once('error', (err) => {
      reject(err);
      onError(err);
    });
    ws.once('open', () => {
      ws.send(JSON.stringify(request));
      resolve({
        close: () =>
          new Promise<void>((done) => {
            closing = true;
            if (ws.readyState === WebSocket.CLOSED) return done();
            ws.once('close', () => done());
            ws.close();
          }),
      });
    });
  });
}

async function microSide(env: { serverCpus: string | undefined }): Promise<Side> {
  const server: ChildServer<Info> = await startChild<Info>(script, { cpus: env.serverCpus, timeoutMs: 30_000 });
  const { url, key } = server.info;
  const { hostname, port } = new URL(url);
  const auth = { authorization: `Bearer ${key}` };
  const post = (topic: string, message: unknown) => jsonPost(hostname, Number(port), '/v1/event/Publish', { topic, message }, auth);
  let load: HttpLoad;
  try {
    load = await HttpLoad.open(url, INFLIGHT);
    // the service answers as M3O's does, and refuses what it must
    const ok = await load.once(post('bench.check', VALUE));
    if (ok.status !== 200 || ok.body !== '{}') throw new Error(`Publish answered ${ok.status} ${ok.body.slice(0, 300)} instead of 200 {}`);
    const bad = await load.once(post('bench/../x', VALUE));
    if (bad.status !== 400) throw new Error(`Publish of a topic with a slash answered ${bad.status} ${bad.body.slice(0, 300)}, not 400`);
  } catch (err) {
    await server.stop();
    throw err;
  }
  const published = post('bench.published', VALUE);
  return {
    async publish(ms) {
      return load.run(published, '{}', ms);
    },
    async fill(topic, n) {
      const request = post(topic, VALUE);
      let left = n;
      // one request after another on each connection, until n are stored
      await load.each(async (send) => {
        while (left > 0) {
          left--;
          const res = await send(request);
          if (res.status !== 200) throw new Error(`Publish answered ${res.status} ${res.body.slice(0, 300)}`);
        }
      });
    },
    consume: (topic, from, onEvent, onError) => openStream(server.info, { topic, offset: new Date(from).toISOString() }, onEvent, onError),
    async publishOne(topic, message) {
      const res = await load.once(post(topic, message));
      if (res.status !== 200) throw new Error(`Publish answered ${res.status} ${res.body.slice(0, 300)}`);
    },
    async close() {
      load.close();
      await server.stop();
    },
  };
}

// ---- peer: the same engine, used directly ---------------------------------------------

/** The engine's topic of an M3O topic, as the service names it. */
const engineTopic = (topic: string) => `event.${topic}`;

function engineSide(): Side {
  const dir = mkdtempSync(join(tmpdir(), 'micro-bench-events-'));
  const events = new SqliteEvents({ path: join(dir, 'events.db') });
  const publishOne = async (topic: string, message: unknown) => {
    await events.publish(engineTopic(topic), message, { namespace: NAMESPACE });
  };
  return {
    async publish(ms) {
      const latencies: number[] = [];
      const start = performance.now();
      const end = start + ms;
      const worker = async () => {
        while (performance.now() < end) {
          const t0 = process.hrtime.bigint();
          await publishOne('bench.published', VALUE);
          latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
        }
      };
      await Promise.all(Array.from({ length: INFLIGHT }, worker));
      const s = sorted(latencies);
      return { rate: (latencies.length / (performance.now() - start)) * 1000, p50: percentile(s, 50), p99: percentile(s, 99) };
    },
    async fill(topic, n) {
      let left = n;
      await Promise.all(
        Array.from({ length: INFLIGHT }, async () => {
          while (left-- > 0) await publishOne(topic, VALUE);
        }),
      );
    },
    async consume(topic, from, onEvent, onError) {
      // as the service consumes: a group of its own, from the time asked, acknowledging each event handed on
      const name = engineTopic(topic);
      const group = `anon.${randomUUID()}`;
      const consumer: Consumer = await events.consume(name, { namespace: NAMESPACE, group, offset: { time: from }, deadLetter: `dead.${name}` });
      const loop = (async () => {
        for await (const delivery of consumer) {
          onEvent(delivery.event.payload as Record<string, unknown>);
          await delivery.ack();
        }
      })().catch(onError);
      return {
        async close() {
          await consumer.close();
          await loop;
          await events.deleteGroup(name, group, { namespace: NAMESPACE }).catch(() => undefined);
        },
      };
    },
    publishOne,
    async close() {
      events.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const FIGURES: FigureSpec[] = [
  { id: `${NAME}.publish`, label: `event.Publish through the gateway (API key, ${INFLIGHT} connections) vs the engine's publish (${INFLIGHT} in flight)`, unit: 'calls/s', better: 'higher' },
  { id: `${NAME}.publish.p50`, label: 'event.Publish: latency p50 under that load', unit: 'µs', better: 'lower' },
  { id: `${NAME}.publish.p99`, label: 'event.Publish: latency p99 under that load', unit: 'µs', better: 'lower' },
  { id: `${NAME}.deliver`, label: `event.Consume over the gateway's WebSocket vs the engine's consumer: ${DELIVER.toLocaleString('en-US')} stored events delivered, acknowledged each`, unit: 'events/s', better: 'higher' },
  { id: `${NAME}.latency.p50`, label: 'publish→receive, one event at a time: p50', unit: 'µs', better: 'lower' },
  { id: `${NAME}.latency.p99`, label: 'publish→receive, one event at a time: p99', unit: 'µs', better: 'lower' },
];

export const event: Benchmark = {
  name: NAME,
  title: 'event service through the gateway (local profile, SQLite) vs its events engine used directly',
  peerName: 'the events engine (SqliteEvents) used directly',
  figures: FIGURES,
  usesChildren: true,
  async setup(env) {
    const micro = await microSide(env);
    return { micro: contestant(micro, 'event service'), peer: contestant(engineSide(), 'engine') };
  },
};
