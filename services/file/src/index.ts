export { file, MAX_CONTENT_BYTES } from './definition.js';
export { service } from './handlers.js';
