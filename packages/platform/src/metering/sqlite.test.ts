import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openSqliteLedger, type SqliteLedger } from '../ledger/sqlite.js';
import { balanceAccount, dueAccount, EXTERNAL_PAYMENTS, PLATFORM_REVENUE } from '../billing/accounts.js';
import { account, blocked, MapPricing, meterContract, meteredCall, run, topUp } from './contract.js';
import { requestPosting } from './core.js';
import { Meter, postCharges } from './meter.js';
import { SqliteMeterEngine, type SqliteMeterOptions } from './sqlite.js';
import type { Charge } from './storage.js';

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
  // count the transactions of every connection (the records have one of their own) while they settle
  const seen = countTransactions(t, Object.getPrototypeOf(ledger.db) as SqliteLedger['db']);
  await Promise.all(tickets.map((tk) => tk?.settle(true, 200)));
  assert.equal(seen.outer, 1, 'one transaction for the 50 records');
  assert.equal((ledger.db.prepare('SELECT COUNT(*) AS n FROM usage_calls').get() as { n: number }).n, 50);
});


test('sqlite: the records of calls that end during a flush wait for it, then go in one transaction; none is answered before its own flush', async (t) => {
  const path = tempPath(t);
  const ledger = openSqliteLedger(path);
  t.after(() => ledger.close());
  const engine = new SqliteMeterEngine(ledger.db, ledger, path);
  const meter = new Meter({ engine, ledger, pricing: new MapPricing().set('acme', 'paid', 'Call', { price: 0, freeQuota: 0 }), payerOf: async (ns) => `ns.${ns}` });
  // the records' connection flushes only when the test lets it; whatever the asserts do, the flushes are let go before the meter stops
  const gates: (() => void)[] = [];
  let open = false;
  t.after(() => {
    open = true;
    for (const gate of gates.splice(0)) gate();
  });
  t.after(() => meter.stop());
  await meter.start();
  const records = (engine as unknown as { records: { durable(): Promise<void> } }).records;
  const real = records.durable.bind(records);
  records.durable = () => real().then(() => new Promise<void>((resolve) => (open ? resolve() : gates.push(resolve))));
  const answered: number[] = [];
  const settle = async (i: number) => {
    const ticket = await meter.admit(meteredCall('acme', 'Call'));
    await ticket?.settle(true, 200);
    answered.push(i);
  };
  // the payer known (its first admission reads the ledger), then the count starts
  const warm = settle(-1);
  while (gates.length === 0) await new Promise((r) => setImmediate(r));
  (gates.shift() as () => void)();
  await warm;
  answered.length = 0;
  const seen = countTransactions(t, Object.getPrototypeOf(ledger.db) as SqliteLedger['db']);
  const first = settle(0);
  while (gates.length === 0) await new Promise((r) => setImmediate(r));
  assert.equal(seen.outer, 1, 'the first call is committed at once');
  // 20 more, each ending in a tick of its own while the first flush is under way
  const later: Promise<void>[] = [];
  for (let i = 1; i <= 20; i++) {
    later.push(settle(i));
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(seen.outer, 1, 'no commit while the flush is under way');
  assert.deepEqual(answered, [], 'no call answered before its record is flushed');
  (gates.shift() as () => void)();
  await first;
  while (gates.length === 0) await new Promise((r) => setImmediate(r));
  assert.equal(seen.outer, 2, 'the 20 records in one transaction');
  assert.deepEqual(answered, [0], 'the 20 wait for their own flush');
  (gates.shift() as () => void)();
  await Promise.all(later);
  assert.equal(answered.length, 21);
  assert.equal((ledger.db.prepare('SELECT COUNT(*) AS n FROM usage_calls').get() as { n: number }).n, 22);
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

/**
 * Counts the transactions begun on the handle — or, given the prototype, on every connection —
 * until the test ends (nested ones are savepoints of the outer one).
 */
function countTransactions(t: { after(fn: () => unknown): void }, db: SqliteLedger['db']): { outer: number } {
  const seen = { outer: 0 };
  const own = Object.prototype.hasOwnProperty.call(db, 'transaction');
  const exec = db.transaction;
  (db as { transaction: typeof exec }).transaction = function (this: SqliteLedger['db'], fn: Parameters<typeof exec>[0]) {
    if (!this.inTransaction) seen.outer++;
    return exec.call(this, fn);
  } as typeof exec;
  t.after(() => {
    if (own) (db as { transaction: typeof exec }).transaction = exec;
    else delete (db as { transaction?: typeof exec }).transaction;
  });
  return seen;
}

const charge = (payer: string, amount: number): Charge => {
  const requestId = randomUUID();
  return { requestId, payer, amount, calls: 1, posting: requestPosting(payer, requestId), period: '2027-01', service: 'paid', endpoint: 'Call' };
};

test('sqlite: the charges of a round are posted in one transaction of the ledger (one commit, not one each)', async (t) => {
  const ledger = openSqliteLedger(tempPath(t));
  t.after(() => ledger.close());
  await topUp(ledger, 'ns.acme', 10_000);
  await topUp(ledger, 'ns.globex', 10_000);
  const charges = [...Array.from({ length: 40 }, () => charge('ns.acme', 100)), ...Array.from({ length: 10 }, () => charge('ns.globex', 7))];
  // the payers' accounts are opened (once) before the batch
  await postCharges(ledger, [charges[0] as Charge, charges[40] as Charge]);
  const seen = countTransactions(t, ledger.db);
  const posted = await postCharges(ledger, charges);
  assert.equal(seen.outer, 1, 'one transaction for the 50 postings');
  assert.equal(posted.error, undefined);
  assert.deepEqual(posted.done, charges.map((c) => c.requestId));
  // two were posted before: found, not taken twice
  assert.equal(posted.fromBalance, 39 * 100 + 9 * 7);
  assert.equal(await ledger.balance(balanceAccount('ns.acme')), 10_000 - 40 * 100);
  assert.equal(await ledger.balance(balanceAccount('ns.globex')), 10_000 - 10 * 7);
  for (const c of charges) assert.deepEqual((await ledger.posting(c.posting))?.entries.map((e) => e.amount), [-c.amount, c.amount]);
  assert.equal((await ledger.trialBalance()).ok, true);
});

test('sqlite: in a batch, what the balance no longer covers goes to the due account; the rest stays posted from the balance', async (t) => {
  const ledger = openSqliteLedger(tempPath(t));
  t.after(() => ledger.close());
  await topUp(ledger, 'ns.acme', 250);
  const charges = Array.from({ length: 4 }, () => charge('ns.acme', 100));
  const posted = await postCharges(ledger, charges);
  assert.equal(posted.error, undefined);
  assert.deepEqual(posted.done, charges.map((c) => c.requestId));
  assert.deepEqual([posted.fromBalance, posted.toDue], [200, 2]);
  assert.equal(await ledger.balance(balanceAccount('ns.acme')), 50);
  assert.equal(await ledger.balance(dueAccount('ns.acme')), -200);
  assert.equal(await ledger.balance(PLATFORM_REVENUE), 400);
  // posted again (a crash before the outbox was emptied): all found, nothing moves
  const again = await postCharges(ledger, charges);
  assert.deepEqual([again.done.length, again.fromBalance, again.toDue], [4, 0, 0]);
  assert.equal(await ledger.balance(PLATFORM_REVENUE), 400);
  assert.equal((await ledger.trialBalance()).ok, true);
});

test('sqlite: a batch whose transaction fails as a whole is posted one by one; a ledger that refuses stops at the first error', async (t) => {
  const ledger = openSqliteLedger(tempPath(t));
  t.after(() => ledger.close());
  await topUp(ledger, 'ns.acme', 1_000);
  // the payer's accounts are opened (once) before the batch
  await postCharges(ledger, [charge('ns.acme', 100)]);
  const charges = Array.from({ length: 3 }, () => charge('ns.acme', 100));
  // the next transaction begun (the batch's) fails at its COMMIT, after its postings ran
  const exec = ledger.db.transaction.bind(ledger.db);
  let failed = false;
  (ledger.db as { transaction: unknown }).transaction = (fn: () => void) => {
    if (failed || ledger.db.inTransaction) return exec(fn);
    failed = true;
    return {
      immediate: () =>
        exec(() => {
          fn();
          throw new Error('disk I/O error');
        }).immediate(),
    };
  };
  t.after(() => ((ledger.db as { transaction: typeof exec }).transaction = exec));
  const posted = await postCharges(ledger, charges);
  assert.ok(failed);
  assert.equal(posted.error, undefined);
  assert.deepEqual([posted.done.length, posted.fromBalance], [3, 300]);
  assert.equal(await ledger.balance(balanceAccount('ns.acme')), 600);
  // a ledger that refuses every posting: nothing is done, the error is reported for the outbox to retry
  const away = Object.create(ledger) as SqliteLedger;
  away.post = () => Promise.reject(new Error('the ledger is away'));
  away.postMany = () => Promise.reject(new Error('the ledger is away'));
  const refused = await postCharges(away, Array.from({ length: 3 }, () => charge('ns.acme', 100)));
  assert.deepEqual(refused.done, []);
  assert.match(String(refused.error), /the ledger is away/);
  assert.equal(await ledger.balance(balanceAccount('ns.acme')), 600);
  assert.equal((await ledger.trialBalance()).ok, true);
});

test('sqlite: the charged calls of one tick, payer and endpoint are one posting that counts them; idempotent calls keep their own', async (t) => {
  const { ledger, meter } = await meterOn(t, 5);
  await topUp(ledger, 'ns.acme', 1_000);
  const calls = [...Array.from({ length: 20 }, () => meteredCall('acme', 'Call')), meteredCall('acme', 'Call', { idempotencyKey: 'once' })];
  const tickets = await Promise.all(calls.map((c) => Promise.resolve(meter.admit(c))));
  await Promise.all(tickets.map((tk) => tk?.settle(true, 200)));
  await meter.flush();
  const rows = ledger.db.prepare('SELECT request_id, posting, charged FROM usage_calls ORDER BY request_id').all() as { request_id: string; posting: string; charged: number }[];
  const shared = rows.filter((r) => r.posting !== rows.find((x) => x.request_id === calls[20]?.requestId)?.posting);
  assert.equal(new Set(shared.map((r) => r.posting)).size, 1, 'the 20 calls without a key share a posting');
  const posting = await ledger.posting(shared[0]?.posting as string);
  assert.deepEqual(posting?.entries.map((e) => e.amount), [-100, 100]);
  assert.equal(posting?.metadata.calls, '20');
  // its key is that of the first call's request id, which its metadata names
  assert.equal(posting?.key, requestPosting('ns.acme', posting?.metadata.request_id as string));
  assert.ok(shared.some((r) => r.request_id === posting?.metadata.request_id));
  const own = await ledger.posting(rows.find((r) => r.request_id === calls[20]?.requestId)?.posting as string);
  assert.deepEqual([own?.metadata.calls, own?.entries.map((e) => e.amount)], ['1', [-5, 5]]);
  assert.equal(await ledger.balance(balanceAccount('ns.acme')), 1_000 - 21 * 5);
  assert.equal((ledger.db.prepare('SELECT COUNT(*) AS n FROM usage_outbox').get() as { n: number }).n, 0);
});

test('sqlite: a billing.db of version 1 (a posting and an outbox row per call) is upgraded; its outbox is posted, its records kept', async (t) => {
  const path = tempPath(t);
  const ledger = openSqliteLedger(path);
  t.after(() => ledger.close());
  await topUp(ledger, 'ns.acme', 100);
  const requestId = randomUUID();
  const posting = requestPosting('ns.acme', requestId);
  // the tables as version 1 made them, with one charged call left in the outbox by a crash
  ledger.db.exec(`
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version.metering', '1');
    CREATE TABLE usage_calls (
      request_id TEXT PRIMARY KEY, at INTEGER NOT NULL, period TEXT NOT NULL, day TEXT NOT NULL, payer TEXT NOT NULL, namespace TEXT NOT NULL,
      account TEXT NOT NULL, key_id TEXT NOT NULL, home TEXT NOT NULL, service TEXT NOT NULL, endpoint TEXT NOT NULL, price INTEGER NOT NULL,
      free_quota INTEGER NOT NULL, free INTEGER NOT NULL, charged INTEGER NOT NULL, outcome TEXT NOT NULL, code INTEGER NOT NULL,
      idem_key TEXT, idem TEXT, posting TEXT UNIQUE) WITHOUT ROWID;
    CREATE INDEX usage_calls_namespace ON usage_calls (namespace, day);
    CREATE INDEX usage_calls_idem ON usage_calls (idem) WHERE idem IS NOT NULL;
    CREATE INDEX usage_calls_payer ON usage_calls (payer, period, service, endpoint, free);
    CREATE TRIGGER usage_calls_no_update BEFORE UPDATE ON usage_calls BEGIN SELECT RAISE(ABORT, 'usage records are immutable'); END;
    CREATE TRIGGER usage_calls_no_delete BEFORE DELETE ON usage_calls BEGIN SELECT RAISE(ABORT, 'usage records are immutable'); END;
    CREATE TABLE usage_outbox (request_id TEXT PRIMARY KEY REFERENCES usage_calls (request_id), payer TEXT NOT NULL) WITHOUT ROWID;
  `);
  ledger.db
    .prepare(`INSERT INTO usage_calls VALUES (?, 0, '2027-01', '2027-01-01', 'ns.acme', 'acme', 'u1', '', 'acme', 'paid', 'Call', 7, 0, 0, 7, 'ok', 200, NULL, NULL, ?)`)
    .run(requestId, posting);
  ledger.db.prepare(`INSERT INTO usage_outbox VALUES (?, 'ns.acme')`).run(requestId);
  const meter = new Meter({ engine: new SqliteMeterEngine(ledger.db, ledger, path), ledger, pricing: new MapPricing(), payerOf: async (ns) => `ns.${ns}` });
  await meter.start();
  t.after(() => meter.stop());
  assert.equal((ledger.db.prepare("SELECT value FROM meta WHERE key = 'schema_version.metering'").get() as { value: string }).value, '2');
  const p = await ledger.posting(posting);
  assert.deepEqual([p?.metadata.calls, p?.metadata.request_id, p?.entries.map((e) => e.amount)], ['1', requestId, [-7, 7]]);
  assert.equal(await ledger.balance(balanceAccount('ns.acme')), 93);
  assert.equal((ledger.db.prepare('SELECT COUNT(*) AS n FROM usage_outbox').get() as { n: number }).n, 0);
  assert.deepEqual(ledger.db.prepare('SELECT request_id, charged, posting FROM usage_calls').all(), [{ request_id: requestId, charged: 7, posting }]);
  assert.throws(() => ledger.db.prepare('DELETE FROM usage_calls').run(), /immutable/, 'still immutable');
});
