import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, type Client, type RuntimeProgress, type runtime, type TypedClient } from '@micro/sdk';
import { MicroServer } from '../../server.js';
import { serverClients, writeSource, type ContractHarness } from '../contract.js';
import { startFakeKubernetes, type FakeKubernetes } from './fake/index.js';

/**
 * What the Kubernetes runtime's tests share: a fake cluster whose kubelet runs the runner
 * image's containers as local processes (`node <dist>/runtime/kubernetes/runner.js …` with
 * the pod's environment, an emptyDir folder per pod for /work and /tmp), and a real micro
 * server with MICRO_RUNTIME=kubernetes on it, its gateway and RPC on free ports of 127.0.0.1
 * (where the "pods" reach them).
 */

export const RUNNER_IMAGE = 'micro/runner:test';
const RUNNER = join(dirname(fileURLToPath(import.meta.url)), 'runner.js');

/** A free port of 127.0.0.1 (the server binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface Cluster extends ContractHarness {
  root: string;
  fake: FakeKubernetes;
  server: MicroServer;
  /** the runtime as the CLI reaches it, as admin of micro */
  rt: TypedClient<typeof runtime>;
  /** an RPC client of micro server acting as its admin */
  admin: Client;
  /** a bearer token of the admin, for the gateway */
  token: string;
  gateway: string;
}

export interface ClusterOptions {
  /** ms of one second of the fake's objects (probes, grace periods, deadlines); default 100 */
  secondMs?: number;
  /** the runtime's timings (short by default) */
  timing?: Record<string, unknown>;
  /** images the fake kubelet cannot pull (an error for them) */
  badImages?: string[];
}

/** A plain JavaScript service (no tsc): the contract suite's */
export { contractService as serviceFiles } from '../contract.js';

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const root = mkdtempSync(join(tmpdir(), 'micro-k8s-rt-'));
  const pods = join(root, 'pods');
  const bad = new Set(options.badImages ?? []);
  const fake = await startFakeKubernetes({
    secondMs: options.secondMs ?? 100,
    onError: () => undefined,
    kubelet: (container, pod, env) => {
      if (bad.has(container.image)) throw new Error(`pull access denied for ${container.image}, repository does not exist`);
      const cmd = [...(container.command ?? []), ...(container.args ?? [])];
      if (cmd[0] !== 'node' || cmd[1] !== '/micro/runner.js') throw new Error(`the fake kubelet runs the runner's commands only, not ${JSON.stringify(cmd)}`);
      // the pod's emptyDirs: one folder per pod, shared by its container and its probes
      const uid = String((pod as { metadata: { uid: string } }).metadata.uid);
      const work = join(pods, uid, 'work');
      const tmp = join(pods, uid, 'tmp');
      mkdirSync(work, { recursive: true });
      mkdirSync(tmp, { recursive: true });
      return {
        command: process.execPath,
        args: [RUNNER, ...cmd.slice(2)],
        env: { ...env, PATH: process.env.PATH ?? '', HOME: work, TMPDIR: tmp, MICRO_RUNNER_WORK: work, MICRO_RUNNER_DRAIN: '300', MICRO_LOG_LEVEL: env.MICRO_LOG_LEVEL ?? 'info' },
        cwd: work,
      };
    },
  });
  const [rpcPort, gatewayPort] = [await freePort(), await freePort()];
  process.env.MICRO_RUNTIME = 'kubernetes';
  process.env.MICRO_KUBECONFIG = fake.kubeconfig;
  process.env.MICRO_KUBERNETES_SERVER = `127.0.0.1:${rpcPort}`;
  process.env.MICRO_KUBERNETES_GATEWAY = `127.0.0.1:${gatewayPort}`;
  process.env.MICRO_RUNNER_IMAGE = RUNNER_IMAGE;
  const home = join(root, 'home');
  const server = new MicroServer({
    home,
    address: `tcp://127.0.0.1:${rpcPort}`,
    gateway: `tcp://127.0.0.1:${gatewayPort}`,
    gatewayRate: false,
    logger: createLogger({ level: 'silent' }),
    kubernetes: {
      timing: { buildTimeout: 120_000, rolloutTimeout: 30_000, probe: { periodSeconds: 5, timeoutSeconds: 30, failureThreshold: 3 }, terminationGraceSeconds: 50, progressDeadlineSeconds: 600, ...options.timing },
      resources: { service: { memory: '256Mi', cpu: '250m' }, build: { memory: '512Mi', cpu: '500m' } },
      clientOptions: { attempts: 4, backoff: { initial: 50, max: 400 }, timeout: 3_000 },
    },
  });
  try {
    await server.start();
  } catch (err) {
    await fake.close();
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const { rt, admin, token, call } = await serverClients(server);
  return {
    root,
    fake,
    server,
    rt,
    admin,
    token,
    gateway: server.gatewayUrl as string,
    call,
    source: (name, files) => writeSource(join(root, 'src', name), files),
    async close() {
      await server.stop().catch(() => undefined);
      await fake.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Every message of a progress stream (Create, Update), and the error that ended it if any. */
export async function progressOf(stream: AsyncIterable<RuntimeProgress>): Promise<{ steps: RuntimeProgress[]; error?: Error }> {
  const steps: RuntimeProgress[] = [];
  try {
    for await (const p of stream) steps.push(p);
    return { steps };
  } catch (err) {
    return { steps, error: err as Error };
  }
}
