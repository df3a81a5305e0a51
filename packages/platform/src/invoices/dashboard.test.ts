import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { browserReady, launchChromium } from '@micro/server/testing';
import { startInvoicesPlatform } from './harness.js';
import { at, DOLLAR } from './testing.js';

/**
 * The dashboard's Invoices page (packages/web/src/invoices.tsx) in Chromium against a
 * real micro server: a customer logs in by email, lists its invoices, opens one (lines
 * and totals, a hostile service name shown as text), downloads its printable HTML (opened
 * in the browser: styled, nothing run) and its PDF; another customer's number is a 404.
 */

const ARTIFACTS = fileURLToPath(new URL('../../../../test-artifacts/dashboard/', import.meta.url));
const PASSWORD = 'correct horse battery';
const HOSTILE = '<img src=x onerror=alert(1)>';
/** what getComputedStyle is (this file is compiled without the DOM's types; the function runs in the page) */
type Styles = { getComputedStyle(e: unknown): { maxWidth: string; backgroundColor: string } };

test('the invoices page in chromium: list, open, download HTML and PDF, another payer refused', { timeout: 120_000 }, async (t) => {
  if (!browserReady(t)) return;
  const p = await startInvoicesPlatform();
  t.after(() => p.stop());
  const ada = await p.signUp('ada@example.com', PASSWORD, 'ada-space');
  const bob = await p.signUp('bob@example.com', PASSWORD, 'bob-place');
  for (const c of [ada.customer, bob.customer]) {
    await p.bill.open(c);
    await p.bill.topup(c, 20 * DOLLAR);
    await p.bill.usage(c, '2027-01', HOSTILE, 'Call', 1_500_000);
    await p.bill.seats(c, '2027-01', 'Team', 3, 35 * DOLLAR);
  }
  p.clock.now = at(2027, 2, 1);
  const issued = (await p.post('/v1/invoices/Issue', { period: '2027-01' }, p.admin)).json.issued as { number: string; payer: string }[];
  const adaNo = issued.find((i) => i.payer === ada.customer)?.number as string;
  const bobNo = issued.find((i) => i.payer === bob.customer)?.number as string;

  const browser = await launchChromium();
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => problems.push(`dialog: ${d.message()}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  await page.goto(`${p.url}/dashboard/`);
  const form = page.getByRole('form', { name: 'log in with email' });
  await form.getByLabel('Email').fill('ada@example.com');
  await form.getByLabel('Password').fill(PASSWORD);
  await form.getByRole('button', { name: 'Log in' }).click();
  await page.locator('nav .who').getByText('ada@example.com').waitFor();

  // the list: hers only
  await page.getByRole('link', { name: 'Invoices' }).click();
  const list = page.getByRole('table', { name: 'invoices' });
  await list.getByRole('link', { name: adaNo }).waitFor();
  assert.equal(await list.getByRole('row').count(), 2, 'a heading and her one invoice');
  assert.match(await list.innerText(), new RegExp(`${adaNo}\\s+2027-01\\s+2027-02-01\\s+ada@example.com\\s+\\$127\\.80\\s+\\$126\\.30`));
  assert.doesNotMatch(await page.locator('main').innerText(), new RegExp(bobNo));
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'invoices.png'), fullPage: true });

  // one invoice: its lines (the hostile name as text) and totals
  await list.getByRole('link', { name: adaNo }).click();
  await page.getByRole('heading', { name: `Invoice ${adaNo}` }).waitFor();
  const lines = page.getByRole('table', { name: 'invoice lines' });
  await lines.locator('tr[data-kind="usage"]').waitFor();
  assert.match(await lines.locator('tr[data-kind="usage"]').innerText(), new RegExp(`usage\\s+${HOSTILE.replace(/[()]/g, '\\$&')}\\.Call\\s+2027-01\\s+1 call\\s+\\$1\\.50`));
  assert.match(await lines.locator('tr[data-kind="seats"]').innerText(), /seats\s+Team plan\s+2027-01\s+3 seats\s+\$35\.00\s+\$105\.00/);
  assert.equal(await page.locator('main img').count(), 0, 'the name is text, not an element');
  assert.match(await page.getByRole('table', { name: 'totals' }).innerText(), /Tax 20 % of \$106\.50\s+\$21\.30\s+Total\s+\$127\.80[\s\S]*Amount due\s+\$126\.30/);
  await page.screenshot({ path: join(ARTIFACTS, 'invoice.png'), fullPage: true });

  // the printable HTML, downloaded and opened: styled by its own CSS, nothing runs
  const [html] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download HTML' }).click()]);
  assert.equal(html.suggestedFilename(), `${adaNo}.html`);
  const htmlPath = join(ARTIFACTS, `${adaNo}.html`);
  await html.saveAs(htmlPath);
  assert.match(readFileSync(htmlPath, 'utf8'), /&lt;img src=x onerror=alert\(1\)&gt;/);
  const printable = await context.newPage();
  printable.on('dialog', (d) => problems.push(`dialog in the invoice: ${d.message()}`));
  await printable.goto(pathToFileURL(htmlPath).href);
  await printable.getByRole('heading', { name: 'Invoice' }).waitFor();
  assert.equal(await printable.locator('.invoice').evaluate((e) => (globalThis as unknown as Styles).getComputedStyle(e).maxWidth), '820px');
  assert.equal(await printable.locator('img').count(), 0);
  assert.match(await printable.locator('table.totals').innerText(), /Amount due\s+\$126\.30/);
  await printable.screenshot({ path: join(ARTIFACTS, 'invoice-printable.png'), fullPage: true });
  await printable.emulateMedia({ media: 'print' });
  assert.equal(await printable.locator('body').evaluate((e) => (globalThis as unknown as Styles).getComputedStyle(e).backgroundColor), 'rgb(255, 255, 255)');

  // the PDF
  const [pdf] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download PDF' }).click()]);
  assert.equal(pdf.suggestedFilename(), `${adaNo}.pdf`);
  const pdfPath = join(ARTIFACTS, `${adaNo}.pdf`);
  await pdf.saveAs(pdfPath);
  assert.equal(readFileSync(pdfPath).subarray(0, 8).toString('latin1'), '%PDF-1.4');

  // another payer's invoice by its link: the server's 404, nothing of it shown
  await page.goto(`${p.url}/dashboard/#/invoices/${bobNo}`);
  await page.getByRole('alert').getByText(`404 Not Found: number: no invoice ${bobNo} of yours`).waitFor();
  assert.equal(await page.getByRole('table', { name: 'invoice lines' }).count(), 0);
  await page.goto(`${p.url}/dashboard/#/invoices/nonsense`);
  await page.getByRole('alert').getByText(/400 Bad Request: number: "nonsense" is not an invoice number/).waitFor();
  assert.deepEqual(problems, []);
});
