export { Gateway, DEFAULT_GATEWAY_ADDRESS, parseGatewayAddress, type GatewayOptions } from './gateway.js';
export { credentialsRequired, type GatewayMeter, type MeteredCall, type MeterTicket } from './meter.js';
export { checkGatewayRate, MAX_GATEWAY_RATE, parseGatewayRate, RateLimiter, type GatewayRate, type Limiter, type RateLimitOptions } from './ratelimit.js';
// the Redis rate limiter (nats profile) is in ../nats.ts, so that the local profile never loads ioredis
export { openApiDocument } from './openapi.js';
export { collectRoutes, type RouteRequest, type RouteAnswer, type RouteTarget } from './routes.js';
