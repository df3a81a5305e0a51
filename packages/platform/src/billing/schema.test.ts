import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openSqliteLedger } from '../ledger/sqlite.js';
import { ensurePartSchema } from './schema.js';

test('a part of billing gets its own tables in billing.db beside the ledger, versioned on its own', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-billing-schema-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ledger = openSqliteLedger(join(dir, 'billing.db'));
  t.after(() => ledger.close());
  let made = 0;
  const create = () => {
    made++;
    ledger.db.exec('CREATE TABLE part_things (id INTEGER PRIMARY KEY)');
  };
  ensurePartSchema(ledger.db, 'things', 1, create);
  ensurePartSchema(ledger.db, 'things', 1, create);
  assert.equal(made, 1, 'created once, though the ledger holds schema_version 1 already');
  ledger.db.prepare('INSERT INTO part_things (id) VALUES (1)').run();
  assert.throws(() => ensurePartSchema(ledger.db, 'things', 0, create), /newer than this micro server knows/);
  assert.throws(() => ensurePartSchema(ledger.db, 'Bad Name', 1, create), /a billing part is named/);
  // a failed create leaves no version behind
  assert.throws(() => ensurePartSchema(ledger.db, 'other', 1, () => ledger.db.exec('CREATE TABLE part_things (x)')), /already exists/);
  assert.equal(ledger.db.prepare("SELECT value FROM meta WHERE key = 'schema_version.other'").get(), undefined);
  assert.equal((ledger.db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value, '1');
});
