/**
 * The part of the generic Kubernetes client (`client.ts`, the driver's) that the tenant
 * namespaces use, as the shared design fixes it. Kept in a file of its own so that
 * `tenant.ts` depends on the contract only; `client.ts`'s `KubeClient` has these methods
 * (and watch and logs for the driver), so it is assignable to this one.
 */

export interface KubeMetadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
  ownerReferences?: unknown[];
  [k: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: KubeMetadata;
  [k: string]: unknown;
}

export interface KubeClient {
  /** creates the object, or, when it exists, replaces it with this one (keeping resourceVersion; a 409 Conflict is retried on a fresh read) */
  apply<T extends KubeObject>(obj: T): Promise<T>;
  /** the object, or undefined when there is none (404) */
  get<T extends KubeObject>(apiVersion: string, kind: string, name: string, namespace?: string): Promise<T | undefined>;
  list<T extends KubeObject>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<T[]>;
  /** deletes (propagationPolicy Background); a 404 is not an error */
  remove(apiVersion: string, kind: string, name: string, namespace?: string): Promise<void>;
}
