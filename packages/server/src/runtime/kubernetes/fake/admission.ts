import { compareQuantity, formatQuantity, parseQuantity, type Quantity } from './quantity.js';
import { podAmount, quotaRefusal } from './quota.js';
import { policyOf, violations } from './psa.js';
import type { Resource } from './resources.js';
import { resourceOf } from './resources.js';
import { forbidden, notFound } from './status.js';
import type { Store } from './store.js';
import type { Container, KObj, Pod, PodSpec } from './types.js';
import { isObject, randomSuffix } from './types.js';

/**
 * The admission plugins a cluster runs on a create, in their order: NamespaceLifecycle
 * (no objects in a missing or terminating namespace), ServiceAccount (a pod's account must
 * exist; its token is mounted unless automount is off), LimitRanger (defaults, then min and
 * max), PodSecurity (enforce refuses pods; warn answers warnings, also for workloads'
 * templates) and ResourceQuota (last, on what the others made of the object).
 */

const NS = resourceOf('v1', 'Namespace') as Resource;
const SA = resourceOf('v1', 'ServiceAccount') as Resource;
const LIMITS = resourceOf('v1', 'LimitRange') as Resource;

export interface Admission {
  store: Store;
  /** warnings for the response's Warning headers */
  warnings: string[];
}

function namespaceLifecycle(a: Admission, r: Resource, obj: KObj): void {
  if (!r.namespaced) return;
  const namespace = obj.metadata.namespace as string;
  const ns = a.store.peek(NS, undefined, namespace);
  if (!ns) throw notFound(NS, namespace);
  if (ns.metadata.deletionTimestamp) {
    const why = `unable to create new content in namespace ${namespace} because it is being terminated`;
    throw forbidden(r, obj.metadata.name, why, [{ reason: 'NamespaceTerminating', message: why, field: 'metadata.namespace' }]);
  }
}

const TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

function serviceAccount(a: Admission, pod: Pod): void {
  const spec = pod.spec;
  spec.serviceAccountName ||= spec.serviceAccount || 'default';
  spec.serviceAccount = spec.serviceAccountName;
  const namespace = pod.metadata.namespace as string;
  const sa = a.store.peek(SA, namespace, spec.serviceAccountName);
  if (!sa) throw forbidden(podResource(), pod.metadata.name, `error looking up service account ${namespace}/${spec.serviceAccountName}: serviceaccount "${spec.serviceAccountName}" not found`);
  const automount = spec.automountServiceAccountToken ?? (sa.automountServiceAccountToken as boolean | undefined) ?? true;
  if (!automount) return;
  const volume = `kube-api-access-${randomSuffix(5)}`;
  spec.volumes = [
    ...(spec.volumes ?? []),
    {
      name: volume,
      projected: {
        defaultMode: 420,
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
      },
    },
  ];
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    if ((c.volumeMounts ?? []).some((m) => m.mountPath === TOKEN_PATH)) continue;
    c.volumeMounts = [...(c.volumeMounts ?? []), { name: volume, readOnly: true, mountPath: TOKEN_PATH }];
  }
}

function podResource(): Resource {
  return resourceOf('v1', 'Pod') as Resource;
}

type Bounds = Record<string, string | number>;
interface LimitItem {
  type?: string;
  max?: Bounds;
  min?: Bounds;
  default?: Bounds;
  defaultRequest?: Bounds;
  maxLimitRequestRatio?: Bounds;
}

function limitItems(a: Admission, namespace: string): LimitItem[] {
  return a.store.scan(LIMITS, namespace).flatMap((lr) => ((lr.spec as { limits?: LimitItem[] } | undefined)?.limits ?? []));
}

function applyLimitDefaults(c: Container, item: LimitItem): void {
  const res = (c.resources ??= {});
  for (const [k, v] of Object.entries(item.default ?? {})) if (res.limits?.[k] === undefined) (res.limits ??= {})[k] = v;
  for (const [k, v] of Object.entries(item.defaultRequest ?? {})) if (res.requests?.[k] === undefined) (res.requests ??= {})[k] = v;
}

/** min/max/ratio of one container or pod against one LimitRange item */
function limitProblems(scope: string, requests: Record<string, Quantity | undefined>, limits: Record<string, Quantity | undefined>, item: LimitItem): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(item.min ?? {})) {
    const min = parseQuantity(v) as Quantity;
    const req = requests[k];
    if (!req) out.push(`minimum ${k} usage per ${scope} is ${formatQuantity(min)}.  No request is specified`);
    else if (compareQuantity(req, min) < 0) out.push(`minimum ${k} usage per ${scope} is ${formatQuantity(min)}, but request is ${formatQuantity(req)}`);
  }
  for (const [k, v] of Object.entries(item.max ?? {})) {
    const max = parseQuantity(v) as Quantity;
    const lim = limits[k];
    if (!lim) out.push(`maximum ${k} usage per ${scope} is ${formatQuantity(max)}.  No limit is specified`);
    else if (compareQuantity(lim, max) > 0) out.push(`maximum ${k} usage per ${scope} is ${formatQuantity(max)}, but limit is ${formatQuantity(lim)}`);
  }
  for (const [k, v] of Object.entries(item.maxLimitRequestRatio ?? {})) {
    const ratio = Number((parseQuantity(v) as Quantity).nanos) / 1e9;
    const lim = limits[k];
    const req = requests[k];
    if (lim && req && req.nanos > 0n && Number(lim.nanos) / Number(req.nanos) > ratio) {
      out.push(`${k} max limit to request ratio per ${scope} is ${formatQuantity(parseQuantity(v) as Quantity)}, but provided ratio is ${(Number(lim.nanos) / Number(req.nanos)).toFixed(6)}`);
    }
  }
  return out;
}

function quantities(list: Record<string, unknown> | undefined): Record<string, Quantity | undefined> {
  return Object.fromEntries(Object.entries(list ?? {}).map(([k, v]) => [k, parseQuantity(v)]));
}

function limitRangerDefaults(a: Admission, pod: Pod): void {
  const containers = [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])];
  for (const item of limitItems(a, pod.metadata.namespace as string).filter((i) => i.type === 'Container')) for (const c of containers) applyLimitDefaults(c, item);
}

function limitRanger(a: Admission, pod: Pod): void {
  const items = limitItems(a, pod.metadata.namespace as string);
  if (items.length === 0) return;
  const spec: PodSpec = pod.spec;
  const containers = [...(spec.initContainers ?? []), ...spec.containers];
  const problems: string[] = [];
  for (const item of items) {
    if (item.type === 'Container') for (const c of containers) problems.push(...limitProblems('Container', quantities(c.resources?.requests), quantities(c.resources?.limits), item));
    if (item.type === 'Pod') {
      const keys = new Set([...Object.keys(item.max ?? {}), ...Object.keys(item.min ?? {}), ...Object.keys(item.maxLimitRequestRatio ?? {})]);
      const sum = (kind: 'requests' | 'limits') => Object.fromEntries([...keys].map((k) => [k, containers.every((c) => c.resources?.[kind]?.[k] !== undefined) ? podAmount(spec, kind, k) : undefined]));
      problems.push(...limitProblems('Pod', sum('requests'), sum('limits'), item));
    }
  }
  if (problems.length) throw forbidden(podResource(), pod.metadata.name, problems.length === 1 ? (problems[0] as string) : `[${problems.join(', ')}]`);
}

function podSecurity(a: Admission, r: Resource, obj: KObj): void {
  const spec = r.kind === 'Pod' ? (obj.spec as PodSpec) : (obj.spec as { template?: { spec?: PodSpec } } | undefined)?.template?.spec;
  if (!spec) return;
  const ns = a.store.peek(NS, undefined, obj.metadata.namespace as string);
  const labels = ns?.metadata.labels;
  const enforce = policyOf(labels, 'enforce');
  if (r.kind === 'Pod' && enforce) {
    const v = violations(enforce.level, spec, obj.metadata.annotations ?? {});
    if (v.length) throw forbidden(r, obj.metadata.name, `violates PodSecurity "${enforce.level}:${enforce.version}": ${v.join(', ')}`);
  }
  // workloads are never refused (their pods are); the warn mode tells of both
  const warn = policyOf(labels, 'warn');
  if (!warn) return;
  const v = violations(warn.level, spec, obj.metadata.annotations ?? {});
  if (v.length) a.warnings.push(`would violate PodSecurity "${warn.level}:${warn.version}": ${v.join(', ')}`);
}

function resourceQuota(a: Admission, r: Resource, obj: KObj): void {
  if (!r.namespaced) return;
  const why = quotaRefusal(a.store, r, obj);
  if (why) throw forbidden(r, obj.metadata.name, why);
}

/** the mutating plugins on an object about to be created (they may change it); throws the refusal */
export function mutateCreate(a: Admission, r: Resource, obj: KObj): void {
  namespaceLifecycle(a, r, obj);
  if (r.kind === 'Pod' && isObject(obj.spec)) {
    serviceAccount(a, obj as Pod);
    limitRangerDefaults(a, obj as Pod);
  }
}

/** the validating plugins, on the object as it will be stored; throws the refusal */
export function validateCreate(a: Admission, r: Resource, obj: KObj): void {
  if (r.kind === 'Pod') limitRanger(a, obj as Pod);
  podSecurity(a, r, obj);
  resourceQuota(a, r, obj);
}

/** on update only PodSecurity's warnings for workloads whose template changed */
export function admitUpdate(a: Admission, r: Resource, obj: KObj): void {
  if (r.kind !== 'Pod') podSecurity(a, r, obj);
}
