import type { TestContext } from 'node:test';
import type { HostedService } from '@micro/server';
import { MAX_LIMIT, type CoreServiceFactory } from '@micro/server/engine';
import { startPlatform, type Platform } from '@micro/services-kit/testing';

/**
 * A `micro server` in this process (local profile) hosting `services` (and `coreServices`
 * beside its own), with the services
 * kit's two tenants, whose calls through the gateway are not held back by what is not
 * measured: the gateway's per-caller rate limit (50/s by default) and tenant a's
 * requests a second and a month, raised as an admin of micro may (as gateway-metering does).
 * MICRO_PUBLIC_URL is the gateway's, for the URLs the services hand out.
 */
export async function unthrottledPlatform(services: readonly HostedService[], coreServices: readonly CoreServiceFactory[] = []): Promise<Platform> {
  // the harness only: startPlatform reads the test context for the nats profile alone
  const p = await startPlatform({} as TestContext, { services, coreServices, profile: 'local' });
  if (!p) throw new Error('the platform did not start');
  process.env.MICRO_PUBLIC_URL = p.url;
  const limiter = (p.server as unknown as { gateway: { limiter?: { rate: number; burst: number } } }).gateway.limiter;
  if (!limiter) throw new Error('the gateway has no rate limiter to raise: has gateway.ts changed?');
  limiter.rate = 1e9;
  limiter.burst = 1e9;
  const set = await p.call(p.adminToken, 'quota', 'Set', { namespace: p.a.namespace, limits: { requestsPerSecond: MAX_LIMIT, requestsPerMonth: MAX_LIMIT } });
  if (set.status !== 200) throw new Error(`quota.Set: ${set.status} ${JSON.stringify(set.body)}`);
  return p;
}
