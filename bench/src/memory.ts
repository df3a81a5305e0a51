/**
 * Resident memory of idle processes, as `top` shows it (VmRSS of /proc/<pid>/status, read
 * by the bench process for both sides alike), in MB (MiB).
 *
 * - `memory.server`: `micro server` (the CLI, a new MICRO_HOME: every core service,
 *   gateway included) vs a Moleculer broker with moleculer-web's ApiGateway and the
 *   greeter (servers/moleculer-web.ts).
 * - `memory.service`: the greeter as a Micro `Service` in its own process
 *   (servers/micro-greeter.ts) vs the greeter on a Moleculer broker with the TCP
 *   transporter (servers/moleculer-greeter.ts).
 *
 * Each round starts both processes of a side afresh, waits until they answer, lets them
 * sit idle for SETTLE_MS (no forced GC on either side: neither can be asked for one from
 * outside), reads their RSS and stops them. No target: the figures are informational.
 */
import { fileURLToPath } from 'node:url';
import { startChild, type Benchmark, type ChildServer, type Contestant } from './harness.js';
import { procReadable, rssMB, sleep, startMicroServer, type MicroServerProcess } from './procs.js';

const SETTLE_MS = 3_000;

const script = (name: string) => fileURLToPath(new URL(`./servers/${name}.js`, import.meta.url));

/** Starts every process of a side at once; if one fails, stops the others. */
async function all<T extends readonly unknown[]>(starts: { [K in keyof T]: Promise<T[K] & { stop(): Promise<void> }> }): Promise<T> {
  const settled = await Promise.allSettled(starts);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(settled.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw failed.reason;
  }
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

function micro(): Contestant {
  async function round(settle: number): Promise<Record<string, number>> {
    const [server, service] = await all<[MicroServerProcess, ChildServer<{ address: string }>]>([startMicroServer(), startChild<{ address: string }>(script('micro-greeter'))]);
    try {
      await sleep(settle);
      return { 'memory.server': rssMB(server.pid), 'memory.service': rssMB(service.pid) };
    } finally {
      await Promise.all([server.stop(), service.stop()]);
    }
  }
  // a first start loads the files into the page cache
  return { warmUp: async () => void (await round(0)), round: () => round(SETTLE_MS), close: async () => undefined };
}

function moleculer(): Contestant {
  async function round(settle: number): Promise<Record<string, number>> {
    const [web, service] = await all<[ChildServer<{ url: string }>, ChildServer<{ nodeID: string; port: number }>]>([
      startChild<{ url: string }>(script('moleculer-web'), { timeoutMs: 30_000 }),
      startChild<{ nodeID: string; port: number }>(script('moleculer-greeter')),
    ]);
    try {
      await sleep(settle);
      return { 'memory.server': rssMB(web.pid), 'memory.service': rssMB(service.pid) };
    } finally {
      await Promise.all([web.stop(), service.stop()]);
    }
  }
  return { warmUp: async () => void (await round(0)), round: () => round(SETTLE_MS), close: async () => undefined };
}

export const memory: Benchmark = {
  name: 'memory',
  title: 'Resident memory of idle processes',
  figures: [
    { id: 'memory.server', label: 'idle micro server (RSS), vs a Moleculer broker with moleculer-web', unit: 'MB', better: 'lower' },
    { id: 'memory.service', label: 'idle service process (RSS), vs a Moleculer broker hosting the greeter (TCP)', unit: 'MB', better: 'lower' },
  ],
  async setup() {
    if (!procReadable()) throw new Error('cannot read /proc/<pid>/status: the memory benchmark needs Linux');
    return { micro: micro(), peer: moleculer() };
  },
};
