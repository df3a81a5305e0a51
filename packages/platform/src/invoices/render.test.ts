import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { test } from 'node:test';
import { parsePeriod } from '../billing/index.js';
import { escapeHtml, invoiceHtml } from './html.js';
import type { Invoice } from './invoice.js';
import { Invoicer } from './issue.js';
import { invoicePdf } from './pdf-invoice.js';
import { fit, textWidth, winAnsi } from './pdf.js';
import { at, Bill, DOLLAR, sqliteEngines } from './testing.js';

/**
 * The printable renderings of an invoice made by the real issuer from ledger postings,
 * some with hostile names: escaped in the HTML, inert in the PDF, and the PDF a document
 * that poppler (pdftotext, pdftoppm) reads when it is installed.
 */

const ARTIFACTS = fileURLToPath(new URL('../../../../test-artifacts/invoices/', import.meta.url));
const HOSTILE_SERVICE = '<script>alert(1)</script>';
const HOSTILE_BUYER = '"><img src=x onerror=alert(2)> Ltd & Sons';
const HOSTILE_REASON = 'goodwill) Tj ET BT /F1 40 Tf 100 100 Td (pwned';

async function hostileInvoice(t: Parameters<typeof sqliteEngines>[0], lines = 0): Promise<Invoice> {
  const e = await sqliteEngines(t);
  assert.ok(e);
  const bill = new Bill(e.ledger);
  const p = 'cus_render';
  await bill.open(p);
  e.clock.now = at(2027, 1, 4);
  await bill.topup(p, 25 * DOLLAR);
  await bill.seats(p, '2027-01', 'Team', 4, 35 * DOLLAR);
  for (let i = 0; i < 3; i++) await bill.usage(p, '2027-01', 'search', 'Query', 12_345);
  await bill.usage(p, '2027-01', HOSTILE_SERVICE, 'Call', 1_000_000);
  await bill.credit(p, 5 * DOLLAR, HOSTILE_REASON);
  for (let i = 0; i < lines; i++) await bill.usage(p, '2027-01', 'svc', `Endpoint${String(i).padStart(3, '0')}`, 100);
  await bill.payment(p, 140 * DOLLAR);
  e.clock.now = parsePeriod('2027-01').end;
  const invoicer = new Invoicer({
    ledger: e.ledger,
    storage: e.storage,
    clock: () => e.clock.now,
    taxRate: 2000,
    seller: { name: 'Micro Ltd', lines: ['1 Main Street', 'London EC1A 1AA'] },
    buyerOf: async () => ({ name: HOSTILE_BUYER, email: 'ada@example.com', lines: ['customer cus_render', 'namespaces: acme'] }),
  });
  const r = await invoicer.issue(p, parsePeriod('2027-01'));
  assert.equal(r.status, 'issued');
  return (r as { invoice: Invoice }).invoice;
}

test('html: a self-contained printable page, every text escaped, nothing can run', async (t) => {
  const invoice = await hostileInvoice(t);
  const html = invoiceHtml(invoice);
  assert.match(html, /^<!doctype html>/);
  assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">/);
  assert.match(html, /@media print/);
  assert.doesNotMatch(html, /<script|<img/i);
  assert.ok(html.includes(escapeHtml(HOSTILE_SERVICE)));
  assert.ok(html.includes('&quot;&gt;&lt;img src=x onerror=alert(2)&gt; Ltd &amp; Sons'));
  for (const text of ['INV-2027-000001', 'Micro Ltd', '2027-01-01 to 2027-01-31', 'Seats: Team plan', '$35.00', '$140.00', 'API calls: search.Query', '3 calls', '$0.037035', 'Payments received', 'Amount due']) {
    assert.ok(html.includes(text), text);
  }
  // no external reference of any kind: it prints the same offline
  assert.doesNotMatch(html, /\s(src|href)="|url\(|@import/);
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, 'invoice.html'), html);
});

test('pdf: a valid document (exact cross-reference offsets), hostile text inert, same bytes for the same invoice', async (t) => {
  const invoice = await hostileInvoice(t);
  const pdf = invoicePdf(invoice);
  assert.deepEqual(invoicePdf(invoice), pdf, 'deterministic');
  const text = pdf.toString('latin1');
  assert.match(text, /^%PDF-1\.4\n/);
  assert.match(text, /%%EOF\n$/);
  const startxref = Number(/startxref\n(\d+)\n%%EOF\n$/.exec(text)?.[1]);
  assert.ok(text.slice(startxref).startsWith('xref\n0 '));
  const offsets = [...text.slice(startxref).matchAll(/^(\d{10}) 00000 n $/gm)].map((m) => Number(m[1]));
  assert.ok(offsets.length >= 7);
  offsets.forEach((o, i) => assert.ok(text.slice(o).startsWith(`${i + 1} 0 obj\n`), `object ${i + 1} at ${o}`));
  // the content: the hostile reason is one escaped string, not operators
  const streams = [...text.matchAll(/stream\n([\s\S]*?)\nendstream/g)].map((m) => inflateSync(Buffer.from(m[1] as string, 'latin1')).toString('latin1'));
  const content = streams.join('\n');
  assert.ok(content.includes('(Credit: goodwill\\) Tj ET BT /F1 40 Tf 100 100 Td \\(pwned)'));
  assert.equal(content.match(/\/F1 40 Tf/g)?.length, 1, 'only inside the escaped string');
  assert.ok(content.includes('(INV-2027-000001)') || content.includes('(Number INV-2027-000001)'));
});

test('pdf: many lines flow onto more pages, the heading repeated', async (t) => {
  const pdf = invoicePdf(await hostileInvoice(t, 90)).toString('latin1');
  const pages = Number(/\/Type \/Pages \/Kids \[[^\]]*\] \/Count (\d+)/.exec(pdf)?.[1]);
  assert.ok(pages >= 3, `${pages} pages`);
  const streams = [...pdf.matchAll(/stream\n([\s\S]*?)\nendstream/g)].map((m) => inflateSync(Buffer.from(m[1] as string, 'latin1')).toString('latin1'));
  for (const s of streams) assert.ok(s.includes('(DESCRIPTION)'), 'each page has the heading');
});

test('pdf text: WinAnsi only, control characters dropped, widths measured, long text cut', () => {
  assert.equal(winAnsi('a\u0000b\nc\u202ed'), 'abcd');
  assert.equal(winAnsi('€ – “x” 𝔘 é'), '\x80 \x96 \x93x\x94 ? é');
  assert.equal(textWidth('0', 10), 5.56);
  assert.equal(textWidth('W', 10, true), 9.44);
  const cut = fit('x'.repeat(500), 100, 10);
  assert.ok(cut.endsWith('…') && textWidth(cut, 10) <= 100);
  assert.equal(fit('short', 100, 10), 'short');
});

test('pdf: poppler reads it (pdftotext, pdftoppm)', async (t) => {
  if (spawnSync('pdftotext', ['-v']).error) {
    // CI installs it (.ci/run): there the check is mandatory
    assert.ok(!process.env.CI, 'pdftotext is missing: apt-get install poppler-utils');
    t.skip('pdftotext not installed (apt-get install poppler-utils)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'micro-invoice-pdf-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'invoice.pdf');
  writeFileSync(file, invoicePdf(await hostileInvoice(t)));
  const text = execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'latin1' });
  for (const s of ['INVOICE', 'Micro Ltd', 'Number INV-2027-000001', 'Period 2027-01-01 to 2027-01-31', '"><img src=x onerror=alert(2)> Ltd & Sons', 'Seats: Team plan', '4 seats', '$35.00', '$140.00', 'API calls: <script>alert(1)</script>.Call', 'goodwill) Tj ET BT /F1 40 Tf 100 100 Td (pwned', 'Amount due']) {
    assert.ok(text.includes(s), `${s} in:\n${text}`);
  }
  const info = execFileSync('pdfinfo', [file], { encoding: 'latin1' });
  assert.match(info, /Title: +Invoice INV-2027-000001/);
  assert.match(info, /Pages: +1/);
  mkdirSync(ARTIFACTS, { recursive: true });
  execFileSync('pdftoppm', ['-png', '-r', '60', '-singlefile', file, join(ARTIFACTS, 'invoice-pdf')]);
  writeFileSync(join(ARTIFACTS, 'invoice.pdf'), invoicePdf(await hostileInvoice(t)));
});
