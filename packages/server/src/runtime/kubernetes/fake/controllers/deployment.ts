import type { Queue } from '../clock.js';
import { StatusError } from '../status.js';
import type { Change } from '../store.js';
import { keyOf } from '../store.js';
import type { Condition, Deployment, KObj, PodTemplate, ReplicaSet } from '../types.js';
import { deepEqual, fnv32a, safeEncode, stableJson, timestamp } from '../types.js';
import { type Context, controllerQueue, ownerKey, R } from './context.js';

/**
 * The Deployment controller, after the real one: one ReplicaSet per pod template (named
 * `<deployment>-<pod-template-hash>`, revision annotations), a rolling update bounded by
 * maxSurge and maxUnavailable (old pods go only as new ones become available), Recreate,
 * the history limit, and the status with its Available, Progressing (NewReplicaSetAvailable,
 * ProgressDeadlineExceeded...) and ReplicaFailure conditions.
 */

const REVISION = 'deployment.kubernetes.io/revision';
const HASH = 'pod-template-hash';

function revision(rs: KObj): number {
  return Number(rs.metadata.annotations?.[REVISION] ?? 0);
}

/** an int-or-percent of `total`, rounded up (surge) or down (unavailable) */
function scaled(v: unknown, total: number, up: boolean): number {
  if (typeof v === 'number') return v;
  const pct = parseInt(String(v ?? '0'), 10) || 0;
  return up ? Math.ceil((pct * total) / 100) : Math.floor((pct * total) / 100);
}

function fenceposts(d: Deployment): { surge: number; unavailable: number } {
  const replicas = d.spec.replicas ?? 1;
  const ru = d.spec.strategy?.rollingUpdate;
  const surge = scaled(ru?.maxSurge ?? '25%', replicas, true);
  let unavailable = scaled(ru?.maxUnavailable ?? '25%', replicas, false);
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return { surge, unavailable: Math.min(unavailable, replicas) };
}

const specReplicas = (rss: ReplicaSet[]) => rss.reduce((s, rs) => s + (rs.spec.replicas ?? 0), 0);
const statusOf = (rss: ReplicaSet[], f: 'replicas' | 'readyReplicas' | 'availableReplicas') => rss.reduce((s, rs) => s + (rs.status?.[f] ?? 0), 0);

export class DeploymentController {
  private readonly queue: Queue;
  private readonly stop: () => void;
  /** deployment uid → when it last made progress (ms) */
  private readonly progress = new Map<string, number>();

  constructor(private readonly ctx: Context) {
    this.queue = controllerQueue(ctx, 'deployment controller', (ns, name) => this.sync(ns, name));
    this.stop = ctx.store.subscribe((c) => this.onChange(c));
  }

  close(): void {
    this.stop();
  }

  private onChange(c: Change): void {
    if (c.resource === R.Deployment) {
      if (c.type === 'DELETED') this.progress.delete(c.object.metadata.uid as string);
      else this.queue.add(keyOf(c.object.metadata.namespace, c.object.metadata.name));
    } else if (c.resource === R.ReplicaSet) {
      const owner = ownerKey(c, 'Deployment');
      if (owner) this.queue.add(owner);
    }
  }

  private sync(namespace: string, name: string): void {
    const d = this.ctx.store.get(R.Deployment, namespace, name) as Deployment | undefined;
    if (!d || d.metadata.deletionTimestamp) return;
    const rss = this.ctx.store.scan(R.ReplicaSet, namespace).filter((rs) => rs.metadata.ownerReferences?.some((r) => r.controller && r.uid === d.metadata.uid)) as ReplicaSet[];
    let newRS = rss.find((rs) => deepEqual(this.withoutHash(rs.spec.template), d.spec.template));
    const old = rss.filter((rs) => rs !== newRS).sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)));
    let created = false;
    if (d.spec.paused) return this.writeStatus(d, rss, newRS, false);
    if (!newRS) {
      newRS = this.createReplicaSet(d, old);
      if (!newRS) return;
      created = true;
    } else this.keepRevision(d, newRS, old);
    const acted = d.spec.strategy?.type === 'Recreate' ? this.recreate(d, newRS, old) : this.rolling(d, newRS, old);
    if (!acted) this.cleanup(d, old);
    const fresh = this.ctx.store.scan(R.ReplicaSet, namespace).filter((rs) => rs.metadata.ownerReferences?.some((r) => r.controller && r.uid === d.metadata.uid)) as ReplicaSet[];
    this.writeStatus(d, fresh, fresh.find((rs) => rs.metadata.uid === newRS?.metadata.uid), created);
  }

  private withoutHash(t: PodTemplate): PodTemplate {
    const copy = structuredClone(t);
    if (copy.metadata?.labels) {
      delete copy.metadata.labels[HASH];
    }
    return copy;
  }

  private hash(d: Deployment): string {
    const collisions = (d.status as { collisionCount?: number } | undefined)?.collisionCount ?? 0;
    return safeEncode(String(fnv32a(stableJson(d.spec.template) + (collisions ? String(collisions) : ''))));
  }

  private createReplicaSet(d: Deployment, old: ReplicaSet[]): ReplicaSet | undefined {
    const hash = this.hash(d);
    const rev = Math.max(0, ...old.map(revision)) + 1;
    const t = structuredClone(d.spec.template);
    t.metadata = { ...t.metadata, labels: { ...t.metadata?.labels, [HASH]: hash } };
    const { surge } = fenceposts(d);
    const body = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${d.metadata.name}-${hash}`,
        namespace: d.metadata.namespace,
        labels: { ...d.spec.template.metadata?.labels, [HASH]: hash },
        annotations: { [REVISION]: String(rev), 'deployment.kubernetes.io/desired-replicas': String(d.spec.replicas ?? 1), 'deployment.kubernetes.io/max-replicas': String((d.spec.replicas ?? 1) + surge) },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid as string, controller: true, blockOwnerDeletion: true }],
      },
      spec: { replicas: 0, minReadySeconds: d.spec.minReadySeconds ?? 0, selector: { ...d.spec.selector, matchLabels: { ...d.spec.selector.matchLabels, [HASH]: hash } }, template: t },
    };
    try {
      const rs = this.ctx.api.create(R.ReplicaSet, d.metadata.namespace, body) as ReplicaSet;
      this.annotateRevision(d, rev);
      return rs;
    } catch (err) {
      if (err instanceof StatusError && err.reason === 'AlreadyExists') {
        // another template hashed the same: count the collision, the next sync names it anew
        const collisionCount = ((d.status as { collisionCount?: number } | undefined)?.collisionCount ?? 0) + 1;
        this.ctx.api.writeStatus(R.Deployment, d, { ...d.status, collisionCount });
        return undefined;
      }
      throw err;
    }
  }

  private annotateRevision(d: Deployment, rev: number): void {
    this.ctx.api.modify(R.Deployment, d, (x) => {
      x.metadata.annotations = { ...x.metadata.annotations, [REVISION]: String(rev) };
    });
  }

  /** a template going back to an older ReplicaSet's makes it the newest revision (a rollback) */
  private keepRevision(d: Deployment, rs: ReplicaSet, old: ReplicaSet[]): void {
    const max = Math.max(0, ...old.map(revision));
    if (revision(rs) > max) {
      if (d.metadata.annotations?.[REVISION] !== String(revision(rs))) this.annotateRevision(d, revision(rs));
      return;
    }
    this.ctx.api.modify(R.ReplicaSet, rs, (x) => {
      x.metadata.annotations = { ...x.metadata.annotations, [REVISION]: String(max + 1) };
    });
    this.annotateRevision(d, max + 1);
  }

  private scale(d: Deployment, rs: ReplicaSet, to: number): boolean {
    const from = rs.spec.replicas ?? 0;
    if (from === to) return false;
    const done = this.ctx.api.modify(R.ReplicaSet, rs, (x) => {
      (x as ReplicaSet).spec.replicas = to;
      x.metadata.annotations = { ...x.metadata.annotations, 'deployment.kubernetes.io/desired-replicas': String(d.spec.replicas ?? 1) };
    });
    if (done) {
      rs.spec.replicas = to;
      this.ctx.events.record(d, 'Normal', 'ScalingReplicaSet', `Scaled ${to > from ? 'up' : 'down'} replica set ${rs.metadata.name} from ${from} to ${to}`, 'deployment-controller');
    }
    return Boolean(done);
  }

  /** one step of a rolling update: scale the new ReplicaSet up within maxSurge, else old ones down within maxUnavailable */
  private rolling(d: Deployment, newRS: ReplicaSet, old: ReplicaSet[]): boolean {
    const replicas = d.spec.replicas ?? 1;
    const { surge, unavailable } = fenceposts(d);
    const all = [...old, newRS];
    const cur = newRS.spec.replicas ?? 0;
    if (cur > replicas) return this.scale(d, newRS, replicas);
    if (cur < replicas) {
      const room = replicas + surge - specReplicas(all);
      if (room > 0 && this.scale(d, newRS, cur + Math.min(room, replicas - cur))) return true;
    }
    if (specReplicas(old) === 0) return false;
    const minAvailable = replicas - unavailable;
    const newUnavailable = (newRS.spec.replicas ?? 0) - (newRS.status?.availableReplicas ?? 0);
    let budget = specReplicas(all) - minAvailable - newUnavailable;
    if (budget <= 0) return false;
    let acted = false;
    // first the old pods that are not available anyway
    for (const rs of old) {
      const unhealthy = (rs.spec.replicas ?? 0) - (rs.status?.availableReplicas ?? 0);
      if (budget <= 0 || unhealthy <= 0) continue;
      const n = Math.min(budget, unhealthy);
      acted = this.scale(d, rs, (rs.spec.replicas ?? 0) - n) || acted;
      budget -= n;
    }
    let spare = statusOf(all, 'availableReplicas') - minAvailable;
    for (const rs of old) {
      if (spare <= 0) break;
      const n = Math.min(rs.spec.replicas ?? 0, spare);
      if (n > 0) acted = this.scale(d, rs, (rs.spec.replicas ?? 0) - n) || acted;
      spare -= n;
    }
    return acted;
  }

  /** Recreate: every old pod goes before a new one starts */
  private recreate(d: Deployment, newRS: ReplicaSet, old: ReplicaSet[]): boolean {
    let acted = false;
    for (const rs of old) acted = this.scale(d, rs, 0) || acted;
    const oldPods = this.ctx.store.scan(R.Pod, d.metadata.namespace).filter((p) => old.some((rs) => p.metadata.ownerReferences?.some((r) => r.uid === rs.metadata.uid)));
    if (oldPods.some((p) => !['Succeeded', 'Failed'].includes((p.status as { phase?: string } | undefined)?.phase ?? ''))) return true;
    return this.scale(d, newRS, d.spec.replicas ?? 1) || acted;
  }

  /** old ReplicaSets beyond revisionHistoryLimit, scaled to nothing, are deleted */
  private cleanup(d: Deployment, old: ReplicaSet[]): void {
    const limit = d.spec.revisionHistoryLimit ?? 10;
    const idle = old.filter((rs) => (rs.spec.replicas ?? 0) === 0 && (rs.status?.replicas ?? 0) === 0);
    for (const rs of idle.slice(0, Math.max(0, idle.length - limit))) {
      try {
        this.ctx.api.delete(R.ReplicaSet, rs.metadata.namespace, rs.metadata.name, { propagationPolicy: 'Background', preconditions: { uid: rs.metadata.uid as string } });
      } catch (err) {
        if (!(err instanceof StatusError && (err.code === 404 || err.code === 409))) throw err;
      }
    }
  }

  private writeStatus(d: Deployment, rss: ReplicaSet[], newRS: ReplicaSet | undefined, created: boolean): void {
    const prev = d.status ?? {};
    const available = statusOf(rss, 'availableReplicas');
    const status = {
      observedGeneration: d.metadata.generation,
      replicas: statusOf(rss, 'replicas'),
      updatedReplicas: newRS?.status?.replicas ?? 0,
      readyReplicas: statusOf(rss, 'readyReplicas'),
      availableReplicas: available,
      unavailableReplicas: Math.max(0, specReplicas(rss) - available),
      ...((prev as { collisionCount?: number }).collisionCount ? { collisionCount: (prev as { collisionCount?: number }).collisionCount } : {}),
    };
    const conditions = this.conditions(d, status, newRS, created);
    this.ctx.api.writeStatus(R.Deployment, d, { ...status, conditions });
  }

  private conditions(d: Deployment, s: { replicas: number; updatedReplicas: number; readyReplicas: number; availableReplicas: number; observedGeneration?: number }, newRS: ReplicaSet | undefined, created: boolean): Condition[] {
    const replicas = d.spec.replicas ?? 1;
    const now = this.ctx.clock.now();
    const prev = (d.status?.conditions ?? []) as Condition[];
    const cond = (type: string, status: string, reason: string, message: string, touch = true): Condition => {
      const old = prev.find((c) => c.type === type);
      const changed = !old || old.status !== status;
      return { type, status, lastUpdateTime: touch || changed || !old?.lastUpdateTime ? timestamp(now) : old.lastUpdateTime, lastTransitionTime: changed ? timestamp(now) : (old?.lastTransitionTime ?? timestamp(now)), reason, message };
    };
    const { unavailable } = fenceposts(d);
    const out: Condition[] = [
      s.availableReplicas >= replicas - unavailable ? cond('Available', 'True', 'MinimumReplicasAvailable', 'Deployment has minimum availability.', false) : cond('Available', 'False', 'MinimumReplicasUnavailable', 'Deployment does not have minimum availability.', false),
    ];
    out.push(this.progressing(d, s, newRS, created, cond));
    const failure = newRS?.status?.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
    if (failure) out.push(cond('ReplicaFailure', 'True', failure.reason ?? 'FailedCreate', failure.message ?? '', false));
    return out;
  }

  private progressing(
    d: Deployment,
    s: { replicas: number; updatedReplicas: number; readyReplicas: number; availableReplicas: number },
    newRS: ReplicaSet | undefined,
    created: boolean,
    cond: (type: string, status: string, reason: string, message: string, touch?: boolean) => Condition,
  ): Condition {
    const uid = d.metadata.uid as string;
    const replicas = d.spec.replicas ?? 1;
    const name = newRS?.metadata.name ?? '';
    const now = this.ctx.clock.now();
    if (d.spec.paused) return cond('Progressing', 'Unknown', 'DeploymentPaused', 'Deployment is paused', false);
    const complete = s.updatedReplicas === replicas && s.replicas === replicas && s.availableReplicas === replicas;
    const prev = d.status ?? {};
    const moved = created || s.updatedReplicas > (prev.updatedReplicas ?? 0) || s.readyReplicas > (prev.readyReplicas ?? 0) || s.availableReplicas > (prev.availableReplicas ?? 0) || s.replicas - s.updatedReplicas < (prev.replicas ?? 0) - (prev.updatedReplicas ?? 0);
    if (moved || !this.progress.has(uid)) this.progress.set(uid, now);
    const old = d.status?.conditions?.find((c) => c.type === 'Progressing');
    if (complete) return cond('Progressing', 'True', 'NewReplicaSetAvailable', `ReplicaSet "${name}" has successfully progressed.`, old?.reason !== 'NewReplicaSetAvailable');
    if (created) return cond('Progressing', 'True', 'NewReplicaSetCreated', `Created new replica set "${name}"`);
    const deadlineMs = this.ctx.clock.seconds(d.spec.progressDeadlineSeconds ?? 600);
    const since = this.progress.get(uid) as number;
    if (now - since >= deadlineMs) return cond('Progressing', 'False', 'ProgressDeadlineExceeded', `ReplicaSet "${name}" has timed out progressing.`, old?.reason !== 'ProgressDeadlineExceeded');
    this.queue.add(keyOf(d.metadata.namespace, d.metadata.name), since + deadlineMs - now + 1);
    if (moved) return cond('Progressing', 'True', 'ReplicaSetUpdated', `ReplicaSet "${name}" is progressing.`);
    return old ? { ...(old as Condition) } : cond('Progressing', 'True', 'ReplicaSetUpdated', `ReplicaSet "${name}" is progressing.`);
  }
}
