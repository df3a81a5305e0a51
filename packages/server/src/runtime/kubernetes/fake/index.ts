import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer } from './apiserver.js';
import { Clock } from './clock.js';
import { type Context, R, Recorder } from './controllers/context.js';
import { DeploymentController } from './controllers/deployment.js';
import { GarbageCollector } from './controllers/gc.js';
import { JobController } from './controllers/job.js';
import { NamespaceController } from './controllers/namespace.js';
import { QuotaController } from './controllers/quota.js';
import { ReplicaSetController } from './controllers/replicaset.js';
import { type FaultRule, HttpApi } from './http.js';
import { Kubelet, type KubeletFunction } from './kubelet/kubelet.js';
import { resourceOf } from './resources.js';
import { Store } from './store.js';
import type { KObj } from './types.js';

export type { KubeletFunction, KubeletRun } from './kubelet/kubelet.js';
export type { FaultRule, RequestRecord } from './http.js';


export interface FakeKubernetesOptions {
  /**
   * how the fake kubelet runs a container (or an exec probe's command) as a local process;
   * undefined for a container: its pod is Running and Ready with no process. Throwing is an
   * image that cannot be pulled (ErrImagePull, then ImagePullBackOff, with the error's message).
   * Default: no container has a process.
   */
  kubelet?: KubeletFunction;
  /** watch events kept; a watch from an older resourceVersion gets 410 Gone (default 1000) */
  history?: number;
  /** how many milliseconds a second of an object's spec lasts: probe periods, grace periods, deadlines, back-offs (default 1000) */
  secondMs?: number;
  /** bytes of output kept per container (default 1 MiB) */
  logBytes?: number;
  /** called with what goes wrong inside a controller (default: written to stderr) */
  onError?: (where: string, err: unknown) => void;
}

export interface FakeKubernetes {
  /** http://127.0.0.1:<port> */
  url: string;
  /** the bearer token it requires (401 without) */
  token: string;
  /** path of a kubeconfig file for @kubernetes/client-node (KubeConfig.loadFromFile) */
  kubeconfig: string;
  /** the stored objects, e.g. objects('apps/v1', 'Deployment', 'micro-acme') */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read whatever fields they assert on
  objects(apiVersion: string, kind: string, namespace?: string): any[];
  /**
   * fault injection: requests matching answer `status` (or hang `delayMs` first, or the server
   * refuses connections when `down`) `times` times (default forever); returns a function
   * removing the rule. `down` without `times` closes the port until the rule is removed; with
   * `times`, that many connections are reset as they arrive.
   */
  fault(rule: FaultRule): () => void;
  /** the pod is evicted (its process killed, phase Failed, reason Evicted, the message), as the kubelet does under memory pressure */
  evict(namespace: string, pod: string, message?: string): void;
  /** forgets the watch history: watches from older resourceVersions get 410 */
  compact(): void;
  /** every request: method, path (with query), status */
  requests: { method: string; path: string; status: number }[];
  /** stops every process it started */
  close(): Promise<void>;
}

/** the namespaces every cluster starts with */
const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
export const NODE_NAME = 'fake-node';

function kubeconfigText(url: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: fake',
    '  cluster:',
    `    server: ${url}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: fake',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: fake',
    '  context:',
    '    cluster: fake',
    '    user: fake',
    '    namespace: default',
    'current-context: fake',
    '',
  ].join('\n');
}

function seed(api: ApiServer): void {
  for (const name of SYSTEM_NAMESPACES) api.create(R.Namespace, undefined, { metadata: { name } });
  const node = resourceOf('v1', 'Node');
  if (!node) return;
  const created = api.create(node, undefined, { metadata: { name: NODE_NAME, labels: { 'kubernetes.io/hostname': NODE_NAME, 'kubernetes.io/os': 'linux' } } });
  api.writeStatus(node, created, {
    conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }],
    addresses: [
      { type: 'InternalIP', address: '127.0.0.1' },
      { type: 'Hostname', address: NODE_NAME },
    ],
    allocatable: { cpu: '8', memory: '32Gi', pods: '110' },
    capacity: { cpu: '8', memory: '32Gi', pods: '110' },
  });
}

class Listener {
  readonly sockets = new Set<Socket>();
  private resets = 0;
  private closed = false;

  constructor(
    readonly server: Server,
    readonly port: number,
  ) {
    server.on('connection', (s: Socket) => {
      if (this.resets > 0) {
        this.resets -= 1;
        s.destroy();
        return;
      }
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** the next `n` connections are reset */
  reset(n: number): void {
    this.resets = n;
  }

  /** stops listening and drops every connection: clients get connection refused */
  down(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }

  up(): Promise<void> {
    if (this.closed || this.server.listening) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return new Promise((resolve) => {
      for (const s of this.sockets) s.destroy();
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }
}

function checkOptions(o: FakeKubernetesOptions): void {
  const positive = (name: string, v: number | undefined, min: number) => {
    if (v !== undefined && !(Number.isFinite(v) && v >= min)) throw new TypeError(`startFakeKubernetes: ${name} must be a number of at least ${min}, not ${String(v)}`);
  };
  positive('secondMs', o.secondMs, 1);
  positive('history', o.history, 1);
  positive('logBytes', o.logBytes, 1024);
  if (o.kubelet !== undefined && typeof o.kubelet !== 'function') throw new TypeError('startFakeKubernetes: kubelet must be a function');
}

/** starts the test API server on 127.0.0.1 and a free port */
export async function startFakeKubernetes(options: FakeKubernetesOptions = {}): Promise<FakeKubernetes> {
  checkOptions(options);
  const clock = new Clock(options.secondMs ?? 1000);
  const onError = options.onError ?? ((where: string, err: unknown) => process.stderr.write(`fake kubernetes: ${where}: ${(err as Error)?.stack ?? String(err)}\n`));
  const store = new Store(Math.max(1, options.history ?? 1000), onError);
  const api = new ApiServer(store, clock);
  const ctx: Context = { api, store, clock, events: new Recorder(store, clock), onError };
  seed(api);
  const controllers = [new GarbageCollector(ctx), new NamespaceController(ctx), new DeploymentController(ctx), new ReplicaSetController(ctx), new JobController(ctx), new QuotaController(ctx)];
  const kubelet = new Kubelet(ctx, { run: options.kubelet, logBytes: options.logBytes ?? 1024 * 1024, nodeName: NODE_NAME });
  const token = randomBytes(24).toString('hex');
  let address = '';
  const http = new HttpApi(api, clock, token, kubelet, () => address);
  const server = createServer(http.handle);
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  address = `127.0.0.1:${port}`;
  const listener = new Listener(server, port);
  const url = `http://${address}`;
  const dir = mkdtempSync(join(tmpdir(), 'micro-fake-k8s-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigText(url, token), { mode: 0o600 });
  let downs = 0;

  return {
    url,
    token,
    kubeconfig,
    requests: http.requests,
    objects(apiVersion, kind, namespace) {
      const r = resourceOf(apiVersion, kind);
      if (!r) throw new Error(`the test API server has no ${apiVersion} ${kind}`);
      return store.list(r, namespace) as KObj[];
    },
    fault(rule) {
      if (rule.down && rule.times !== undefined) {
        listener.reset(rule.times);
        return () => listener.reset(0);
      }
      if (rule.down) {
        downs += 1;
        http.closeWatches();
        listener.down();
        let removed = false;
        return () => {
          if (removed) return;
          removed = true;
          downs -= 1;
          if (downs === 0) listener.up().catch((err: unknown) => onError('listen again', err));
        };
      }
      const copy = { ...rule };
      http.faults.push(copy);
      return () => {
        const i = http.faults.indexOf(copy);
        if (i >= 0) http.faults.splice(i, 1);
      };
    },
    evict(namespace, pod, message) {
      kubelet.evict(namespace, pod, message);
    },
    compact() {
      store.compact();
    },
    async close() {
      for (const c of controllers) c.close();
      await kubelet.close();
      clock.close();
      http.closeWatches();
      await listener.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
