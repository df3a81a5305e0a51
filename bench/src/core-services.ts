/**
 * The core services through `micro server`: store writes and reads, events published
 * and consumed, each call going from this process over RPC (authenticated) to a
 * `micro server` process and its SQLite engines (WAL, synchronous=FULL: every write is
 * on disk before it is answered).
 *
 * The peer is the same engine used directly in this process, without the service: the
 * ratio is what the service hop (validation, auth, RPC, the namespace rule) costs.
 * Concurrency: 50 operations in flight for writes, reads and publishes; consumption is
 * one consumer acking each event (the remote consumer prefetches 50 deliveries).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bearer, Client, platformClient, RemoteEvents, RemoteStore, TokenSource, type Events, type Store } from '@micro/sdk';
import { SqliteEvents, SqliteStore } from '@micro/server';
import { closedLoopThroughput, type Benchmark, type Contestant } from './harness.js';

const cli = fileURLToPath(new URL('../../packages/cli/bin/micro.js', import.meta.url));
const INFLIGHT = 50;
const ROUND_MS = 2_000;
const CONSUME = 2_000;

interface Engines {
  store: Store;
  events: Events;
}

function contestant(engines: Engines, close: () => Promise<void>): Contestant {
  let n = 0;
  let topicRound = 0;
  const value = { name: 'bench', count: 42, tags: ['a', 'b'] };
  const write = () => engines.store.write({ key: `k${n++ % 10_000}`, value });
  const read = () => engines.store.read(`k${n++ % 1_000}`);
  const publish = () => engines.events.publish('bench.published', value);

  async function consume(): Promise<number> {
    // a topic of its own each round, filled first, then drained by one consumer
    const topic = `bench.consume.${topicRound++}`;
    const consumer = await engines.events.consume(topic, { group: 'bench', offset: 'earliest', maxInFlight: 100 });
    await Promise.all(Array.from({ length: CONSUME }, () => engines.events.publish(topic, value)));
    const started = performance.now();
    let got = 0;
    for await (const delivery of consumer) {
      await delivery.ack();
      if (++got === CONSUME) break;
    }
    await consumer.close();
    return got / ((performance.now() - started) / 1000);
  }

  return {
    async warmUp() {
      for (let i = 0; i < 1_000; i++) await write();
      await closedLoopThroughput(read, INFLIGHT, 300);
      await closedLoopThroughput(publish, INFLIGHT, 300);
    },
    async round() {
      return {
        'core.store.write': await closedLoopThroughput(write, INFLIGHT, ROUND_MS),
        'core.store.read': await closedLoopThroughput(read, INFLIGHT, ROUND_MS),
        'core.events.publish': await closedLoopThroughput(publish, INFLIGHT, ROUND_MS),
        'core.events.consume': await consume(),
      };
    },
    close,
  };
}

async function startServer(home: string): Promise<{ proc: ChildProcess; address: string }> {
  const proc = spawn(process.execPath, [cli, 'server', '--address', 'tcp://127.0.0.1:0'], { env: { ...process.env, MICRO_HOME: home, MICRO_LOG_LEVEL: 'silent' } });
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`micro server did not start:\n${out}`)), 30_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (tcp:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    proc.once('exit', (code) => reject(new Error(`micro server exited with ${code}:\n${out}`)));
  });
  return { proc, address };
}

async function throughServer(): Promise<Contestant> {
  const home = mkdtempSync(join(tmpdir(), 'micro-bench-core-'));
  const { proc, address } = await startServer(home);
  const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const client = platformClient(address, [bearer(new TokenSource(admin, new Client({ address, namespace: 'micro', preferLocal: false })))]);
  return contestant({ store: new RemoteStore(client), events: new RemoteEvents(client, { prefetch: 50 }) }, async () => {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    rmSync(home, { recursive: true, force: true });
  });
}

function direct(): Contestant {
  const dir = mkdtempSync(join(tmpdir(), 'micro-bench-engines-'));
  const store = new SqliteStore({ path: join(dir, 'store.db') });
  const events = new SqliteEvents({ path: join(dir, 'events.db') });
  return contestant({ store, events }, async () => {
    await store.close?.();
    await events.close?.();
    rmSync(dir, { recursive: true, force: true });
  });
}

export const coreServices: Benchmark = {
  name: 'core',
  title: 'Core services through micro server (store, events)',
  peerName: 'the SQLite engine, in process',
  figures: [
    { id: 'core.store.write', label: `store writes/s, ${INFLIGHT} in flight, durable`, unit: 'calls/s', better: 'higher' },
    { id: 'core.store.read', label: `store reads/s, ${INFLIGHT} in flight`, unit: 'calls/s', better: 'higher' },
    { id: 'core.events.publish', label: `events published/s, ${INFLIGHT} in flight, durable`, unit: 'calls/s', better: 'higher' },
    { id: 'core.events.consume', label: 'events consumed and acked/s, one consumer', unit: 'calls/s', better: 'higher' },
  ],
  async setup() {
    const m = await throughServer();
    return { micro: m, peer: direct() };
  },
};
