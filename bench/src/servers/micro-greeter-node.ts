/**
 * Child process of the gateway-remote benchmark: the greeter as a Micro service on a free
 * TCP port of 127.0.0.1, with auth off. Prints `{"record":{...}}` (its registry record,
 * nodes with their address) when ready, for the micro server process to register, and
 * exits when its parent goes away.
 */
import { createLogger, MemoryRegistry, Service } from '@micro/sdk';
import { greeter, greeterHandlers } from '../greeter.js';
import { exitWithParent } from '../harness.js';

const svc = new Service(greeter, greeterHandlers, {
  registry: new MemoryRegistry(),
  namespace: 'micro',
  address: 'tcp://127.0.0.1:0',
  logger: createLogger({ level: 'silent' }),
  drainTimeout: 500,
  auth: false,
});
await svc.start();
exitWithParent(() => svc.stop());
process.stdout.write(`${JSON.stringify({ record: svc.record(), pid: process.pid })}\n`);
