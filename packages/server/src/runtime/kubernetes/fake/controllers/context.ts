import { randomUUID } from 'node:crypto';
import type { ApiServer } from '../apiserver.js';
import { StatusError } from '../status.js';
import type { Clock } from '../clock.js';
import { Queue } from '../clock.js';
import type { Resource } from '../resources.js';
import { resourceOf } from '../resources.js';
import type { Change, Store } from '../store.js';
import { keyOf } from '../store.js';
import type { KObj, OwnerReference, PodTemplate } from '../types.js';
import { timestamp } from '../types.js';

/**
 * What every controller of the fake shares: the API server it writes through, the store
 * it reads and is told of changes by, the clock, and the event recorder.
 */
export interface Context {
  api: ApiServer;
  store: Store;
  clock: Clock;
  events: Recorder;
  onError: (where: string, err: unknown) => void;
}

export const R = {
  Namespace: resourceOf('v1', 'Namespace') as Resource,
  Pod: resourceOf('v1', 'Pod') as Resource,
  Event: resourceOf('v1', 'Event') as Resource,
  Secret: resourceOf('v1', 'Secret') as Resource,
  ConfigMap: resourceOf('v1', 'ConfigMap') as Resource,
  ResourceQuota: resourceOf('v1', 'ResourceQuota') as Resource,
  Deployment: resourceOf('apps/v1', 'Deployment') as Resource,
  ReplicaSet: resourceOf('apps/v1', 'ReplicaSet') as Resource,
  Job: resourceOf('batch/v1', 'Job') as Resource,
};

/**
 * A controller: a work queue of keys (`namespace/name`, or a uid) fed by the store's changes
 * it cares about (`onChange`), each reconciled by `sync`.
 */
export abstract class Controller {
  protected readonly queue: Queue;
  private readonly unsubscribe: () => void;

  constructor(
    protected readonly ctx: Context,
    name: string,
    /** the resource it reconciles and the one it makes: their changes queue the owner */
    private readonly follows?: { own: Resource; child: Resource },
  ) {
    this.queue = controllerQueue(ctx, name, (ns, n) => this.sync(ns, n));
    this.unsubscribe = ctx.store.subscribe((c) => this.onChange(c));
  }

  protected abstract sync(namespace: string, name: string): void;

  /** a change of an object it reconciles queues it (its deletion `forget`s it); a change of one it controls queues the owner */
  protected onChange(c: Change): void {
    if (!this.follows) return;
    const { own, child } = this.follows;
    if (c.resource === own) {
      if (c.type === 'DELETED') this.forget(c.object.metadata.uid as string);
      else this.queue.add(keyOf(c.object.metadata.namespace, c.object.metadata.name));
    } else if (c.resource === child) {
      const owner = ownerKey(c, own.kind);
      if (owner) this.queue.add(owner);
    }
  }

  /** what it remembers of an object that is gone */
  protected forget(_uid: string): void {}

  /** creates a pod of `owner`'s template, recording the event; the refusal's message when the API server refuses it */
  protected createPod(owner: KObj, template: PodTemplate, component: string): string | undefined {
    try {
      const pod = this.ctx.api.create(R.Pod, owner.metadata.namespace, podFromTemplate(owner, template));
      this.ctx.events.record(owner, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`, component);
      return undefined;
    } catch (err) {
      if (!(err instanceof StatusError)) throw err;
      this.ctx.events.record(owner, 'Warning', 'FailedCreate', `Error creating: ${err.message}`, component);
      return err.message;
    }
  }

  close(): void {
    this.unsubscribe();
  }
}

/** deletes an object unless it is already gone or was replaced (a 404 or a failed uid precondition) */
export function deleteIfThere(ctx: Context, r: Resource, o: KObj, propagationPolicy?: string): void {
  try {
    ctx.api.delete(r, o.metadata.namespace, o.metadata.name, { ...(propagationPolicy ? { propagationPolicy } : {}), preconditions: { uid: o.metadata.uid as string } });
  } catch (err) {
    if (!(err instanceof StatusError && (err.code === 404 || err.code === 409))) throw err;
  }
}

/** a pod of a controller's template, owned by it */
export function podFromTemplate(owner: KObj, template: PodTemplate): KObj {
  const ref: OwnerReference = { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid as string, controller: true, blockOwnerDeletion: true };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: '',
      generateName: `${owner.metadata.name}-`,
      namespace: owner.metadata.namespace,
      ...(template.metadata?.labels ? { labels: { ...template.metadata.labels } } : {}),
      ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
      ownerReferences: [ref],
    },
    spec: structuredClone(template.spec),
  };
}

/** the objects of `r` in `namespace` whose controller is `owner` */
export function ownedBy<T extends KObj>(ctx: Context, r: Resource, owner: KObj): T[] {
  return ctx.store.scan(r, owner.metadata.namespace).filter((o) => o.metadata.ownerReferences?.some((x) => x.controller && x.uid === owner.metadata.uid)) as T[];
}

/** a queue of `namespace/name` keys of one resource, fed by the store's changes the controller cares about */
export function controllerQueue(ctx: Context, name: string, work: (namespace: string, name: string) => void): Queue {
  return new Queue(
    ctx.clock,
    (key) => {
      const [ns, n] = key.includes('/') ? (key.split('/') as [string, string]) : ['', key];
      work(ns, n);
    },
    (key, err) => ctx.onError(`${name} ${key}`, err),
  );
}

export function objectKey(o: KObj): string {
  return keyOf(o.metadata.namespace, o.metadata.name);
}

/** the owner a change's object names as its controller, when it is of `kind` */
export function ownerKey(change: Change, kind: string): string | undefined {
  const ref = change.object.metadata.ownerReferences?.find((x) => x.controller && x.kind === kind);
  return ref ? keyOf(change.object.metadata.namespace, ref.name) : undefined;
}

/** at most this many events are kept per namespace (a real cluster keeps them an hour) */
const EVENTS_KEPT = 500;

/**
 * Events as controllers and the kubelet record them: one per object, reason and message,
 * counted when it happens again (as the event recorder aggregates), in the object's
 * namespace (cluster objects: `default`).
 */
export class Recorder {
  private readonly seen = new Map<string, string>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  record(obj: KObj, type: 'Normal' | 'Warning', reason: string, message: string, component: string): void {
    const namespace = obj.metadata.namespace ?? 'default';
    const ns = this.store.peek(R.Namespace, undefined, namespace);
    if (!ns || ns.metadata.deletionTimestamp) return;
    const key = `${obj.metadata.uid}|${type}|${reason}|${message}`;
    const now = this.clock.now();
    const existing = this.seen.get(key);
    const ev = existing ? this.store.get(R.Event, namespace, existing) : undefined;
    if (ev) {
      ev.count = ((ev.count as number | undefined) ?? 1) + 1;
      ev.lastTimestamp = timestamp(now);
      this.store.update(R.Event, ev);
      return;
    }
    const name = `${obj.metadata.name}.${(now * 1e6 + Math.floor(Math.random() * 1e6)).toString(16)}`;
    this.seen.set(key, name);
    const ref = { kind: obj.kind, namespace: obj.metadata.namespace, name: obj.metadata.name, uid: obj.metadata.uid, apiVersion: obj.apiVersion, resourceVersion: obj.metadata.resourceVersion };
    this.store.create(R.Event, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace, uid: randomUUID(), creationTimestamp: timestamp(now) },
      involvedObject: ref,
      reason,
      message,
      source: { component },
      firstTimestamp: timestamp(now),
      lastTimestamp: timestamp(now),
      eventTime: null,
      count: 1,
      type,
      reportingComponent: component,
      reportingInstance: '',
    });
    this.trim(namespace);
  }

  private trim(namespace: string): void {
    const all = this.store.scan(R.Event, namespace);
    if (all.length <= EVENTS_KEPT) return;
    const oldest = [...all].sort((a, b) => String(a.lastTimestamp).localeCompare(String(b.lastTimestamp))).slice(0, all.length - EVENTS_KEPT);
    for (const e of oldest) this.store.remove(R.Event, namespace, e.metadata.name);
  }
}
