import type { CoreServiceFactory } from '@micro/server/engine';
import { signupCoreService } from './signup/index.js';
import { createPricing } from './pricing/index.js';
import { invoicesCoreService } from './invoices/index.js';
import { balanceCoreService } from './balance/index.js';
import { billingCoreService } from './plans/index.js';
import { PlatformHub } from './hub.js';
import type { Pricing } from './pricing/pricing.js';
import { usageCoreService, type UsageServiceOptions } from './usage/index.js';
import { mailCoreService, type MailServiceOptions } from './mail/index.js';

export { PlatformHub } from './hub.js';
export type { BalanceObserver } from './hub.js';
export { invoicesCoreService, invoicesService, invoiceHtml, invoicePdf } from './invoices/index.js';
export type { Invoice, InvoiceLine, InvoiceSummary, InvoicesServiceOptions } from './invoices/index.js';
export { balanceCoreService, balanceService, BALANCE_TOPICS, balanceConfigFromEnv } from './balance/index.js';
export type { BalanceServiceOptions, BalanceEvent, BalanceConfig } from './balance/index.js';
export { stripeFromEnv } from './payments/env.js';
export type { StripeConfig } from './payments/env.js';
export type { PaymentProvider, CheckoutRequest, CheckoutSession } from './payments/provider.js';
export { createPricing, pricingCoreService, pricingService, PlatformPricing, PRICING_LIMITS } from './pricing/index.js';
export type { Pricing, EndpointPrice, PricedEndpoint, PricingServiceOptions, PriceView } from './pricing/index.js';

export type { Mailer, MailMessage, MailerFromEnvOptions } from './mail/index.js';
export { mailCoreService, TenantRate, DEFAULT_MAIL_PER_TENANT } from './mail/index.js';
export type { MailServiceOptions } from './mail/index.js';
export { MemoryMailer, SmtpMailer, parseSmtpUrl, dkimFromEnv, mailerFromEnv, checkAddress, verificationMessage, platformInviteMessage, teamInviteMessage, namespacesMessage, balanceMessage } from './mail/index.js';
export { openSqliteLedger, openPgLedger, UNIT, UNITS_PER_DOLLAR } from './ledger/index.js';
export type { Ledger, LedgerOptions, Account as LedgerAccount, PostingInput, PostResult } from './ledger/index.js';
export { billingCoreService, billingService, DEFAULT_PLANS, COMMUNITY } from './plans/index.js';
export type { Plan, PlanVersion, Subscriptions, JobReport, ChargeRow } from './plans/index.js';
export type { VerificationMessageInput, PlatformInviteMessageInput, TeamInviteMessageInput, NamespacesMessageInput, BalanceMessageInput } from './mail/index.js';
export { Meter, NO_PRICES, BLOCKED_ID, insufficientCredit, usageCapExceeded } from './metering/index.js';
export type { MeterOptions, MeterEngine } from './metering/index.js';
export { usageCoreService, usageService } from './usage/index.js';
export type { UsageServiceOptions } from './usage/index.js';

/**
 * The services of the platform layer, hosted by `micro server` in namespace `micro` beside
 * the core services (MicroServerOptions.coreServices; `micro server` passes these).
 * Each folder of src/ adds its factory here.
 */
export function platformCoreServices(
  options: { hub?: PlatformHub; pricing?: Pricing; usage?: Omit<UsageServiceOptions, 'hub' | 'pricing'>; mail?: MailServiceOptions } = {},
): CoreServiceFactory[] {
  const hub = options.hub ?? new PlatformHub();
  // one Pricing for the pricing service and the meter: an admin's price reaches both at once
  const { pricing, factory: pricingFactory } = createPricing({ hub });
  // signup first: billing's job and checks read its customers and members
  return [
    signupCoreService({ hub }),
    billingCoreService({ hub }),
    pricingFactory,
    // the meter tells the balance watch (low and zero balance) of each payer's balance after its charges
    usageCoreService({ hub, pricing: options.pricing ?? pricing, onBalance: (payer, balance) => void hub.onBalance(payer, balance), ...options.usage }),
    invoicesCoreService({ hub }),
    balanceCoreService({ hub }),
    // the hosted value-add services' email (user: verification, reset and magic links)
    mailCoreService(options.mail),
  ];
}
