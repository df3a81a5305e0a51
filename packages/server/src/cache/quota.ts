import type { MemoryCacheQuota } from '@micro/sdk';
import type { CoreContext } from '../core.js';
import { quotaExceeded } from '../quota/limits.js';

/**
 * The cacheBytes quota of a server's cache engine: the limit read from the quotas on
 * every growing write (no cache of it, so a Set applies to the next write on every node),
 * the refusal the one 403 of every quota. Undefined when the server has no quotas
 * (engines built alone run unchecked), and the engine then counts nothing against one.
 */
export function cacheQuota(ctx: Pick<CoreContext, 'quotas'>): MemoryCacheQuota | undefined {
  const quotas = ctx.quotas;
  if (!quotas) return undefined;
  return {
    limit: async (namespace) => (await quotas.limits(namespace)).cacheBytes,
    refuse: (namespace, used, max) => quotaExceeded('cacheBytes', used, max, namespace),
  };
}
