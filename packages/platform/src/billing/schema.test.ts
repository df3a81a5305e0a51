import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openSqliteLedger } from '../ledger/index.js';
import { ensureBillingSchema } from './engines.js';

test('a part of billing gets its tables in a billing.db the ledger made before it, once, and refuses a newer file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-billing-schema-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'billing.db');
  // the ledger first, as every server of before made the file
  await openSqliteLedger(path).close();
  const ledger = openSqliteLedger(path);
  t.after(() => ledger.close());
  let created = 0;
  const create = () => {
    created++;
    ledger.db.exec('CREATE TABLE part_rows (id INTEGER PRIMARY KEY)');
  };
  ensureBillingSchema(ledger.db, 'part', 1, create);
  ensureBillingSchema(ledger.db, 'part', 1, create);
  assert.equal(created, 1);
  ledger.db.prepare('INSERT INTO part_rows (id) VALUES (1)').run();
  // another part keeps its own version
  ensureBillingSchema(ledger.db, 'other', 1, () => ledger.db.exec('CREATE TABLE other_rows (id INTEGER PRIMARY KEY)'));
  const versions = ledger.db.prepare<[], { key: string; value: string }>("SELECT key, value FROM meta WHERE key LIKE 'schema_version%' ORDER BY key").all();
  assert.deepEqual(versions, [
    { key: 'schema_version', value: '1' },
    { key: 'schema_version.other', value: '1' },
    { key: 'schema_version.part', value: '1' },
  ]);
  // a file of a newer micro is refused, not misread
  ledger.db.prepare("UPDATE meta SET value = '9' WHERE key = 'schema_version.part'").run();
  assert.throws(() => ensureBillingSchema(ledger.db, 'part', 1, create), /part schema version 9, newer than this micro server knows \(1\)/);
  assert.equal(created, 1);
});
