import type { CoreServiceFactory } from '@micro/server/engine';
import type { PlatformHub } from '../hub.js';
import { pricingService } from './definition.js';
import { pricingHandlers, type PricingHandlerOptions } from './handlers.js';
import { openPgPricing } from './postgres.js';
import { PlatformPricing, type PricingOptions } from './prices.js';
import { openSqlitePricing } from './sqlite.js';
import type { PricingStorage } from './storage.js';

export { pricingService, PRICING_LIMITS } from './definition.js';
export type { PriceView } from './definition.js';
export { pricingHandlers } from './handlers.js';
export type { PricingHandlerOptions } from './handlers.js';
export { PlatformPricing } from './prices.js';
export type { PricingOptions } from './prices.js';
export type { Pricing, EndpointPrice, PricedEndpoint } from './pricing.js';
export type { PricingStorage, PriceSetting, PriceKey } from './storage.js';
export { openSqlitePricing } from './sqlite.js';
export { openPgPricing } from './postgres.js';

export interface PricingServiceOptions extends PricingOptions, Omit<PricingHandlerOptions, 'logger'> {
  /** the platform's shared engines: the prices live in billing's database */
  hub: PlatformHub;
}

/**
 * The Pricing that metering asks on every call, and the factory of the pricing core
 * service that keeps it fresh: one object for both, so that an admin's price reaches the
 * meter of this server. `platformCoreServices()` gives `pricing` to metering.
 */
export function createPricing(options: PricingServiceOptions): { pricing: PlatformPricing; factory: CoreServiceFactory } {
  const pricing = new PlatformPricing(options);
  const factory: CoreServiceFactory = async (ctx) => {
    const logger = ctx.logger.child({ component: 'pricing' });
    const { hub } = options;
    hub.acquire();
    let storage: PricingStorage;
    try {
      const engines = await hub.billing(ctx);
      storage = engines.sqlite ? openSqlitePricing(engines.sqlite) : await openPgPricing(engines.pg as NonNullable<typeof engines.pg>);
      await pricing.attach(storage, logger);
    } catch (err) {
      await hub.release();
      throw err;
    }
    return {
      def: pricingService,
      handlers: pricingHandlers({ pricing, storage, registry: ctx.registry }, { ...options, logger }),
      // what /openapi.json shows of each endpoint: the same answer metering gets
      prices: (home, service, endpoint) => pricing.priceOf(home, service, endpoint),
      stop: async () => {
        pricing.detach();
        await hub.release();
      },
    };
  };
  return { pricing, factory };
}

/** The pricing core service alone (its Pricing reaches nobody else): see createPricing. */
export function pricingCoreService(options: PricingServiceOptions): CoreServiceFactory {
  return createPricing(options).factory;
}
