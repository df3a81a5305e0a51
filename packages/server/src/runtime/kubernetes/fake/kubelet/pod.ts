import type { Condition, ContainerStatus, Pod, PodStatus } from '../types.js';
import { timestamp } from '../types.js';
import { type ContainerHost, ContainerRuntime } from './container.js';

/**
 * One pod on the fake node: its init containers one after the other, then its containers;
 * its phase and conditions as the kubelet computes them; its graceful termination and its
 * eviction.
 */

export interface PodHost extends Omit<ContainerHost, 'pod' | 'stopping' | 'finished' | 'changed' | 'event'> {
  /** the pod as stored now (or as last seen when it is gone) */
  current(uid: string): Pod | undefined;
  changed(uid: string): void;
  event(pod: Pod, type: 'Normal' | 'Warning', reason: string, message: string): void;
}

export class PodRuntime {
  readonly init: ContainerRuntime[];
  readonly main: ContainerRuntime[];
  readonly uid: string;
  private last: Pod;
  private terminating = false;
  private evicting = false;
  private evicted?: string;
  private readonly startTime: string;
  private readonly since = new Map<string, { status: string; at: string }>();

  constructor(
    pod: Pod,
    private readonly host: PodHost,
  ) {
    this.uid = pod.metadata.uid as string;
    this.last = pod;
    this.startTime = timestamp(host.clock.now());
    const ch: ContainerHost = {
      ...host,
      pod: () => this.pod(),
      stopping: () => this.terminating || this.evicting,
      changed: () => host.changed(this.uid),
      event: (type, reason, message) => host.event(this.pod(), type, reason, message),
      finished: (c) => this.finished(c),
    };
    this.init = (pod.spec.initContainers ?? []).map((c) => new ContainerRuntime(c, true, ch));
    this.main = pod.spec.containers.map((c) => new ContainerRuntime(c, false, ch));
  }

  pod(): Pod {
    const cur = this.host.current(this.uid);
    if (cur) this.last = cur;
    return this.last;
  }

  get name(): string {
    return this.last.metadata.name;
  }

  container(name: string): ContainerRuntime | undefined {
    return [...this.init, ...this.main].find((c) => c.name === name);
  }

  start(): void {
    const first = this.init[0];
    if (first) first.start();
    else for (const c of this.main) c.start();
  }

  private finished(c: ContainerRuntime): void {
    if (!c.init || c.exitCode !== 0) return;
    const next = this.init[this.init.indexOf(c) + 1];
    if (next) next.start();
    else for (const m of this.main) m.start();
  }

  /** stops every container within `graceMs` (preStop, SIGTERM, SIGKILL) */
  async terminate(graceMs: number): Promise<void> {
    this.terminating = true;
    await Promise.all([...this.init, ...this.main].map((c) => c.stop(graceMs)));
  }

  get isTerminating(): boolean {
    return this.terminating;
  }

  /** killed at once, then phase Failed, reason Evicted: the kubelet under memory pressure */
  async evict(message: string): Promise<void> {
    this.evicting = true;
    const all = [...this.init, ...this.main];
    for (const c of all) c.kill(137);
    await Promise.all(all.map((c) => c.whenExited()));
    this.evicted = message;
    this.host.changed(this.uid);
  }

  killAll(): Promise<void> {
    this.terminating = true;
    const all = [...this.init, ...this.main];
    for (const c of all) c.kill();
    return Promise.all(all.map((c) => c.whenExited())).then(() => undefined);
  }

  /** the kubelet's getPhase */
  private phase(): NonNullable<PodStatus['phase']> {
    if (this.evicted !== undefined) return 'Failed';
    const policy = this.last.spec.restartPolicy ?? 'Always';
    const failedInit = this.init.find((c) => c.done && c.exitCode !== 0);
    if (failedInit && policy === 'Never') return 'Failed';
    if (this.init.some((c) => !(c.done && c.exitCode === 0))) return 'Pending';
    let waiting = 0;
    let running = 0;
    let stopped = 0;
    let succeeded = 0;
    for (const c of this.main) {
      if (c.running) running += 1;
      else if (c.done || c.lastState.terminated) {
        stopped += 1;
        if (c.done && c.exitCode === 0) succeeded += 1;
      } else waiting += 1;
    }
    if (waiting > 0) return 'Pending';
    if (running > 0) return 'Running';
    if (policy === 'Always') return 'Running';
    if (stopped === succeeded) return 'Succeeded';
    if (policy === 'OnFailure' && this.main.some((c) => !c.done)) return 'Running';
    return 'Failed';
  }

  private condition(type: string, ok: boolean, reason?: string, message?: string): Condition {
    const status = ok ? 'True' : 'False';
    const prev = this.since.get(type);
    const at = prev && prev.status === status ? prev.at : timestamp(this.host.clock.now());
    this.since.set(type, { status, at });
    return { type, status, lastProbeTime: null, lastTransitionTime: at, ...(reason ? { reason } : {}), ...(message ? { message } : {}) };
  }

  private conditions(phase: string): Condition[] {
    const terminal = phase === 'Succeeded' || phase === 'Failed';
    const initPending = this.init.filter((c) => !(c.done && c.exitCode === 0)).map((c) => c.name);
    const unready = this.main.filter((c) => !c.ready).map((c) => c.name);
    const ready = unready.length === 0 && !terminal;
    const readyWhy: [string?, string?] = ready ? [] : terminal ? ['PodCompleted'] : ['ContainersNotReady', `containers with unready status: [${unready.join(' ')}]`];
    const out = [
      this.condition('PodReadyToStartContainers', this.evicted === undefined && !terminal),
      this.condition('Initialized', initPending.length === 0 || terminal, ...((initPending.length && !terminal ? ['ContainersNotInitialized', `containers with incomplete status: [${initPending.join(' ')}]`] : terminal && this.init.length ? ['PodCompleted'] : []) as [string?, string?])),
      this.condition('Ready', ready, ...readyWhy),
      this.condition('ContainersReady', ready, ...readyWhy),
      this.condition('PodScheduled', true),
    ];
    if (this.evicted !== undefined) out.unshift(this.condition('DisruptionTarget', true, 'TerminationByKubelet', this.evicted));
    return out;
  }

  status(prev: PodStatus | undefined): PodStatus {
    const phase = this.phase();
    const status: PodStatus = {
      phase,
      conditions: this.conditions(phase) as PodStatus['conditions'],
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP: '127.0.0.1',
      podIPs: [{ ip: '127.0.0.1' }],
      startTime: this.startTime,
      containerStatuses: this.main.map((c) => c.status()) as ContainerStatus[],
      ...(prev?.qosClass ? { qosClass: prev.qosClass } : {}),
    };
    if (this.init.length) status.initContainerStatuses = this.init.map((c) => c.status()) as ContainerStatus[];
    if (this.evicted !== undefined) {
      status.reason = 'Evicted';
      status.message = this.evicted;
    }
    return status;
  }
}
