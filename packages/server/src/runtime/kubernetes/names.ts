import { createHash } from 'node:crypto';
import { errors } from '@micro/sdk';

/**
 * The names of the Kubernetes runtime: a platform namespace or a service name → the name
 * of its object in the cluster, or a 400 naming the field, what is wrong and the rule.
 *
 * A name that does not fit is refused, never mangled: lower-casing `Acme` or replacing the
 * `.` of `a.b` would make two platform namespaces (`Acme` and `acme`, `a.b` and `a-b`) share
 * one cluster namespace, that is, one tenant's services run among another's. Refused, the
 * mapping `namespace → prefix + namespace` is one-to-one, so no two tenants can meet.
 */

const ERROR_ID = 'runtime';

/** The longest name of a Namespace (and of most objects): a DNS-1123 label. */
export const KUBE_NAME_MAX = 63;
/** `MICRO_KUBERNETES_PREFIX` when unset: platform namespace `acme` → cluster namespace `micro-acme`. */
export const DEFAULT_NAMESPACE_PREFIX = 'micro-';
/** The longest prefix: leaves room for namespaces of 33 characters (signup's names are at most 32). */
export const MAX_PREFIX = 30;
/**
 * Characters the driver may append to a service's name for its other objects (a
 * `-credentials` Secret, a `-build-<id>` Job), so that each of those is a DNS-1123 label too.
 */
export const SERVICE_SUFFIX_ROOM = 16;
/** The longest service name the Kubernetes runtime runs. */
export const MAX_SERVICE_NAME = KUBE_NAME_MAX - SERVICE_SUFFIX_ROOM;

/**
 * Cluster namespaces a tenant's name must never map to: the cluster's own and the
 * platform's (`micro-system`, where micro server runs). With the default prefix only
 * `micro-system` can be reached (platform namespace `system`); with an empty prefix the
 * others could.
 */
export const RESERVED_CLUSTER_NAMESPACES: ReadonlySet<string> = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease', 'micro-system']);

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const HASHED = 'sha256.';

/** What is wrong with `value` as a DNS label (lower-case a-z, 0-9, '-', alphanumeric ends), or undefined. */
function labelProblem(value: unknown, max: number, letterFirst: boolean): string | undefined {
  if (typeof value !== 'string') return `is ${value === null ? 'null' : typeof value}, not a string`;
  if (value.length === 0) return 'is empty';
  if (value.length > max) return `is ${value.length} characters long, more than ${max}`;
  const outside = /[^\x20-\x7e]/u.exec(value);
  if (outside) return `has ${JSON.stringify(outside[0])}, a character outside ASCII`;
  if (/[A-Z]/.test(value)) return 'has upper-case letters';
  const other = /[^a-z0-9-]/.exec(value);
  if (other) return `has ${JSON.stringify(other[0])}`;
  if (value.startsWith('-')) return 'starts with "-"';
  if (value.endsWith('-')) return 'ends with "-"';
  if (letterFirst && !/^[a-z]/.test(value)) return 'starts with a digit';
  return undefined;
}

function quoted(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value) : String(value);
}

/**
 * The prefix of the cluster namespaces of platform namespaces (`MICRO_KUBERNETES_PREFIX`,
 * default `micro-`): empty, or lower-case a-z, 0-9 and '-' starting with a letter or digit,
 * at most 30 characters. A wrong value stops the server with what to write.
 */
export function namespacePrefix(raw: string | undefined = process.env.MICRO_KUBERNETES_PREFIX): string {
  if (raw === undefined) return DEFAULT_NAMESPACE_PREFIX;
  if (raw !== '' && (raw.length > MAX_PREFIX || !/^[a-z0-9][a-z0-9-]*$/.test(raw))) {
    throw new Error(`MICRO_KUBERNETES_PREFIX must be at most ${MAX_PREFIX} of lower-case a-z, 0-9 and "-", starting with a letter or digit (e.g. micro-), not ${quoted(raw)}`);
  }
  return raw;
}

/**
 * The cluster namespace of a platform namespace: `prefix + namespace`, which must be a
 * DNS-1123 label (lower-case a-z, 0-9 and '-', starting and ending with a letter or digit,
 * at most 63 characters with the prefix) and none of the cluster's or the platform's own.
 * Anything else is a 400 naming `namespace`, what is wrong and the rule.
 */
export function clusterNamespace(namespace: unknown, prefix: string = DEFAULT_NAMESPACE_PREFIX): string {
  const max = KUBE_NAME_MAX - prefix.length;
  const problem = labelProblem(namespace, max, false);
  if (problem) {
    throw errors.BadRequest(ERROR_ID, `namespace: ${quoted(namespace)} ${problem}; a namespace run on Kubernetes must be a DNS-1123 label: lower-case a-z, 0-9 and "-", starting and ending with a letter or digit, at most ${max} characters (${KUBE_NAME_MAX} with the prefix ${JSON.stringify(prefix)})`);
  }
  const name = `${prefix}${namespace as string}`;
  if (RESERVED_CLUSTER_NAMESPACES.has(name) || name.startsWith('kube-')) {
    throw errors.BadRequest(ERROR_ID, `namespace: ${quoted(namespace)} would run in the cluster namespace ${name}, which is the cluster's or the platform's own`);
  }
  return name;
}

/** The platform namespace of a cluster namespace made by `clusterNamespace`, or undefined for any other. */
export function platformNamespace(clusterName: string, prefix: string = DEFAULT_NAMESPACE_PREFIX): string | undefined {
  if (!clusterName.startsWith(prefix)) return undefined;
  const ns = clusterName.slice(prefix.length);
  try {
    return clusterNamespace(ns, prefix) === clusterName ? ns : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The name of a service's objects (its Deployment; the driver's other objects append at
 * most SERVICE_SUFFIX_ROOM characters): the service name itself, which must be a DNS-1035
 * label (lower-case a-z, 0-9 and '-', starting with a letter, ending with a letter or digit)
 * of at most MAX_SERVICE_NAME characters. The SDK allows `.` and `_` in service names; the
 * Kubernetes runtime refuses them rather than turning `a.b` into the `a-b` of another service.
 */
export function workloadName(service: unknown): string {
  const problem = labelProblem(service, MAX_SERVICE_NAME, true);
  if (problem) {
    throw errors.BadRequest(ERROR_ID, `name: ${quoted(service)} ${problem}; a service run on Kubernetes must be named with lower-case a-z, 0-9 and "-", starting with a letter and ending with a letter or digit, at most ${MAX_SERVICE_NAME} characters`);
  }
  return service as string;
}

/**
 * A label value for any string (an owner's email, a plan id): the value itself when it is
 * label-safe (at most 63 of A-Z a-z 0-9 '-' '_' '.', alphanumeric at both ends; a customer
 * id `cus_…` is), else `sha256.` and the first 48 hex digits of its SHA-256 — stable, so
 * `kubectl get ns -l micro.dev/owner=$(…)` finds the same owner every time, and no email
 * is written into the cluster. A value that itself starts with `sha256.` is hashed too, so
 * no raw value can pass for another's hash. The empty string stays empty (unknown).
 */
export function labelValue(value: string): string {
  if (value.length <= KUBE_NAME_MAX && LABEL_VALUE.test(value) && !value.startsWith(HASHED)) return value;
  return `${HASHED}${createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 48)}`;
}

/** Whether `name` is a DNS-1123 label (the rule of Namespace and most object names). */
export function isDnsLabel(name: string): boolean {
  return name.length <= KUBE_NAME_MAX && DNS_LABEL.test(name);
}

/** Whether `name` is a DNS-1035 label (the rule of Service names: starts with a letter). */
export function isDns1035Label(name: string): boolean {
  return name.length <= KUBE_NAME_MAX && DNS_1035_LABEL.test(name);
}
