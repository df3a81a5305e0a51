import { isDeepStrictEqual } from 'node:util';
import { errors, MicroError } from '@micro/sdk';
import type { Limits } from '../../quota/limits.js';
import type { Quotas } from '../../quota/quotas.js';
import { size } from '../sandbox.js';
import type { KubeClient as FullKubeClient, KubeObject } from './client.js';
import { clusterNamespace, DEFAULT_NAMESPACE_PREFIX, labelValue } from './names.js';
import { BUILD_ROLE, MANAGED_BY, NAMESPACE_LABEL, ROLE_LABEL, SERVICE_ACCOUNT } from './objects.js';
import { bytesQuantity, countQuantity, cpuQuantity } from './quantity.js';

/**
 * A cluster namespace per platform namespace (README "A namespace per customer"): the
 * objects, as pure functions of the namespace and its quota, and `TenantNamespaces`, which
 * makes the cluster hold exactly them (`ensure`) or none of them (`remove`).
 */

const ERROR_ID = 'runtime';
const MiB = 1024 * 1024;

// the labels every object of micro carries, and the ServiceAccount its pods run as, are the driver's (objects.ts)
export const OWNER_LABEL = 'micro.dev/owner';
export const PLAN_LABEL = 'micro.dev/plan';
export const QUOTA_NAME = 'micro-quota';
export const LIMITS_NAME = 'micro-limits';
/** where micro server runs (the manifests of deploy/) */
export const DEFAULT_SYSTEM_NAMESPACE = 'micro-system';
/** the label of micro server's pods */
export const SERVER_POD_LABELS: Readonly<Record<string, string>> = Object.freeze({ 'app.kubernetes.io/name': 'micro-server' });
/** micro server's gateway and RPC ports, the only ones tenant pods reach on it */
export const PLATFORM_PORTS = [8080, 8081] as const;
/** what builds fetch from: HTTP(S) for npm, SSH and git for git sources */
export const BUILD_PORTS = [80, 443, 22, 9418] as const;
/** the addresses builds never reach: private, link-local (cloud metadata), shared (CGNAT) */
export const PRIVATE_IPV4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10'] as const;
export const PRIVATE_IPV6 = ['fc00::/7', 'fe80::/10', '::ffff:0:0/96'] as const;
/** the least memory a Node.js service starts in */
export const MIN_MEMORY = 32 * MiB;
/** Kubernetes gives CPU in millicores: 1 is the least */
export const MIN_CPU = 1;

/** The runtime's part of a namespace's quota (quota/limits.ts; null: unlimited). */
export type TenantQuota = Pick<Limits, 'services' | 'instancesPerService' | 'memoryPerInstance' | 'cpuPerInstance'>;

/** What a platform namespace's cluster namespace is made from. */
export interface TenantSpec {
  /** who owns (pays for) the namespace, e.g. a customer id; written as a label value (labelValue); default '' (not known) */
  owner?: string;
  /** the id of its plan; default '' (none: the platform defaults) */
  plan?: string;
  quota: TenantQuota;
}

export interface TenantObjectOptions {
  /** MICRO_KUBERNETES_PREFIX; default `micro-` */
  prefix?: string;
  /** the cluster namespace of micro server; default `micro-system` */
  systemNamespace?: string;
  /** ephemeral storage of a container (its writable folders, logs), bytes; default MICRO_SANDBOX_DISK or 1 GiB, as the local sandbox's disk */
  diskPerContainer?: number;
}

/** How many pods a service may have beyond its instances: one surge pod of a rolling update, or its build. */
export const EXTRA_PODS_PER_SERVICE = 1;
/** Secrets a service may have (the driver keeps one per build: the running one's, the next one's, a build's env). */
export const SECRETS_PER_SERVICE = 4;

function badQuota(detail: string): MicroError {
  return errors.BadRequest(ERROR_ID, `quota: ${detail}`);
}

/**
 * A quota the cluster can hold, or a 400 naming the key: whole numbers, at least
 * MIN_MEMORY / MIN_CPU per instance, and totals (pods × per instance) that are safe
 * integers. Checked before anything is sent to the cluster.
 */
export function checkTenantQuota(quota: unknown): TenantQuota {
  if (typeof quota !== 'object' || quota === null) throw badQuota('must be an object of services, instancesPerService, memoryPerInstance and cpuPerInstance');
  const q = quota as Record<string, unknown>;
  const out = {} as TenantQuota;
  for (const key of ['services', 'instancesPerService', 'memoryPerInstance', 'cpuPerInstance'] as const) {
    const v = q[key];
    if (v === null || v === undefined) {
      out[key] = null;
      continue;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw badQuota(`${key} must be a whole number from 0, or null (unlimited), not ${JSON.stringify(v)}`);
    out[key] = v;
  }
  if (out.memoryPerInstance !== null && out.memoryPerInstance < MIN_MEMORY) {
    throw badQuota(`memoryPerInstance ${out.memoryPerInstance} bytes is less than the ${MIN_MEMORY / MiB} MiB a service needs to start; no pod could run`);
  }
  if (out.cpuPerInstance !== null && out.cpuPerInstance < MIN_CPU) throw badQuota('cpuPerInstance 0 millicores: no pod could run (1 millicore is the least)');
  const pods = podsOf(out);
  if (pods === null) return out;
  if (!Number.isSafeInteger(pods) || !Number.isSafeInteger(SECRETS_PER_SERVICE * (out.services as number))) {
    throw badQuota(`services ${out.services} × instancesPerService ${out.instancesPerService} is more pods than a cluster quota can hold`);
  }
  for (const [key, per] of [['memoryPerInstance', out.memoryPerInstance], ['cpuPerInstance', out.cpuPerInstance]] as const) {
    if (per !== null && !Number.isSafeInteger(pods * per)) {
      throw badQuota(`${key} ${per} for ${pods} pods (services × (instancesPerService + ${EXTRA_PODS_PER_SERVICE})) is more than a cluster quota can hold`);
    }
  }
  return out;
}

function podsOf(q: TenantQuota): number | null {
  return q.services === null || q.instancesPerService === null ? null : q.services * (q.instancesPerService + EXTRA_PODS_PER_SERVICE);
}

function baseLabels(namespace: string): Record<string, string> {
  return { [MANAGED_BY]: 'micro', [NAMESPACE_LABEL]: namespace };
}

function meta(name: string, clusterName: string, namespace: string) {
  return { name, namespace: clusterName, labels: baseLabels(namespace) };
}

/** The Namespace: owner and plan as labels, Pod Security admission at `restricted` (enforced, audited, warned). */
export function namespaceObject(namespace: string, clusterName: string, spec: Pick<TenantSpec, 'owner' | 'plan'>): KubeObject {
  const pss: Record<string, string> = {};
  for (const mode of ['enforce', 'audit', 'warn']) {
    pss[`pod-security.kubernetes.io/${mode}`] = 'restricted';
    pss[`pod-security.kubernetes.io/${mode}-version`] = 'latest';
  }
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: clusterName, labels: { ...baseLabels(namespace), [OWNER_LABEL]: labelValue(spec.owner ?? ''), [PLAN_LABEL]: labelValue(spec.plan ?? ''), ...pss } },
  };
}

/** `micro-service`, which the driver's pods run as, and the namespace's `default`: neither mounts a token, and no binding gives either a right. */
export function serviceAccounts(namespace: string, clusterName: string): KubeObject[] {
  return [SERVICE_ACCOUNT, 'default'].map((name) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(name, clusterName, namespace), automountServiceAccountToken: false }));
}

/**
 * The ResourceQuota: what all pods of the namespace may hold at once. Each service has
 * instancesPerService pods and one more (a rolling update's surge or its build), each as
 * large as memoryPerInstance / cpuPerInstance; requests and limits alike. No persistent
 * volumes, node ports or load balancers: a tenant's services are reached through the
 * gateway only and keep their data in the platform's store.
 */
export function resourceQuota(namespace: string, clusterName: string, quota: TenantQuota): KubeObject {
  const q = checkTenantQuota(quota);
  const hard: Record<string, string> = { persistentvolumeclaims: '0', 'services.nodeports': '0', 'services.loadbalancers': '0' };
  const pods = podsOf(q);
  if (pods !== null) hard.pods = countQuantity(pods);
  if (pods !== null && q.memoryPerInstance !== null) hard['requests.memory'] = hard['limits.memory'] = bytesQuantity(pods * q.memoryPerInstance);
  if (pods !== null && q.cpuPerInstance !== null) hard['requests.cpu'] = hard['limits.cpu'] = cpuQuantity(pods * q.cpuPerInstance);
  if (q.services !== null) {
    hard['count/deployments.apps'] = countQuantity(q.services);
    // a running build and the last finished one (kept for its logs) per service
    hard['count/jobs.batch'] = countQuantity(2 * q.services);
    // a Secret of the build a service runs, of the build an update brings, of a build's env, and one spare
    hard['count/secrets'] = countQuantity(SECRETS_PER_SERVICE * q.services);
    // the cluster's kube-root-ca.crt, made in every namespace, and one per service
    hard['count/configmaps'] = countQuantity(q.services + 1);
    hard['count/services'] = countQuantity(q.services);
  }
  return { apiVersion: 'v1', kind: 'ResourceQuota', metadata: meta(QUOTA_NAME, clusterName, namespace), spec: { hard } };
}

/**
 * The LimitRange: every container at most one instance's memory and CPU, and given that
 * (requests = limits: a pod has what its namespace pays for and is the last evicted)
 * when the pod does not say; ephemeral storage bounded as the local sandbox's disk.
 */
export function limitRange(namespace: string, clusterName: string, quota: TenantQuota, diskPerContainer: number): KubeObject {
  const q = checkTenantQuota(quota);
  const most: Record<string, string> = { 'ephemeral-storage': bytesQuantity(diskPerContainer) };
  if (q.memoryPerInstance !== null) most.memory = bytesQuantity(q.memoryPerInstance);
  if (q.cpuPerInstance !== null) most.cpu = cpuQuantity(q.cpuPerInstance);
  return {
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: meta(LIMITS_NAME, clusterName, namespace),
    spec: { limits: [{ type: 'Container', max: { ...most }, default: { ...most }, defaultRequest: { ...most } }] },
  };
}

function policy(namespace: string, clusterName: string, name: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta(name, clusterName, namespace), spec };
}

function ports(list: readonly number[], protocols: readonly string[] = ['TCP']) {
  return protocols.flatMap((protocol) => list.map((port) => ({ protocol, port })));
}

/** Pods of micro server in its namespace (`kubernetes.io/metadata.name` is set by the API server, so no other namespace can claim it). */
function platformPeer(systemNamespace: string) {
  return { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': systemNamespace } }, podSelector: { matchLabels: { ...SERVER_POD_LABELS } } };
}

/**
 * The NetworkPolicies. Policies add up: `default-deny` selects every pod for ingress and
 * egress with no rule, so a pod reaches and is reached by only what another policy allows:
 * - `allow-same-namespace`: pods of this namespace, both ways;
 * - `allow-dns`: the cluster DNS (kube-system pods `k8s-app: kube-dns`, UDP and TCP 53);
 * - `allow-platform`: micro server's pods in its namespace, on the gateway and RPC ports;
 * - `allow-from-platform`: micro server's pods to the service pods (the gateway calls them);
 * - `allow-build-egress`: build pods only, to public addresses on 80/443/22/9418 (npm, git).
 */
export function networkPolicies(namespace: string, clusterName: string, systemNamespace: string): KubeObject[] {
  const all = {};
  const both = ['Ingress', 'Egress'];
  return [
    policy(namespace, clusterName, 'default-deny', { podSelector: all, policyTypes: both }),
    policy(namespace, clusterName, 'allow-same-namespace', { podSelector: all, policyTypes: both, ingress: [{ from: [{ podSelector: all }] }], egress: [{ to: [{ podSelector: all }] }] }),
    policy(namespace, clusterName, 'allow-dns', {
      podSelector: all,
      policyTypes: ['Egress'],
      egress: [{ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: ports([53], ['UDP', 'TCP']) }],
    }),
    policy(namespace, clusterName, 'allow-platform', { podSelector: all, policyTypes: ['Egress'], egress: [{ to: [platformPeer(systemNamespace)], ports: ports(PLATFORM_PORTS) }] }),
    policy(namespace, clusterName, 'allow-from-platform', {
      podSelector: { matchExpressions: [{ key: ROLE_LABEL, operator: 'NotIn', values: [BUILD_ROLE] }] },
      policyTypes: ['Ingress'],
      ingress: [{ from: [platformPeer(systemNamespace)] }],
    }),
    policy(namespace, clusterName, 'allow-build-egress', {
      podSelector: { matchLabels: { [ROLE_LABEL]: BUILD_ROLE } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: [...PRIVATE_IPV4] } }, { ipBlock: { cidr: '::/0', except: [...PRIVATE_IPV6] } }], ports: ports(BUILD_PORTS) }],
    }),
  ];
}

function diskDefault(options: TenantObjectOptions): number {
  const disk = options.diskPerContainer ?? size(process.env.MICRO_SANDBOX_DISK, '1g', 'MICRO_SANDBOX_DISK');
  if (!Number.isSafeInteger(disk) || disk < MiB) throw new Error(`the disk of a container must be at least 1 MiB, not ${disk}`);
  return disk;
}

/**
 * Every object of a platform namespace's cluster namespace, in the order they are made:
 * the Namespace, its ServiceAccounts, the NetworkPolicies (default-deny first, before any
 * pod can exist), the LimitRange (so the ResourceQuota never meets a pod without limits),
 * the ResourceQuota. 400 for a name or quota the cluster would refuse.
 */
export function tenantObjects(namespace: string, spec: TenantSpec, options: TenantObjectOptions = {}): KubeObject[] {
  const clusterName = clusterNamespace(namespace, options.prefix ?? DEFAULT_NAMESPACE_PREFIX);
  const quota = checkTenantQuota(spec.quota);
  const system = options.systemNamespace ?? DEFAULT_SYSTEM_NAMESPACE;
  return [
    namespaceObject(namespace, clusterName, spec),
    ...serviceAccounts(namespace, clusterName),
    ...networkPolicies(namespace, clusterName, system),
    limitRange(namespace, clusterName, quota, diskDefault(options)),
    resourceQuota(namespace, clusterName, quota),
  ];
}

/**
 * The spec of a namespace from micro server's quotas: the limits in force, the plan's id
 * and its owner (the customer who pays, as billing's PlanSource says). Without quotas
 * (a server built without them) nothing is limited and owner and plan are not known.
 */
export async function tenantSpecFrom(quotas: Pick<Quotas, 'plan' | 'limits'> | undefined, namespace: string): Promise<TenantSpec> {
  if (!quotas) return { quota: { services: null, instancesPerService: null, memoryPerInstance: null, cpuPerInstance: null } };
  const [plan, limits] = await Promise.all([quotas.plan(namespace), quotas.limits(namespace)]);
  const { services, instancesPerService, memoryPerInstance, cpuPerInstance } = limits;
  return { ...(plan?.owner ? { owner: plan.owner } : {}), ...(plan ? { plan: plan.id } : {}), quota: { services, instancesPerService, memoryPerInstance, cpuPerInstance } };
}

// --- making the cluster hold them

/** What the tenant namespaces need of the runtime's client (client.ts). */
export type KubeClient = Pick<FullKubeClient, 'apply' | 'get' | 'list' | 'remove'>;

export interface TenantNamespacesOptions extends TenantObjectOptions {
  client: KubeClient;
  /** where `ensure(namespace)` without a spec reads it (tenantSpecFrom); default none: nothing limited, owner and plan not known */
  quotas?: Pick<Quotas, 'plan' | 'limits'>;
  /** how long `remove` waits for the Namespace to be gone before it answers `terminating`; default 60,000 ms */
  removeTimeoutMs?: number;
  /** how often `remove` looks; default 500 ms */
  pollMs?: number;
}

export interface EnsureReport {
  /** the cluster namespace */
  name: string;
  /** whether this call made the Namespace */
  created: boolean;
  /** `Kind/name` of each object made or put back, `-Kind/name` of each removed; empty when all was as it should be */
  changed: string[];
}

/** `absent`: there was none; `gone`: deleted and gone; `terminating`: deleted, the cluster still removes what was in it */
export type RemoveResult = 'absent' | 'gone' | 'terminating';

/**
 * Kinds of which a tenant namespace holds micro's objects only: any other is removed by
 * `ensure`. NetworkPolicies add up (one left by hand or by an older version could open the
 * namespace), another quota or limit could starve it. (RoleBindings are not listed: only
 * the cluster's administrators can make one, and micro's ServiceAccount needs no RBAC rights.)
 */
const EXCLUSIVE_KINDS: readonly (readonly [string, string])[] = [
  ['networking.k8s.io/v1', 'NetworkPolicy'],
  ['v1', 'ResourceQuota'],
  ['v1', 'LimitRange'],
];

function isSubset(want: Record<string, string> | undefined, have: Record<string, string> | undefined): boolean {
  return Object.entries(want ?? {}).every(([k, v]) => have?.[k] === v);
}

/** Whether `current` holds what `desired` says: its labels and annotations among current's, every other field of desired equal. */
function holds(desired: KubeObject, current: KubeObject): boolean {
  if (!isSubset(desired.metadata.labels, current.metadata.labels) || !isSubset(desired.metadata.annotations, current.metadata.annotations)) return false;
  return Object.keys(desired).every((k) => k === 'apiVersion' || k === 'kind' || k === 'metadata' || isDeepStrictEqual(desired[k], current[k]));
}

/** What is written back to put an object right: what it has, with micro's fields and labels over it. */
function corrected(desired: KubeObject, current: KubeObject): KubeObject {
  const metadata = { ...current.metadata, labels: { ...current.metadata.labels, ...desired.metadata.labels } };
  if (desired.metadata.annotations) metadata.annotations = { ...current.metadata.annotations, ...desired.metadata.annotations };
  return { ...current, ...desired, metadata };
}

function terminating(ns: KubeObject): boolean {
  return ns.metadata.deletionTimestamp !== undefined || (ns.status as { phase?: string } | undefined)?.phase === 'Terminating';
}

function describe(obj: { kind: string; metadata: { name: string } }): string {
  return `${obj.kind}/${obj.metadata.name}`;
}

/** The status an error of the client carries (KubeError: a MicroError; anything else: none). */
function codeOf(err: unknown): number | undefined {
  return err instanceof MicroError ? err.code : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof MicroError ? err.detail : err instanceof Error ? err.message : String(err);
}

/**
 * The cluster namespaces of platform namespaces. `ensure` makes the cluster hold exactly
 * the objects of `tenantObjects` — creating what is missing, putting back what was changed
 * by hand, removing policies, bindings, quotas and limits that are not micro's — and
 * `remove` deletes the Namespace (the cluster deletes what is in it). Both touch nothing
 * outside the namespace's own cluster namespace, and refuse a cluster namespace of that
 * name that micro did not make for this platform namespace (409).
 *
 * A failure half-way: when this call made the Namespace, it deletes it again (nothing is
 * left; if even that fails, the next ensure completes it and the purge removes it); when
 * the Namespace was there before (a quota change, a repair), what was done stays and the
 * next ensure completes it — deleting a namespace that runs services would stop them.
 * Calls for one namespace run one at a time in this process; across processes (nodes)
 * they converge on the same objects (the client retries conflicts on a fresh read).
 */
export class TenantNamespaces {
  readonly prefix: string;
  private readonly client: KubeClient;
  private readonly queue = new Map<string, Promise<unknown>>();

  constructor(private readonly options: TenantNamespacesOptions) {
    this.client = options.client;
    this.prefix = options.prefix ?? DEFAULT_NAMESPACE_PREFIX;
  }

  /** The cluster namespace of a platform namespace (400 when it cannot have one). */
  clusterName(namespace: string): string {
    return clusterNamespace(namespace, this.prefix);
  }

  /**
   * Makes the namespace's cluster namespace and its objects as `spec` says (default: as the
   * quotas say now, tenantSpecFrom); 400 for a name or quota the cluster would refuse,
   * before any request.
   */
  async ensure(namespace: string, spec?: TenantSpec): Promise<EnsureReport> {
    this.clusterName(namespace);
    const objects = tenantObjects(namespace, spec ?? (await tenantSpecFrom(this.options.quotas, namespace)), { ...this.options, prefix: this.prefix });
    return this.serial(namespace, () => this.converge(namespace, objects));
  }

  /** Deletes the namespace's cluster namespace and waits up to `waitMs` (default removeTimeoutMs) until it is gone. */
  async remove(namespace: string, waitMs = this.options.removeTimeoutMs ?? 60_000): Promise<RemoveResult> {
    const name = this.clusterName(namespace);
    return this.serial(namespace, async () => {
      try {
        return await this.delete(namespace, name, waitMs);
      } catch (err) {
        throw this.failure(name, 'could not be removed', err, '; remove it again');
      }
    });
  }

  /**
   * The platform namespaces whose cluster namespaces micro made with this prefix: labelled
   * `managed-by: micro` and named prefix + their `micro.dev/namespace`. Another platform's
   * on the same cluster (another prefix), or one whose label was changed by hand, is not
   * listed, so nothing acting on the list touches it.
   */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const ns of await this.client.list<KubeObject>('v1', 'Namespace', undefined, `${MANAGED_BY}=micro`)) {
      const namespace = ns.metadata.labels?.[NAMESPACE_LABEL];
      if (namespace !== undefined && this.ownName(namespace) === ns.metadata.name) out.push(namespace);
    }
    return out.sort();
  }

  /** The cluster namespace of a platform namespace, or undefined for a name that cannot have one. */
  private ownName(namespace: string): string | undefined {
    try {
      return this.clusterName(namespace);
    } catch {
      return undefined;
    }
  }

  /** The step of the namespace purge (purge/): its cluster namespace removed, or being removed by the cluster. */
  purgeStep(): { name: string; run(namespace: string): Promise<void> } {
    return { name: 'kubernetes', run: async (namespace) => void (await this.remove(namespace)) };
  }

  private serial<T>(namespace: string, fn: () => Promise<T>): Promise<T> {
    const before = this.queue.get(namespace) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.queue.set(namespace, settled);
    void settled.then(() => {
      if (this.queue.get(namespace) === settled) this.queue.delete(namespace);
    });
    return run;
  }

  /** The Namespace, when micro made it for this platform namespace; a 409 for any other of the name. */
  private async owned(namespace: string, name: string): Promise<KubeObject | undefined> {
    const current = await this.client.get<KubeObject>('v1', 'Namespace', name);
    if (!current) return undefined;
    const labels = current.metadata.labels ?? {};
    if (labels[MANAGED_BY] !== 'micro' || labels[NAMESPACE_LABEL] !== namespace) {
      throw errors.Conflict(ERROR_ID, `the cluster namespace ${name} exists and was not made by micro for namespace ${namespace} (labels ${MANAGED_BY}=micro, ${NAMESPACE_LABEL}=${namespace}); micro neither uses nor deletes it`);
    }
    return current;
  }

  private async converge(namespace: string, objects: KubeObject[]): Promise<EnsureReport> {
    const [nsObject, ...inside] = objects as [KubeObject, ...KubeObject[]];
    const report: EnsureReport = { name: nsObject.metadata.name, created: false, changed: [] };
    let step = describe(nsObject);
    try {
      const current = await this.owned(namespace, report.name);
      if (current && terminating(current)) throw errors.Conflict(ERROR_ID, `the cluster namespace ${report.name} is being deleted; try again once it is gone`);
      report.created = current === undefined;
      await this.put(nsObject, current, report);
      for (const obj of inside) {
        step = describe(obj);
        await this.put(obj, report.created ? undefined : await this.client.get(obj.apiVersion, obj.kind, obj.metadata.name, report.name), report);
      }
      for (const [apiVersion, kind] of EXCLUSIVE_KINDS) {
        step = `the ${kind}s`;
        await this.prune(apiVersion, kind, report.name, inside, report);
      }
      return report;
    } catch (err) {
      throw await this.failed(report, step, err);
    }
  }

  private async put(desired: KubeObject, current: KubeObject | undefined, report: EnsureReport): Promise<void> {
    if (current && holds(desired, current)) return;
    await this.client.apply(current ? corrected(desired, current) : desired);
    report.changed.push(describe(desired));
  }

  private async prune(apiVersion: string, kind: string, name: string, ours: KubeObject[], report: EnsureReport): Promise<void> {
    const keep = new Set(ours.filter((o) => o.kind === kind).map((o) => o.metadata.name));
    for (const obj of await this.client.list<KubeObject>(apiVersion, kind, name)) {
      if (keep.has(obj.metadata.name)) continue;
      await this.client.remove(apiVersion, kind, obj.metadata.name, name);
      report.changed.push(`-${kind}/${obj.metadata.name}`);
    }
  }

  /** The error of a failed ensure, after deleting the Namespace again when this call made it. */
  private async failed(report: EnsureReport, step: string, err: unknown): Promise<MicroError> {
    let after = report.changed.length > 0 ? '; what was done stays, and the next ensure completes it' : '; the next ensure completes it';
    if (report.created) {
      after = await this.client.remove('v1', 'Namespace', report.name).then(
        () => '; the namespace this call made was deleted again: nothing is left',
        (e: unknown) => `; the namespace this call made could not be deleted either (${messageOf(e)}): the next ensure completes it, the purge removes it`,
      );
    }
    return this.failure(report.name, `could not be prepared (${step})`, err, after);
  }

  /** The client's error said for the namespace: 400 (the cluster found an object invalid) and 409 stay, anything else is a 503. */
  private failure(name: string, what: string, err: unknown, after: string): MicroError {
    if (err instanceof MicroError && err.id === ERROR_ID) return err;
    const code = codeOf(err);
    const detail = `the cluster namespace ${name} ${what}: ${messageOf(err)}${after}`;
    if (code === 400 || code === 422) return errors.BadRequest(ERROR_ID, detail);
    if (code === 409) return errors.Conflict(ERROR_ID, detail);
    return errors.ServiceUnavailable(ERROR_ID, detail);
  }

  private async delete(namespace: string, name: string, waitMs: number): Promise<RemoveResult> {
    const current = await this.owned(namespace, name);
    if (!current) return 'absent';
    if (!terminating(current)) await this.client.remove('v1', 'Namespace', name);
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (!(await this.client.get('v1', 'Namespace', name))) return 'gone';
      if (Date.now() >= deadline) return 'terminating';
      await new Promise((resolve) => setTimeout(resolve, this.options.pollMs ?? 500));
    }
  }
}
