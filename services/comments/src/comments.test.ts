import { recordServiceTests } from '@micro/services-kit/records-testing';
import { service } from './handlers.js';

recordServiceTests({
  service, one: 'comment', many: 'comments', required: 'text',
  sample: { subject: 'post-1', text: 'First!' },
  change: { text: 'Second, on reflection.' },
  oversized: ['subject', 's'.repeat(257)],
});
