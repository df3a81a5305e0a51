/**
 * The internal entry of @micro/server (`@micro/server/engine`) for the sibling packages
 * that add services to micro server (`@micro/platform`): how a core service is made and
 * hosted, the engines' helpers, the namespace rule. Service authors import `@micro/sdk`;
 * nothing here is for them.
 */
export type { CoreContext, CoreService, CoreServiceFactory } from './core.js';
export type { NamespaceHook, NamespaceSource } from './runtime/runtime.js';
export { positiveFromEnv } from './core.js';
export type { WebhookRequest, WebhookAnswer, WebhookRoute } from './gateway/webhooks.js';
export { namespaceFor, adminNamespaceFor, requireAdmin, isAdmin, isNamespaceAdmin, authenticate } from './auth/guard.js';
export { LoginThrottle, sourceOf } from './auth/throttle.js';
export type { LoginThrottleOptions } from './auth/throttle.js';
export type { AuthAccounts, AuthTokens } from './auth/storage.js';
export { openPostgres, migrate, quoteSchema, isConnectionError, SchemaVersionError } from './postgres/index.js';
export type { Postgres, PostgresOptions, Queryable, Migration } from './postgres/index.js';
export { openDatabase, ensureSchema, DeferredSyncDatabase } from './sqlite.js';
export { Sealer, SecretHasher } from './auth/crypto.js';
export { roleOf, roleCheck } from './auth/roles.js';
export type { TeamRole } from './auth/roles.js';
/** the local engines of two core services, for the platform's tests of team roles through the real guard */
export { storeFactory } from './store/index.js';
export { configCoreService } from './config/index.js';
export { checkPurgeNamespace, PURGE_ERROR_ID } from './purge/index.js';
export type { PurgeReport } from './purge/index.js';
/** the one refusal of every quota, and the quotas (CoreContext.quotas), for the platform's own limits (members) */
export { quotaExceeded, checkSettings, LIMIT_KEYS, MAX_LIMIT } from './quota/limits.js';
export type { LimitKey, LimitSettings, Limits, Usage } from './quota/limits.js';
export type { Quotas, NamespacePlan, PlanSource } from './quota/quotas.js';
export { openQuotas } from './quota/index.js';
/** the gateway's metering hook, which the platform's meter implements (CoreService.meter), and its refusals */
export type { GatewayMeter, MeteredCall, MeterTicket } from './gateway/meter.js';
export { credentialsRequired } from './gateway/meter.js';
export { RateLimited } from './gateway/quota.js';
