import { randomUUID } from 'node:crypto';
import type { ApiServer } from '../apiserver.js';
import type { Clock } from '../clock.js';
import { Queue } from '../clock.js';
import type { Resource } from '../resources.js';
import { resourceOf } from '../resources.js';
import type { Change, Store } from '../store.js';
import { keyOf } from '../store.js';
import type { KObj } from '../types.js';
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
