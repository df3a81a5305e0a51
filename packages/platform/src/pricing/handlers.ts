import { errors, type Context, type EndpointRecord, type Handlers, type Logger, type Registry } from '@micro/sdk';
import { isAdmin, requireAdmin } from '@micro/server/engine';
import type { PriceView, pricingService } from './definition.js';
import type { PlatformPricing } from './prices.js';
import type { PriceKey, PriceSetting, PricingStorage } from './storage.js';

/** the namespace of the platform's own services, whose prices every tenant may read */
const PLATFORM = 'micro';
const ID = 'pricing';

export interface PricingHandlerOptions {
  /** who may set and clear prices (default requireAdmin: admins of micro) */
  admin?: (ctx: Context) => void;
  now?: () => number;
  logger?: Logger;
}

interface Deps {
  pricing: PlatformPricing;
  storage: PricingStorage;
  /** the registry of every namespace (micro server's): where definitions publish their prices */
  registry: Registry;
}

/**
 * The pricing service. List: a tenant its own namespace and the platform's; admins of micro
 * any. Set and Clear: admins of micro only (`options.admin`). See README.md.
 */
export function pricingHandlers(deps: Deps, options: PricingHandlerOptions = {}): Handlers<typeof pricingService> {
  const admin = options.admin ?? requireAdmin;
  const now = options.now ?? Date.now;
  const { pricing, storage } = deps;
  const view = priceViews(deps);
  return {
    List: async ({ namespace, service }, ctx) => {
      const staff = isAdmin(ctx.account);
      await pricing.refresh();
      return { prices: await view.list(listScope(ctx, namespace, staff, pricing), service, staff) };
    },
    Set: async ({ namespace = PLATFORM, service, endpoint, price, freeQuota = 0 }, ctx) => {
      admin(ctx);
      await checkEndpoint(deps.registry, { namespace, service, endpoint });
      const setBy = ctx.account?.id ?? 'unknown';
      if ((await storage.set({ namespace, service, endpoint, price, freeQuota, setBy, setAt: now() }, pricing.maxSettings)) === 'full') {
        throw errors.Conflict(ID, `at most ${pricing.maxSettings} prices may be set by admins, and that many are: clear some first (micro platform pricing clear)`);
      }
      await pricing.refresh(true);
      options.logger?.info({ namespace, service, endpoint, price, freeQuota, by: setBy }, 'pricing: price set');
      const [row] = await view.list([namespace], service, true, endpoint);
      return { price: row as PriceView };
    },
    Clear: async ({ namespace = PLATFORM, service, endpoint }, ctx) => {
      admin(ctx);
      const cleared = await storage.clear({ namespace, service, endpoint });
      await pricing.refresh(true);
      if (cleared) options.logger?.info({ namespace, service, endpoint, by: ctx.account?.id }, 'pricing: price cleared');
      const [row] = await view.list([namespace], service, true, endpoint);
      return row ? { cleared, price: row } : { cleared };
    },
  };
}

/**
 * The namespaces a List looks at: the one asked (a tenant: only its own) and the
 * platform's; an admin asking none: the platform's and every namespace with an admin price.
 */
function listScope(ctx: Context, asked: string | undefined, staff: boolean, pricing: PlatformPricing): string[] {
  const account = ctx.account;
  if (!account) throw errors.Unauthorized(ID, 'credentials required');
  if (asked !== undefined && asked !== account.issuer && !staff) {
    throw errors.Forbidden(ID, `account ${account.id} of namespace ${account.issuer} may not list the prices of namespace ${asked}: only its own and the platform's (micro)`);
  }
  if (asked === undefined && staff) return [...new Set([PLATFORM, ...pricing.settingsList().map((s) => s.namespace)])];
  return [...new Set([asked ?? account.issuer, PLATFORM])];
}

/**
 * Setting a price for an endpoint of a service that is not running is allowed (it applies
 * once the service runs: prices are set before a launch); for a service that runs, the
 * endpoint must be one of its versions', so that a typo is not a price nobody pays.
 */
async function checkEndpoint(registry: Registry, key: PriceKey): Promise<void> {
  const records = await registry.getService(key.service, { namespace: key.namespace });
  if (records.length === 0 || records.some((r) => r.endpoints.some((e) => e.name === key.endpoint))) return;
  const names = [...new Set(records.flatMap((r) => r.endpoints.map((e) => e.name)))].sort();
  const near = names.find((n) => n.toLowerCase() === key.endpoint.toLowerCase());
  throw errors.NotFound(
    ID,
    `endpoint: service ${key.service} of namespace ${key.namespace} has no endpoint ${key.endpoint}${near ? ` (did you mean ${near}?)` : ''}; its endpoints: ${names.slice(0, 30).join(', ')}${names.length > 30 ? ', …' : ''}`,
  );
}

/** what a definition says of an endpoint's price, or undefined when it prices nothing */
function definitionOf(ep: EndpointRecord): { price: number; freeQuota: number } | undefined {
  if (ep.price === undefined && ep.freeQuota === undefined) return undefined;
  return { price: ep.price ?? 0, freeQuota: ep.freeQuota ?? 0 };
}

/**
 * The rows of List (and the answers of Set and Clear): one per priced endpoint of the
 * registered services and per admin price, in the given namespaces. Versions whose
 * definitions price an endpoint differently get a row each.
 */
function priceViews(deps: Deps) {
  const { pricing, registry } = deps;
  const row = (key: PriceKey, setting: PriceSetting | undefined, definition: { price: number; freeQuota: number } | undefined, staff: boolean): PriceView => {
    const applied = setting ?? definition ?? { price: 0, freeQuota: 0 };
    const out: PriceView = { namespace: key.namespace, service: key.service, endpoint: key.endpoint, price: applied.price, freeQuota: applied.freeQuota, source: setting ? 'admin' : 'definition', versions: [] };
    if (definition) out.definition = definition;
    // who on the staff set a price is the staff's to know
    if (setting && staff) Object.assign(out, { setBy: setting.setBy, setAt: setting.setAt });
    return out;
  };
  return {
    async list(namespaces: string[], service: string | undefined, staff: boolean, endpoint?: string): Promise<PriceView[]> {
      const rows = new Map<string, PriceView>();
      const seen = new Set<string>();
      for (const namespace of namespaces) {
        const records = service ? await registry.getService(service, { namespace }) : await registry.listServices({ namespace });
        for (const record of records) {
          for (const ep of record.endpoints) {
            if (endpoint !== undefined && ep.name !== endpoint) continue;
            const key = { namespace, service: record.name, endpoint: ep.name };
            const setting = pricing.setting(key);
            const definition = definitionOf(ep);
            if (!setting && !definition) continue;
            const id = JSON.stringify([namespace, record.name, ep.name]);
            seen.add(id);
            const groupId = JSON.stringify([id, definition ?? null]);
            const r = rows.get(groupId) ?? row(key, setting, definition, staff);
            r.versions.push(record.version);
            rows.set(groupId, r);
          }
        }
      }
      // admin prices of endpoints no registered version has (not running now)
      for (const s of pricing.settingsList()) {
        if (!namespaces.includes(s.namespace) || (service !== undefined && s.service !== service) || (endpoint !== undefined && s.endpoint !== endpoint)) continue;
        if (!seen.has(JSON.stringify([s.namespace, s.service, s.endpoint]))) rows.set(JSON.stringify([s.namespace, s.service, s.endpoint, 'admin']), row(s, s, undefined, staff));
      }
      return [...rows.values()].map((r) => ({ ...r, versions: r.versions.sort() })).sort((a, b) => a.namespace.localeCompare(b.namespace) || a.service.localeCompare(b.service) || a.endpoint.localeCompare(b.endpoint));
    },
  };
}
