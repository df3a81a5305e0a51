import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, AppsV1Api, BatchV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, Log, Watch } from '@kubernetes/client-node';
import type { FakeKubernetes } from './index.js';
import type { Status } from './status.js';

/**
 * What the fake's tests (and the driver's) share: the official client configured for a
 * fake, the Status of a failed call, waiting for a condition, and small node scripts that
 * play the part of containers.
 */

export interface Clients {
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  batch: BatchV1Api;
  objects: KubernetesObjectApi;
  watch: Watch;
  log: Log;
}

export function clients(fake: FakeKubernetes): Clients {
  const kc = new KubeConfig();
  kc.loadFromFile(fake.kubeconfig);
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    batch: kc.makeApiClient(BatchV1Api),
    objects: KubernetesObjectApi.makeApiClient(kc),
    watch: new Watch(kc),
    log: new Log(kc),
  };
}

/** the Status the API server answered a failed call of the client with */
export function statusOf(err: unknown): Status {
  if (!(err instanceof ApiException)) throw err;
  const body = (err as ApiException<unknown>).body;
  const parsed = typeof body === 'string' ? (JSON.parse(body) as Status) : (body as Status);
  if (parsed?.kind !== 'Status') throw new Error(`not a Status: ${String(body)}`);
  return parsed;
}

/** the Status of the call's failure; fails when the call succeeds */
export async function refused(call: Promise<unknown>): Promise<Status> {
  try {
    await call;
  } catch (err) {
    return statusOf(err);
  }
  throw new Error('the call succeeded but was expected to be refused');
}

/** polls `check` until it answers something truthy (or throws after `timeoutMs` with the last answer) */
export type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

export async function until<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 20): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as Truthy<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** a temporary folder of node scripts playing containers; `remove()` when done */
export function scripts(files: Record<string, string>): { dir: string; path(name: string): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fake-k8s-scripts-'));
  for (const [name, code] of Object.entries(files)) writeFileSync(join(dir, name), code);
  return { dir, path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** a pod's containers made to pass Pod Security `restricted` */
export const RESTRICTED_CONTAINER = {
  securityContext: { runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
};
