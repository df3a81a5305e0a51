// The notes service as micro server hosts it (its handlers are the kit's records-with-events ones).
export { notesService as service } from './definition.js';
