/**
 * Child process of the remote-nats benchmark: the greeter as a Micro service served over
 * NATS (the transport of MICRO_PROFILE=nats: frames as NATS messages, a queue group per
 * service and a subject per instance) under the prefix given as the first argument.
 * Prints `{"address":"nats:..."}` (this instance's address) when ready and exits when its
 * parent goes away.
 */
import { createLogger, MemoryRegistry, Service } from '@micro/sdk';
import { greeter, greeterHandlers } from '../greeter.js';
import { exitWithParent } from '../harness.js';

const [url, prefix] = process.argv.slice(2) as [string, string];
// a registry of its own: the caller dials the address directly
const svc = new Service(greeter, greeterHandlers, {
  registry: new MemoryRegistry(),
  nats: { url, prefix },
  logger: createLogger({ level: 'silent' }),
  drainTimeout: 500,
});
await svc.start();
exitWithParent(() => svc.stop());
process.stdout.write(`${JSON.stringify({ address: svc.address, pid: process.pid })}\n`);
