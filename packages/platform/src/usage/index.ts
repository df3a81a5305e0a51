import type { CoreServiceFactory } from '@micro/server/engine';
import type { PlatformHub } from '../hub.js';
import { Meter, openMeterEngine, type PgMeterOptions } from '../metering/index.js';
import type { Pricing } from '../pricing/pricing.js';
import { usageService } from './definition.js';
import { usageHandlers } from './handlers.js';

export { usageService, USAGE_LIMITS } from './definition.js';
export { usageHandlers, rangeOf, csvOf } from './handlers.js';
export type { UsageHandlerOptions } from './handlers.js';

export interface UsageServiceOptions {
  /** the platform's shared engines: the ledger and its database, who pays for a namespace */
  hub: PlatformHub;
  /** the price and free quota of each endpoint; undefined: not metered */
  pricing: Pricing;
  /** a payer's cap on what it is charged in a period, units (synchronous; null: none); default none */
  usageCap?(payer: string): number | null;
  /** told a payer's ledger balance after its usage postings (low-balance events); default none */
  onBalance?(payer: string, balanceAfter: number): void;
  /** nats profile: this node's heart-beat, how long the holds of a silent node last, how long PostgreSQL waits on a silent transaction (see metering/README.md) */
  nodes?: Pick<PgMeterOptions, 'heartbeat' | 'holdTtl' | 'idleInTransaction'>;
  /** ms between rounds of the outbox (default 2,000) */
  postEvery?: number;
  /** ms from a charge's record to the round that posts it (default 50) */
  postDelay?: number;
}

/**
 * The usage core service (namespace micro): Read and Export of the metered calls, and the
 * meter itself (CoreService.meter), which micro server hands to its gateway. Its start
 * posts to the ledger what a crash left in the outbox, before the gateway takes calls.
 */
export function usageCoreService(options: UsageServiceOptions): CoreServiceFactory {
  return async (ctx) => {
    const { hub } = options;
    hub.acquire();
    try {
      const billing = await hub.billing(ctx);
      const logger = ctx.logger.child({ component: 'usage' });
      const engine = await openMeterEngine(ctx, billing, { logger, ...options.nodes });
      const payerOf = (namespace: string) => hub.payerOf(ctx, namespace);
      const meter = new Meter({
        engine,
        ledger: billing.ledger,
        pricing: options.pricing,
        payerOf,
        usageCap: options.usageCap,
        onBalance: options.onBalance,
        clock: billing.clock,
        logger,
        postEvery: options.postEvery,
        postDelay: options.postDelay,
      });
      return {
        def: usageService,
        handlers: usageHandlers({ engine, payerOf, clock: billing.clock }),
        meter,
        start: () => meter.start(),
        stop: async () => {
          await meter.stop();
          await hub.release();
        },
      };
    } catch (err) {
      await hub.release();
      throw err;
    }
  };
}
