/**
 * What a client of the platform needs without the server: the contracts of its services.
 * The CLI imports this entry (`@micro/platform/client`) so that its commands load no
 * storage engine, mailer or server code.
 */
export { signupService, SIGNUP_PUBLIC_ENDPOINTS, LIMITS as SIGNUP_LIMITS } from './signup/definition.js';
export { invoicesService, INVOICES_LIMITS } from './invoices/definition.js';
export { balanceService, BALANCE_LIMITS } from './balance/definition.js';
export { pricingService, PRICING_LIMITS } from './pricing/definition.js';
export type { PriceView } from './pricing/definition.js';
export { usageService, USAGE_LIMITS } from './usage/definition.js';
export { billingService, BILLING_PUBLIC_ENDPOINTS, BILLING_LIMITS } from './plans/definition.js';
export { parseDollars, formatDollars } from './billing/amounts.js';
