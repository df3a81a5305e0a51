/**
 * One instance of the echo service served over NATS, in a process of its own, for the
 * tests that kill an instance with SIGKILL (nats.test.ts). Arguments: NATS URL, prefix,
 * namespace, registry directory (a FileRegistry shared with the test). Prints
 * `ready <node id> <address>` once callers can reach it.
 */
import { FileRegistry } from '../../registry/file.js';
import { Service } from '../../service/service.js';
import { echo, echoHandlers, silent } from '../../test/fixtures.js';

const [url, prefix, namespace, dir] = process.argv.slice(2);
if (!url || !prefix || !namespace || !dir) {
  console.error('usage: instance-host <nats url> <prefix> <namespace> <registry dir>');
  process.exit(2);
}
const service = new Service(echo, echoHandlers(), { registry: new FileRegistry({ dir }), namespace, logger: silent, nats: { url, prefix } });
await service.start();
console.log(`ready ${service.nodeId} ${service.address}`);
