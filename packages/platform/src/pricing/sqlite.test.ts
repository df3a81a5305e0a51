import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openSqliteLedger } from '../ledger/index.js';
import { pricingStorageContract, setting } from './contract.js';
import { openSqlitePricing } from './sqlite.js';

function billingDb(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-pricing-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'billing.db');
}

// two handles on one billing.db, as two processes would have (the ledger made the file)
pricingStorageContract('sqlite', async (t) => {
  const path = billingDb(t);
  const [a, b] = [openSqliteLedger(path), openSqliteLedger(path)];
  t.after(async () => {
    await a.close();
    await b.close();
  });
  return [openSqlitePricing(a.db), openSqlitePricing(b.db)];
});

test('sqlite: the prices survive a reopen of billing.db; the schema is made once; the database refuses a negative price set by hand', async (t) => {
  const path = billingDb(t);
  const first = openSqliteLedger(path);
  await openSqlitePricing(first.db).set(setting('Read', 100), 10);
  await first.close();
  const again = openSqliteLedger(path);
  t.after(() => again.close());
  const s = openSqlitePricing(again.db);
  assert.deepEqual((await s.load()).settings, [setting('Read', 100)]);
  assert.throws(() => again.db.prepare("UPDATE pricing_settings SET price = -1 WHERE endpoint = 'Read'").run(), /CHECK constraint failed/);
});
