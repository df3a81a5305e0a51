/**
 * Remote calls between two processes on this machine: the service runs in a child
 * process, this process calls it over TCP on 127.0.0.1.
 * Micro: the SDK's own wire protocol, the client dialling the service's address (one
 * multiplexed connection, JSON bodies).
 * Moleculer: two ServiceBrokers with the TCP transporter, a static node list and no UDP
 * discovery (JSON serializer, its default).
 * Figures: throughput with exactly 100 calls outstanding, and the round-trip time of
 * calls made one after another (p50, p99).
 */
import { fileURLToPath } from 'node:url';
import { ConnectionPool, createClient } from '@micro/sdk';
import { ServiceBroker } from 'moleculer';
import { checkGreeter, greeter, REQUEST } from './greeter.js';
import {
  closedLoopThroughput,
  percentile,
  sequentialLatencies,
  startChild,
  warm,
  type BenchEnv,
  type Benchmark,
  type Call,
  type ChildServer,
  type Contestant,
} from './harness.js';

const INFLIGHT = 100;
const THROUGHPUT_MS = 3_000;
const LATENCY_CALLS = 5_000;
const WARMUP_MS = 1_000;

const script = (name: string) => fileURLToPath(new URL(`./servers/${name}.js`, import.meta.url));

/**
 * One side of a remote-call benchmark: the greeter called through `send`, figures under
 * `<prefix>.throughput`, `<prefix>.p50` and `<prefix>.p99` (calls-nats.ts uses it too).
 */
export function callContestant(prefix: string, side: string, send: (request: unknown) => Promise<unknown>, close: () => Promise<void>, latencyCalls = LATENCY_CALLS): Contestant {
  const call: Call = () => send(REQUEST);
  return {
    async warmUp() {
      await checkGreeter(side, send);
      await warm(call, WARMUP_MS / 2, INFLIGHT);
      await warm(call, WARMUP_MS / 2);
    },
    async round() {
      const throughput = await closedLoopThroughput(call, INFLIGHT, THROUGHPUT_MS);
      const rtt = await sequentialLatencies(call, latencyCalls);
      return { [`${prefix}.throughput`]: throughput, [`${prefix}.p50`]: percentile(rtt, 50), [`${prefix}.p99`]: percentile(rtt, 99) };
    },
    close,
  };
}

/**
 * Moleculer's side: a caller broker in this process and the greeter broker in a child
 * (servers/moleculer-greeter.ts started with `args`), on the given transporter.
 */
export async function moleculerContestant(
  prefix: string,
  side: string,
  env: BenchEnv,
  args: string[],
  broker: (server: { nodeID: string; port: number }) => ServiceBroker,
): Promise<Contestant> {
  const server: ChildServer<{ nodeID: string; port: number }> = await startChild(script('moleculer-greeter'), { cpus: env.serverCpus, args });
  const caller = broker(server.info);
  try {
    caller.createService({ name: 'caller' });
    await caller.start();
    // the nodes must have discovered each other before a call can go both ways
    await caller.waitForServices(['greeter'], 15_000);
  } catch (err) {
    await caller.stop().catch(() => undefined);
    await server.stop();
    throw err;
  }
  return callContestant(prefix, side, (request) => caller.call('greeter.hello', request), async () => {
    await caller.stop().catch(() => undefined);
    await server.stop();
  });
}

async function micro(env: BenchEnv): Promise<Contestant> {
  const server: ChildServer<{ address: string }> = await startChild(script('micro-greeter'), { cpus: env.serverCpus });
  const pool = new ConnectionPool();
  const client = createClient(greeter, { address: server.info.address, pool, preferLocal: false });
  return callContestant(
    'remote',
    'micro',
    (request) => client.Hello(request as { name: string }),
    async () => {
      pool.close();
      await server.stop();
    },
  );
}

function moleculer(env: BenchEnv): Promise<Contestant> {
  return moleculerContestant('remote', 'moleculer', env, [], (server) =>
    new ServiceBroker({
      nodeID: `bench-caller-${process.pid}`,
      logger: false,
      transporter: { type: 'TCP', options: { udpDiscovery: false, port: 0, urls: `127.0.0.1:${server.port}/${server.nodeID}` } },
    }),
  );
}

export const remote: Benchmark = {
  name: 'remote',
  title: 'Remote calls (two processes, TCP)',
  figures: [
    { id: 'remote.throughput', label: `remote calls/s, ${INFLIGHT} in flight`, unit: 'calls/s', better: 'higher', target: 2.5 },
    { id: 'remote.p50', label: 'remote sequential round trip p50', unit: 'µs', better: 'lower', target: 1 },
    { id: 'remote.p99', label: 'remote sequential round trip p99', unit: 'µs', better: 'lower' },
  ],
  usesChildren: true,
  async setup(env) {
    const m = await micro(env);
    try {
      return { micro: m, peer: await moleculer(env) };
    } catch (err) {
      await m.close();
      throw err;
    }
  },
};
