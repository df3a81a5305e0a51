/**
 * What the sandbox of tenant services costs: the same service (`micro new demo`) run by
 * the same server in a tenant namespace (sandboxed: bwrap, its own uid, cgroups, unix
 * sockets) against namespace `micro` (not sandboxed: a plain child process on TCP).
 *
 * - `sandbox.run`: `micro run` (copy, compile, start) to the first successful call.
 * - `sandbox.p50` / `sandbox.throughput`: calls from this process into the service (the
 *   tenant's over its unix socket, micro's over TCP), one after another and 100 at once.
 *
 * Target: within 10 % of the unsandboxed figures. Needs root and bubblewrap; without
 * them the server refuses the tenant and this benchmark reports that.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, RemoteRegistry, platformClient } from '@micro/sdk';
import { closedLoopThroughput, percentile, sequentialLatencies, type Benchmark, type Contestant } from './harness.js';
import { startMicroServer, until } from './procs.js';

const cli = fileURLToPath(new URL('../../packages/cli/bin/micro.js', import.meta.url));
const LATENCY_CALLS = 3_000;
const INFLIGHT = 100;
const THROUGHPUT_MS = 2_000;

function side(namespace: string, work: string): Contestant {
  async function round(): Promise<Record<string, number>> {
    const server = await startMicroServer();
    try {
      const t0 = performance.now();
      const env = { ...process.env, MICRO_HOME: server.home, MICRO_LOG_LEVEL: 'silent' };
      const run = spawnSync(process.execPath, [cli, 'run', join(work, 'demo'), '--namespace', namespace], { env, encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`micro run --namespace ${namespace} failed:\n${run.stdout}\n${run.stderr}`);
      const registry = new RemoteRegistry(platformClient(server.address, [server.asAdmin]));
      const client = new Client({ registry, namespace, preferLocal: false, middleware: [server.asAdmin] });
      const call = () => client.call('demo', 'Call', { name: 'bench' });
      await until(`demo of ${namespace} answers`, call);
      const runMs = performance.now() - t0;
      for (let i = 0; i < 500; i++) await call();
      const throughput = await closedLoopThroughput(call, INFLIGHT, THROUGHPUT_MS);
      const rtt = await sequentialLatencies(call, LATENCY_CALLS);
      return { 'sandbox.run': runMs, 'sandbox.p50': percentile(rtt, 50), 'sandbox.throughput': throughput };
    } finally {
      await server.stop();
    }
  }
  return { warmUp: async () => void (await round()), round, close: async () => undefined };
}

export const sandbox: Benchmark = {
  name: 'sandbox',
  title: 'Sandboxed tenant service vs the same service unsandboxed (namespace micro)',
  peerName: 'unsandboxed (namespace micro)',
  rounds: 3,
  figures: [
    { id: 'sandbox.run', label: 'micro run (copy, compile, start) to first call', unit: 'ms', better: 'lower', target: 1.1 },
    { id: 'sandbox.p50', label: 'call into the service, p50 of sequential calls', unit: 'µs', better: 'lower', target: 1.1 },
    { id: 'sandbox.throughput', label: 'calls into the service, 100 in flight', unit: 'calls/s', better: 'higher', target: 0.9 },
  ],
  async setup() {
    const work = mkdtempSync(join(tmpdir(), 'micro-bench-sandbox-'));
    const scaffold = spawnSync(process.execPath, [cli, 'new', 'demo'], { cwd: work, env: { ...process.env, MICRO_HOME: work }, encoding: 'utf8' });
    if (scaffold.status !== 0) throw new Error(`micro new failed: ${scaffold.stderr}`);
    const micro = side('bench', work);
    const peer = side('micro', work);
    const close = peer.close;
    peer.close = async () => {
      await close();
      rmSync(work, { recursive: true, force: true });
    };
    return { micro, peer };
  },
};
