import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openSqliteLedger } from '../ledger/sqlite.js';
import { balanceAccount, dueAccount, EXTERNAL_PAYMENTS } from '../billing/accounts.js';
import { account, blocked, MapPricing, meterContract, meteredCall, run, topUp } from './contract.js';
import { Meter } from './meter.js';
import { SqliteMeterEngine, type SqliteMeterOptions } from './sqlite.js';

function tempPath(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-metering-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'billing.db');
}

/** A meter on a fresh billing.db pricing acme's paid.Call at `price`, stopped (and the file closed) after the test. */
async function meterOn(t: { after(fn: () => unknown): void }, price: number, options: SqliteMeterOptions = {}) {
  const path = tempPath(t);
  const ledger = openSqliteLedger(path);
  t.after(() => ledger.close());
  const pricing = new MapPricing().set('acme', 'paid', 'Call', { price, freeQuota: 0 });
  const meter = new Meter({ engine: new SqliteMeterEngine(ledger.db, ledger, path, options), ledger, pricing, payerOf: async (ns) => `ns.${ns}` });
  await meter.start();
  t.after(() => meter.stop());
  return { ledger, meter };
}

meterContract('sqlite', async (t) => {
  const path = tempPath(t);
  const ledger = openSqliteLedger(path);
  t.after(() => ledger.close());
  return { ledger, engine: async () => new SqliteMeterEngine(ledger.db, ledger, path) };
});

test('sqlite: usage records cannot be changed or deleted, even by hand', async (t) => {
  const { ledger, meter } = await meterOn(t, 5);
  await topUp(ledger, 'ns.acme', 100);
  await run(meter, meteredCall('acme', 'Call', { account: account('acme') }));
  assert.throws(() => ledger.db.prepare('UPDATE usage_calls SET charged = 0').run(), /immutable/);
  assert.throws(() => ledger.db.prepare('DELETE FROM usage_calls').run(), /immutable/);
});

test('sqlite: the records of calls that end in one tick are written in one transaction', async (t) => {
  // price 0: recorded, never posted (the outbox's transactions stay out of the count)
  const { ledger, meter } = await meterOn(t, 0);
  const tickets = await Promise.all(Array.from({ length: 50 }, () => Promise.resolve(meter.admit(meteredCall('acme', 'Call')))));
  // count the transactions while they settle
  let transactions = 0;
  const exec = ledger.db.transaction.bind(ledger.db);
  (ledger.db as { transaction: typeof exec }).transaction = ((fn: Parameters<typeof exec>[0]) => {
    transactions++;
    return exec(fn);
  }) as typeof exec;
  t.after(() => ((ledger.db as { transaction: typeof exec }).transaction = exec));
  await Promise.all(tickets.map((tk) => tk?.settle(true, 200)));
  assert.equal(transactions, 1, 'one transaction for the 50 records');
  assert.equal((ledger.db.prepare('SELECT COUNT(*) AS n FROM usage_calls').get() as { n: number }).n, 50);
});

test('sqlite: a balance lowered outside metering (a chargeback) is seen by the first charge after balanceTtl', async (t) => {
  const { ledger, meter: fresh } = await meterOn(t, 100, { balanceTtl: 0 });
  await topUp(ledger, 'ns.acme', 1_000);
  await run(fresh, meteredCall('acme', 'Call'));
  await fresh.flush();
  await ledger.post({ key: 'chargeback', reason: 'chargeback', entries: [{ account: balanceAccount('ns.acme'), amount: -900 }, { account: EXTERNAL_PAYMENTS, amount: 900 }] });
  await assert.rejects(run(fresh, meteredCall('acme', 'Call')), blocked('insufficient credit'));
  assert.equal(await ledger.balance(dueAccount('ns.acme')), 0, 'nothing had to go to the due account');
});
