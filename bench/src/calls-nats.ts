/**
 * Remote calls over NATS between two processes on this machine, through the same
 * nats-server (MICRO_BENCH_NATS_URL, default nats://127.0.0.1:4222): the greeter runs in a
 * child process, this process calls it.
 * Micro: the SDK's NATS transport (MICRO_PROFILE=nats), the client dialling the
 * instance's `nats:` address, under a prefix of its own.
 * Moleculer: two ServiceBrokers with Moleculer's NATS transporter (the `nats` v2 client),
 * in a Moleculer namespace of their own (JSON serializer, its default).
 * Figures: throughput with exactly 100 calls outstanding, and the round-trip time of
 * calls made one after another (p50, p99). Target (issue 6): ≥ 1.5x Moleculer's throughput.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ConnectionPool, createClient } from '@micro/sdk';
import { ServiceBroker } from 'moleculer';
import { greeter } from './greeter.js';
import { startChild, type BenchEnv, type Benchmark, type ChildServer, type Contestant } from './harness.js';
import { callContestant, moleculerContestant } from './calls-remote.js';

const INFLIGHT = 100;
const LATENCY_CALLS = 3_000;
const natsUrl = () => process.env.MICRO_BENCH_NATS_URL || 'nats://127.0.0.1:4222';

const script = (name: string) => fileURLToPath(new URL(`./servers/${name}.js`, import.meta.url));

async function micro(env: BenchEnv): Promise<Contestant> {
  const prefix = `bench_${randomBytes(4).toString('hex')}`;
  const server: ChildServer<{ address: string }> = await startChild(script('micro-greeter-nats'), { cpus: env.serverCpus, args: [natsUrl(), prefix] });
  const pool = new ConnectionPool({ natsUrl: natsUrl() });
  const client = createClient(greeter, { address: server.info.address, pool, preferLocal: false });
  return callContestant(
    'nats',
    'micro (NATS)',
    (request) => client.Hello(request as { name: string }),
    async () => {
      pool.close();
      await server.stop();
    },
    LATENCY_CALLS,
  );
}

function moleculer(env: BenchEnv): Promise<Contestant> {
  const namespace = `bench-${randomBytes(4).toString('hex')}`;
  return moleculerContestant('nats', 'moleculer (NATS)', env, ['--nats', natsUrl(), namespace], () =>
    new ServiceBroker({ nodeID: `bench-caller-${process.pid}`, namespace, logger: false, transporter: { type: 'NATS', options: { url: natsUrl() } } }),
  );
}

export const remoteNats: Benchmark = {
  name: 'remote-nats',
  title: 'Remote calls over NATS (two processes, one nats-server)',
  figures: [
    { id: 'nats.throughput', label: `remote calls over NATS/s, ${INFLIGHT} in flight`, unit: 'calls/s', better: 'higher', target: 1.5 },
    { id: 'nats.p50', label: 'remote sequential round trip over NATS p50', unit: 'µs', better: 'lower' },
    { id: 'nats.p99', label: 'remote sequential round trip over NATS p99', unit: 'µs', better: 'lower' },
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
