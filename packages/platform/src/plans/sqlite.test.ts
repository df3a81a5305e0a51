import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openSqliteLedger } from '../ledger/sqlite.js';
import { billingStorageContract } from './contract.js';
import { DEFAULT_PLANS } from './plans.js';
import { openSqliteBilling } from './sqlite.js';

billingStorageContract('sqlite', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-billing-'));
  const ledger = openSqliteLedger(join(dir, 'billing.db'));
  t.after(async () => {
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return openSqliteBilling(ledger.db);
});

test('sqlite: beside the ledger in billing.db, its own schema version; reopening keeps the data; a newer file is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-billing-'));
  const path = join(dir, 'billing.db');
  try {
    let ledger = openSqliteLedger(path);
    await openSqliteBilling(ledger.db).putVersion({ plan: DEFAULT_PLANS[0] as (typeof DEFAULT_PLANS)[number], from: '1970-01', at: 1 }, 'seed');
    const versions = ledger.db.prepare<[], { key: string; value: string }>("SELECT key, value FROM meta WHERE key LIKE 'schema_version%' ORDER BY key").all();
    assert.deepEqual(versions, [{ key: 'schema_version', value: '1' }, { key: 'schema_version.plans', value: '1' }]);
    await ledger.close();
    ledger = openSqliteLedger(path);
    assert.equal((await openSqliteBilling(ledger.db).versions()).length, 1);
    ledger.db.prepare("UPDATE meta SET value = '9' WHERE key = 'schema_version.plans'").run();
    assert.throws(() => openSqliteBilling(ledger.db), /plans schema version 9, newer than this micro server knows \(1\): upgrade micro/);
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
