import { recordService, text } from '@micro/services-kit';

/**
 * M3O's notes: notes with a title and a text, kept per account, and Events, a stream of
 * their changes. Everything but the fields is the kit's records-with-events service.
 */
export const { def: notes, service: notesService } = recordService({
  name: 'notes', one: 'note', many: 'notes', required: 'title', price: 1, freeQuota: 10_000,
  description: 'Notes with a title and text, and a live stream of their changes',
  fields: { title: text(256), text: text(65_536) },
  empty: { title: '', text: '' },
});
