export { avatar, MAX_USERNAME, SIZE } from './definition.js';
export { service } from './handlers.js';
