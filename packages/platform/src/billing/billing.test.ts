import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { applyRate, checkUnits, formatDollars, parseDollars, prorate } from './amounts.js';
import { balanceAccount, dueAccount, namespacePayer, openPayerAccounts, PLATFORM_PROMO, PLATFORM_REVENUE } from './accounts.js';
import { nextPeriod, parsePeriod, periodOf, previousPeriod } from './periods.js';
import { PlatformHub } from '../hub.js';

test('checkUnits: whole units only; every other input is refused naming the field', () => {
  assert.equal(checkUnits('amount', 35_000_000), 35_000_000);
  assert.equal(checkUnits('amount', '42'), 42, 'an i64 may come as a string (M3O wire convention)');
  assert.equal(checkUnits('price', 0, { allowZero: true }), 0);
  for (const bad of [0, -1, -0, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e16, '1.5', '1e3', 'abc', '', ' ', null, undefined, true, {}, [], 10n]) {
    assert.throws(() => checkUnits('amount', bad), /^Error: amount must be/, `refused: ${String(bad)}`);
  }
  assert.throws(() => checkUnits('price', -1, { allowZero: true }), /price must be zero or more/);
});

test('parseDollars and formatDollars: exact both ways, no floats', () => {
  assert.equal(parseDollars('$35'), 35_000_000);
  assert.equal(parseDollars('0.000001'), 1);
  assert.equal(parseDollars('12.5'), 12_500_000);
  for (const bad of ['-1', '$-1', '1e3', '0.0000001', 'abc', '', '1,000', '1.', '.5', '$ 1', '9999999999']) assert.throws(() => parseDollars(bad), /invalid amount/, bad);
  assert.equal(formatDollars(35_000_000), '$35.00');
  assert.equal(formatDollars(100), '$0.000100');
  assert.equal(formatDollars(-1_500_000), '-$1.50');
  assert.equal(formatDollars(1_234_567_890_000), '$1,234,567.89');
  fc.assert(fc.property(fc.integer({ min: 0, max: 999_999_999_999_999 }), (units) => parseDollars(formatDollars(units).replace(/,/g, '')) === units));
});

test('prorate: truncated toward zero, never more than the exact share, at most one unit less', () => {
  // a $35 seat for the last 10 days of a 31-day month
  const month = 31 * 86_400;
  assert.equal(prorate(35_000_000, 10 * 86_400, month), 11_290_322);
  assert.equal(prorate(-35_000_000, 10 * 86_400, month), -11_290_322, 'a credit rounds toward zero too');
  assert.equal(prorate(7, 0, 3), 0);
  assert.equal(prorate(7, 3, 3), 7);
  assert.throws(() => prorate(7, 4, 3), /not a share/);
  assert.throws(() => prorate(7, 1, 0), /not a share/);
  assert.throws(() => prorate(1.5, 1, 2), /safe integers/);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1e15 }), fc.integer({ min: 1, max: 31 * 86_400 }), fc.nat(), (amount, whole, p) => {
      const part = p % (whole + 1);
      const exact = (BigInt(amount) * BigInt(part) * 1000n) / BigInt(whole); // in thousandths of a unit
      const got = BigInt(prorate(amount, part, whole)) * 1000n;
      return got <= exact && exact - got < 1000n;
    }),
  );
  assert.equal(applyRate(10_000_000, 2000), 2_000_000, '20 % of $10');
  assert.equal(applyRate(3, 3333), 0);
  assert.throws(() => applyRate(1, 10_001), /basis points/);
  assert.throws(() => applyRate(1, 0.5), /basis points/);
});

test('periods: UTC calendar months, boundaries inclusive at the start', () => {
  const jan = parsePeriod('2027-01');
  assert.deepEqual(jan, { id: '2027-01', start: Date.UTC(2027, 0, 1), end: Date.UTC(2027, 1, 1) });
  assert.equal(periodOf(jan.end - 1).id, '2027-01');
  assert.equal(periodOf(jan.end).id, '2027-02');
  assert.equal(nextPeriod(parsePeriod('2026-12')).id, '2027-01');
  assert.equal(previousPeriod(jan).id, '2026-12');
  assert.equal(parsePeriod('2028-02').end - parsePeriod('2028-02').start, 29 * 86_400_000, 'a leap February');
  for (const bad of ['2027-13', '2027-00', '2027-1', '27-01', '2027-01-01', '', 'x'.repeat(1000)]) assert.throws(() => parsePeriod(bad), /invalid period/);
  assert.throws(() => periodOf(NaN), /invalid time/);
});

test('accounts: a payer id cannot smuggle segments into an account id', () => {
  assert.equal(balanceAccount('cus_1'), 'customer:cus_1:balance');
  assert.equal(dueAccount(namespacePayer('acme')), 'customer:ns.acme:due');
  for (const bad of ['', 'a:b', 'a b', 'x'.repeat(101), '../x', 'a\nb']) assert.throws(() => balanceAccount(bad), /invalid payer/);
});

test('the hub: one ledger for all, payer accounts, and the payer of a namespace', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'micro-hub-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const hub = new PlatformHub();
  const ctx = { profile: { name: 'local' as const }, dataDir };
  hub.acquire();
  hub.acquire();
  const [a, b] = await Promise.all([hub.billing(ctx), hub.billing(ctx)]);
  assert.equal(a, b, 'opened once');
  assert.ok(a.sqlite, 'billing.db is shared with the parts of billing');
  // the platform's accounts are there; a payer's are opened on demand, twice is harmless
  await openPayerAccounts(a.ledger, 'cus_1');
  await openPayerAccounts(a.ledger, 'cus_1');
  const credit = await a.ledger.post({ key: 'promo:1', reason: 'welcome', entries: [{ account: PLATFORM_PROMO, amount: -5 }, { account: balanceAccount('cus_1'), amount: 5 }], metadata: { kind: 'credit' } });
  assert.equal(credit.replayed, false);
  await assert.rejects(a.ledger.post({ key: 'spend:1', reason: 'too much', entries: [{ account: balanceAccount('cus_1'), amount: -6 }, { account: PLATFORM_REVENUE, amount: 6 }] }), /funds|insufficient/i);
  // a namespace no customer owns pays for itself; an owned one is paid for by its owner
  assert.equal(await hub.payerOf(ctx, 'lonely'), 'ns.lonely');
  const { storage } = await hub.signup(ctx);
  const now = Date.now();
  await storage.claim({ customer: { id: 'cus_owner', email: 'o@example.com' }, owns: 'acme', role: 'owner', account: 'o@example.com', now, staleBefore: now - 60_000 });
  assert.equal(await hub.payerOf(ctx, 'acme'), 'cus_owner');
  await hub.release();
  assert.equal(await a.ledger.balance(balanceAccount('cus_1')), 5, 'still open while another service holds it');
  await hub.release();
  await assert.rejects(a.ledger.balance(balanceAccount('cus_1')), 'closed with the last release');
});
