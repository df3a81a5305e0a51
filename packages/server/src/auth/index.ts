import { AUTH_PUBLIC_ENDPOINTS, authApi, isPublicService } from '@micro/sdk';
import type { CoreContext, CoreServiceFactory } from '../core.js';
import type { Quotas } from '../quota/quotas.js';
import { authHandlers } from './service.js';

export { Accounts, LIMITS } from './accounts.js';
export type { AccountsOptions, NewAccount } from './accounts.js';
export { Tokens, ACCESS_TTL } from './tokens.js';
export type { TokensOptions } from './tokens.js';
export { authenticate, namespaceFor, isAdmin, requireAdmin, isNamespaceAdmin, adminNamespaceFor } from './guard.js';
export { authHandlers } from './service.js';
export type { AuthAccounts, AuthTokens, ApiKeyStorage, SessionStorage, RuleStorage, MaybePromise } from './storage.js';
export { openAuthStorage, authKeyFromEnv } from './open.js';
export { nodeId } from '../home.js';
// the PostgreSQL storage (nats profile) is in ../nats.ts, so that the local profile never loads pg

/** The auth core service: its handlers over the server's accounts and tokens; closes the database on stop. */
export const authCoreService: CoreServiceFactory = (c) => ({
  def: authApi,
  handlers: authHandlers(c.accounts, c.tokens, undefined, undefined, keyQuota(c), async (service) =>
    (await c.registry.getService(service, { namespace: 'micro' })).some(isPublicService),
  ),
  publicEndpoints: [...AUTH_PUBLIC_ENDPOINTS],
  stop: async () => {
    await c.accounts.close();
  },
});

/** The apiKeys quota: the key engines check it on create; quota.Read shows the keys a namespace has. */
function keyQuota(c: CoreContext): Quotas | undefined {
  c.quotas?.addSource(async (namespace) => ({ apiKeys: (await c.accounts.keys.list(namespace)).length }));
  return c.quotas;
}
