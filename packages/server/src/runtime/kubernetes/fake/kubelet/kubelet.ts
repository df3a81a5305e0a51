import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Queue } from '../clock.js';
import { type Context, controllerQueue, R } from '../controllers/context.js';
import type { LogServer } from '../http.js';
import { badRequest, notFound } from '../status.js';
import type { Change } from '../store.js';
import type { Pod } from '../types.js';
import { podTerminal, timestamp } from '../types.js';
import type { KubeletFunction } from './container.js';
import { PodRuntime } from './pod.js';
import { killGroup, type Processes, track } from './process.js';

export type { KubeletFunction, KubeletRun } from './container.js';

/**
 * The scheduler and the kubelet of the fake's one node: every pod is bound to the node as
 * it is created, its containers run through the kubelet function, its status is written
 * back as they change, a pod being deleted is stopped within its grace period and then
 * removed, and `pods/{name}/log` reads what its containers wrote.
 */
export class Kubelet implements LogServer {
  private readonly pods = new Map<string, PodRuntime>();
  /** uid → namespace and name of every pod */
  private readonly where = new Map<string, [string, string]>();
  private readonly procs: Processes = new Set();
  private readonly sync: Queue;
  private readonly stop: () => void;
  private readonly untrack: () => void;
  private closed = false;

  constructor(
    private readonly ctx: Context,
    private readonly opts: { run?: KubeletFunction; logBytes: number; nodeName: string },
  ) {
    this.sync = controllerQueue(ctx, 'kubelet', (_ns, uid) => this.writeStatus(uid));
    this.stop = ctx.store.subscribe((c) => this.onChange(c));
    this.untrack = track(this.procs);
  }

  private onChange(c: Change): void {
    if (c.resource !== R.Pod || this.closed) return;
    const pod = c.object as Pod;
    const uid = pod.metadata.uid as string;
    if (c.type === 'DELETED') {
      this.where.delete(uid);
      const rt = this.pods.get(uid);
      this.pods.delete(uid);
      void rt?.killAll();
      return;
    }
    this.where.set(uid, [pod.metadata.namespace as string, pod.metadata.name]);
    if (!pod.spec.nodeName) {
      if (!pod.metadata.deletionTimestamp) this.ctx.clock.after(0, () => this.bind(pod));
      return;
    }
    if (pod.spec.nodeName !== this.opts.nodeName) return;
    if (pod.metadata.deletionTimestamp) this.ctx.clock.after(0, () => void this.terminate(uid));
    else if (!this.pods.has(uid) && !podTerminal(pod)) this.ctx.clock.after(0, () => this.run(uid));
  }

  /** the scheduler: one node, every pod fits */
  private bind(pod: Pod): void {
    const now = timestamp(this.ctx.clock.now());
    const bound = this.ctx.api.modify(R.Pod, pod, (x) => {
      if ((x as Pod).spec.nodeName) return;
      (x as Pod).spec.nodeName = this.opts.nodeName;
      const status = ((x as Pod).status ??= {});
      status.conditions = [{ type: 'PodScheduled', status: 'True', lastProbeTime: null as unknown as string, lastTransitionTime: now }];
    });
    if (bound) this.ctx.events.record(bound, 'Normal', 'Scheduled', `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${this.opts.nodeName}`, 'default-scheduler');
  }

  private current(uid: string): Pod | undefined {
    const at = this.where.get(uid);
    const p = at && (this.ctx.store.peek(R.Pod, at[0], at[1]) as Pod | undefined);
    return p && p.metadata.uid === uid ? p : undefined;
  }

  private run(uid: string): void {
    const pod = this.current(uid);
    if (!pod || this.pods.has(uid) || pod.metadata.deletionTimestamp || this.closed) return;
    const rt = new PodRuntime(pod, {
      clock: this.ctx.clock,
      store: this.ctx.store,
      procs: this.procs,
      ...(this.opts.run ? { run: this.opts.run } : {}),
      logBytes: this.opts.logBytes,
      current: (id) => this.current(id),
      changed: (id) => this.sync.add(id),
      event: (p, type, reason, message) => this.ctx.events.record(p, type, reason, message, 'kubelet'),
    });
    this.pods.set(uid, rt);
    rt.start();
    this.sync.add(uid);
  }

  private writeStatus(uid: string): void {
    const rt = this.pods.get(uid);
    const pod = this.current(uid);
    if (!rt || !pod) return;
    this.ctx.api.writeStatus(R.Pod, pod, rt.status(pod.status));
  }

  /** a pod being deleted: stopped within its grace period, then removed */
  private async terminate(uid: string): Promise<void> {
    const pod = this.current(uid);
    if (!pod?.metadata.deletionTimestamp) return;
    const rt = this.pods.get(uid);
    if (rt?.isTerminating) return;
    // the grace period as the API server recorded it (deletionTimestamp has only seconds)
    if (rt) await rt.terminate(this.ctx.clock.seconds(pod.metadata.deletionGracePeriodSeconds ?? 30));
    const now = this.current(uid);
    if (!now || this.closed) return;
    this.ctx.api.modify(R.Pod, now, (x) => {
      x.metadata.deletionGracePeriodSeconds = 0;
      if (rt) x.status = rt.status((x as Pod).status);
    });
  }

  evict(namespace: string, name: string, message = 'The node was low on resource: memory. '): void {
    const pod = this.ctx.store.get(R.Pod, namespace, name) as Pod | undefined;
    if (!pod) throw notFound(R.Pod, name);
    const rt = this.pods.get(pod.metadata.uid as string);
    if (!rt) throw new Error(`pod ${namespace}/${name} is not running on the fake node`);
    this.ctx.events.record(pod, 'Warning', 'Evicted', message, 'kubelet');
    void rt.evict(message);
  }

  /** `GET pods/{name}/log` */
  serve(pod: Pod, q: URLSearchParams, _req: IncomingMessage, res: ServerResponse): void {
    const name = this.containerName(pod, q.get('container'));
    const rt = this.pods.get(pod.metadata.uid as string);
    const c = rt?.container(name);
    const previous = q.get('previous') === 'true';
    if (previous) {
      if (!c?.previous) throw badRequest(`previous terminated container "${name}" in pod "${pod.metadata.name}" not found`);
    } else if (!c?.everStarted) {
      const reason = c?.state.waiting?.reason ?? 'ContainerCreating';
      throw badRequest(`container "${name}" in pod "${pod.metadata.name}" is waiting to start: ${reason}`);
    }
    const buffer = previous ? c.previous : c.logs;
    if (!buffer) throw badRequest(`container "${name}" in pod "${pod.metadata.name}" has no logs`);
    const num = (k: string) => {
      const v = q.get(k);
      if (v === null || v === '') return undefined;
      if (!/^\d+$/.test(v)) throw badRequest(`${k}: Invalid value: ${JSON.stringify(v)}: must be a non-negative integer`);
      return Number(v);
    };
    const tailLines = num('tailLines');
    const limitBytes = num('limitBytes');
    const sinceSeconds = num('sinceSeconds');
    const sinceTime = q.get('sinceTime');
    const sinceMs = sinceSeconds !== undefined ? this.ctx.clock.now() - sinceSeconds * 1000 : sinceTime ? Date.parse(sinceTime) : undefined;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    buffer.serve(res, {
      follow: q.get('follow') === 'true' && !previous,
      timestamps: q.get('timestamps') === 'true',
      ...(tailLines !== undefined ? { tailLines } : {}),
      ...(limitBytes !== undefined ? { limitBytes } : {}),
      ...(sinceMs !== undefined && !Number.isNaN(sinceMs) ? { sinceMs } : {}),
    });
  }

  private containerName(pod: Pod, asked: string | null): string {
    const names = pod.spec.containers.map((c) => c.name);
    const init = (pod.spec.initContainers ?? []).map((c) => c.name);
    if (asked) {
      if (!names.includes(asked) && !init.includes(asked)) throw badRequest(`container ${asked} is not valid for pod ${pod.metadata.name}`);
      return asked;
    }
    if (names.length === 1) return names[0] as string;
    throw badRequest(`a container name must be specified for pod ${pod.metadata.name}, choose one of: [${names.join(' ')}]${init.length ? ` or one of the init containers: [${init.join(' ')}]` : ''}`);
  }

  /** kills every container and waits for their processes */
  async close(): Promise<void> {
    this.closed = true;
    this.stop();
    await Promise.all([...this.pods.values()].map((rt) => rt.killAll()));
    this.pods.clear();
    for (const p of this.procs) killGroup(p, 'SIGKILL');
    this.untrack();
  }
}
