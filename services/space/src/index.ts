export { space, MAX_OBJECT_BYTES, URL_TTL } from './definition.js';
export { service } from './handlers.js';
