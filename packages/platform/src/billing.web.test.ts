import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@micro/sdk/testing';
import { browserReady, launchChromium } from '@micro/server/testing';
import { paidPlatform, PASSWORD, type PaidPlatform } from './balance/testing.js';
import { dueAccount, openPayerAccounts, PLATFORM_REVENUE } from './billing/accounts.js';

/**
 * The dashboard's Billing page (packages/web: billing.tsx) in Chromium against a real micro
 * server hosting signup and balance, whose payments go to the local Stripe stand-in: the
 * top-up button leads to its payment page, paying there sends the signed webhook to the
 * gateway and the payer back to the page, which shows the new balance and its history.
 */

const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/dashboard/', import.meta.url));

test('the billing page in chromium: balance, a top-up through the payment page, what is due paid, the history', { timeout: 120_000 }, async (t) => {
  if (!browserReady(t)) return;
  const port = await freePort();
  await paidPlatform(t, (p) => billingPage(t, p), { gateway: `127.0.0.1:${port}`, siteUrl: `http://127.0.0.1:${port}/dashboard` });
});

async function billingPage(t: { after(fn: () => unknown): void }, { url, fake, engines, post, customer }: PaidPlatform): Promise<void> {
  const token = await customer('ada@example.com', 'acme');
  const payer = (await post('/v1/balance/Read', {}, token)).json.payer as string;

  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  await page.goto(`${url}/dashboard/`);
  const login = page.getByRole('form', { name: 'log in with email' });
  await login.getByLabel('Email').fill('ada@example.com');
  await login.getByLabel('Password').fill(PASSWORD);
  await login.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('link', { name: 'Billing' }).click();
  await page.getByRole('heading', { name: 'Billing of acme' }).waitFor();
  const balance = page.getByRole('table', { name: 'balance' });
  assert.equal(await balance.locator('[data-field="balance"]').innerText(), '$0.00');
  await balance.getByText('used up').waitFor();
  await page.getByText('Nothing yet.').waitFor();

  // amounts: one the page cannot read, one the server refuses (its 400 names the field)
  const topUp = page.getByRole('form', { name: 'top up' });
  await topUp.getByLabel(/Top up/).fill('ten dollars');
  await topUp.getByRole('button', { name: 'Top up' }).click();
  await topUp.getByRole('alert').getByText(/^Amount: dollars such as 25 or 25\.50, from \$5\.00 to \$10,000\.00$/).waitFor();
  await topUp.getByLabel(/Top up/).fill('4.99');
  await topUp.getByRole('button', { name: 'Top up' }).click();
  await topUp.getByRole('alert').getByText(/^400 Bad Request: amount: a top-up is from \$5\.00 to \$10,000\.00, not \$4\.99$/).waitFor();
  assert.equal(fake.sessions.size, 0);
  await shot('billing-empty');

  // a top-up of $25: the payment page, Pay, and back to the page with the balance risen once
  await topUp.getByLabel(/Top up/).fill('25');
  await topUp.getByRole('button', { name: 'Top up' }).click();
  await page.getByRole('heading', { name: 'Pay $25.00' }).waitFor();
  assert.match(page.url(), new RegExp(`^${fake.url}/c/pay/cs_test_`));
  await page.getByRole('button', { name: 'Pay' }).click();
  await page.getByRole('status').getByText(/^Thank you\. The payment shows here once the payment provider confirms it/).waitFor();
  assert.equal(new URL(page.url()).hash, '#/billing/paid');
  await balance.locator('[data-field="balance"]').getByText('$25.00').waitFor();
  assert.equal(await balance.getByText('used up').count(), 0);
  const history = page.getByRole('table', { name: 'history' });
  assert.match(await history.locator('tbody tr').first().innerText(), /topup\s+top-up paid through stripe\s+\+\$25\.00\s+\$25\.00/);
  await shot('billing-topped-up');

  // seat fees are due: Pay what is due, the same way
  const { ledger } = engines;
  await openPayerAccounts(ledger, payer);
  await ledger.post({ key: 'seats-acme-2027-01', reason: 'seats of 2027-01', entries: [{ account: dueAccount(payer), amount: -35_000_000 }, { account: PLATFORM_REVENUE, amount: 35_000_000 }], metadata: { kind: 'seats', period: '2027-01' } });
  await page.getByRole('button', { name: 'Refresh' }).click();
  await balance.locator('[data-field="due"]').getByText('-$35.00').waitFor();
  await page.getByRole('button', { name: 'Pay what is due' }).click();
  await page.getByRole('heading', { name: 'Pay $35.00' }).waitFor();
  await page.getByRole('button', { name: 'Pay' }).click();
  await balance.locator('[data-field="due"]').getByText('$0.00').waitFor();
  await page.getByLabel('account').selectOption('due');
  await history.locator('tbody tr').first().getByText('payment of what is due, through stripe').waitFor();
  assert.equal(await history.locator('tbody tr').count(), 2);
  await shot('billing-due-paid');

  // a cancel on the payment page comes back without moving anything
  await topUp.getByLabel(/Top up/).fill('10');
  await topUp.getByRole('button', { name: 'Top up' }).click();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.getByRole('heading', { name: 'Billing of acme' }).waitFor();
  await balance.locator('[data-field="balance"]').getByText('$25.00').waitFor();
  assert.deepEqual(problems, []);
}
