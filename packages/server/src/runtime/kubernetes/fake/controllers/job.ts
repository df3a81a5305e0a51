import type { Queue } from '../clock.js';
import { StatusError } from '../status.js';
import type { Change } from '../store.js';
import { keyOf } from '../store.js';
import type { Condition, Job, KObj, Pod } from '../types.js';
import { podActive, podReady, timestamp } from '../types.js';
import { type Context, controllerQueue, ownerKey, R } from './context.js';

/**
 * The Job controller: pods of the template until `completions` succeed (`parallelism` at a
 * time), a failed pod replaced after a back-off (10 s doubling, at most 6 min) until
 * `backoffLimit` is passed (with OnFailure, container restarts count), `activeDeadlineSeconds`,
 * the conditions of Kubernetes 1.32 (SuccessCriteriaMet then Complete; FailureTarget then
 * Failed once its pods are gone), and `ttlSecondsAfterFinished`.
 */

const BACKOFF_BASE_S = 10;
const BACKOFF_MAX_S = 360;

interface Memory {
  /** pods already counted as succeeded or failed */
  counted: Set<string>;
  succeeded: number;
  failed: number;
  /** failures since the last success, and when the last one was seen */
  streak: number;
  lastFailureMs: number;
  startMs: number;
  /** when it finished, to the millisecond (its condition has only seconds) */
  finishedMs?: number;
}

export class JobController {
  private readonly queue: Queue;
  private readonly stop: () => void;
  private readonly memory = new Map<string, Memory>();

  constructor(private readonly ctx: Context) {
    this.queue = controllerQueue(ctx, 'job controller', (ns, name) => this.sync(ns, name));
    this.stop = ctx.store.subscribe((c) => this.onChange(c));
  }

  close(): void {
    this.stop();
  }

  private onChange(c: Change): void {
    if (c.resource === R.Job) {
      if (c.type === 'DELETED') this.memory.delete(c.object.metadata.uid as string);
      else this.queue.add(keyOf(c.object.metadata.namespace, c.object.metadata.name));
    } else if (c.resource === R.Pod) {
      const owner = ownerKey(c, 'Job');
      if (owner) this.queue.add(owner);
    }
  }

  private memoryOf(job: Job): Memory {
    let m = this.memory.get(job.metadata.uid as string);
    if (!m) {
      const s = job.status ?? {};
      m = { counted: new Set(), succeeded: s.succeeded ?? 0, failed: s.failed ?? 0, streak: 0, lastFailureMs: 0, startMs: s.startTime ? Date.parse(s.startTime) : this.ctx.clock.now() };
      this.memory.set(job.metadata.uid as string, m);
    }
    return m;
  }

  private sync(namespace: string, name: string): void {
    const job = this.ctx.store.get(R.Job, namespace, name) as Job | undefined;
    if (!job || job.metadata.deletionTimestamp) return;
    const finished = this.finishedAt(job);
    if (finished !== undefined) return this.expire(job, finished);
    const m = this.memoryOf(job);
    const pods = this.ctx.store.scan(R.Pod, namespace).filter((p) => p.metadata.ownerReferences?.some((r) => r.controller && r.uid === job.metadata.uid)) as Pod[];
    this.count(pods, m);
    const active = pods.filter(podActive);
    const target = (job.status?.conditions ?? []).find((c) => c.status === 'True' && (c.type === 'FailureTarget' || c.type === 'SuccessCriteriaMet'));
    const verdict = target ? { type: target.type, reason: target.reason ?? '', message: target.message ?? '' } : this.verdict(job, pods, m);
    if (verdict) return this.finish(job, active, pods, m, verdict);
    if (job.spec.suspend) {
      for (const p of active) this.deletePod(p);
      return this.writeStatus(job, pods, m, []);
    }
    this.createPods(job, active, m);
    const deadline = job.spec.activeDeadlineSeconds;
    if (deadline !== undefined && deadline !== null) this.queue.add(keyOf(namespace, name), Math.max(0, m.startMs + this.ctx.clock.seconds(deadline) - this.ctx.clock.now()) + 1);
    this.writeStatus(job, this.podsOf(job), m, []);
  }

  private podsOf(job: Job): Pod[] {
    return this.ctx.store.scan(R.Pod, job.metadata.namespace).filter((p) => p.metadata.ownerReferences?.some((r) => r.controller && r.uid === job.metadata.uid)) as Pod[];
  }

  /** counts each pod's success or failure once */
  private count(pods: Pod[], m: Memory): void {
    for (const p of pods) {
      const uid = p.metadata.uid as string;
      const phase = p.status?.phase;
      if (m.counted.has(uid) || (phase !== 'Succeeded' && phase !== 'Failed')) continue;
      m.counted.add(uid);
      if (phase === 'Succeeded') {
        m.succeeded += 1;
        m.streak = 0;
      } else {
        m.failed += 1;
        m.streak += 1;
        m.lastFailureMs = this.ctx.clock.now();
      }
    }
  }

  /** the reason the job ends now, if it does */
  private verdict(job: Job, pods: Pod[], m: Memory): { type: string; reason: string; message: string } | undefined {
    const completions = job.spec.completions ?? 1;
    if (m.succeeded >= completions) return { type: 'SuccessCriteriaMet', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' };
    const deadline = job.spec.activeDeadlineSeconds;
    if (deadline !== undefined && deadline !== null && this.ctx.clock.now() - m.startMs >= this.ctx.clock.seconds(deadline)) {
      return { type: 'FailureTarget', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' };
    }
    const limit = job.spec.backoffLimit ?? 6;
    if (job.spec.template.spec.restartPolicy === 'OnFailure') {
      const restarts = pods.filter((p) => p.status?.phase === 'Running' || p.status?.phase === 'Pending').reduce((s, p) => s + [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])].reduce((t, c) => t + (c.restartCount ?? 0), 0), 0);
      if (limit === 0 ? restarts > 0 : restarts >= limit) return { type: 'FailureTarget', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
    }
    if (m.failed > limit) return { type: 'FailureTarget', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
    return undefined;
  }

  /** the end: active pods are deleted, and the terminal condition is added once no pod of it is left running */
  private finish(job: Job, active: Pod[], pods: Pod[], m: Memory, v: { type: string; reason: string; message: string }): void {
    for (const p of active) this.deletePod(p);
    const now = timestamp(this.ctx.clock.now());
    const conditions: Condition[] = [{ type: v.type, status: 'True', reason: v.reason, message: v.message, lastProbeTime: now, lastTransitionTime: now }];
    const left = this.podsOf(job).filter((p) => !['Succeeded', 'Failed'].includes(p.status?.phase ?? ''));
    if (left.length === 0) {
      const terminal = v.type === 'SuccessCriteriaMet' ? 'Complete' : 'Failed';
      m.finishedMs = this.ctx.clock.now();
      conditions.push({ type: terminal, status: 'True', reason: v.reason, message: v.message, lastProbeTime: now, lastTransitionTime: now });
      if (terminal === 'Complete') this.ctx.events.record(job, 'Normal', 'Completed', 'Job completed', 'job-controller');
      else this.ctx.events.record(job, 'Warning', v.reason, v.message, 'job-controller');
    } else this.queue.add(keyOf(job.metadata.namespace, job.metadata.name), this.ctx.clock.seconds(1));
    this.writeStatus(job, pods, m, conditions);
  }

  private createPods(job: Job, active: Pod[], m: Memory): void {
    const completions = job.spec.completions ?? 1;
    const parallelism = job.spec.parallelism ?? 1;
    const want = Math.min(parallelism, completions - m.succeeded) - active.length;
    if (want <= 0) return;
    if (m.streak > 0 && job.spec.template.spec.restartPolicy === 'Never') {
      const waitMs = m.lastFailureMs + this.ctx.clock.seconds(Math.min(BACKOFF_BASE_S * 2 ** (m.streak - 1), BACKOFF_MAX_S)) - this.ctx.clock.now();
      if (waitMs > 0) return this.queue.add(keyOf(job.metadata.namespace, job.metadata.name), waitMs);
    }
    for (let i = 0; i < want; i++) {
      try {
        const pod = this.ctx.api.create(R.Pod, job.metadata.namespace, this.podFor(job));
        this.ctx.events.record(job, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`, 'job-controller');
      } catch (err) {
        if (!(err instanceof StatusError)) throw err;
        this.ctx.events.record(job, 'Warning', 'FailedCreate', `Error creating: ${err.message}`, 'job-controller');
        this.queue.add(keyOf(job.metadata.namespace, job.metadata.name), this.ctx.clock.seconds(Math.min(2 ** Math.min(m.streak + 1, 5), 30)));
        return;
      }
    }
  }

  private podFor(job: Job): KObj {
    const t = job.spec.template;
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: '',
        generateName: `${job.metadata.name}-`,
        namespace: job.metadata.namespace,
        ...(t.metadata?.labels ? { labels: { ...t.metadata.labels } } : {}),
        ...(t.metadata?.annotations ? { annotations: { ...t.metadata.annotations } } : {}),
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata.name, uid: job.metadata.uid as string, controller: true, blockOwnerDeletion: true }],
      },
      spec: structuredClone(t.spec),
    };
  }

  private deletePod(p: Pod): void {
    try {
      this.ctx.api.delete(R.Pod, p.metadata.namespace, p.metadata.name, { preconditions: { uid: p.metadata.uid as string } });
    } catch (err) {
      if (!(err instanceof StatusError && (err.code === 404 || err.code === 409))) throw err;
    }
  }

  private writeStatus(job: Job, pods: Pod[], m: Memory, conditions: Condition[]): void {
    const active = pods.filter(podActive);
    const old = (job.status?.conditions ?? []) as Condition[];
    const merged = [...old.filter((c) => !conditions.some((n) => n.type === c.type)), ...conditions.map((n) => old.find((c) => c.type === n.type && c.status === n.status) ?? n)];
    const complete = merged.some((c) => c.type === 'Complete' && c.status === 'True');
    const status = {
      ...(merged.length ? { conditions: merged } : {}),
      startTime: job.status?.startTime ?? timestamp(m.startMs),
      ...(complete ? { completionTime: job.status?.completionTime ?? timestamp(this.ctx.clock.now()) } : {}),
      active: active.length,
      ready: active.filter(podReady).length,
      terminating: pods.filter((p) => p.metadata.deletionTimestamp).length,
      succeeded: m.succeeded,
      failed: m.failed,
      uncountedTerminatedPods: {},
    };
    if (status.active === 0) delete (status as { active?: number }).active;
    this.ctx.api.writeStatus(R.Job, job, status);
  }

  /** when a finished job finished (Complete or Failed), if it did */
  private finishedAt(job: Job): number | undefined {
    const c = job.status?.conditions?.find((x) => (x.type === 'Complete' || x.type === 'Failed') && x.status === 'True');
    return c ? Date.parse(c.lastTransitionTime ?? '') || this.ctx.clock.now() : undefined;
  }

  /** ttlSecondsAfterFinished: the TTL controller deletes the job, and its pods with it */
  private expire(job: Job, finishedMs: number): void {
    const ttl = job.spec.ttlSecondsAfterFinished;
    if (ttl === undefined || ttl === null) return;
    const from = this.memory.get(job.metadata.uid as string)?.finishedMs ?? finishedMs;
    const left = from + this.ctx.clock.seconds(ttl) - this.ctx.clock.now();
    if (left > 0) return this.queue.add(keyOf(job.metadata.namespace, job.metadata.name), left);
    try {
      this.ctx.api.delete(R.Job, job.metadata.namespace, job.metadata.name, { propagationPolicy: 'Foreground', preconditions: { uid: job.metadata.uid as string } });
    } catch (err) {
      if (!(err instanceof StatusError && (err.code === 404 || err.code === 409))) throw err;
    }
  }
}
