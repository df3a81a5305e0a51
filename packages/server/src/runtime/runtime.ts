import type { RuntimeService } from '@micro/sdk';
import type { CreateRequest, ProgressFn, UpdateRequest } from './local.js';
import type { LogLine, LogsRequest } from './logs.js';
import type { TenantNamespaces } from './kubernetes/tenant.js';

/**
 * What `micro server` needs of a runtime driver: the endpoints of the runtime contract
 * (handlers.ts), start and stop, the namespace's service count for quotas and the purge.
 * The drivers: `LocalRuntime` (local.ts: child processes on this machine) and
 * `KubernetesRuntime` (kubernetes/runtime.ts: Deployments in a cluster). Both pass one
 * contract suite (contract.ts), so the CLI and the dashboard cannot tell them apart.
 */
export interface Runtime {
  /** brings back what ran before (local) or connects to what runs (Kubernetes) */
  start(): Promise<void>;
  /** stops what this server runs for itself; services that should run stay recorded */
  stop(): Promise<void>;
  /** `micro run`: builds and starts a service, reporting progress */
  create(req: CreateRequest, onProgress?: ProgressFn): Promise<RuntimeService>;
  /** `micro status`: the services of a namespace, or one of them (404 when it is not run) */
  read(req: { name?: string | undefined; namespace?: string | undefined }): Promise<{ services: RuntimeService[] }>;
  /** `micro update`: builds again and replaces the instances with no failed call */
  update(req: UpdateRequest, onProgress?: ProgressFn): Promise<RuntimeService>;
  /** `micro kill`: stops the service and forgets it */
  delete(req: { name: string; namespace?: string | undefined }): Promise<void>;
  /** `micro logs`: the last lines, then with follow new ones until `signal` aborts */
  logs(req: LogsRequest, signal?: AbortSignal): AsyncGenerator<LogLine>;
  /** how many services a namespace has (its `services` quota) */
  usage(namespace: string): Promise<{ services: number }>;
  /** removes everything of a namespace (the server's purge) */
  purgeNamespace(namespace: string): Promise<void>;
  /** where a tenant's registry nodes may serve from, when the driver decides it (Kubernetes: its pods' addresses); else the sandbox's rule */
  addressAllowed?(namespace: string, address: string): boolean | Promise<boolean>;
  /** the cluster namespaces of platform namespaces (Kubernetes): the purge removes a namespace's in a step of its own, after the runtime's */
  readonly tenants?: Pick<TenantNamespaces, 'purgeStep'>;
  /** what the platform tells the runtime of its namespaces (Kubernetes: each one's cluster namespace made and kept up to date); absent: nothing to tell */
  readonly namespaceHook?: NamespaceHook;
}

/**
 * Which namespaces the platform has, as the runtime's reconcile asks (the platform's signup
 * gives it): those in use, and whether one was deleted. A namespace the source does not
 * know (made with `micro auth`, by the staff) is neither made nor removed by the reconcile.
 */
export interface NamespaceSource {
  /** every namespace in use (signup: active) */
  active(): AsyncIterable<string>;
  /** whether the namespace was deleted (its place in the runtime goes) */
  deleted(namespace: string): Promise<boolean>;
}

/**
 * The hook from the platform to the runtime (CoreContext.namespaceHook). The platform calls
 * `changed` when a namespace becomes active or its plan, owner or quota changes; with
 * MICRO_RUNTIME=kubernetes the runtime then ensures its cluster namespace as the quotas say
 * now, and a reconcile (kubernetes/reconcile.ts) retries what failed and makes and removes
 * what the source says is missing or deleted.
 */
export interface NamespaceHook {
  /** resolves once applied, or failed (logged, retried later): it never rejects, so the platform's own step never fails for it */
  changed(namespace: string): Promise<void>;
  /** where the reconcile learns which namespaces exist (undefined: nowhere, it only retries what failed) */
  setSource(source: NamespaceSource | undefined): void;
}

export type { CreateRequest, ProgressFn, UpdateRequest } from './local.js';
