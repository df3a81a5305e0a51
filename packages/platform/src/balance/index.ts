import { errors, type Logger } from '@micro/sdk';
import type { AuthAccounts, CoreContext, CoreServiceFactory } from '@micro/server/engine';
import { billingSql, type BillingMigration } from '../billing/sql.js';
import { PlatformHub } from '../hub.js';
import { mailerFromEnv } from '../mail/env.js';
import type { Mailer } from '../mail/mailer.js';
import { stripeFromEnv, type StripeConfig } from '../payments/env.js';
import { Payments } from '../payments/payments.js';
import { ManualProvider, type PaymentProvider } from '../payments/provider.js';
import { openPaymentsStorage, type PaymentsStorage } from '../payments/storage.js';
import { StripeProvider } from '../payments/stripe.js';
import type { SignupStorage } from '../signup/storage.js';
import { balanceConfigFromEnv, type BalanceConfig } from './config.js';
import { balanceService } from './definition.js';
import { balanceHandlers } from './handlers.js';
import { BalanceWatch } from './watch.js';

export { balanceService, BALANCE_LIMITS } from './definition.js';
export { balanceHandlers, refundableOf } from './handlers.js';
export type { BalanceDeps, BalanceHandlerOptions } from './handlers.js';
export { BalanceWatch, levelOf, BALANCE_TOPICS } from './watch.js';
export type { BalanceEvent, Level } from './watch.js';
export { balanceConfigFromEnv, DEFAULT_BALANCE_CONFIG } from './config.js';
export type { BalanceConfig } from './config.js';

export const BALANCE_MIGRATIONS: readonly BillingMigration[] = [
  { version: 1, description: 'balance: the level each payer was last seen at (low/zero events once per crossing)', sql: 'CREATE TABLE balance_levels (payer TEXT PRIMARY KEY, level TEXT NOT NULL, updated_at BIGINT NOT NULL);' },
];

export interface BalanceServiceOptions extends Partial<BalanceConfig> {
  /** the platform's shared engines (default: its own, for a service built alone) */
  hub?: PlatformHub;
  /** where the low- and zero-balance emails go (default mailerFromEnv: SMTP or the outbox) */
  mailer?: Mailer;
  /** the dashboard's address (default `<MICRO_PUBLIC_URL>/dashboard`, else http://127.0.0.1:8080/dashboard) */
  siteUrl?: string;
  /** Stripe (default from the environment: stripeFromEnv); false: the manual provider whatever the environment says */
  stripe?: StripeConfig | false;
  /** the environment the defaults are read from (default process.env) */
  env?: NodeJS.ProcessEnv;
}

/**
 * The balance core service (namespace micro) and the payments behind it: the provider
 * (Stripe or manual), its webhook at `/webhooks/<provider>`, and the low/zero-balance watch
 * registered with the hub (`hub.onBalance`), which metering calls after its postings.
 */
export function balanceCoreService(options: BalanceServiceOptions = {}): CoreServiceFactory {
  return async (ctx) => {
    const env = options.env ?? process.env;
    const config = { ...balanceConfigFromEnv(env), ...definedOf(options) };
    const stripe = options.stripe === false ? undefined : (options.stripe ?? stripeFromEnv(env));
    const siteUrl = (options.siteUrl ?? `${(env.MICRO_PUBLIC_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '')}/dashboard`).replace(/\/+$/, '');
    const logger = ctx.logger.child({ component: 'balance' });
    const hub = options.hub ?? new PlatformHub();
    hub.acquire();
    try {
      return await build(ctx, { hub, config, stripe, siteUrl, logger, mailer: options.mailer });
    } catch (err) {
      await hub.release();
      throw err;
    }
  };
}

async function build(
  ctx: CoreContext,
  o: { hub: PlatformHub; config: BalanceConfig; stripe: StripeConfig | undefined; siteUrl: string; logger: Logger; mailer: Mailer | undefined },
): Promise<Awaited<ReturnType<CoreServiceFactory>>> {
  const { hub, logger } = o;
  const engines = await hub.billing(ctx);
  const { storage: signup } = await hub.signup(ctx);
  const sql = await billingSql(engines, 'balance', BALANCE_MIGRATIONS);
  const store = await openPaymentsStorage(engines);
  const mailer = o.mailer ?? mailerFromEnv({ home: ctx.home, logger });
  const emailOf = emailOfPayer(signup);
  const watch = new BalanceWatch({ ledger: engines.ledger, sql, broker: ctx.broker, mailer, emailOf, threshold: o.config.lowBalance, siteUrl: o.siteUrl, clock: engines.clock, logger });
  const unwatch = hub.watchBalance((payer, after) => watch.onBalance(payer, after));
  const provider = providerOf(o.stripe, store, engines.clock, logger);
  const observe = (payer: string) => hub.onBalance(payer);
  const payments = new Payments({ ledger: engines.ledger, store, clock: engines.clock, observe, logger }, provider);
  const handlers = balanceHandlers(
    { ledger: engines.ledger, payments, observe, sql, payerOf: (namespace) => hub.payerOf(ctx, namespace), resolve: resolver(ctx, hub, signup, ctx.accounts), emailOf, clock: engines.clock },
    { ...o.config, siteUrl: o.siteUrl },
  );
  logger.info({ provider: provider.name, mode: o.stripe ? (o.stripe.secretKey.includes('_live_') ? 'live' : 'test') : undefined }, `payments: ${provider.online ? `${provider.name}, webhook at /webhooks/${provider.name}` : 'manual (staff record payments)'}`);
  return {
    def: balanceService,
    handlers,
    ...(provider.webhook ? { webhooks: { [provider.name]: provider.webhook(payments) } } : {}),
    stop: async () => {
      unwatch();
      await provider.close?.();
      if (!o.mailer) await mailer.close?.();
      await hub.release();
    },
  };
}

function definedOf(options: Partial<BalanceConfig>): Partial<BalanceConfig> {
  const out: Partial<BalanceConfig> = {};
  for (const k of ['lowBalance', 'topUpMin', 'topUpMax'] as const) if (options[k] !== undefined) out[k] = options[k];
  return out;
}

function providerOf(stripe: StripeConfig | undefined, store: PaymentsStorage, now: () => number, logger: Logger): PaymentProvider {
  return stripe ? new StripeProvider({ ...stripe, now, logger: logger.child({ provider: 'stripe' }) }, store) : new ManualProvider();
}

/** The email of a payer's owner: a customer's (active or suspended), none for a namespace no customer owns. */
function emailOfPayer(signup: SignupStorage): (payer: string) => Promise<string | undefined> {
  return async (payer) => {
    if (payer.startsWith('ns.')) return undefined;
    const c = await signup.getCustomer({ id: payer });
    return c && c.status !== 'deleted' ? c.email : undefined;
  };
}

const NAMESPACE = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

/** The payer a staff member names: exactly one of a customer (id or email) or a namespace that exists. */
function resolver(ctx: CoreContext, hub: PlatformHub, signup: SignupStorage, accounts: AuthAccounts) {
  return async ({ customer, namespace }: { customer?: string; namespace?: string }): Promise<string> => {
    if ((customer === undefined) === (namespace === undefined)) throw errors.BadRequest('balance', 'customer or namespace: name the payer by one of them (a customer id or email, or a namespace)');
    if (customer !== undefined) {
      const ref = customer.trim();
      const found = await signup.getCustomer(ref.includes('@') ? { email: ref.toLowerCase() } : { id: ref });
      if (!found || found.status === 'deleted') throw errors.NotFound('balance', `customer: no customer ${JSON.stringify(ref.slice(0, 100))}`);
      return found.id;
    }
    const name = (namespace as string).trim();
    if (!NAMESPACE.test(name)) throw errors.BadRequest('balance', `namespace: ${JSON.stringify(name.slice(0, 64))} is not a namespace name`);
    // a namespace of signup, or one an admin made (it has accounts): a typo must not mint a payer
    if ((await signup.namespaceStatus(name)) !== 'active' && (await accounts.list(name, 1)).accounts.length === 0) throw errors.NotFound('balance', `namespace: no namespace ${name}`);
    return hub.payerOf(ctx, name);
  };
}
