/**
 * Child process of the gateway-metering benchmark: `micro server` as the CLI starts it —
 * MicroServer with the platform's core services (`platformCoreServices()` on one
 * PlatformHub: signup, plans, pricing, usage with its meter, invoices, balance) in a new
 * MICRO_HOME, RPC and gateway on free ports of 127.0.0.1, the local profile (billing.db:
 * SQLite, WAL, synchronous FULL) — with the greeter of tenant namespace `bench` in this
 * process, registered in the server's registry (the gateway calls it in process).
 *
 * - `--price N`: greeter.Hello is priced N units a call in its definition (no free
 *   quota): the meter holds, records, group-commits and posts every call to the ledger;
 * - no argument: the same greeter, Hello not priced: the meter answers "not metered".
 *
 * Everything else is the same on both sides, set up through the gateway's own API as a
 * user would:
 * - the staff (the server's admin) make tenant namespace `bench` with its owner
 *   (`auth.CreateAccount`, scope admin), who logs in and makes an API key
 *   (`auth.CreateKey`): every benchmark call is made with that key;
 * - its payer (`ns.bench`: no signup customer owns the namespace) gets a promo credit of
 *   CREDIT units (`balance.Credit`), which the load cannot use up;
 * - its quotas are raised by the staff (`quota.Set`, what admins of micro may set for any
 *   namespace): `requestsPerSecond` and `requestsPerMonth` to the largest limit, so neither
 *   the namespace's rate nor its month refuses the load. (Changing its payer's plan would
 *   not do: the largest plan, Platform, allows 500 requests a second.) Both checks still run on every call;
 * - the gateway's per-caller rate limit (50/s by default) is raised to 1e9/s
 *   (`gatewayRate`) as in micro-gateway.ts: the load generator is one caller. The
 *   limiter still runs.
 *
 * Prints `{"url", "key", "admin", "namespace", "pid"}` when ready (`admin`: an access
 * token of the server's admin, for the bench's reads of balance and usage) and exits
 * when its parent goes away.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, Service } from '@micro/sdk';
import { MAX_GATEWAY_RATE, MicroServer } from '@micro/server';
import { platformCoreServices, PlatformHub } from '@micro/platform';
import { greeter, greeterHandlers, pricedGreeter } from '../greeter.js';
import { exitWithParent } from '../harness.js';
import { benchTenant } from './tenant.js';

/** the tenant namespace the benchmark's calls act in */
export const NAMESPACE = 'bench';
/** units of 10^-6 USD: $1,000,000, a billion calls at 1 unit */
const CREDIT = 1_000_000_000_000;

const priceAt = process.argv.indexOf('--price');
const price = priceAt >= 0 ? Number(process.argv[priceAt + 1]) : undefined;
if (price !== undefined && !(Number.isSafeInteger(price) && price > 0)) throw new Error(`--price takes whole units above 0, not ${process.argv[priceAt + 1]}`);

const home = mkdtempSync(join(tmpdir(), 'micro-bench-metering-'));
const logger = createLogger({ level: 'silent' });
const server = new MicroServer({
  home,
  address: 'tcp://127.0.0.1:0',
  gateway: 'tcp://127.0.0.1:0',
  logger,
  // no tenant service is started by the runtime here: nothing to sandbox
  sandbox: { mode: 'off' },
  coreServices: platformCoreServices({ hub: new PlatformHub() }),
  gatewayRate: { rate: MAX_GATEWAY_RATE, burst: MAX_GATEWAY_RATE },
});
await server.start();
const url = server.gatewayUrl as string;

const { key, admin, call } = await benchTenant(url, home, NAMESPACE);
await call('/v1/balance/Credit', { namespace: NAMESPACE, amount: CREDIT, reason: 'benchmark credit', idempotencyKey: 'bench-credit' }, admin);

// a listener of its own, so that it is in the registry; the gateway's SDK client then calls the local instance in process
const svc = new Service(price === undefined ? greeter : pricedGreeter(price), greeterHandlers, {
  registry: server.registry,
  namespace: NAMESPACE,
  address: 'tcp://127.0.0.1:0',
  logger,
  auth: false,
  registerTTL: 0,
});
await svc.start();

exitWithParent(async () => {
  await svc.stop();
  await server.stop();
  rmSync(home, { recursive: true, force: true });
});
process.stdout.write(`${JSON.stringify({ url, key, admin, namespace: NAMESPACE, pid: process.pid })}\n`);
