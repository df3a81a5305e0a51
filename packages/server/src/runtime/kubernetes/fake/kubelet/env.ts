import { parseQuantity } from '../quantity.js';
import type { Store } from '../store.js';
import type { Container, Pod } from '../types.js';
import { R } from '../controllers/context.js';

/**
 * A container's environment as the kubelet builds it: `envFrom` first, then `env` in order,
 * with `valueFrom` resolved (Secrets, ConfigMaps, the downward API) and `$(VAR)` references
 * to earlier variables expanded. A missing Secret or key is the kubelet's
 * CreateContainerConfigError, with its message.
 */

export class ConfigError extends Error {}

const POD_IP = '127.0.0.1';

function fieldRef(pod: Pod, path: string): string {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return (m[1] === 'labels' ? pod.metadata.labels : pod.metadata.annotations)?.[m[2] as string] ?? '';
  const values: Record<string, string | undefined> = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace,
    'metadata.uid': pod.metadata.uid,
    'spec.nodeName': pod.spec.nodeName,
    'spec.serviceAccountName': pod.spec.serviceAccountName,
    'status.podIP': POD_IP,
    'status.podIPs': POD_IP,
    'status.hostIP': POD_IP,
    'status.hostIPs': POD_IP,
  };
  if (!(path in values)) throw new ConfigError(`unsupported fieldPath: ${path}`);
  return values[path] ?? '';
}

/** `limits.memory` and the like: the container's value, or the node's when it has no limit */
function resourceRef(c: Container, resource: string, divisor: unknown): string {
  const [kind, res] = resource.split('.') as ['limits' | 'requests', string];
  const node: Record<string, string> = { cpu: '8', memory: '32Gi', 'ephemeral-storage': '100Gi' };
  const q = parseQuantity(c.resources?.[kind]?.[res] ?? (kind === 'limits' ? node[res] : '0')) ?? { nanos: 0n, binary: false };
  const d = parseQuantity(divisor ?? 1) ?? { nanos: 1_000_000_000n, binary: false };
  if (d.nanos === 0n) return '0';
  return String((q.nanos + d.nanos - 1n) / d.nanos);
}

function fromStore(store: Store, pod: Pod, kind: 'Secret' | 'ConfigMap', name: string, key: string | undefined, optional: boolean | undefined): Record<string, string> | string | undefined {
  const ns = pod.metadata.namespace as string;
  const obj = store.peek(kind === 'Secret' ? R.Secret : R.ConfigMap, ns, name);
  if (!obj) {
    if (optional) return undefined;
    throw new ConfigError(`${kind.toLowerCase()} "${name}" not found`);
  }
  const data = (obj.data ?? {}) as Record<string, string>;
  const decoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, kind === 'Secret' ? Buffer.from(v, 'base64').toString() : v]));
  if (key === undefined) return decoded;
  if (!(key in decoded)) {
    if (optional) return undefined;
    throw new ConfigError(`couldn't find key ${key} in ${kind} ${ns}/${name}`);
  }
  return decoded[key];
}

/** `$(VAR)` → its value when defined, `$$(VAR)` → `$(VAR)`, anything else kept */
export function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([^)]+)\)/g, (all, name: string | undefined) => {
    if (all === '$$') return '$';
    return name !== undefined && Object.hasOwn(env, name) ? (env[name] as string) : all;
  });
}

export function containerEnv(store: Store, pod: Pod, c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const ref = from.secretRef ?? from.configMapRef;
    if (!ref?.name) continue;
    const data = fromStore(store, pod, from.secretRef ? 'Secret' : 'ConfigMap', ref.name, undefined, ref.optional);
    for (const [k, v] of Object.entries((data as Record<string, string> | undefined) ?? {})) env[`${from.prefix ?? ''}${k}`] = v;
  }
  for (const e of c.env ?? []) {
    const vf = e.valueFrom;
    let value: string | undefined;
    if (!vf) value = expand(e.value ?? '', env);
    else if (vf.secretKeyRef) value = fromStore(store, pod, 'Secret', vf.secretKeyRef.name ?? '', vf.secretKeyRef.key, vf.secretKeyRef.optional) as string | undefined;
    else if (vf.configMapKeyRef) value = fromStore(store, pod, 'ConfigMap', vf.configMapKeyRef.name ?? '', vf.configMapKeyRef.key, vf.configMapKeyRef.optional) as string | undefined;
    else if (vf.fieldRef) value = fieldRef(pod, vf.fieldRef.fieldPath);
    else if (vf.resourceFieldRef) value = resourceRef(c, vf.resourceFieldRef.resource, vf.resourceFieldRef.divisor);
    if (value !== undefined) env[e.name] = value;
  }
  return env;
}
