import { brokerHandlers, type BlobStore, type Broker, type Events, type brokerService, type Handlers, type Logger, type Profile, type Registry, type ServiceDef } from '@micro/sdk';
import { namespaceFor } from './auth/guard.js';
import type { AuthAccounts, AuthTokens } from './auth/storage.js';
import type { Quotas } from './quota/quotas.js';
import type { NamespaceHook } from './runtime/runtime.js';
import type { PurgeReport } from './purge/index.js';
import type { WebhookRoute } from './gateway/webhooks.js';
import type { GatewayPrices } from './gateway/openapi.js';
import type { GatewayMeter } from './gateway/meter.js';

/**
 * What micro server gives each of its core services: where to keep data, the shared
 * registry and broker, the accounts and tokens of auth.
 */
export interface CoreContext {
  /** MICRO_HOME */
  home: string;
  /** the engines of this server: embedded (local) or shared by several nodes (nats) */
  profile: Profile;
  /** <home>/data (0700): each engine keeps its database here, e.g. data/store.db */
  dataDir: string;
  logger: Logger;
  registry: Registry;
  broker: Broker;
  accounts: AuthAccounts;
  tokens: AuthTokens;
  /** per-namespace limits and usage (quota/); absent: nothing is limited (engines built alone, in tests) */
  quotas?: Quotas;
  /**
   * Deletes everything a namespace holds in every core service (purge/): for the platform
   * services of `micro` only (signup's DeleteCustomer); no endpoint reaches it. Absent when
   * the services are built alone (tests).
   */
  purge?(namespace: string): Promise<PurgeReport>;
  /**
   * What the runtime is told of the platform's namespaces (runtime.ts NamespaceHook): with
   * MICRO_RUNTIME=kubernetes, a namespace made active or whose plan or quota changed gets
   * its cluster namespace ensured. Absent: the runtime needs nothing (local).
   */
  namespaceHook?: NamespaceHook;
}

/**
 * A core service as micro server hosts it: its contract, its handlers (which apply the
 * namespace rule with `namespaceFor` from auth/guard.ts), the endpoints that need no
 * credentials, and the engine's life cycle.
 */
export interface CoreService {
  def: ServiceDef;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each service has its own handler types
  handlers: Handlers<any>;
  /** endpoints callable without a token (default none) */
  publicEndpoints?: string[];
  /** called after the server listens, before it says it is ready */
  start?(): Promise<void>;
  /** called when the server stops (close databases, timers) */
  stop?(): Promise<void>;
  /** the blob store (the store service's), which the runtime reads uploaded sources from */
  blobs?: BlobStore;
  /** the events engine, whose consumer groups the stats service reports (issue 7) */
  events?: Pick<Events, 'topics' | 'groups'>;
  /** deletes what the namespace holds in this service's engine (see purge/); safe to call again */
  purge?(namespace: string): Promise<void>;
  /** raw HTTP routes the gateway serves as `POST /webhooks/<name>` (gateway/webhooks.ts): a provider's callbacks, unparsed */
  webhooks?: Record<string, WebhookRoute>;
  /** the price of an endpoint served from namespace `home` (the platform's pricing service): /openapi.json shows it */
  prices?: GatewayPrices;
  /** the meter of the gateway's priced calls (gateway/meter.ts); at most one core service gives one */
  meter?: GatewayMeter;
}

export type CoreServiceFactory = (ctx: CoreContext) => CoreService | Promise<CoreService>;

// the registry service with who may register what: registry/guard.ts
export { guardedRegistry } from './registry/guard.js';
export type { RegistryGuardOptions } from './registry/guard.js';

/**
 * The broker service with the namespace rule applied: each request acts in the caller's
 * namespace unless an admin of `micro` names another.
 */
export function guardedBroker(broker: Broker): Handlers<typeof brokerService> {
  const h = brokerHandlers(broker);
  return {
    Publish: (req, ctx) => h.Publish({ ...req, namespace: namespaceFor(ctx, req.namespace) }),
    Subscribe: (req, ctx) => h.Subscribe({ ...req, namespace: namespaceFor(ctx, req.namespace) }, ctx),
  };
}

/**
 * A positive whole number from the environment (a core service's bound), or undefined when
 * the variable is unset or empty; anything else stops the server with what to write.
 */
export function positiveFromEnv(name: string, what = 'integer'): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive ${what}, not "${raw}"`);
  return n;
}
