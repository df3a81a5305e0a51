/**
 * The local runtime running SERVICES services at once.
 *
 * Micro: `micro server` (the CLI) in a new MICRO_HOME; then SERVICES `runtime.Create`
 * calls at once (what `micro run <folder>` sends; the CLI process itself is left out),
 * each of a folder of plain JavaScript (package.json depending on `@micro/sdk` only, so
 * there is nothing to install or compile: the runtime copies the folder, links the
 * server's own SDK into it and starts `node main.js`). Measured: from the first Create to
 * every service answering a call (`Ping`, as the admin, through the registry, as any
 * caller would), and the resident memory per service instance (the sum of the instances'
 * VmRSS, pids from `runtime.Read`, / SERVICES).
 *
 * Moleculer: a caller broker in this process (TCP transporter, no UDP discovery, as in
 * every benchmark here), then SERVICES broker processes spawned at once
 * (servers/moleculer-scale-node.ts), each hosting one service with the caller in its
 * static node list: the caller learns of each node through its gossip. (The other way
 * round, the caller given the list of every node, was slower still: it gossips with one
 * unknown node at a time.) Measured: from the first spawn to the caller having called
 * every service; RSS per process. Because Moleculer's time to the calls is mostly its
 * gossip discovery (every 2 s), `scale-runtime.started` also gives the time until every
 * process runs: for Micro until the last Create answered `done` (the runtime saw the
 * instance in the registry), for Moleculer until the last broker printed that it started.
 *
 * Heavy (SERVICES + 1 processes per side): at most ROUNDS rounds, no warm-up round, and
 * the processes run wherever the kernel puts them (not pinned).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, createClient, platformClient, RemoteRegistry, runtime } from '@micro/sdk';
import { ServiceBroker } from 'moleculer';
import { startChild, type Benchmark, type ChildServer, type Contestant } from './harness.js';
import { procReadable, rssMB, until, startMicroServer } from './procs.js';

const SERVICES = 50;
const ROUNDS = 2;

const names = Array.from({ length: SERVICES }, (_, i) => `scale-svc-${String(i).padStart(2, '0')}`);
const script = (name: string) => fileURLToPath(new URL(`./servers/${name}.js`, import.meta.url));

function micro(): Contestant {
  const work = mkdtempSync(join(tmpdir(), 'micro-bench-scale-'));
  for (const name of names) {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '0.0.1', private: true, type: 'module', dependencies: { '@micro/sdk': '0.1.0' } }));
    writeFileSync(
      join(dir, 'main.js'),
      `import { defineService, endpoint, run, z } from '@micro/sdk';
await run(defineService({ name: ${JSON.stringify(name)}, version: '1.0.0', endpoints: { Ping: endpoint({ request: z.object({}), response: z.object({ pong: z.boolean() }) }) } }), { Ping: () => ({ pong: true }) });
`,
    );
  }

  async function round(): Promise<Record<string, number>> {
    const server = await startMicroServer();
    try {
      const platform = platformClient(server.address, [server.asAdmin]);
      const rt = createClient(runtime, platform);
      const client = new Client({ registry: new RemoteRegistry(platform), namespace: 'micro', preferLocal: false, middleware: [server.asAdmin] });
      const t0 = performance.now();
      let started = 0;
      let startedMs = 0;
      await Promise.all(
        names.map(async (name) => {
          let last: { step: string; message: string } | undefined;
          for await (const progress of rt.Create({ source: join(work, name) })) last = progress;
          if (last?.step !== 'done') throw new Error(`micro run ${name} ended with ${JSON.stringify(last)}`);
          if (++started === SERVICES) startedMs = performance.now() - t0;
          await until(`${name} answers`, () => client.call(name, 'Ping', {}), 60_000, 20);
        }),
      );
      const ms = performance.now() - t0;
      const { services } = await rt.Read({ namespace: 'micro' });
      const pids = services.filter((s) => names.includes(s.name)).flatMap((s) => s.instances.map((i) => i.pid ?? 0));
      if (pids.length !== SERVICES || pids.includes(0)) throw new Error(`the runtime lists ${pids.length} instances with pids, not ${SERVICES}`);
      const rss = pids.reduce((sum, pid) => sum + rssMB(pid), 0) / SERVICES;
      return { 'scale-runtime.started': startedMs, 'scale-runtime.ready': ms, 'scale-runtime.rss': rss };
    } finally {
      // SIGTERM: the server stops every instance it runs before it exits
      await server.stop();
    }
  }

  return { warmUp: async () => undefined, round, close: async () => rmSync(work, { recursive: true, force: true }) };
}

function moleculer(): Contestant {
  async function round(): Promise<Record<string, number>> {
    const callerID = `bench-scale-caller-${process.pid}-${Date.now()}`;
    const caller = new ServiceBroker({ nodeID: callerID, logger: false, transporter: { type: 'TCP', options: { udpDiscovery: false, port: 0 } } });
    await caller.start();
    const port = (caller.registry as unknown as { nodes: { localNode: { port: number } } }).nodes.localNode.port;
    const nodes: ChildServer<{ nodeID: string; pid: number }>[] = [];
    try {
      const t0 = performance.now();
      let startedMs = 0;
      await Promise.all(
        names.map(async (name) => {
          nodes.push(await startChild<{ nodeID: string; pid: number }>(script('moleculer-scale-node'), { args: [name, callerID, String(port)], timeoutMs: 120_000 }));
          if (nodes.length === SERVICES) startedMs = performance.now() - t0;
          await caller.waitForServices([name], 180_000, 100);
          await until(`${name} answers`, () => caller.call(`${name}.ping`, {}), 60_000, 20);
        }),
      );
      const ms = performance.now() - t0;
      const rss = nodes.reduce((sum, n) => sum + rssMB(n.pid), 0) / SERVICES;
      return { 'scale-runtime.started': startedMs, 'scale-runtime.ready': ms, 'scale-runtime.rss': rss };
    } finally {
      await caller.stop().catch(() => undefined);
      await Promise.all(nodes.map((n) => n.stop()));
    }
  }
  return { warmUp: async () => undefined, round, close: async () => undefined };
}

export const scaleRuntime: Benchmark = {
  name: 'scale-runtime',
  title: `The local runtime running ${SERVICES} services`,
  figures: [
    {
      id: 'scale-runtime.started',
      label: `${SERVICES} services started at once until every process runs (micro: the runtime reports it registered; Moleculer: its broker started)`,
      unit: 'ms',
      better: 'lower',
    },
    { id: 'scale-runtime.ready', label: `${SERVICES} services started at once (micro run, plain JS) until every one answers, vs ${SERVICES} Moleculer broker processes (gossip discovery)`, unit: 'ms', better: 'lower' },
    { id: 'scale-runtime.rss', label: `RSS per service instance, ${SERVICES} running, vs per Moleculer broker process`, unit: 'MB', better: 'lower' },
  ],
  rounds: ROUNDS,
  async setup() {
    if (!procReadable()) throw new Error('cannot read /proc/<pid>/status: the scale-runtime benchmark needs Linux');
    return { micro: micro(), peer: moleculer() };
  },
};
