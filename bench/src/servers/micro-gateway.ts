/**
 * Child process of the gateway benchmarks: `micro server` (MicroServer, in a new
 * MICRO_HOME, RPC and gateway on free ports of 127.0.0.1) with the greeter behind its
 * HTTP gateway. Prints `{"url":"http://127.0.0.1:PORT"}` (the gateway) when ready and
 * exits when its parent goes away.
 *
 * - no argument: the greeter is a Service in this process, registered in the server's
 *   registry; the gateway's SDK client finds it as a local instance and calls it in
 *   process: no network hop between gateway and service.
 * - `--remote '<record>'`: the greeter runs in another process (micro-greeter-node.ts); its
 *   registry record is registered in the server's registry, so the gateway dials it.
 *
 * Two settings differ from a default server:
 * - a public rule (`service:greeter:*`, scope '') lets anonymous callers call the
 *   greeter, so requests carry no token (no per-request token verification); made on the
 *   running server's objects (MicroServerOptions does not expose rules);
 * - the gateway's per-caller rate limit (50/s, bursts of 100, by default) is raised to
 *   1e9/s (`gatewayRate`): the load generator is one caller. The limiter still runs on
 *   every request.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, Service, type ServiceRecord } from '@micro/sdk';
import { MAX_GATEWAY_RATE, MicroServer } from '@micro/server';
import { greeter, greeterHandlers } from '../greeter.js';
import { exitWithParent } from '../harness.js';

interface Internals {
  accounts: { rules: { create(namespace: string, rule: { id: string; resource: string; scope: string; access: 'granted'; priority: number }): unknown } };
}

const remoteAt = process.argv.indexOf('--remote');
const remote = remoteAt >= 0 ? (JSON.parse(process.argv[remoteAt + 1] as string) as ServiceRecord) : undefined;

const home = mkdtempSync(join(tmpdir(), 'micro-bench-gateway-'));
const logger = createLogger({ level: 'silent' });
const server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: 'tcp://127.0.0.1:0', logger, gatewayRate: { rate: MAX_GATEWAY_RATE, burst: MAX_GATEWAY_RATE } });
await server.start();
const internals = server as unknown as Internals;
internals.accounts.rules.create('micro', { id: 'bench-greeter-public', resource: 'service:greeter:*', scope: '', access: 'granted', priority: 100 });

let svc: Service | undefined;
if (remote) {
  await server.registry.register(remote, { namespace: 'micro' });
} else {
  // a listener of its own, so that it is in the registry (the gateway looks services up
  // there first; an `address: false` service is not registered and would be a 404); the
  // gateway's SDK client then calls the local instance in process, not over the socket
  svc = new Service(greeter, greeterHandlers, { registry: server.registry, namespace: 'micro', address: 'tcp://127.0.0.1:0', logger, auth: false, registerTTL: 0 });
  await svc.start();
}

exitWithParent(async () => {
  await svc?.stop();
  await server.stop();
  rmSync(home, { recursive: true, force: true });
});
process.stdout.write(`${JSON.stringify({ url: server.gatewayUrl, pid: process.pid })}\n`);
