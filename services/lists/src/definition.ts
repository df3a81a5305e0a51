import { z } from '@micro/sdk';
import { recordService, text } from '@micro/services-kit';

/**
 * M3O's lists: named lists of text items (a to-do list, a shopping list), kept per
 * account, and Events, a stream of their changes.
 */
export const { def: lists, service: listsService } = recordService({
  name: 'lists', one: 'list', many: 'lists', required: 'name', price: 1, freeQuota: 10_000,
  description: 'Named lists of items, and a live stream of their changes',
  fields: { name: text(256), items: z.array(text(1_024)).max(1_000) },
  empty: { name: '', items: [] },
});
