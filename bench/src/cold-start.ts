/**
 * Cold starts, as a user meets them.
 *
 * - `cold.server`: from `micro server` being started in a new MICRO_HOME (the first start:
 *   keys and the admin account are made) to its first answer (an auth token). Peer: a
 *   Moleculer broker process with the TCP transporter, from spawn to its first answer.
 * - `cold.run`: from `micro run ./demo` (a service made by `micro new`; the runtime copies
 *   it, compiles its TypeScript and starts it) to the first successful call of it. Peer:
 *   spawning a Moleculer service node (plain JavaScript, nothing to compile) to the first
 *   successful call of it from a broker.
 *
 * No targets: the figures say what a user waits. Micro's `run` includes a TypeScript
 * compile that Moleculer's plain JavaScript node does not have.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, RemoteRegistry, platformClient } from '@micro/sdk';
import { ServiceBroker } from 'moleculer';
import { startChild, type Benchmark, type Contestant } from './harness.js';
import { startMicroServer, until } from './procs.js';

const cli = fileURLToPath(new URL('../../packages/cli/bin/micro.js', import.meta.url));
const moleculerGreeter = fileURLToPath(new URL('./servers/moleculer-greeter.js', import.meta.url));

function micro(): Contestant {
  const work = mkdtempSync(join(tmpdir(), 'micro-bench-cold-'));
  const scaffold = spawnSync(process.execPath, [cli, 'new', 'demo'], { cwd: work, env: { ...process.env, MICRO_HOME: work }, encoding: 'utf8' });
  if (scaffold.status !== 0) throw new Error(`micro new failed: ${scaffold.stderr}`);

  async function round(): Promise<Record<string, number>> {
    const t0 = performance.now();
    // micro server in a new home, until it hands the admin a token
    const server = await startMicroServer();
    try {
      const serverMs = performance.now() - t0;

      const t1 = performance.now();
      const env = { ...process.env, MICRO_HOME: server.home, MICRO_LOG_LEVEL: 'silent' };
      const run = spawnSync(process.execPath, [cli, 'run', join(work, 'demo')], { env, encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`micro run failed:\n${run.stdout}\n${run.stderr}`);
      const registry = new RemoteRegistry(platformClient(server.address, [server.asAdmin]));
      // services check their callers: call as the admin
      const client = new Client({ registry, namespace: 'micro', preferLocal: false, middleware: [server.asAdmin] });
      await until('demo answers', () => client.call('demo', 'Call', { name: 'bench' }));
      const runMs = performance.now() - t1;
      return { 'cold.server': serverMs, 'cold.run': runMs };
    } finally {
      await server.stop();
    }
  }

  return {
    // a first round loads the files into the page cache, as a user's second start would
    warmUp: async () => void (await round()),
    round,
    close: async () => rmSync(work, { recursive: true, force: true }),
  };
}

function moleculer(): Contestant {
  async function round(): Promise<Record<string, number>> {
    // the broker a service node joins: Moleculer's counterpart of micro server
    const t0 = performance.now();
    const hub = await startChild<{ nodeID: string; port: number }>(moleculerGreeter, { args: ['--no-services'] });
    const caller = new ServiceBroker({
      nodeID: `cold-caller-${process.pid}-${Date.now()}`,
      logger: false,
      transporter: { type: 'TCP', options: { udpDiscovery: false, port: 0, urls: `127.0.0.1:${hub.info.port}/${hub.info.nodeID}` } },
    });
    await caller.start();
    await until('moleculer broker answers', () => caller.call('$node.health', {}, { nodeID: hub.info.nodeID }));
    const serverMs = performance.now() - t0;

    const t1 = performance.now();
    const node = await startChild<{ nodeID: string; port: number }>(moleculerGreeter);
    const link = new ServiceBroker({
      nodeID: `cold-link-${process.pid}-${Date.now()}`,
      logger: false,
      transporter: { type: 'TCP', options: { udpDiscovery: false, port: 0, urls: `127.0.0.1:${node.info.port}/${node.info.nodeID}` } },
    });
    try {
      await link.start();
      await link.waitForServices(['greeter'], 30_000);
      await until('moleculer greeter answers', () => link.call('greeter.hello', { name: 'bench' }));
      const runMs = performance.now() - t1;
      return { 'cold.server': serverMs, 'cold.run': runMs };
    } finally {
      await link.stop().catch(() => undefined);
      await caller.stop().catch(() => undefined);
      await node.stop();
      await hub.stop();
    }
  }
  return { warmUp: async () => void (await round()), round, close: async () => undefined };
}

export const coldStart: Benchmark = {
  name: 'cold',
  title: 'Cold start: micro server to ready, micro run to first call',
  figures: [
    { id: 'cold.server', label: 'micro server (new home) to first answer, vs a Moleculer broker process', unit: 'ms', better: 'lower' },
    { id: 'cold.run', label: 'micro run (copy, compile, start) to first call, vs a Moleculer service node', unit: 'ms', better: 'lower' },
  ],
  async setup() {
    return { micro: micro(), peer: moleculer() };
  },
};
