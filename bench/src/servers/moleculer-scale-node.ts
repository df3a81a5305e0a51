/**
 * Child process of the scale-runtime benchmark: one Moleculer ServiceBroker (TCP
 * transporter on a free port, no UDP discovery, a static node list naming the caller's
 * broker) hosting one small service, `<name>.ping` → `{ pong: true }`. Arguments: the
 * service name, the caller's node id and port. Prints `{"nodeID":"...","pid":PID}` when
 * started and exits when its parent goes away.
 */
import { ServiceBroker } from 'moleculer';
import { exitWithParent } from '../harness.js';

const [name, callerID, callerPort] = process.argv.slice(2) as [string, string, string];
const nodeID = `bench-scale-${name}-${process.pid}`;
const broker = new ServiceBroker({
  nodeID,
  logger: false,
  transporter: { type: 'TCP', options: { udpDiscovery: false, port: 0, urls: `127.0.0.1:${callerPort}/${callerID}` } },
});
broker.createService({ name, actions: { ping: () => ({ pong: true }) } });
await broker.start();
exitWithParent(() => broker.stop());
process.stdout.write(`${JSON.stringify({ nodeID, pid: process.pid })}\n`);
