import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { createLogger, defineService, endpoint, Service, z } from '@micro/sdk';
import { MicroServer } from '../server.js';
import { browserReady, launchChromium, watchPage as watch } from './browser-testing.js';
import { http } from './testing.js';

/**
 * The dashboard's API keys page (packages/web/src/keys.tsx) in Chromium against a real
 * micro server: a tenant makes a key (a bad service name first), sees it once and copies
 * it, uses it at the gateway, sees its last use; the admin of micro blocks it with a
 * message (the caller gets it, the tenant sees it), unblocks it; the tenant revokes it.
 */

const silent = createLogger({ level: 'silent' });
const ARTIFACTS = fileURLToPath(new URL('../../../../test-artifacts/dashboard/', import.meta.url));

const greeter = defineService({
  name: 'greeter',
  version: '1.0.0',
  endpoints: { Call: endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string() }) }) },
});

async function logIn(page: Page, url: string, id: string, secret: string, namespace: string): Promise<void> {
  await page.goto(`${url}/dashboard/`);
  await page.getByRole('tab', { name: 'Account id' }).click();
  await page.getByLabel('Account id').fill(id);
  await page.getByLabel('Secret').fill(secret);
  await page.getByLabel('Namespace').fill(namespace);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('link', { name: 'API keys' }).click();
}

test('the API keys page in chromium: create (shown once, copied), use, last use, block and unblock by the admin of micro, revoke', { timeout: 120_000 }, async (t) => {
  if (!browserReady(t)) return;
  const home = mkdtempSync(join(tmpdir(), 'micro-dashboard-keys-'));
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent }).start();
  const svc = new Service(greeter, { Call: ({ name }) => ({ message: `Hello ${name}` }) }, { namespace: 'acme', registry: server.registry, logger: silent, auth: false });
  let browser: Browser | undefined;
  try {
    await svc.start();
    const url = server.gatewayUrl as string;
    const post = (path: string, body: unknown, token: string) =>
      http(url, 'POST', path, { headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const adminToken = ((await http(url, 'POST', '/v1/auth/Token', { headers: { 'content-type': 'application/json' }, body: JSON.stringify(admin) })).json as { token: string }).token;
    assert.equal((await post('/v1/auth/CreateAccount', { id: 'ada', namespace: 'acme', scopes: ['admin'], secret: 'ada-password-1' }, adminToken)).status, 200);

    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
    const page = await context.newPage();
    const problems = watch(page);
    const shot = (p: Page, name: string) => p.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

    // the tenant: no keys yet; a bad service name is the server's 400, shown as it says it
    await logIn(page, url, 'ada', 'ada-password-1', 'acme');
    await page.getByText('No API keys.').waitFor();
    const form = page.getByRole('form', { name: 'create an API key' });
    const hostile = '<img src=x onerror="document.title=1">';
    await form.getByLabel('Name', { exact: true }).fill('shop');
    await form.getByLabel('Description').fill(hostile);
    await form.getByLabel('Services').fill('Greeter Service');
    await form.getByLabel('Expires').selectOption({ label: '30 days' });
    await form.getByRole('button', { name: 'Create key' }).click();
    await form.getByRole('alert').getByText(/^400 .*services/).waitFor();
    await form.getByLabel('Services').fill('greeter');
    await form.getByRole('button', { name: 'Create key' }).click();

    // shown once, copied with the button
    const made = page.getByRole('region', { name: 'new API key' });
    const key = (await made.getByLabel('the key').innerText()).trim();
    assert.match(key, /^mk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    await made.getByRole('button', { name: 'Copy' }).click();
    await made.getByRole('status').getByText('Copied to the clipboard.').waitFor();
    type Clipboard = { navigator: { clipboard: { readText(): Promise<string> } } };
    assert.equal(await page.evaluate(() => (globalThis as unknown as Clipboard).navigator.clipboard.readText()), key);
    const id = key.split('.')[0] as string;
    const row = page.locator(`tr[data-key="${id}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /shop[\s\S]*greeter[\s\S]*never[\s\S]*active/);
    assert.ok((await row.innerText()).includes(hostile), 'the description is shown as text');
    assert.equal(await page.locator('main img').count(), 0);
    assert.equal(await row.getByRole('button', { name: 'Block' }).count(), 0, 'blocking is for the admins of micro');
    await shot(page, 'keys-created');
    await made.getByRole('button', { name: 'Done' }).click();
    await made.waitFor({ state: 'detached' });
    assert.ok(!(await page.locator('body').innerText()).includes(key.split('.')[1] as string), 'the secret is gone from the page');

    // used at the gateway, for its services only; the page shows the last use
    assert.deepEqual((await post('/v1/greeter/Call', { name: 'Ada' }, key)).json, { message: 'Hello Ada' });
    const other = await post('/v1/store/List', {}, key);
    assert.deepEqual([other.status, (other.json as { id: string }).id], [403, 'v1.blocked']);
    await page.getByRole('button', { name: 'Refresh' }).click();
    // the last-use cell itself, not any second date of the row (which the old render may have)
    await row.locator('td').nth(4).getByText(/^\d{4}-\d\d-\d\d \d\d:\d\d/).waitFor();
    assert.doesNotMatch((await row.locator('td').nth(4).innerText()).trim(), /never/);

    // the admin of micro names the namespace and blocks the key with a message
    const adminContext = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const staff = await adminContext.newPage();
    const staffProblems = watch(staff);
    await logIn(staff, url, admin.id, admin.secret, 'micro');
    await staff.getByRole('form', { name: 'choose a namespace' }).getByLabel('Namespace').fill('acme');
    await staff.getByRole('button', { name: 'Show' }).click();
    const staffRow = staff.locator(`tr[data-key="${id}"]`);
    await staffRow.getByRole('button', { name: 'Block' }).click();
    const blockForm = staff.getByRole('form', { name: 'block shop' });
    await blockForm.getByPlaceholder('what its callers are told').fill('unpaid invoice: contact billing@example.com');
    await blockForm.getByRole('button', { name: 'Block' }).click();
    await staffRow.getByText('blocked: unpaid invoice: contact billing@example.com').waitFor();
    assert.equal(await staff.getByRole('form', { name: 'create an API key' }).count(), 0, 'keys are made in one\'s own namespace only');
    await shot(staff, 'keys-blocked');
    const refused = await post('/v1/greeter/Call', { name: 'Ada' }, key);
    assert.deepEqual(refused.json, { id: 'v1.blocked', code: 403, detail: 'this API key is blocked: unpaid invoice: contact billing@example.com', status: 'Forbidden' });

    // the tenant sees why; the admin unblocks it and it works again
    await page.getByRole('button', { name: 'Refresh' }).click();
    await row.getByText('blocked: unpaid invoice: contact billing@example.com').waitFor();
    await staffRow.getByRole('button', { name: 'Unblock' }).click();
    await staffRow.getByText('active').waitFor();
    assert.equal((await post('/v1/greeter/Call', { name: 'Ada' }, key)).status, 200);

    // the tenant revokes it (asked first): gone, and refused
    await page.getByRole('button', { name: 'Refresh' }).click();
    await row.getByText('active').waitFor();
    await row.getByRole('button', { name: 'Revoke' }).click();
    await row.getByRole('button', { name: 'Yes, revoke' }).click();
    await page.getByRole('status').getByText(`The key shop (${id}) was revoked: it no longer works.`).waitFor();
    await page.getByText('No API keys.').waitFor();
    assert.equal((await post('/v1/greeter/Call', { name: 'Ada' }, key)).status, 401);
    await shot(page, 'keys-revoked');
    assert.deepEqual([...problems, ...staffProblems], []);
  } finally {
    await browser?.close();
    await svc.stop();
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  }
});
