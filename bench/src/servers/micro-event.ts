/**
 * Child process of the event benchmark: `micro server` (MicroServer, in a new MICRO_HOME,
 * RPC and gateway on free ports of 127.0.0.1, the local profile: events in SQLite) hosting
 * the event service (services/event) as `micro server` hosts it — in process, reaching the
 * events engine through the server's events core service. A tenant calls it through the
 * gateway with an API key:
 *
 * - the staff (the server's admin) make tenant namespace `bench` with its owner
 *   (`auth.CreateAccount`, scope admin), who logs in and makes an API key
 *   (`auth.CreateKey`): every benchmark call is made with that key;
 * - the namespace's `requestsPerSecond` quota (100 by default) is raised by the staff
 *   (`quota.Set`) to the largest limit; the check still runs on every call;
 * - the gateway's per-caller rate limit (50/s by default) is raised to 1e9/s
 *   (`gatewayRate`): the load generator is one caller. The limiter still runs.
 *
 * No platform: nothing is metered (gateway-metering measures what metering costs).
 * Prints `{"url", "key", "pid"}` when ready and exits when its parent goes away.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@micro/sdk';
import { MAX_GATEWAY_RATE, MicroServer } from '@micro/server';
import { MAX_LIMIT } from '@micro/server/engine';
import { service as eventService } from '@micro/service-event';
import { exitWithParent } from '../harness.js';

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

/** A POST to the gateway; anything but a 200 stops the child with what it answered. */
async function call<T>(path: string, body: unknown, token?: string): Promise<T> {
  const res = await fetch(new URL(path, url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${path} answered ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

const creds = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
const { token: admin } = await call<{ token: string }>('/v1/auth/Token', { ...creds, namespace: 'micro' });
const secret = 'bench-owner-password-1';
await call('/v1/auth/CreateAccount', { id: 'owner', namespace: NAMESPACE, secret, scopes: ['admin'] }, admin);
// before the tenant's first call: the gateway keeps a namespace's limits for 5 s once it has read them
await call('/v1/quota/Set', { namespace: NAMESPACE, limits: { requestsPerSecond: MAX_LIMIT, requestsPerMonth: MAX_LIMIT } }, admin);
const { token: owner } = await call<{ token: string }>('/v1/auth/Login', { id: 'owner', password: secret, namespace: NAMESPACE });
const { key } = await call<{ key: string }>('/v1/auth/CreateKey', { name: 'bench', namespace: NAMESPACE }, owner);

exitWithParent(async () => {
  await server.stop();
  rmSync(home, { recursive: true, force: true });
});
process.stdout.write(`${JSON.stringify({ url, key, pid: process.pid })}\n`);
