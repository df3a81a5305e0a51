import { addQuantity, compareQuantity, formatQuantity, parseQuantity, type Quantity, ZERO } from './quantity.js';
import type { Resource } from './resources.js';
import { RESOURCES } from './resources.js';
import type { Store } from './store.js';
import type { Container, KObj, Pod, PodSpec } from './types.js';
import { podTerminal } from './types.js';

/**
 * ResourceQuota: what a namespace's objects use, counted as the quota controller counts it
 * (a pod's requests and limits, objects by `count/<resource>`), and the admission check that
 * refuses a create going over a `hard` limit with the API server's "exceeded quota" message.
 */

export type Usage = Map<string, Quantity>;

const COMPUTE = ['cpu', 'memory', 'ephemeral-storage'];

function containerSum(cs: Container[] | undefined, kind: 'requests' | 'limits', res: string): Quantity {
  let sum = ZERO;
  for (const c of cs ?? []) {
    const q = parseQuantity(c.resources?.[kind]?.[res]);
    if (q) sum = addQuantity(sum, q);
  }
  return sum;
}

function initMax(cs: Container[] | undefined, kind: 'requests' | 'limits', res: string): Quantity {
  let max = ZERO;
  for (const c of cs ?? []) {
    const q = parseQuantity(c.resources?.[kind]?.[res]);
    if (q && compareQuantity(q, max) > 0) max = q;
  }
  return max;
}

/** a pod's effective request or limit of a resource: its containers' sum, or its largest init container when that is more */
export function podAmount(spec: PodSpec, kind: 'requests' | 'limits', res: string): Quantity {
  const sum = containerSum(spec.containers, kind, res);
  const init = initMax(spec.initContainers, kind, res);
  const main = compareQuantity(init, sum) > 0 ? init : sum;
  const overhead = parseQuantity(spec.overhead?.[res]);
  return overhead ? addQuantity(main, overhead) : main;
}

/** what one pod adds to each quota resource */
export function podUsage(pod: Pod): Usage {
  const u: Usage = new Map();
  const one: Quantity = { nanos: 1_000_000_000n, binary: false };
  u.set('count/pods', one);
  if (podTerminal(pod)) return u;
  u.set('pods', one);
  for (const res of COMPUTE) {
    const req = podAmount(pod.spec, 'requests', res);
    u.set(`requests.${res}`, req);
    u.set(res, req);
    u.set(`limits.${res}`, podAmount(pod.spec, 'limits', res));
  }
  return u;
}

/** `count/deployments.apps`, `count/secrets` — and the legacy names of core objects */
function countNames(r: Resource): string[] {
  const names = [`count/${r.group ? `${r.plural}.${r.group}` : r.plural}`];
  if (!r.group && ['services', 'secrets', 'configmaps', 'resourcequotas', 'replicationcontrollers', 'persistentvolumeclaims'].includes(r.plural)) names.push(r.plural);
  return names;
}

function add(u: Usage, key: string, q: Quantity): void {
  u.set(key, addQuantity(u.get(key) ?? ZERO, q));
}

/** everything a namespace uses now */
export function namespaceUsage(store: Store, namespace: string): Usage {
  const u: Usage = new Map();
  const one: Quantity = { nanos: 1_000_000_000n, binary: false };
  for (const r of RESOURCES) {
    if (!r.namespaced) continue;
    const objs = store.scan(r, namespace);
    if (r.kind === 'Pod') for (const p of objs) for (const [k, q] of podUsage(p as Pod)) add(u, k, q);
    else for (const name of countNames(r)) for (let i = 0; i < objs.length; i++) add(u, name, one);
  }
  return u;
}

/** what creating `obj` adds */
export function usageOf(r: Resource, obj: KObj): Usage {
  if (r.kind === 'Pod') return podUsage(obj as Pod);
  return new Map(countNames(r).map((n) => [n, { nanos: 1_000_000_000n, binary: false }]));
}

interface Hard {
  name: string;
  hard: Record<string, unknown>;
}

function quotasOf(store: Store, namespace: string): Hard[] {
  const rq = RESOURCES.find((x) => x.kind === 'ResourceQuota') as Resource;
  return store.scan(rq, namespace).map((q) => ({ name: q.metadata.name, hard: ((q.spec as { hard?: Record<string, unknown> } | undefined)?.hard ?? {}) as Record<string, unknown> }));
}

/** a pod's containers that do not say a compute resource a quota limits */
function missing(pod: Pod, hard: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const key of Object.keys(hard).sort()) {
    const m = /^(requests|limits)\.(cpu|memory|ephemeral-storage)$/.exec(key) ?? (/^(cpu|memory|ephemeral-storage)$/.test(key) ? [key, 'requests', key] : null);
    if (!m) continue;
    const [, kind, res] = m as [string, 'requests' | 'limits', string];
    const without = [...(pod.spec.initContainers ?? []), ...(pod.spec.containers ?? [])].filter((c) => c.resources?.[kind]?.[res] === undefined).map((c) => c.name);
    if (without.length) out.push(`${key} for: ${without.join(',')}`);
  }
  return out;
}

/** the reason a create is refused by a quota of its namespace, or undefined */
export function quotaRefusal(store: Store, r: Resource, obj: KObj): string | undefined {
  const namespace = obj.metadata.namespace as string;
  const quotas = quotasOf(store, namespace);
  if (quotas.length === 0) return undefined;
  const adds = usageOf(r, obj);
  const used = namespaceUsage(store, namespace);
  for (const q of quotas) {
    if (r.kind === 'Pod') {
      const lacking = missing(obj as Pod, q.hard);
      if (lacking.length) return `failed quota: ${q.name}: must specify ${lacking.join('; ')}`;
    }
    const over = Object.keys(q.hard)
      .sort()
      .filter((k) => adds.has(k) && (adds.get(k) as Quantity).nanos > 0n)
      .filter((k) => compareQuantity(addQuantity(used.get(k) ?? ZERO, adds.get(k) as Quantity), parseQuantity(q.hard[k]) ?? ZERO) > 0);
    if (over.length) {
      const list = (f: (k: string) => string) => over.map((k) => `${k}=${f(k)}`).join(',');
      return `exceeded quota: ${q.name}, requested: ${list((k) => formatQuantity(adds.get(k) as Quantity))}, used: ${list((k) => formatQuantity(used.get(k) ?? ZERO))}, limited: ${list((k) => formatQuantity(parseQuantity(q.hard[k]) ?? ZERO))}`;
    }
  }
  return undefined;
}

/** the `status` the quota controller writes: `hard` and what of it is `used` */
export function quotaStatus(store: Store, quota: KObj): { hard: Record<string, string>; used: Record<string, string> } {
  const hard = ((quota.spec as { hard?: Record<string, unknown> } | undefined)?.hard ?? {}) as Record<string, unknown>;
  const usage = namespaceUsage(store, quota.metadata.namespace as string);
  const out = { hard: {} as Record<string, string>, used: {} as Record<string, string> };
  for (const k of Object.keys(hard).sort()) {
    out.hard[k] = formatQuantity(parseQuantity(hard[k]) ?? ZERO);
    out.used[k] = formatQuantity(usage.get(k) ?? ZERO);
  }
  return out;
}
