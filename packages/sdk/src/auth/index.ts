/** Auth: the contract of the auth service, tokens, rules, and the checks every service makes. */
export { authService, authApi, AUTH_PUBLIC_ENDPOINTS, AccountSchema, AccountInfoSchema, RuleSchema, KeyInfoSchema, JwkSchema, NAMESPACE_NAME, ACCOUNT_ID, SCOPE_NAME } from './definition.js';
export type { Credentials, AuthAccount, AccountInfo, KeyInfo } from './definition.js';
export { TokenSource, bearer } from './token.js';
export { BLOCKED_ERROR_ID, KEY_SERVICES_METADATA, KEY_LIMITS, keyServicesOf, keyMayCall, checkKeyServices, keyBlocked } from './keys.js';
export type { BearerOptions } from './token.js';
export { CORE_SERVICES, isCoreService, audienceOf, audienceProblem, ScopedTokens } from './scoped.js';
export { KeySet, TokenError, signJwt, accountOf, bearerToken, tokenKid, JWT_ALG, MAX_TOKEN_LENGTH, CLOCK_LEEWAY } from './jwt.js';
export type { AccessClaims, Jwks, PublicJwk, SigningKey, TokenProblem } from './jwt.js';
export { RuleSet, compareRules, conflictingRule, parseResource, scopeApplies, serviceResource, isPlatformAdmin, DEFAULT_RULE, RESOURCE_PATTERN } from './rules.js';
export type { Rule, Access, Decision, Resource } from './rules.js';
export { ServiceAuth } from './enforce.js';
export { RevocationList, admitClaims, checkLifetime, revokedError, maxTokenTtlFromEnv } from './revocations.js';
export type { Revocation, RevocableClaims } from './revocations.js';
export type { ServiceAuthOptions } from './enforce.js';
export { processIdentity, defaultClientMiddleware, identityToken, identityTokens } from './process.js';
export type { Identity } from './process.js';
