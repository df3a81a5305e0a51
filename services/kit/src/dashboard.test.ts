import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineService, endpoint, z } from '@micro/sdk';
import { browserReady, launchChromium, watchPage } from '@micro/server/testing';
import { publicService } from './index.js';
import { startPlatform } from './testing.js';

/** A public service as the dashboard shows it to a tenant: listed beside its own, with a call form that reaches it. */
const greet = defineService({
  name: 'greet',
  public: true,
  description: 'Greets the caller',
  endpoints: { Hello: endpoint({ request: z.object({ name: z.string().max(20) }), response: z.object({ message: z.string() }) }) },
});

test('the dashboard lists micro\'s public services to a tenant, and its call form reaches them as that tenant', async (t) => {
  if (!browserReady(t)) return;
  const p = await startPlatform(t, { services: [publicService(greet, () => ({ Hello: ({ name }, ctx) => ({ message: `Hello ${name} of ${ctx.tenant}` }) }))] });
  if (!p) return;
  t.after(() => p.close());
  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const problems = watchPage(page);
  await page.goto(`${p.url}/dashboard/`);
  await page.getByRole('tab', { name: 'Account id' }).click();
  await page.getByLabel('Account id').fill(p.a.owner.id);
  await page.getByLabel('Secret').fill(p.a.owner.secret);
  await page.getByLabel('Namespace').fill(p.a.namespace);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('link', { name: 'Services' }).click();
  const row = page.getByRole('button', { name: 'greet' });
  await row.waitFor();
  assert.match(await page.locator('main').innerText(), /greet · public/);
  // nothing else of micro: its core services are not the tenant's to list
  assert.doesNotMatch(await page.locator('main').innerText(), /\bauth\b|\bregistry\b/);
  await row.click();
  const form = page.getByRole('form', { name: 'call greet.Hello' });
  await form.getByLabel('name').fill('Ada');
  await form.getByRole('button', { name: 'Call', exact: true }).click();
  await page.getByLabel('answer').getByText('Hello Ada of tenant-a').waitFor();
  assert.deepEqual(problems.filter((x) => x.startsWith('pageerror')), []);
});
