export {
  balanceAccount,
  dueAccount,
  namespacePayer,
  checkPayer,
  openPayerAccounts,
  openPlatformAccounts,
  PLATFORM_REVENUE,
  PLATFORM_PROMO,
  PLATFORM_TAX,
  EXTERNAL_PAYMENTS,
  POSTING_KINDS,
} from './accounts.js';
export type { PostingKind } from './accounts.js';
export { checkUnits, parseDollars, formatDollars, prorate, applyRate } from './amounts.js';
export { periodOf, parsePeriod, nextPeriod, previousPeriod } from './periods.js';
export type { Period } from './periods.js';
export { openBillingEngines, ensureBillingSchema } from './engines.js';
export type { BillingEngines } from './engines.js';
