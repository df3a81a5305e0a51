import { recordServiceTests } from '@micro/services-kit/records-testing';
import { service } from './handlers.js';

recordServiceTests({
  service, one: 'list', many: 'lists', required: 'name',
  sample: { name: 'To do', items: ['write', 'test'] },
  change: { items: ['write', 'test', 'ship'] },
  oversized: ['items', Array.from({ length: 1_001 }, (_, i) => `item ${i}`)],
});
