export { Gateway, DEFAULT_GATEWAY_ADDRESS, parseGatewayAddress, type GatewayOptions } from './gateway.js';
export { RateLimiter, type RateLimitOptions } from './ratelimit.js';
export { openApiDocument } from './openapi.js';
