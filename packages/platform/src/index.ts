import type { CoreServiceFactory } from '@micro/server/engine';
import { signupCoreService } from './signup/index.js';
import { billingCoreService } from './plans/index.js';
import { PlatformHub } from './hub.js';

export { PlatformHub } from './hub.js';

export type { Mailer, MailMessage, MailerFromEnvOptions } from './mail/index.js';
export { MemoryMailer, mailerFromEnv, checkAddress, verificationMessage, platformInviteMessage, teamInviteMessage, namespacesMessage } from './mail/index.js';
export { openSqliteLedger, openPgLedger, UNIT, UNITS_PER_DOLLAR } from './ledger/index.js';
export type { Ledger, LedgerOptions, Account as LedgerAccount, PostingInput, PostResult } from './ledger/index.js';
export { billingCoreService, billingService, DEFAULT_PLANS, COMMUNITY } from './plans/index.js';
export type { Plan, PlanVersion, Subscriptions, JobReport, ChargeRow } from './plans/index.js';
export type { VerificationMessageInput, PlatformInviteMessageInput, TeamInviteMessageInput, NamespacesMessageInput } from './mail/index.js';

/**
 * The services of the platform layer, hosted by `micro server` in namespace `micro` beside
 * the core services (MicroServerOptions.coreServices; `micro server` passes these).
 * Each folder of src/ adds its factory here.
 */
export function platformCoreServices(options: { hub?: PlatformHub } = {}): CoreServiceFactory[] {
  const hub = options.hub ?? new PlatformHub();
  // signup first: billing's job and checks read its customers and members
  return [signupCoreService({ hub }), billingCoreService({ hub })];
}
