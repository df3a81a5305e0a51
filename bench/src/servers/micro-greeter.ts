/**
 * Child process of the remote benchmark: the greeter as a Micro service listening on a
 * free TCP port of 127.0.0.1. Prints `{"address":"tcp://127.0.0.1:PORT"}` when ready and
 * exits when its parent goes away.
 */
import { createLogger, MemoryRegistry, Service } from '@micro/sdk';
import { greeter, greeterHandlers } from '../greeter.js';
import { exitWithParent } from '../harness.js';

// a registry of its own: the caller dials the address directly, nothing is written to MICRO_HOME
const svc = new Service(greeter, greeterHandlers, {
  registry: new MemoryRegistry(),
  address: 'tcp://127.0.0.1:0',
  logger: createLogger({ level: 'silent' }),
  drainTimeout: 500,
});
await svc.start();
exitWithParent(() => svc.stop());
process.stdout.write(`${JSON.stringify({ address: svc.address, pid: process.pid })}\n`);
