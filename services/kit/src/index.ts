export { i64, i64Out, str64, lowerCamel, m3oRequest, rfc3339, unixSeconds, missing, MAX_I64 } from './wire.js';
export { tenantStore } from './tenant.js';
export type { TenantStore } from './tenant.js';
export { publicService } from './service.js';
export type { ServiceFactory } from './service.js';
export type { PublicServiceOptions } from './service.js';
export { routeRequest, routeAnswer, gatewayOnly, pathSegments, publicUrl } from './route.js';
export type { RouteRequest, RouteAnswer } from './route.js';
