import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { ok, post, startServiceProcess, type RunningServer } from './testing.js';

/**
 * For the pricing and usage tests: `books`, a tenant's service whose definition prices its
 * endpoints (Read: 100 units, 5 free calls a month; Count: a free quota alone; Write: not
 * priced), run in a process of its own as `micro run` would, serving from TCP (the server
 * runs with MICRO_RUNTIME_SANDBOX=off so that a tenant node may), and the tenant's owner.
 */
export const BOOKS_SOURCE = `
  const { run, defineService, endpoint } = await import('@micro/sdk');
  const { z } = await import('zod');
  const def = defineService({
    name: 'books',
    version: '1.0.0',
    endpoints: {
      Read: endpoint({ description: 'A book', request: z.object({ id: z.string() }), response: z.object({ title: z.string() }), price: 100, freeQuota: 5 }),
      Count: endpoint({ request: z.object({}), response: z.object({ n: z.number() }), freeQuota: 50 }),
      Write: endpoint({ request: z.object({ id: z.string() }), response: z.object({}) }),
    },
  });
  const svc = await run(def, { Read: ({ id }) => ({ title: 'Book ' + id }), Count: () => ({ n: 3 }), Write: () => ({}) });
  process.stdout.write('ADDRESS ' + svc.address + '\\n');
`;

export const OWNER_PASSWORD = 'owner-password-1';

export interface Tenant {
  adminToken: string;
  /** the token of `owner`, an admin of the tenant's namespace */
  ownerToken: string;
}

/** The admin's token, the tenant `namespace` with its owner, and its books service running. */
export async function tenantWithBooks(t: { after(fn: () => unknown): void }, home: string, server: RunningServer, namespace: string): Promise<Tenant> {
  const gw = server.gateway;
  const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const adminToken = ok(await post(gw, '/v1/auth/Token', { ...admin, namespace: 'micro' })).token as string;
  ok(await post(gw, '/v1/auth/CreateAccount', { id: 'owner', namespace, secret: OWNER_PASSWORD, scopes: ['admin'] }, adminToken));
  const account = ok(await post(gw, '/v1/auth/CreateAccount', { id: 'service:books', type: 'service', namespace }, adminToken));
  await startServiceProcess(t, BOOKS_SOURCE, { MICRO_SERVER: server.address, MICRO_NAMESPACE: namespace, MICRO_AUTH_ID: 'service:books', MICRO_AUTH_SECRET: account.secret as string, MICRO_AUTH_NAMESPACE: namespace });
  const ownerToken = ok(await post(gw, '/v1/auth/Login', { id: 'owner', password: OWNER_PASSWORD, namespace })).token as string;
  return { adminToken, ownerToken };
}

/** Opens the dashboard of `gateway` in a new page of `browser`, logged in by account id, with page errors collected. */
export async function dashboardAs(browser: Browser, gateway: string, who: { id: string; secret: string; namespace: string }): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  await page.goto(`${gateway}/dashboard/`);
  await page.getByRole('tab', { name: 'Account id' }).click();
  await page.getByLabel('Account id').fill(who.id);
  await page.getByLabel('Secret').fill(who.secret);
  await page.getByLabel('Namespace').fill(who.namespace);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
  return { page, problems };
}

/** Where the dashboard tests leave their screenshots (test-artifacts/dashboard/ at the repository's root). */
export const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test-artifacts', 'dashboard');
