import type { Queue } from '../clock.js';
import { StatusError } from '../status.js';
import type { Change } from '../store.js';
import { keyOf } from '../store.js';
import type { Condition, KObj, Pod, ReplicaSet } from '../types.js';
import { podActive, podReady, timestamp } from '../types.js';
import { type Context, controllerQueue, ownerKey, R } from './context.js';

/**
 * The ReplicaSet controller: keeps `spec.replicas` pods of the template (slow start: 1, 2,
 * 4... at a time, stopping at the first refusal), deletes the surplus (not ready and newest
 * first), and reports replicas, ready and available ones (ready for `minReadySeconds`) and a
 * `ReplicaFailure` condition with the refusal (a quota, Pod Security...) when it cannot
 * create one, retrying with back-off.
 */

/** pods a sync creates at most */
const BURST = 500;

export class ReplicaSetController {
  private readonly queue: Queue;
  private readonly stop: () => void;
  /** pod uid → when it was first seen ready (available after minReadySeconds) */
  private readonly readySince = new Map<string, number>();
  /** rs key → failed creations in a row */
  private readonly failures = new Map<string, number>();

  constructor(private readonly ctx: Context) {
    this.queue = controllerQueue(ctx, 'replicaset controller', (ns, name) => this.sync(ns, name));
    this.stop = ctx.store.subscribe((c) => this.onChange(c));
  }

  close(): void {
    this.stop();
  }

  private onChange(c: Change): void {
    if (c.resource === R.ReplicaSet) return this.queue.add(keyOf(c.object.metadata.namespace, c.object.metadata.name));
    if (c.resource === R.Pod) {
      if (c.type === 'DELETED') this.readySince.delete(c.object.metadata.uid as string);
      const owner = ownerKey(c, 'ReplicaSet');
      if (owner) this.queue.add(owner);
      if (c.type === 'DELETED') this.retryFailed(c.object.metadata.namespace);
    }
    // a quota or limit changing may let a refused pod in
    if (c.resource === R.ResourceQuota) this.retryFailed(c.object.metadata.namespace);
  }

  private retryFailed(namespace: string | undefined): void {
    for (const key of this.failures.keys()) if (key.startsWith(`${namespace}/`)) this.queue.add(key, 1);
  }

  private sync(namespace: string, name: string): void {
    const rs = this.ctx.store.get(R.ReplicaSet, namespace, name) as ReplicaSet | undefined;
    const key = keyOf(namespace, name);
    if (!rs || rs.metadata.deletionTimestamp) {
      this.failures.delete(key);
      return;
    }
    const owned = this.pods(rs);
    const active = owned.filter(podActive);
    const want = rs.spec.replicas ?? 1;
    let failure: string | undefined;
    if (active.length < want) failure = this.create(rs, want - active.length);
    else if (active.length > want) this.remove(rs, active, active.length - want);
    if (failure) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      this.queue.add(key, this.ctx.clock.seconds(Math.min(2 ** (n - 1), 30)));
    } else this.failures.delete(key);
    this.writeStatus(rs, failure);
  }

  private pods(rs: ReplicaSet): Pod[] {
    return this.ctx.store.scan(R.Pod, rs.metadata.namespace).filter((p) => p.metadata.ownerReferences?.some((r) => r.controller && r.uid === rs.metadata.uid)) as Pod[];
  }

  /** creates up to `n` pods in growing batches; the refusal that stopped it, if any */
  private create(rs: ReplicaSet, n: number): string | undefined {
    let left = Math.min(n, BURST);
    for (let batch = 1; left > 0; batch *= 2) {
      for (let i = 0; i < Math.min(batch, left); i++) {
        try {
          const pod = this.ctx.api.create(R.Pod, rs.metadata.namespace, this.podFor(rs));
          this.ctx.events.record(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`, 'replicaset-controller');
        } catch (err) {
          if (!(err instanceof StatusError)) throw err;
          this.ctx.events.record(rs, 'Warning', 'FailedCreate', `Error creating: ${err.message}`, 'replicaset-controller');
          return err.message;
        }
      }
      left -= Math.min(batch, left);
    }
    return undefined;
  }

  private podFor(rs: ReplicaSet): KObj {
    const t = rs.spec.template;
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: '',
        generateName: `${rs.metadata.name}-`,
        namespace: rs.metadata.namespace,
        ...(t.metadata?.labels ? { labels: { ...t.metadata.labels } } : {}),
        ...(t.metadata?.annotations ? { annotations: { ...t.metadata.annotations } } : {}),
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs.metadata.name, uid: rs.metadata.uid as string, controller: true, blockOwnerDeletion: true }],
      },
      spec: structuredClone(t.spec),
    };
  }

  /** deletes the `n` pods a ReplicaSet gives up first: unscheduled, pending, not ready, restarted most, newest */
  private remove(rs: ReplicaSet, active: Pod[], n: number): void {
    const rank = (p: Pod) => [p.spec.nodeName ? 1 : 0, p.status?.phase === 'Running' ? 1 : 0, podReady(p) ? 1 : 0, -(p.status?.containerStatuses ?? []).reduce((s, c) => s + (c.restartCount ?? 0), 0), -Date.parse(p.metadata.creationTimestamp ?? '0')];
    const sorted = [...active].sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return (ra[i] as number) - (rb[i] as number);
      return 0;
    });
    for (const p of sorted.slice(0, n)) {
      try {
        this.ctx.api.delete(R.Pod, p.metadata.namespace, p.metadata.name, { preconditions: { uid: p.metadata.uid as string } });
        this.ctx.events.record(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`, 'replicaset-controller');
      } catch (err) {
        if (!(err instanceof StatusError && (err.code === 404 || err.code === 409))) throw err;
      }
    }
  }

  private available(p: Pod, minReadyMs: number, now: number): boolean {
    if (!podReady(p)) {
      this.readySince.delete(p.metadata.uid as string);
      return false;
    }
    const since = this.readySince.get(p.metadata.uid as string) ?? now;
    this.readySince.set(p.metadata.uid as string, since);
    return now - since >= minReadyMs;
  }

  private writeStatus(rs: ReplicaSet, failure: string | undefined): void {
    const active = this.pods(rs).filter(podActive);
    const now = this.ctx.clock.now();
    const minReadyMs = this.ctx.clock.seconds(rs.spec.minReadySeconds ?? 0);
    const ready = active.filter(podReady);
    const available = ready.filter((p) => this.available(p, minReadyMs, now));
    if (available.length < ready.length) this.queue.add(keyOf(rs.metadata.namespace, rs.metadata.name), minReadyMs);
    const labels = rs.spec.template.metadata?.labels ?? {};
    const old = rs.status?.conditions?.find((c) => c.type === 'ReplicaFailure');
    const conditions: Condition[] = failure ? [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: failure, lastTransitionTime: old?.lastTransitionTime ?? timestamp(now) }] : [];
    const status = {
      replicas: active.length,
      fullyLabeledReplicas: active.filter((p) => Object.entries(labels).every(([k, v]) => p.metadata.labels?.[k] === v)).length,
      readyReplicas: ready.length,
      availableReplicas: available.length,
      observedGeneration: rs.metadata.generation,
      ...(conditions.length ? { conditions } : {}),
    };
    this.ctx.api.writeStatus(R.ReplicaSet, rs, status);
  }
}
