import { recordService, text } from '@micro/services-kit';

/**
 * M3O's comments: comments with a subject (what they are about: a page, a post, an
 * item's id) and a text, kept per account, and Events, a stream of their changes.
 */
export const { def: comments, service: commentsService } = recordService({
  name: 'comments', one: 'comment', many: 'comments', required: 'text', price: 1, freeQuota: 10_000,
  description: 'Comments with a subject and text, and a live stream of their changes',
  fields: { subject: text(256), text: text(16_384) },
  empty: { subject: '', text: '' },
});
