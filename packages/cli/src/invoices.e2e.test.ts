import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSqliteLedger } from '@micro/platform';
import { startSmtpServer } from '@micro/platform/testing';
import { codeFromSmtp, micro, startServer, tempDir, type Result } from './testing.js';

/*
 * `micro invoices` against a real `micro server` (tax 20 %, a seller from the
 * environment): the staff issue last month's invoices from postings made on the server's
 * ledger (billing.db, as metering and subscriptions post), and two customers, each in an
 * environment of its own, list, show and download theirs — and only theirs.
 */

const PASSWORD = 'correct-horse-battery';
const DOLLAR = 1_000_000;

function refused(res: Result, why: RegExp, what: string): void {
  assert.equal(res.code, 1, `${what}: ${res.stdout}`);
  assert.match(res.stderr, why, what);
}

test('micro invoices: list, show, download HTML and PDF; a customer sees only its own; hostile input', { timeout: 180_000 }, async (t) => {
  const home = tempDir('micro-invoices-');
  const cwd = tempDir('micro-invoices-cwd-');
  const smtp = await startSmtpServer(t);
  const server = await startServer(home, { env: { MICRO_SMTP_URL: smtp.url(), MICRO_BILLING_TAX_RATE: '2000', MICRO_BILLING_SELLER: 'Micro Test Ltd | 1 Main Street' } });
  const staff = (args: string[]) => micro(home, args, { cwd });
  const as = (who: string) => (args: string[]) => micro(home, args, { cwd, env: { MICRO_ENV: who } });
  const ids: Record<string, string> = {};
  for (const who of ['ada', 'bob']) {
    const email = `${who}@example.com`;
    assert.equal((await staff(['env', 'add', who, server.address])).code, 0);
    assert.equal((await staff(['platform', 'invite', email])).code, 0);
    const before = smtp.received.length;
    assert.equal((await as(who)(['signup', '--email', email])).code, 0);
    const code = await codeFromSmtp(smtp, email, before);
    const done = await micro(home, ['signup', '--email', email, '--code', code, '--password', '-', '--namespace', `${who}-space`], { input: `${PASSWORD}\n`, env: { MICRO_ENV: who } });
    assert.equal(done.code, 0, done.stderr);
    ids[who] = (JSON.parse((await staff(['platform', 'customer', email, '-o', 'json'])).stdout) as { id: string }).id;
  }

  // last month's postings on the server's ledger, as the other parts of billing make them
  const now = new Date();
  const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 10));
  const period = last.toISOString().slice(0, 7);
  const ledger = openSqliteLedger(join(home, 'data', 'billing.db'), { clock: () => last.getTime() });
  t.after(() => ledger.close());
  for (const [who, seats] of [['ada', 2], ['bob', 1]] as const) {
    const c = ids[who] as string;
    await ledger.openAccount({ id: `customer:${c}:balance` });
    await ledger.openAccount({ id: `customer:${c}:due`, allowNegative: true });
    await ledger.post({ key: `topup-${c}`, reason: 'card top-up', entries: [{ account: `customer:${c}:balance`, amount: 10 * DOLLAR }, { account: 'external:payments', amount: -10 * DOLLAR }], metadata: { kind: 'topup' } });
    await ledger.post({
      key: `call-${c}`,
      reason: 'a call',
      entries: [{ account: `customer:${c}:balance`, amount: -250_000 }, { account: 'platform:revenue', amount: 250_000 }],
      metadata: { kind: 'usage', service: '<b>search</b>', endpoint: 'Query', calls: '1', period },
    });
    await ledger.post({
      key: `seats-${c}`,
      reason: 'seats',
      entries: [{ account: `customer:${c}:due`, amount: -seats * 35 * DOLLAR }, { account: 'platform:revenue', amount: seats * 35 * DOLLAR }],
      metadata: { kind: 'seats', plan: 'Developer', seats: String(seats), period },
    });
  }

  // the staff issue now (the job would at the next minute of a new month): once, whatever the retries
  refused(await as('ada')(['invoices', 'issue', period]), /forbidden: .*admin of namespace micro/, 'a customer issues');
  const issued = await staff(['invoices', 'issue', period, '-o', 'json']);
  assert.equal(issued.code, 0, issued.stderr);
  const res = JSON.parse(issued.stdout) as { count: number; issued: { number: string; payer: string }[] };
  assert.equal(res.count, 2);
  const again = await staff(['invoices', 'issue', period, '--payer', ids.ada as string]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /0 issued, 1 issued before/);
  const number = (who: string) => res.issued.find((i) => i.payer === ids[who])?.number as string;

  // ada: her list (a table, and JSON), her invoice
  const list = await as('ada')(['invoices']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^NUMBER +PERIOD +ISSUED +BUYER +TOTAL +DUE\n/);
  assert.match(list.stdout, new RegExp(`^${number('ada')} +${period} +\\d{4}-\\d{2}-\\d{2} +ada@example.com +\\$84\\.30 +\\$84\\.05$`, 'm'));
  assert.doesNotMatch(list.stdout, new RegExp(number('bob')));
  const json = JSON.parse((await as('ada')(['invoices', '-o', 'json'])).stdout) as { payer: string; invoices: { number: string }[] };
  assert.deepEqual([json.payer, json.invoices.map((i) => i.number)], [ids.ada, [number('ada')]]);
  const shown = await as('ada')(['invoices', 'show', number('ada')]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, new RegExp(`^invoice ${number('ada')}  period ${period}`));
  assert.match(shown.stdout, /^from {4}Micro Test Ltd$/m);
  assert.match(shown.stdout, /^seats +\d{4}-\d{2} +Developer plan +2 seats +\$70\.00$/m);
  assert.match(shown.stdout, /^usage +\d{4}-\d{2} +<b>search<\/b>\.Query +1 calls +\$0\.25$/m);
  assert.match(shown.stdout, /^tax 20 % +\$14\.05$/m);
  assert.match(shown.stdout, /^amount due +\$84\.05$/m);
  assert.equal((JSON.parse((await as('ada')(['invoices', 'show', number('ada'), '-o', 'json'])).stdout) as { total: number }).total, 84_300_000);

  // downloads: HTML by default to ./<number>.html, a PDF anywhere, or to stdout
  const html = await as('ada')(['invoices', 'download', number('ada')]);
  assert.equal(html.code, 0, html.stderr);
  const htmlFile = join(cwd, `${number('ada')}.html`);
  assert.match(readFileSync(htmlFile, 'utf8'), /<title>Invoice INV-\d{4}-\d{6}<\/title>[\s\S]*&lt;b&gt;search&lt;\/b&gt;\.Query/);
  refused(await as('ada')(['invoices', 'download', number('ada')]), /exists already: choose another file with -o <file>/, 'an existing file is not overwritten');
  const pdf = await as('ada')(['invoices', 'download', number('ada'), '--pdf', '-o', join(cwd, 'mine.pdf')]);
  assert.equal(pdf.code, 0, pdf.stderr);
  assert.equal(readFileSync(join(cwd, 'mine.pdf')).subarray(0, 5).toString('latin1'), '%PDF-');
  const stdout = await as('ada')(['invoices', 'download', number('ada'), '-o', '-']);
  assert.match(stdout.stdout, /^<!doctype html>/);

  // bob's are not hers: a 404 like a number that does not exist, another payer forbidden
  refused(await as('ada')(['invoices', 'show', number('bob')]), new RegExp(`no invoice ${number('bob')} of yours`), "ada shows bob's");
  refused(await as('ada')(['invoices', 'download', number('bob'), '--pdf']), /of yours/, "ada downloads bob's");
  assert.equal(existsSync(join(cwd, `${number('bob')}.pdf`)), false);
  refused(await as('ada')(['invoices', '--payer', ids.bob as string]), /forbidden: payer: you may list only your own invoices/, "ada lists bob's");
  assert.match((await as('bob')(['invoices'])).stdout, new RegExp(number('bob')));

  // hostile input: a clear error naming what is wrong
  for (const [args, why] of [
    [['invoices', 'show', '../../etc/passwd'], /number: .* is not an invoice number/],
    [['invoices', 'show', 'x'.repeat(5000)], /number/],
    [['invoices', 'download', "INV-2027-000001'; --"], /number/],
    [['invoices', '--limit', '0'], /--limit must be a whole number from 1 to 100/],
    [['invoices', '--limit', '1e3'], /--limit/],
    [['invoices', '--period', '2027-13'], /period/],
    [['invoices', '--after', 'nope'], /after/],
  ] as const) {
    refused(await as('ada')([...args]), why, args.join(' ').slice(0, 60));
  }
  refused(await staff(['invoices', 'issue', 'soon']), /period/, 'a period that is not one');
  refused(await staff(['invoices', 'issue', '2999-01']), /ends at 2999-02-01/, 'a period not ended');

  // the staff see every payer's
  const everyone = JSON.parse((await staff(['invoices', '-o', 'json'])).stdout) as { invoices: { number: string }[] };
  assert.deepEqual(everyone.invoices.map((i) => i.number).sort(), [number('ada'), number('bob')].sort());
  assert.match((await staff(['invoices', 'show', number('bob')])).stdout, /bob@example.com/);
});
