export { url } from './definition.js';
export type { URLPair } from './definition.js';
export { service, shortBase } from './handlers.js';
export { checkDestination, internalHost } from './destination.js';
