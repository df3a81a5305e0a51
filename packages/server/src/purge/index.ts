import { errors, MicroError, NAMESPACE_NAME, type Registry } from '@micro/sdk';
import type { AuthAccounts } from '../auth/storage.js';

/**
 * The purge of a namespace: everything it holds in every core service deleted, for the
 * platform's deletion of a customer (signup's DeleteCustomer). micro server runs the steps
 * (MicroServer.purgeNamespace) and hands the entry point to its core services only
 * (`CoreContext.purge`): no endpoint reaches it, so a tenant cannot call it.
 *
 * The steps run in this order: the runtime (its services stop, so nothing of the namespace
 * writes any more), auth (its tokens revoked, then its accounts, keys, sessions and rules
 * deleted: no caller of it is let in any more), the registry, then each core service's
 * engine (store and blobs, config, events, cache) and the quotas. Every step runs even when
 * an earlier one failed, and every step is safe to run again: a failed purge says which
 * steps failed, and the caller retries.
 */

export const PURGE_ERROR_ID = 'micro.purge';
const MAX_NAMESPACE = 63;
/** rounds of deregistering a namespace's services before giving up (they would be re-registering) */
const REGISTRY_ROUNDS = 10;

export interface PurgeReport {
  namespace: string;
  /** the steps that ran, in order (`runtime`, `auth`, `registry`, then the core services by name, `quota`) */
  purged: string[];
}

export interface PurgeStep {
  name: string;
  run(namespace: string): Promise<void>;
}

/** A namespace that may be purged: a namespace name, and never `micro` (the platform's own). */
export function checkPurgeNamespace(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAMESPACE || !NAMESPACE_NAME.test(value)) {
    throw errors.BadRequest(PURGE_ERROR_ID, `namespace: ${JSON.stringify(String(value).slice(0, 64))} is not a namespace name`);
  }
  if (value === 'micro') throw errors.Forbidden(PURGE_ERROR_ID, 'namespace: micro is the platform\'s own and cannot be purged');
  return value;
}

/** Runs every step for the namespace; a 503 naming the steps that failed when any did. */
export async function purgeNamespace(namespace: unknown, steps: readonly PurgeStep[]): Promise<PurgeReport> {
  const ns = checkPurgeNamespace(namespace);
  const purged: string[] = [];
  const failed: string[] = [];
  for (const step of steps) {
    try {
      await step.run(ns);
      purged.push(step.name);
    } catch (err) {
      failed.push(`${step.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (failed.length > 0) {
    throw errors.ServiceUnavailable(PURGE_ERROR_ID, `the purge of namespace ${ns} is not complete (${failed.join('; ')}); purge it again`);
  }
  return { namespace: ns, purged };
}

/**
 * Auth's part: the access tokens of every account revoked first (they are JWTs, valid
 * without a lookup until they expire), then the accounts with their secrets, API keys and
 * sessions, the rules and the name deleted; accounts made meanwhile are revoked after.
 */
export async function purgeAuth(accounts: AuthAccounts, namespace: string, now: () => number = Date.now): Promise<void> {
  const revoke = async (ids: Iterable<string>) => {
    for (const id of ids) await accounts.revocations.add({ kind: 'account', id: `${namespace}/${id}`, before: Math.floor(now() / 1000) });
  };
  const listed = new Set<string>();
  let after = '';
  for (;;) {
    const { accounts: page, next } = await accounts.list(namespace, 100, after);
    for (const a of page) listed.add(a.id);
    if (!next) break;
    after = next;
  }
  await revoke(listed);
  const gone = await accounts.purgeNamespace(namespace);
  await revoke(gone.filter((id) => !listed.has(id)));
}

/** The registry's part: every node of every service of the namespace deregistered. */
export async function purgeRegistry(registry: Registry, namespace: string): Promise<void> {
  for (let round = 0; round < REGISTRY_ROUNDS; round++) {
    const services = await registry.listServices({ namespace });
    if (services.length === 0) return;
    for (const service of services) {
      await registry.deregister(service, { namespace }).catch((err: unknown) => {
        if (!(err instanceof MicroError && err.code === 404)) throw err;
      });
    }
  }
  throw errors.Conflict(PURGE_ERROR_ID, `services of namespace ${namespace} kept registering while they were removed`);
}
