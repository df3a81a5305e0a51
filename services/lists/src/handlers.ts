// The lists service as micro server hosts it (its handlers are the kit's records-with-events ones).
export { listsService as service } from './definition.js';
