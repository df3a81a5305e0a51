import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { browserReady, launchChromium } from '@micro/server/testing';
import { ARTIFACTS, dashboardAs, OWNER_PASSWORD, tenantWithBooks } from './books-testing.js';
import { micro, ok, post, refused, startServer, stopProcess, tempDir, until } from './testing.js';

/**
 * `micro usage` on a running micro server, after real calls through the gateway: a tenant's
 * priced service (books: Read 100 units with 5 free calls a month, Count a free quota alone,
 * Write not priced) called with the owner's token and with an API key, then read per
 * endpoint, per day, per key, as CSV. The figures come from the usage service (metering),
 * which micro server serves once metering is in: until then these tests fail at the first
 * read of usage.
 */

const HEADER = 'request_id,at,namespace,account,key,service,endpoint,outcome,code,free,price,charged';

test('micro usage: calls, charges and free quota left per endpoint, day and key; CSV; a tenant reads only its own', { timeout: 180_000 }, async (t) => {
  const home = tempDir('micro-usage-e2e-');
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const server = await startServer(home, { timeout: 60_000, env: { MICRO_RUNTIME_SANDBOX: 'off' } });
  t.after(() => stopProcess(server.proc));
  const gw = server.gateway;
  const { adminToken, ownerToken } = await tenantWithBooks(t, home, server, 'acme');
  assert.equal((await micro(home, ['env', 'add', 'tenant', server.address])).code, 0);
  const login = await micro(home, ['login', '--id', 'owner', '--secret', '-', '--namespace', 'acme'], { input: `${OWNER_PASSWORD}\n`, env: { MICRO_ENV: 'tenant' } });
  assert.equal(login.code, 0, login.stderr);
  const usage = (args: string[]) => micro(home, ['usage', ...args], { env: { MICRO_ENV: 'tenant' } });
  const today = new Date().toISOString().slice(0, 10);

  // 3 calls with the owner's token, 2 with an API key (5: the free quota of Read), 1 of Count, 1 of Write (not metered)
  await until('books answers through the gateway', 15_000, async () => ((await post(gw, '/v1/books/Read', { id: '0' }, ownerToken)).status === 200 ? true : undefined));
  const key = ok(await post(gw, '/v1/auth/CreateKey', { name: 'ci' }, ownerToken)) as { key: string; info: { id: string } };
  for (let i = 1; i < 3; i++) ok(await post(gw, '/v1/books/Read', { id: String(i) }, ownerToken));
  for (let i = 0; i < 2; i++) ok(await post(gw, '/v1/books/Read', { id: `k${i}` }, key.key));
  ok(await post(gw, '/v1/books/Count', {}, ownerToken));
  ok(await post(gw, '/v1/books/Write', { id: 'x' }, ownerToken));

  const read = await until('the calls in usage', 20_000, async () => {
    const r = await usage(['-o', 'json']);
    // until says why it gave up: the last error
    if (r.code !== 0) throw new Error(`micro usage exited ${r.code}: ${r.stderr.trim()}`);
    const answer = JSON.parse(r.stdout) as { namespace: string; totals: { calls: number } };
    return answer && answer.totals.calls === 6 ? answer : undefined;
  });
  assert.equal(read.namespace, 'acme');

  await t.test('per endpoint: a table for people with charges in dollars and the free quota left', async () => {
    const r = await usage([]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage of namespace acme.*, \d{4}-\d{2}-01 to \d{4}-\d{2}-\d{2} \(UTC\)$/m);
    assert.match(r.stdout, /^SERVICE +ENDPOINT +CALLS +OK +FAILED +FREE +CHARGED$/m);
    assert.match(r.stdout, /^books +Read +5 +5 +0 +5 +\$0\.00$/m);
    assert.match(r.stdout, /^books +Count +1 +1 +0 +1 +\$0\.00$/m);
    assert.match(r.stdout, /^TOTAL +6 +6 +0 +6 +\$0\.00$/m);
    assert.doesNotMatch(r.stdout, /Write/, 'an endpoint without a price or quota is not metered');
    assert.match(r.stdout, /^free quotas this month:$/m);
    assert.match(r.stdout, /^books +Read +\$0\.000100 a call +5 +5 +0$/m);
  });

  await t.test('per day and per API key; one key alone', async () => {
    assert.match((await usage(['--by', 'day'])).stdout, new RegExp(`^${today} +books +Read +5 +5 +0 +5 +\\$0\\.00$`, 'm'));
    const byKey = (await usage(['--by', 'key', '--service', 'books', '--endpoint', 'Read'])).stdout;
    assert.match(byKey, /^KEY +SERVICE +ENDPOINT/m);
    assert.match(byKey, /^\(token\) +books +Read +3 +3 +0 +3 +\$0\.00$/m);
    assert.match(byKey, new RegExp(`^${key.info.id} +books +Read +2 +2 +0 +2 +\\$0\\.00$`, 'm'));
    const one = JSON.parse((await usage(['--key', key.info.id, '-o', 'json'])).stdout) as { totals: { calls: number } };
    assert.equal(one.totals.calls, 2);
  });

  await t.test('periods: this month by name and by its days; a month without calls is empty', async () => {
    const month = today.slice(0, 7);
    assert.equal((JSON.parse((await usage(['--period', month, '-o', 'json'])).stdout) as { totals: { calls: number } }).totals.calls, 6);
    assert.equal((JSON.parse((await usage(['--from', `${month}-01`, '--to', today, '-o', 'json'])).stdout) as { totals: { calls: number } }).totals.calls, 6);
    const past = JSON.parse((await usage(['--period', '2020-01', '-o', 'json'])).stdout) as { rows: unknown[]; totals: { calls: number } };
    assert.deepEqual([past.rows.length, past.totals.calls], [0, 0]);
  });

  await t.test('--csv: the calls themselves, to a file (0600) or to stdout', async () => {
    const file = join(home, 'usage.csv');
    const written = await usage(['--csv', file]);
    assert.equal(written.code, 0, written.stderr);
    assert.match(written.stderr, /^wrote .*usage\.csv \(usage-acme-.*\.csv\)$/m);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines[0], HEADER);
    assert.equal(lines.length, 7, '6 calls and the header');
    assert.equal(lines.filter((l) => l.includes(',books,Read,')).length, 5);
    assert.equal(lines.filter((l) => l.includes(key.info.id)).length, 2);
    const stdout = await usage(['--csv']);
    assert.equal(stdout.code, 0, stdout.stderr);
    assert.deepEqual(stdout.stdout.trim().split('\n'), lines);
    assert.equal((await usage(['--csv', '-', '--endpoint', 'Count'])).stdout.trim().split('\n').length, 2);
  });

  await t.test('wrong flags are refused before any call; a tenant reads no other namespace; the staff read any', async () => {
    refused(await usage(['--by', 'month']), /--by must be endpoint, day or key/, '--by');
    refused(await usage(['--period', '2026-13']), /--period must be a month YYYY-MM/, '--period');
    refused(await usage(['--from', '2026-01-01']), /--from and --to go together/, '--from alone');
    refused(await usage(['--from', '2026-02-30', '--to', '2026-03-01']), /--from must be a day/, 'no such day');
    refused(await usage(['--namespace', 'globex']), /forbidden/, "another tenant's usage");
    assert.equal((await post(gw, '/v1/usage/Read', { namespace: 'globex' }, ownerToken)).status, 403);
    assert.equal((await post(gw, '/v1/usage/Export', { namespace: 'globex' }, ownerToken)).status, 403);
    assert.equal((await post(gw, '/v1/usage/Read', {})).status, 401);
    const staff = await micro(home, ['usage', '--namespace', 'acme', '-o', 'json']);
    assert.equal(staff.code, 0, staff.stderr);
    assert.equal((JSON.parse(staff.stdout) as { totals: { calls: number } }).totals.calls, 6);
    assert.ok(adminToken);
  });

  await t.test("the dashboard's Usage page: per endpoint, per day, per key, free quota left, a CSV download", async (st) => {
    if (!browserReady(st)) return;
    const browser = await launchChromium();
    st.after(() => browser.close());
    const { page, problems } = await dashboardAs(browser, gw, { id: 'owner', secret: OWNER_PASSWORD, namespace: 'acme' });
    await page.getByRole('link', { name: 'Usage' }).click();
    const calls = page.getByRole('table', { name: 'usage' });
    const cells = async (row: string) => (await calls.locator(`tr[data-row="${row}"] > *`).allInnerTexts()).map((c) => c.trim());
    await calls.locator('tr[data-row="books.Read"]').waitFor();
    assert.deepEqual(await cells('books.Read'), ['books', 'Read', '5', '5', '0', '5', '$0.00']);
    assert.deepEqual(await cells('books.Count'), ['books', 'Count', '1', '1', '0', '1', '$0.00']);
    assert.deepEqual(await cells('total'), ['Total', '', '6', '6', '0', '6', '$0.00']);
    assert.equal(await calls.locator('tr[data-row="books.Write"]').count(), 0, 'not metered');
    const quota = page.getByRole('table', { name: 'free quotas' }).locator('tr[data-quota="books.Read"]');
    assert.deepEqual((await quota.locator('td').allInnerTexts()).slice(0, 6).map((c) => c.trim()), ['books', 'Read', '$0.000100 a call', '5', '5', '0']);
    assert.equal(await quota.getByRole('meter').getAttribute('aria-valuenow'), '5');
    await page.screenshot({ path: join((mkdirSync(ARTIFACTS, { recursive: true }), ARTIFACTS), 'usage.png'), fullPage: true });

    await page.getByLabel('day', { exact: true }).check();
    await calls.locator('th', { hasText: 'Day' }).waitFor();
    await calls.locator('tr[data-row="books.Read"] > td:first-child', { hasText: today }).waitFor();
    assert.deepEqual((await cells('books.Read'))[0], today);
    await page.getByLabel('API key', { exact: true }).check();
    await calls.locator('th', { hasText: 'API key' }).waitFor();
    // the header follows the choice at once; the rows follow the service's answer
    await calls.locator('tr[data-row="books.Read"] > td:first-child', { hasText: key.info.id }).waitFor();
    const leads = (await calls.locator('tr[data-row="books.Read"] > td:first-child').allInnerTexts()).map((c) => c.trim()).sort();
    assert.deepEqual(leads, ['(token)', key.info.id].sort());

    // the calls themselves, as the CSV export gives them
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
    assert.match(download.suggestedFilename(), /^usage-acme-.*\.csv$/);
    const csv = readFileSync((await download.path()) as string, 'utf8').trim().split('\n');
    assert.equal(csv[0], HEADER);
    assert.equal(csv.length, 7);

    // a month without calls
    await page.getByLabel('Month (UTC)').fill('2020-01');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByText('No metered calls in this period.').waitFor();
    assert.deepEqual(await cells('total'), ['', 'Total', '', '0', '0', '0', '0', '$0.00']);
    assert.deepEqual(problems, []);
  });
});
