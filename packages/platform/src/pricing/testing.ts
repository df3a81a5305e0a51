import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bearer, Client, createClient, createLogger, endpointRecord, MemoryBroker, type Profile, type ServiceDef, type TypedClient } from '@micro/sdk';
import type { CoreContext, CoreService } from '@micro/server/engine';
import { startAuthHarness, type AuthHarness } from '@micro/server/testing';
import { hostCoreServices } from '../core-testing.js';
import { PlatformHub } from '../hub.js';
import { pricingService } from './definition.js';
import { createPricing, type PricingServiceOptions } from './index.js';
import type { PlatformPricing } from './prices.js';

/**
 * The pricing service as micro server hosts it: its factory on a CoreContext over a real
 * auth storage and the hub's billing engines (SQLite in a temporary home, or the test's
 * PostgreSQL schema), behind the server's guard on a TCP RPC address. Clients send their
 * token with the SDK's `bearer`, which gives general tokens to CORE_SERVICES only.
 */
export interface PricingHarness {
  auth: AuthHarness;
  pricing: PlatformPricing;
  core: CoreService;
  /** the pricing service, anonymous or with a token */
  as(token?: string): TypedClient<typeof pricingService>;
  adminToken(): Promise<string>;
  /** a token of a new account of `namespace` (scopes default admin: the namespace's own admin) */
  tenant(namespace: string, id?: string, scopes?: string[]): Promise<string>;
  /** registers a version of a service in a namespace, as a running service would */
  register(namespace: string, def: ServiceDef): Promise<void>;
  close(): Promise<void>;
}

const silent = createLogger({ level: 'silent' });

export async function startPricingHarness(options: Partial<Omit<PricingServiceOptions, 'hub'>> = {}, profile: Profile = { name: 'local' }): Promise<PricingHarness> {
  const auth = await startAuthHarness();
  const home = mkdtempSync(join(tmpdir(), 'micro-pricing-svc-'));
  const ctx: CoreContext = { home, profile, dataDir: home, logger: silent, registry: auth.registry, broker: new MemoryBroker(), accounts: auth.accounts, tokens: auth.tokens };
  const hub = new PlatformHub();
  const { pricing, factory } = createPricing({ hub, ...options });
  const core = await factory(ctx);
  const { address, close: stopServing } = await hostCoreServices([core], auth.tokens);
  const adminAuth = auth.authAs(auth.admin);
  let n = 0;
  return {
    auth,
    pricing,
    core,
    as: (token) => createClient(pricingService, new Client({ address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: token ? [bearer(token)] : [] })),
    adminToken: async () => (await auth.authAs().Token({ id: auth.admin.id, secret: auth.admin.secret, namespace: 'micro' })).token,
    async tenant(namespace, id = `user-${++n}`, scopes = ['admin']) {
      const secret = 'tenant-password-1';
      await adminAuth.CreateAccount({ id, namespace, secret, scopes });
      return (await auth.authAs().Token({ id, secret, namespace })).token;
    },
    async register(namespace, def) {
      const endpoints = Object.entries(def.endpoints).map(([name, ep]) => endpointRecord(name, ep));
      await auth.registry.register({ name: def.name, version: def.version, endpoints, nodes: [{ id: `${def.name}-${def.version}`, address: 'tcp://127.0.0.1:1' }] }, { namespace });
    },
    async close() {
      await stopServing();
      await core.stop?.();
      await auth.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
