/**
 * What a client of the platform needs without the server: the contracts of its services.
 * The CLI imports this entry (`@micro/platform/client`) so that its commands load no
 * storage engine, mailer or server code.
 */
export { signupService, SIGNUP_PUBLIC_ENDPOINTS, LIMITS as SIGNUP_LIMITS } from './signup/definition.js';
export { usageService, USAGE_LIMITS } from './usage/definition.js';
