/**
 * Does a call cost more when the registry is full? The greeter (servers/micro-greeter-node.ts,
 * one process) is registered in two `micro server`s (the CLI, local profile: its registry
 * engine is the in-memory one, `MemoryRegistry`, served to remote clients by the registry
 * service). One of them also holds SERVICES fake services of NODES_EACH nodes each
 * (unique addresses, never called, no TTL). The "peer" is the same set-up with the greeter
 * alone: a ratio of 1.0 means no growth.
 *
 * The caller is what a service started by `micro run` uses: a client whose registry is
 * `RemoteRegistry` (the server's registry service) behind a `Selector`, i.e. the real
 * lookup path of a call: `Selector.selectSync` (a cache keyed by namespace and service,
 * kept fresh by a registry watch), and on a miss `Selector.select` → `getService` over
 * RPC. On the full side the caller's selector has first looked up every one of the 1,000
 * services, so its cache is full too.
 *
 * Figures: calls/s with 100 in flight and the sequential p50 of calls to the greeter
 * (calls-remote.ts's loops); the cost of one registry lookup of the greeter
 * (`getService`) through the registry service (what a selector cache miss costs) and on
 * the MemoryRegistry engine itself in this process, filled the same way.
 */
import { fileURLToPath } from 'node:url';
import { Client, ConnectionPool, createClient, MemoryRegistry, platformClient, RemoteRegistry, Selector, type Registry, type ServiceRecord } from '@micro/sdk';
import { callContestant } from './calls-remote.js';
import { greeter } from './greeter.js';
import { startChild, type BenchEnv, type Benchmark, type ChildServer, type Contestant } from './harness.js';
import { startMicroServer, type MicroServerProcess } from './procs.js';

const SERVICES = 1_000;
const NODES_EACH = 10;
const REMOTE_LOOKUPS = 1_000;
const MEMORY_LOOKUPS = 100_000;
const LATENCY_CALLS = 3_000;

const script = (name: string) => fileURLToPath(new URL(`./servers/${name}.js`, import.meta.url));

/** SERVICES fake services (the greeter's endpoints, NODES_EACH nodes with unique addresses each). */
function fakeServices(template: ServiceRecord): ServiceRecord[] {
  return Array.from({ length: SERVICES }, (_, i) => ({
    name: `scale-svc-${i}`,
    version: '1.0.0',
    endpoints: template.endpoints,
    nodes: Array.from({ length: NODES_EACH }, (_, j) => ({ id: `scale-svc-${i}-${j}`, address: `tcp://10.${(i >> 8) & 255}.${i & 255}.${j + 1}:${9000 + j}` })),
  }));
}

/** Registers every record, 20 at a time. */
async function fill(registry: Registry, records: ServiceRecord[]): Promise<void> {
  for (let i = 0; i < records.length; i += 20) {
    await Promise.all(records.slice(i, i + 20).map((r) => registry.register(r, { namespace: 'micro' })));
  }
}

async function timePerCall(n: number, fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return ((performance.now() - t0) * 1000) / n;
}

async function side(prefix: string, label: string, node: ChildServer<{ record: ServiceRecord }>, full: boolean, env: BenchEnv): Promise<Contestant> {
  const server: MicroServerProcess = await startMicroServer({ cpus: env.serverCpus });
  const selectors: Selector[] = [];
  const pool = new ConnectionPool();
  try {
    const registry = new RemoteRegistry(platformClient(server.address, [server.asAdmin]));
    const local = new MemoryRegistry();
    await registry.register(node.info.record, { namespace: 'micro' });
    await local.register(node.info.record, { namespace: 'micro' });
    const fakes = full ? fakeServices(node.info.record) : [];
    await fill(registry, fakes);
    await fill(local, fakes);
    const listed = await registry.listServices({ namespace: 'micro' });
    const nodes = listed.filter((s) => s.name.startsWith('scale-svc-')).reduce((n, s) => n + s.nodes.length, 0);
    if (nodes !== fakes.length * NODES_EACH) throw new Error(`the registry holds ${nodes} fake nodes, not ${fakes.length * NODES_EACH}`);

    const selector = new Selector({ registry });
    selectors.push(selector);
    // the caller's cache holds every service too (a gateway or a busy service would)
    for (let i = 0; i < fakes.length; i += 50) await Promise.all(fakes.slice(i, i + 50).map((s) => selector.select(s.name, { namespace: 'micro' })));
    // no middleware: the greeter runs with auth off, as in the remote benchmark
    const client = createClient(greeter, new Client({ namespace: 'micro', selector, pool, preferLocal: false, middleware: [] }));
    const base = callContestant(
      prefix,
      label,
      (request) => client.Hello(request as { name: string }),
      async () => {
        pool.close();
        for (const s of selectors) await s.close();
        await local.close();
        await server.stop();
      },
      LATENCY_CALLS,
    );
    return {
      warmUp: base.warmUp,
      async round() {
        const calls = await base.round();
        const remoteLookup = await timePerCall(REMOTE_LOOKUPS, () => registry.getService('greeter', { namespace: 'micro' }));
        const memoryLookup = await timePerCall(MEMORY_LOOKUPS, () => local.getService('greeter', { namespace: 'micro' }));
        return {
          [`${prefix}.throughput`]: calls[`${prefix}.throughput`] as number,
          [`${prefix}.p50`]: calls[`${prefix}.p50`] as number,
          [`${prefix}.lookup`]: remoteLookup,
          [`${prefix}.lookup-memory`]: memoryLookup,
        };
      },
      close: base.close,
    };
  } catch (err) {
    pool.close();
    for (const s of selectors) await s.close();
    await server.stop();
    throw err;
  }
}

export const scaleRegistry: Benchmark = {
  name: 'scale-registry',
  title: `Calls with ${SERVICES.toLocaleString('en-US')} services (${(SERVICES * NODES_EACH).toLocaleString('en-US')} nodes) in the registry`,
  peerName: 'micro, greeter alone in the registry',
  figures: [
    { id: 'scale-registry.throughput', label: `remote calls/s, 100 in flight, ${SERVICES} services in the registry`, unit: 'calls/s', better: 'higher', target: 0.9 },
    { id: 'scale-registry.p50', label: `remote sequential round trip p50, ${SERVICES} services in the registry`, unit: 'µs', better: 'lower', target: 1.1 },
    { id: 'scale-registry.lookup', label: `registry lookup of a service among ${SERVICES + 1}, through the registry service (a selector cache miss)`, unit: 'µs', better: 'lower' },
    { id: 'scale-registry.lookup-memory', label: `registry lookup of a service among ${SERVICES + 1}, MemoryRegistry in process`, unit: 'µs', better: 'lower' },
  ],
  usesChildren: true,
  async setup(env) {
    const node = await startChild<{ record: ServiceRecord }>(script('micro-greeter-node'), { cpus: env.serverCpus });
    let full: Contestant | undefined;
    try {
      full = await side('scale-registry', 'micro, full registry', node, true, env);
      const empty = await side('scale-registry', 'micro, greeter alone', node, false, env);
      // the greeter process goes with whichever side closes last
      let open = 2;
      const closer = (c: Contestant): Contestant => ({
        ...c,
        close: async () => {
          await c.close();
          if (--open === 0) await node.stop();
        },
      });
      return { micro: closer(full), peer: closer(empty) };
    } catch (err) {
      await full?.close();
      await node.stop();
      throw err;
    }
  },
};
