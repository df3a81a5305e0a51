/**
 * In-process calls: a client calling a service that runs in the same process.
 * Micro: a Service with no listener and a client that prefers the local instance.
 * Moleculer: one ServiceBroker with no transporter, calling its own action.
 * Both validate the request ({ name: string }) and use their default options otherwise
 * (Micro's client puts a 30 s deadline on every call; Moleculer has no request timeout).
 */
import { createClient, createLogger, MemoryRegistry, Service } from '@micro/sdk';
import { ServiceBroker } from 'moleculer';
import { checkGreeter, greeter, greeterHandlers, moleculerGreeter, REQUEST } from './greeter.js';
import { closedLoopThroughput, sequentialThroughput, warm, type Benchmark, type Call, type Contestant } from './harness.js';

const SEQUENTIAL_MS = 1_000;
const CONCURRENT_MS = 1_000;
const INFLIGHT = 100;
const WARMUP_MS = 1_000;

function contestant(side: string, send: (request: unknown) => Promise<unknown>, close: () => Promise<void>): Contestant {
  const call: Call = () => send(REQUEST);
  return {
    async warmUp() {
      await checkGreeter(side, send);
      await warm(call, WARMUP_MS / 2);
      await warm(call, WARMUP_MS / 2, INFLIGHT);
    },
    async round() {
      return {
        'inprocess.sequential': await sequentialThroughput(call, SEQUENTIAL_MS),
        'inprocess.concurrent': await closedLoopThroughput(call, INFLIGHT, CONCURRENT_MS),
      };
    },
    close,
  };
}

async function micro(): Promise<Contestant> {
  const registry = new MemoryRegistry();
  const svc = new Service(greeter, greeterHandlers, { registry, address: false, logger: createLogger({ level: 'silent' }) });
  await svc.start();
  const client = createClient(greeter, { registry });
  return contestant(
    'micro',
    (request) => client.Hello(request as { name: string }),
    async () => {
      await svc.stop();
      await registry.close?.();
    },
  );
}

async function moleculer(): Promise<Contestant> {
  const broker = new ServiceBroker({ nodeID: `bench-inprocess-${process.pid}`, logger: false });
  broker.createService(moleculerGreeter);
  await broker.start();
  return contestant(
    'moleculer',
    (request) => broker.call('greeter.hello', request),
    () => broker.stop(),
  );
}

export const inprocess: Benchmark = {
  name: 'inprocess',
  title: 'In-process calls',
  figures: [
    { id: 'inprocess.sequential', label: 'in-process calls/s, sequential await', unit: 'calls/s', better: 'higher', target: 1.5 },
    { id: 'inprocess.concurrent', label: `in-process calls/s, ${INFLIGHT} in flight`, unit: 'calls/s', better: 'higher' },
  ],
  async setup() {
    const m = await micro();
    try {
      return { micro: m, peer: await moleculer() };
    } catch (err) {
      await m.close();
      throw err;
    }
  },
};
