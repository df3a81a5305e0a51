import type { CoreServiceFactory } from '@micro/server/engine';
import { signupCoreService } from './signup/index.js';
import { PlatformHub } from './hub.js';
import { NO_PRICES } from './metering/index.js';
import type { Pricing } from './pricing/pricing.js';
import { usageCoreService, type UsageServiceOptions } from './usage/index.js';

export { PlatformHub } from './hub.js';

export type { Mailer, MailMessage, MailerFromEnvOptions } from './mail/index.js';
export { MemoryMailer, mailerFromEnv, checkAddress, verificationMessage, platformInviteMessage, teamInviteMessage, namespacesMessage } from './mail/index.js';
export { openSqliteLedger, openPgLedger, UNIT, UNITS_PER_DOLLAR } from './ledger/index.js';
export type { Ledger, LedgerOptions, Account as LedgerAccount, PostingInput, PostResult } from './ledger/index.js';
export type { VerificationMessageInput, PlatformInviteMessageInput, TeamInviteMessageInput, NamespacesMessageInput } from './mail/index.js';
export { Meter, NO_PRICES, BLOCKED_ID, insufficientCredit, usageCapExceeded } from './metering/index.js';
export type { MeterOptions, MeterEngine } from './metering/index.js';
export { usageCoreService, usageService } from './usage/index.js';
export type { UsageServiceOptions } from './usage/index.js';
export type { Pricing, EndpointPrice, PricedEndpoint } from './pricing/pricing.js';

/**
 * The services of the platform layer, hosted by `micro server` in namespace `micro` beside
 * the core services (MicroServerOptions.coreServices; `micro server` passes these).
 * Each folder of src/ adds its factory here.
 */
export function platformCoreServices(options: { hub?: PlatformHub; pricing?: Pricing; usage?: Omit<UsageServiceOptions, 'hub' | 'pricing'> } = {}): CoreServiceFactory[] {
  const hub = options.hub ?? new PlatformHub();
  // until the pricing service lands, nothing is priced: the meter is in place and meters nothing
  const pricing = options.pricing ?? NO_PRICES;
  return [signupCoreService({ hub }), usageCoreService({ hub, pricing, ...options.usage })];
}
