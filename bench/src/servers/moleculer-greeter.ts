/**
 * Child process of the remote benchmarks: the greeter on a Moleculer ServiceBroker with
 * the TCP transporter (no UDP discovery) on a free port — or, with `--nats <url>
 * <namespace>`, the NATS transporter (Moleculer's own, on the `nats` v2 client) in a
 * Moleculer namespace of its own. Prints `{"nodeID":"...","port":PORT}` when ready and
 * exits when its parent goes away.
 */
import { ServiceBroker } from 'moleculer';
import { moleculerGreeter } from '../greeter.js';
import { exitWithParent } from '../harness.js';

const nodeID = `bench-greeter-${process.pid}`;
const natsAt = process.argv.indexOf('--nats');
const broker = new ServiceBroker(
  natsAt >= 0
    ? { nodeID, logger: false, namespace: process.argv[natsAt + 2], transporter: { type: 'NATS', options: { url: process.argv[natsAt + 1] } } }
    : { nodeID, logger: false, transporter: { type: 'TCP', options: { udpDiscovery: false, port: 0 } } },
);
// `--no-services`: a bare broker, what the cold-start benchmark measures as Moleculer's "server"
if (!process.argv.includes('--no-services')) broker.createService(moleculerGreeter);
await broker.start();
exitWithParent(() => broker.stop());
// the TCP transporter writes the port it bound into the local node's record
const port = natsAt >= 0 ? 0 : (broker.registry as unknown as { nodes: { localNode: { port: number } } }).nodes.localNode.port;
process.stdout.write(`${JSON.stringify({ nodeID, port, pid: process.pid })}\n`);
