import type { CoreContext, CoreServiceFactory } from '@micro/server/engine';
import type { PlatformHub } from '../hub.js';
import { billingService, BILLING_PUBLIC_ENDPOINTS } from './definition.js';
import { billingHandlers, type BillingHandlerOptions } from './handlers.js';
import { openPgBilling } from './postgres.js';
import { openSqliteBilling } from './sqlite.js';
import { Subscriptions } from './subscriptions.js';

export { billingService, BILLING_PUBLIC_ENDPOINTS, BILLING_LIMITS } from './definition.js';
export { billingHandlers } from './handlers.js';
export type { BillingHandlerOptions } from './handlers.js';
export { Subscriptions, effectivePlan } from './subscriptions.js';
export type { JobReport, Standing, SubscriptionsDeps } from './subscriptions.js';
export { DEFAULT_PLANS, COMMUNITY, MAX_PRICE, MAX_SEATS, PlanBook, planFrom, namespacePlan, BILLING_ERROR_ID } from './plans.js';
export type { Plan, PlanVersion, PlanFields, PlanStatus, SupportLevel, Sla } from './plans.js';
export type { BillingStorage, SubscriptionRow, SeatRow, ChargeRow, ChargeKind } from './storage.js';
export { secondsIn, secondsLeft } from './charges.js';

export interface BillingServiceOptions extends BillingHandlerOptions {
  /** ms between runs of the period job (default 60,000; it also runs at start) */
  jobInterval?: number;
}

/**
 * The plans and subscriptions of a server, opened once by the hub (`hub.plans(ctx)`) in
 * billing's database: billing.db beside the ledger (local profile), or the platform's
 * PostgreSQL schema (nats). The built-in plans are recorded on first open.
 */
export async function openSubscriptions(hub: PlatformHub, ctx: CoreContext): Promise<Subscriptions> {
  const engines = await hub.billing(ctx);
  const { storage: signup } = await hub.signup(ctx);
  const storage = engines.sqlite ? openSqliteBilling(engines.sqlite) : await openPgBilling(engines.pg as NonNullable<typeof engines.pg>);
  const subs = new Subscriptions({
    storage,
    ledger: engines.ledger,
    signup,
    payerOf: (namespace) => hub.payerOf(ctx, namespace),
    ...(ctx.quotas ? { quotas: ctx.quotas } : {}),
    ...(ctx.namespaceHook ? { namespaceChanged: (namespace: string) => void ctx.namespaceHook?.changed(namespace) } : {}),
    clock: engines.clock,
    logger: ctx.logger.child({ component: 'billing' }),
  });
  await subs.seed();
  return subs;
}

/**
 * The billing core service (namespace micro). It gives micro server's quotas the plan of
 * each namespace (`Quotas.setPlans`: the limits of a customer's namespaces are its plan's)
 * and runs the period job: at start, then every `jobInterval`.
 */
export function billingCoreService(options: BillingServiceOptions & { hub: PlatformHub }): CoreServiceFactory {
  return async (ctx) => {
    const { hub } = options;
    hub.acquire();
    const logger = ctx.logger.child({ component: 'billing' });
    let subs: Subscriptions;
    try {
      subs = await hub.plans(ctx);
    } catch (err) {
      await hub.release();
      throw err;
    }
    const { storage: signup } = await hub.signup(ctx);
    ctx.quotas?.setPlans((namespace) => subs.namespacePlan(namespace));
    const job = () =>
      subs.runJob().then(
        (r) => (r.periods || r.joiners || r.ended || r.failed ? logger.info(r, 'billing: period job') : undefined),
        (err: unknown) => logger.warn({ err }, 'billing: the period job failed (it runs again)'),
      );
    let timer: NodeJS.Timeout | undefined;
    return {
      def: billingService,
      handlers: billingHandlers({ subs, signup, payerOf: (namespace) => hub.payerOf(ctx, namespace), ...(ctx.quotas ? { defaults: ctx.quotas.defaults } : {}) }, options),
      publicEndpoints: [...BILLING_PUBLIC_ENDPOINTS],
      start: async () => {
        await job();
        timer = setInterval(() => void job(), options.jobInterval ?? 60_000);
        timer.unref();
      },
      stop: async () => {
        clearInterval(timer);
        ctx.quotas?.setPlans(undefined);
        await subs.idle();
        await hub.release();
      },
    };
  };
}
