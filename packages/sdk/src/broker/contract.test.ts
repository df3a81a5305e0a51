import { brokerContract } from './contract.js';
import { MemoryBroker } from './memory.js';

// the in-process engine against the contract the NATS one passes too (nats.test.ts);
// memory.test.ts checks what only an in-process broker can promise
brokerContract('memory', async (t, options) => {
  const b = new MemoryBroker(options);
  t.after(() => b.close());
  return b;
});
