// The comments service as micro server hosts it (its handlers are the kit's records-with-events ones).
export { commentsService as service } from './definition.js';
