import { quotaService } from '@micro/sdk';
import type { CoreContext, CoreServiceFactory } from '../core.js';
import { quotaHandlers } from './handlers.js';
import type { Quotas } from './quotas.js';
import type { Limits } from './limits.js';

export { quotaExceeded, checkSettings, defaultsFromEnv, resolveLimits, LIMIT_KEYS, BUILT_IN_DEFAULTS, MAX_LIMIT, QUOTA_ERROR_ID, UNLIMITED_NAMESPACE } from './limits.js';
export type { LimitKey, Limits, LimitSettings, Usage } from './limits.js';
export type { Quotas, Counted, UsageSource, NamespacePlan, PlanSource } from './quotas.js';
export { openSqliteQuotas } from './sqlite.js';
export { quotaHandlers } from './handlers.js';
export type { QuotaHandlerOptions } from './handlers.js';

/**
 * The quota service micro server hosts in namespace micro, over the quotas the server
 * opened for its profile (ctx.quotas: SQLite in <home>/data/quota.db, or PostgreSQL). A change
 * is told to the runtime (ctx.namespaceHook: on Kubernetes the namespace's ResourceQuota follows).
 */
export const quotaCoreService: CoreServiceFactory = (ctx) => {
  const hook = ctx.namespaceHook;
  return { def: quotaService, handlers: quotaHandlers(quotasOf(ctx), hook ? { changed: (namespace) => void hook.changed(namespace) } : {}) };
};

/** The server's quotas; a context without them is a server built without quotas, which is a wiring mistake. */
export function quotasOf(ctx: CoreContext): Quotas {
  if (!ctx.quotas) throw new Error('micro server opened no quotas (CoreContext.quotas)');
  return ctx.quotas;
}

/** The limits a store engine checks its writes against (none when the server has no quotas). */
export function storeLimits(ctx: CoreContext): ((namespace: string) => Promise<Limits>) | undefined {
  const quotas = ctx.quotas;
  return quotas ? (namespace) => quotas.limits(namespace) : undefined;
}

/** Opens the quotas of a profile: SQLite in the data folder (local), PostgreSQL shared by the nodes (nats). */
export async function openQuotas(profile: CoreContext['profile'], dataDir: string): Promise<Quotas> {
  if (profile.name === 'nats') return (await import('./postgres.js')).openPostgresQuotas({ url: profile.postgresUrl, prefix: profile.prefix });
  const { join } = await import('node:path');
  return (await import('./sqlite.js')).openSqliteQuotas({ path: join(dataDir, 'quota.db') });
}
