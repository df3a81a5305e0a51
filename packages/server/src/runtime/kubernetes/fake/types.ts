import type { IContainer, IPod, IPodSpec, IPodTemplateSpec, IProbe } from 'kubernetes-models/v1';
import type { IDeployment, IReplicaSet } from 'kubernetes-models/apps/v1';
import type { IJob } from 'kubernetes-models/batch/v1';

/**
 * The shapes the fake works with: the API's own types (from `kubernetes-models`), with the
 * fields a stored object always has made required. Everything is plain JSON: what is
 * stored is what a client sent, defaulted, and what a controller wrote.
 */

export type Meta = NonNullable<IPod['metadata']> & { name: string };

/** any stored object */
export interface KObj {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  [field: string]: unknown;
}

export type Container = IContainer;
export type Probe = IProbe;
export type PodSpec = IPodSpec;
export type PodTemplate = IPodTemplateSpec & { spec: PodSpec };
export type PodStatus = NonNullable<IPod['status']>;
export type ContainerStatus = NonNullable<PodStatus['containerStatuses']>[number];
export type Condition = { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string; lastUpdateTime?: string; lastProbeTime?: string | null };

export type Pod = KObj & { apiVersion: 'v1'; kind: 'Pod'; spec: PodSpec; status?: PodStatus };
export type Deployment = KObj & { spec: NonNullable<IDeployment['spec']> & { template: PodTemplate }; status?: NonNullable<IDeployment['status']> };
export type ReplicaSet = KObj & { spec: NonNullable<IReplicaSet['spec']> & { template: PodTemplate }; status?: NonNullable<IReplicaSet['status']> };
export type Job = KObj & { spec: NonNullable<IJob['spec']> & { template: PodTemplate }; status?: NonNullable<IJob['status']> };

/** a label selector as the API writes it */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export type OwnerReference = NonNullable<Meta['ownerReferences']>[number];

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** deep copy of plain JSON (what goes in and out of the store) */
export function clone<T>(v: T): T {
  return structuredClone(v);
}

/** the current time as the API writes it (RFC 3339, seconds) */
export function timestamp(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** the current time with microseconds, as `MicroTime` fields and log lines are written */
export function microTimestamp(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

/** the controller of an object: its ownerReference with `controller: true` */
export function controllerOf(obj: KObj): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find((r) => r.controller === true);
}

/** `bcdfghjklmnpqrstvwxz2456789`: the alphabet of generated names (no vowels, no look-alikes) */
const SAFE = 'bcdfghjklmnpqrstvwxz2456789';

/** a random suffix as `generateName` and the pod-template-hash use */
export function randomSuffix(n = 5): string {
  let s = '';
  for (let i = 0; i < n; i++) s += SAFE[Math.floor(Math.random() * SAFE.length)];
  return s;
}

/** the characters of `s` mapped onto the safe alphabet (a hash's decimal digits → a name) */
export function safeEncode(s: string): string {
  return [...s].map((c) => SAFE[c.charCodeAt(0) % SAFE.length]).join('');
}

/** FNV-1a, 32 bits: the hash of a pod template, as the deployment controller names its ReplicaSets */
export function fnv32a(s: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(s)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** JSON with object keys sorted, so equal objects give equal text */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  return stableJson(a) === stableJson(b);
}

/** `Pod` is ready: its Ready condition is True */
export function podReady(pod: Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** `Pod` no longer runs and never will again */
export function podTerminal(pod: Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

/** counted by a ReplicaSet or Job: not terminal and not being deleted */
export function podActive(pod: Pod): boolean {
  return !podTerminal(pod) && !pod.metadata.deletionTimestamp;
}
