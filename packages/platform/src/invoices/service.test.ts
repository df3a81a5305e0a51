import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at, DOLLAR } from './testing.js';
import { startInvoicesPlatform, type Answer } from './harness.js';

/**
 * The invoices service through the API gateway of a real micro server, as tenants and the
 * staff call it: each customer sees its own invoices only (a stranger's number is a 404, a
 * team member who does not pay is refused), the staff issue and read any, renderings come
 * back as HTML and PDF, and every bad input is a 400 naming the field.
 */

const PASSWORD = 'correct horse battery';
const code = (a: Answer, status: number, detail?: RegExp, what = '') => {
  assert.equal(a.status, status, `${what} ${JSON.stringify(a.json)}`);
  if (detail) assert.match(a.json.detail ?? '', detail, what);
};

test('tenants see only their own invoices; staff issue and read any; renderings; hostile input', { timeout: 120_000 }, async (t) => {
  const p = await startInvoicesPlatform();
  t.after(() => p.stop());
  const ada = await p.signUp('ada@example.com', PASSWORD, 'ada-space');
  const bob = await p.signUp('bob@example.com', PASSWORD, 'bob-place');
  // bob is also a developer of ada's namespace: a member, not her payer
  code(await p.post('/v1/signup/InviteMember', { namespace: 'ada-space', email: 'bob@example.com', role: 'developer' }, ada.token), 200);
  code(await p.post('/v1/signup/AcceptInvite', { namespace: 'ada-space', password: PASSWORD }, bob.token), 200);
  const bobInAda = (await p.post('/v1/signup/Login', { email: 'bob@example.com', password: PASSWORD, namespace: 'ada-space' })).json.token as string;

  for (const c of [ada.customer, bob.customer]) {
    await p.bill.open(c);
    await p.bill.topup(c, 20 * DOLLAR);
    await p.bill.usage(c, '2027-01', 'search', 'Query', 150_000);
    await p.bill.seats(c, '2027-01', 'Developer', 1, 35 * DOLLAR);
  }
  code(await p.post('/v1/invoices/Issue', { period: '2027-01' }, p.admin), 400, /period: 2027-01 ends at 2027-02-01T00:00:00.000Z/);
  p.clock.now = at(2027, 2, 1, 3);
  code(await p.post('/v1/invoices/Issue', { period: '2027-01' }, ada.token), 403, /admin of namespace micro/, 'a tenant issues');
  const issued = await p.post('/v1/invoices/Issue', { period: '2027-01' }, p.admin);
  code(issued, 200);
  assert.equal(issued.json.count, 2);
  const again = await p.post('/v1/invoices/Issue', { period: '2027-01', payer: ada.customer }, p.admin);
  assert.deepEqual([again.json.count, (again.json.existing as { payer: string }[])[0]?.payer], [0, ada.customer], 'issued once');
  const numbers = Object.fromEntries((issued.json.issued as { payer: string; number: string }[]).map((s) => [s.payer, s.number]));
  const adaNo = numbers[ada.customer] as string;
  const bobNo = numbers[bob.customer] as string;

  // ada: her own list, her invoice, its renderings
  const list = await p.post('/v1/invoices/List', {}, ada.token);
  code(list, 200);
  assert.equal(list.json.payer, ada.customer);
  assert.deepEqual((list.json.invoices as { number: string }[]).map((i) => i.number), [adaNo]);
  const read = await p.post('/v1/invoices/Read', { number: adaNo }, ada.token);
  code(read, 200);
  const invoice = read.json.invoice as { total: number; tax: number; buyer: { name: string; lines: string[] }; through?: unknown; lines: unknown[] };
  assert.equal(invoice.total, 42 * DOLLAR + 180_000);
  assert.equal(invoice.buyer.name, 'ada@example.com');
  assert.deepEqual(invoice.buyer.lines, [`customer ${ada.customer}`, 'namespaces: ada-space']);
  assert.equal(invoice.through, undefined, 'the ledger watermarks stay inside');
  const html = await p.post('/v1/invoices/Render', { number: adaNo, format: 'html' }, ada.token);
  code(html, 200);
  assert.deepEqual([html.json.filename, html.json.contentType, html.json.encoding], [`${adaNo}.html`, 'text/html; charset=utf-8', 'utf8']);
  assert.match(html.json.content as string, new RegExp(`<title>Invoice ${adaNo}</title>`));
  const pdf = await p.post('/v1/invoices/Render', { number: adaNo, format: 'pdf' }, ada.token);
  assert.deepEqual([pdf.json.filename, pdf.json.contentType, pdf.json.encoding], [`${adaNo}.pdf`, 'application/pdf', 'base64']);
  assert.equal(Buffer.from(pdf.json.content as string, 'base64').subarray(0, 8).toString('latin1'), '%PDF-1.4');

  // the attacks: another's number is a 404 like a number that does not exist; another payer a 403
  for (const [path, body] of [['/v1/invoices/Read', { number: bobNo }], ['/v1/invoices/Render', { number: bobNo, format: 'pdf' }], ['/v1/invoices/Render', { number: bobNo, format: 'html' }]] as const) {
    code(await p.post(path, body, ada.token), 404, new RegExp(`no invoice ${bobNo} of yours`), `ada reads bob's via ${path}`);
  }
  code(await p.post('/v1/invoices/Read', { number: 'INV-2027-999999' }, ada.token), 404, /no invoice INV-2027-999999 of yours/);
  code(await p.post('/v1/invoices/List', { payer: bob.customer }, ada.token), 403, /only your own invoices/);
  code(await p.post('/v1/invoices/List', {}, bobInAda), 403, /invoices of namespace ada-space are its owner's/, 'a member who does not pay');
  code(await p.post('/v1/invoices/Read', { number: adaNo }, bobInAda), 403, /owner's/);
  code(await p.post('/v1/invoices/List', {}), 401, undefined, 'anonymous');
  code(await p.post('/v1/invoices/Read', { number: adaNo }, `${ada.token}x`), 401, undefined, 'forged token');
  code(await p.post('/v1/invoices/Read', { number: adaNo }, ada.token.replace(/\.[^.]+$/, '.e30')), 401, undefined, 'resigned token');

  // bad input: each a 400 naming the field, nothing issued
  for (const [path, body, field] of [
    ['/v1/invoices/Read', { number: '../../etc/passwd' }, /number/],
    ['/v1/invoices/Read', { number: "INV-2027-000001' OR 1=1" }, /number/],
    ['/v1/invoices/Read', { number: 'INV-2027-000001\u0000' }, /number/],
    ['/v1/invoices/Read', { number: 'x'.repeat(5000) }, /number/],
    ['/v1/invoices/Read', { number: 7 }, /number/],
    ['/v1/invoices/Read', {}, /number/],
    ['/v1/invoices/Read', { number: adaNo, extra: 1 }, /extra|unrecognized/i],
    ['/v1/invoices/Render', { number: adaNo, format: 'exe' }, /format: "exe" is not html or pdf/],
    ['/v1/invoices/Render', { number: adaNo, format: '<b>' }, /format/],
    ['/v1/invoices/Render', { number: adaNo }, /format/],
    ['/v1/invoices/List', { limit: 0 }, /limit/],
    ['/v1/invoices/List', { limit: 101 }, /limit/],
    ['/v1/invoices/List', { limit: 1.5 }, /limit/],
    ['/v1/invoices/List', { limit: '10' }, /limit/],
    ['/v1/invoices/List', { after: "1'; DROP TABLE invoices; --" }, /after/],
    ['/v1/invoices/List', { period: '2027-13' }, /period/],
    ['/v1/invoices/List', { period: '2027-1' }, /period/],
  ] as const) {
    code(await p.post(path, body, ada.token), 400, field, JSON.stringify(body).slice(0, 60));
  }
  for (const [body, field] of [
    [{ period: '2027-00' }, /period/],
    [{ period: 'January' }, /period/],
    [{ period: '2027-01', payer: 'a b' }, /payer/],
    [{ period: '2027-01', payer: '<script>' }, /payer/],
    [{ period: '2027-01', payer: 'x'.repeat(105) }, /payer/],
    [{ period: '2027-03' }, /period: 2027-03 ends at/],
    [{ period: '9999-12' }, /period/],
  ] as const) {
    code(await p.post('/v1/invoices/Issue', body, p.admin), 400, field, JSON.stringify(body).slice(0, 60));
  }

  // staff: everything, by payer or all
  const all = await p.post('/v1/invoices/List', {}, p.admin);
  assert.deepEqual((all.json.invoices as { number: string }[]).map((i) => i.number).sort(), [adaNo, bobNo].sort());
  assert.equal(all.json.payer, undefined);
  const bobs = await p.post('/v1/invoices/List', { payer: bob.customer, limit: 1 }, p.admin);
  assert.deepEqual((bobs.json.invoices as { number: string }[]).map((i) => i.number), [bobNo]);
  code(await p.post('/v1/invoices/Read', { number: bobNo }, p.admin), 200);

  // bob is deleted in February after more usage: his final invoice is issued all the same
  p.clock.now = at(2027, 2, 10);
  await p.bill.usage(bob.customer, '2027-02', 'search', 'Query', 150_000);
  code(await p.post('/v1/signup/DeleteCustomer', { email: 'bob@example.com' }, p.admin), 200);
  p.clock.now = at(2027, 3, 1);
  const final = await p.post('/v1/invoices/Issue', { period: '2027-02' }, p.admin);
  assert.equal(final.json.count, 1);
  const last = (final.json.issued as { number: string; payer: string; buyer: string; total: number }[])[0];
  assert.deepEqual([last?.payer, last?.buyer, last?.total], [bob.customer, `${bob.customer} (deleted customer)`, 180_000]);
  code(await p.post('/v1/invoices/Issue', { period: '2027-01', payer: bob.customer }, p.admin), 200);
  code(await p.post('/v1/invoices/Issue', { period: '2026-12', payer: bob.customer }, p.admin), 409, /has an invoice of 2027-02/);
});

test('a namespace no customer owns pays for itself (ns.<namespace>): its admins see its invoices, its developers and strangers do not', { timeout: 60_000 }, async (t) => {
  const p = await startInvoicesPlatform();
  t.after(() => p.stop());
  const ada = await p.signUp('ada@example.com', PASSWORD, 'ada-space');
  const token = async (id: string, scopes: string[]) => {
    code(await p.post('/v1/auth/CreateAccount', { id, secret: 'a-long-secret-1234', scopes, namespace: 'lone' }, p.admin), 200);
    return (await p.post('/v1/auth/Token', { id, secret: 'a-long-secret-1234', namespace: 'lone' })).json.token as string;
  };
  const ops = await token('ops', ['admin']);
  const dev = await token('dev', ['developer']);
  for (const payer of ['ns.lone', ada.customer]) {
    await p.bill.open(payer);
    await p.bill.seats(payer, '2027-01', 'Developer', 1, 35 * DOLLAR);
  }
  p.clock.now = at(2027, 2, 1);
  const issued = (await p.post('/v1/invoices/Issue', { period: '2027-01' }, p.admin)).json.issued as { number: string; payer: string; buyer: string }[];
  const lone = issued.find((i) => i.payer === 'ns.lone');
  assert.equal(lone?.buyer, 'Namespace lone');
  const adaNo = issued.find((i) => i.payer === ada.customer)?.number as string;
  const mine = await p.post('/v1/invoices/List', {}, ops);
  assert.deepEqual([mine.json.payer, (mine.json.invoices as { number: string }[]).map((i) => i.number)], ['ns.lone', [lone?.number]]);
  code(await p.post('/v1/invoices/Render', { number: lone?.number, format: 'html' }, ops), 200);
  code(await p.post('/v1/invoices/Read', { number: adaNo }, ops), 404, /of yours/, "lone's admin reads ada's");
  code(await p.post('/v1/invoices/List', {}, dev), 403, /invoices of namespace lone are its owner's/, 'a developer');
  code(await p.post('/v1/invoices/Read', { number: lone?.number }, ada.token), 404, /of yours/, "ada reads lone's");
});
