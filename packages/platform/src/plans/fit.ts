import type { LimitKey, Quotas } from '@micro/server/engine';
import { namespacePlan, type Plan } from './plans.js';

/**
 * Whether a payer's namespaces fit a plan it changes to: what each uses (the quotas'
 * usage sources: store, keys, runtime, members…) against the limits it would have. A
 * change that does not fit is refused with what to remove first.
 *
 * The limit a namespace would have, per key: its own setting where it keeps one, else the
 * new plan's. A setting above the new plan's limit is dropped by the change when the
 * change lowers that key (owners set limits within their plan: a downgrade takes them
 * down with it); staff's settings on keys the change does not lower stay.
 */

/** What a tenant removes to bring each counted limit down, by how much. */
const REMOVE: Partial<Record<LimitKey, (n: number) => string>> = {
  services: (n) => `kill ${n} service${n === 1 ? '' : 's'}`,
  apiKeys: (n) => `revoke ${n} API key${n === 1 ? '' : 's'}`,
  members: (n) => `remove ${n} member${n === 1 ? '' : 's'} or invite${n === 1 ? '' : 's'}`,
  storeRecords: (n) => `delete ${n} store record${n === 1 ? '' : 's'}`,
  storeBytes: (n) => `delete ${n} bytes of store records`,
  blobBytes: (n) => `delete ${n} bytes of blobs`,
  cacheBytes: (n) => `delete ${n} bytes of cache keys`,
  eventsBytes: (n) => `remove ${n} bytes of events`,
};

export interface Misfit {
  namespace: string;
  key: LimitKey;
  used: number;
  limit: number;
}

export interface Fit {
  /** what is used past the new limits (empty: it fits) */
  misfits: Misfit[];
  /** per namespace, the settings the change drops */
  dropped: Map<string, LimitKey[]>;
}

type FitQuotas = Pick<Quotas, 'usage' | 'settings' | 'defaults'>;

export async function fitOf(quotas: FitQuotas, namespaces: readonly string[], from: Plan, to: Plan): Promise<Fit> {
  const before = { ...quotas.defaults, ...namespacePlan(from).limits };
  const after = { ...quotas.defaults, ...namespacePlan(to).limits };
  const fit: Fit = { misfits: [], dropped: new Map() };
  for (const namespace of namespaces) {
    const [usage, settings] = await Promise.all([quotas.usage(namespace), quotas.settings(namespace)]);
    const dropped: LimitKey[] = [];
    for (const key of Object.keys(REMOVE) as LimitKey[]) {
      const own = settings[key];
      const lowered = after[key] < before[key] && own !== undefined && own > after[key];
      if (lowered) dropped.push(key);
      const limit = own === undefined || lowered ? after[key] : own;
      const used = usage[key] ?? 0;
      if (used > limit) fit.misfits.push({ namespace, key, used, limit });
    }
    if (dropped.length) fit.dropped.set(namespace, dropped);
  }
  return fit;
}

/** "remove 2 members or invites and kill 3 services in acme (members 3 of 1, services 8 of 5); …" */
export function whatToRemove(misfits: readonly Misfit[]): string {
  const byNamespace = new Map<string, Misfit[]>();
  for (const m of misfits) byNamespace.set(m.namespace, [...(byNamespace.get(m.namespace) ?? []), m]);
  return [...byNamespace]
    .map(([ns, list]) => {
      const todo = list.map((m) => (REMOVE[m.key] as (n: number) => string)(m.used - m.limit));
      const said = todo.length > 1 ? `${todo.slice(0, -1).join(', ')} and ${todo.at(-1)}` : todo[0];
      return `${said} in ${ns} (${list.map((m) => `${m.key} ${m.used} of ${m.limit}`).join(', ')})`;
    })
    .join('; ');
}
