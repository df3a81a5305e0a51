export { i64, i64Out, str64, lowerCamel, m3oRequest, rfc3339, unixSeconds, missing, MAX_I64 } from './wire.js';
export { tenantStore } from './tenant.js';
export type { TenantStore } from './tenant.js';
export { publicService } from './service.js';
export type { ServiceFactory } from './service.js';
export { needs, TOPIC_NAME, topicName, jsonObject, depthOf, checkJson } from './message.js';
export type { MessageBounds } from './message.js';
