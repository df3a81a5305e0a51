/**
 * Child process of the event benchmark: `micro server` (MicroServer, in a new MICRO_HOME,
 * RPC and gateway on free ports of 127.0.0.1, the local profile: events in SQLite) hosting
 * the event service (services/event) as `micro server` hosts it — in process, reaching the
 * events engine through the server's events core service. A tenant calls it through the
 * gateway with an API key:
 *
 * - tenant namespace `bench` made through the gateway with an API key, its
 *   `requestsPerSecond` quota (100 by default) raised (tenant.ts): every benchmark call
 *   is made with that key;
 * - the gateway's per-caller rate limit (50/s by default) is raised to 1e9/s
 *   (`gatewayRate`): the load generator is one caller. The limiter still runs.
 *
 * No platform: nothing is metered (gateway-metering measures what metering costs).
 * Prints `{"url", "key", "pid"}` when ready and exits when its parent goes away.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@micro/sdk';
import { MAX_GATEWAY_RATE, MicroServer } from '@micro/server';
import { service as eventService } from '@micro/service-event';
import { exitWithParent } from '../harness.js';
import { benchTenant } from './tenant.js';

const NAMESPACE = 'bench';

const home = mkdtempSync(join(tmpdir(), 'micro-bench-event-'));
const server = new MicroServer({
  home,
  address: 'tcp://127.0.0.1:0',
  gateway: 'tcp://127.0.0.1:0',
  logger: createLogger({ level: 'silent' }),
  // no tenant service is started by the runtime here: nothing to sandbox
  sandbox: { mode: 'off' },
  services: [eventService],
  gatewayRate: { rate: MAX_GATEWAY_RATE, burst: MAX_GATEWAY_RATE },
});
// MICRO_SERVICES of the caller's shell must not leave the event service out
delete process.env.MICRO_SERVICES;
await server.start();
const url = server.gatewayUrl as string;

const { key } = await benchTenant(url, home, NAMESPACE);

exitWithParent(async () => {
  await server.stop();
  rmSync(home, { recursive: true, force: true });
});
process.stdout.write(`${JSON.stringify({ url, key, pid: process.pid })}\n`);
