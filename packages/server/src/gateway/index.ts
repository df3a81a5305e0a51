export { Gateway, DEFAULT_GATEWAY_ADDRESS, parseGatewayAddress, type GatewayOptions } from './gateway.js';
export { RateLimiter, type Limiter, type RateLimitOptions } from './ratelimit.js';
export { RedisRateLimiter, openRateLimiter, type RedisRateLimitOptions } from './ratelimit-redis.js';
export { openApiDocument } from './openapi.js';
