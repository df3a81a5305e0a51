import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { TEST_ENGINE_URLS } from '@micro/sdk/testing';
import { PLATFORM_TAX } from '../billing/index.js';
import type { PgLedger, SqliteLedger } from '../ledger/index.js';
import type { Invoice } from './invoice.js';
import { assertReconciles, at, Bill, DOLLAR, pgEngines, sqliteEngines, type Engines, type MakeEngines } from './testing.js';

/**
 * kill -9 in the middle of issuing: a node (crash-child.ts, its own process) dies right
 * after a tax posting is committed, or right after an invoice is recorded; another run of
 * the job afterwards leaves each invoice once, each tax posted once, the numbers without
 * gaps, and the invoices agreeing with the ledger. On SQLite and on PostgreSQL.
 */

const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));
const PAYERS = ['cus_k1', 'cus_k2', 'cus_k3', 'cus_k4', 'cus_k5'];

function node(args: object): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out });
    });
  });
}

async function scene(e: Engines): Promise<void> {
  const bill = new Bill(e.ledger);
  e.clock.now = at(2027, 1, 6);
  for (const [i, p] of PAYERS.entries()) {
    await bill.open(p);
    await bill.topup(p, 10 * DOLLAR);
    await bill.usage(p, '2027-01', 'db', 'Read', 1_000 * (i + 1));
    await bill.seats(p, '2027-01', 'Developer', i + 1, 35 * DOLLAR);
  }
}

async function invoices(e: Engines): Promise<Invoice[]> {
  const page = await e.storage.list({ limit: 100 });
  return Promise.all(page.items.reverse().map(async (s) => (await e.storage.get(s.number)) as Invoice));
}

function crashTest(engine: string, make: MakeEngines, where: (e: Engines) => object) {
  for (const kill of ['tax', 'record'] as const) {
    test(`${engine}: kill -9 right after a ${kill === 'tax' ? 'tax posting' : 'recorded invoice'}, then the job again: each invoice and tax once, no gap`, { timeout: 120_000 }, async (t) => {
      const e = await make(t);
      if (!e) return;
      await scene(e);
      const now = at(2027, 2, 1, 1);
      const crashed = await node({ ...where(e), now, kill, at: 3 });
      assert.equal(crashed.signal, 'SIGKILL', crashed.out);
      const before = await invoices(e);
      assert.equal(before.length, kill === 'tax' ? 2 : 3, 'died in the middle');
      assert.equal(await e.storage.lastRun(), undefined, 'the run is not done');
      const again = await node({ ...where(e), now });
      assert.equal(again.code, 0, again.out);
      const after = await invoices(e);
      assert.deepEqual(after.map((i) => i.number), ['INV-2027-000001', 'INV-2027-000002', 'INV-2027-000003', 'INV-2027-000004', 'INV-2027-000005']);
      assert.deepEqual(after.map((i) => i.payer).sort(), PAYERS);
      assert.deepEqual(after.slice(0, before.length), before, 'what was issued before the crash is unchanged');
      let taxes = 0;
      for (const i of after) {
        const posted = await e.ledger.posting(`tax:${i.payer}:2027-01`);
        assert.equal(posted?.entries.find((x) => x.account === PLATFORM_TAX)?.amount, i.tax, i.payer);
        taxes += i.tax;
        await assertReconciles(e.ledger, i.payer, [i]);
      }
      assert.equal(await e.ledger.balance(PLATFORM_TAX), taxes, 'each tax posted once');
      assert.equal(await e.storage.lastRun(), '2027-01');
      assert.equal((await e.ledger.trialBalance()).ok, true);
    });
  }
}

crashTest('sqlite', sqliteEngines, (e) => ({ sqlite: (e.ledger as SqliteLedger).db.name }));
crashTest('postgres', pgEngines, (e) => ({ pg: { url: TEST_ENGINE_URLS.postgres, prefix: (e.ledger as PgLedger).db.prefix } }));
