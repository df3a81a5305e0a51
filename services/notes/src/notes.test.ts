import { recordServiceTests } from '@micro/services-kit/records-testing';
import { service } from './handlers.js';

recordServiceTests({
  service, one: 'note', many: 'notes', required: 'title',
  sample: { title: 'Groceries', text: 'eggs\nmilk' },
  change: { text: 'eggs, milk and bread' },
  oversized: ['text', 'x'.repeat(65_537)],
});
