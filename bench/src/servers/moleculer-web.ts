/**
 * Child process of the gateway benchmarks: moleculer-web 0.11 (ApiGateway) on a
 * Moleculer ServiceBroker, routing `POST /v1/greeter/Hello` to `greeter.hello` (params
 * validated by fastest-validator), JSON body parser, logger off. Prints
 * `{"url":"http://127.0.0.1:PORT"}` when ready and exits when its parent goes away.
 *
 * - no argument: the greeter is on the same broker (no transporter).
 * - `--remote <nodeID> <port>`: the greeter is on another broker (moleculer-greeter.ts),
 *   reached with the TCP transporter, a static node list and no UDP discovery.
 */
import { ServiceBroker, type BrokerOptions } from 'moleculer';
import ApiGateway from 'moleculer-web';
import { moleculerGreeter } from '../greeter.js';
import { exitWithParent } from '../harness.js';

const remoteAt = process.argv.indexOf('--remote');
const options: BrokerOptions = { nodeID: `bench-web-${process.pid}`, logger: false };
if (remoteAt >= 0) {
  const nodeID = process.argv[remoteAt + 1] as string;
  const port = process.argv[remoteAt + 2] as string;
  options.transporter = { type: 'TCP', options: { udpDiscovery: false, port: 0, urls: `127.0.0.1:${port}/${nodeID}` } };
}
const broker = new ServiceBroker(options);
if (remoteAt < 0) broker.createService(moleculerGreeter);
const web = broker.createService({
  name: 'api',
  mixins: [ApiGateway],
  settings: {
    port: 0,
    ip: '127.0.0.1',
    routes: [{ path: '/v1', mappingPolicy: 'restrict', aliases: { 'POST greeter/Hello': 'greeter.hello' }, bodyParsers: { json: true } }],
  },
});
await broker.start();
await broker.waitForServices(['greeter'], 15_000);
exitWithParent(() => broker.stop());
const port = ((web as unknown as { server: { address(): { port: number } } }).server.address()).port;
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}`, pid: process.pid })}\n`);
