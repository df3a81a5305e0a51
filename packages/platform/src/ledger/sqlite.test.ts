import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ledgerContract, raceTwoHandles } from './contract.js';
import { openSqliteLedger } from './sqlite.js';

function tempPath(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-ledger-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'ledger.db');
}

ledgerContract('sqlite', async (t, options) => openSqliteLedger(tempPath(t), options));

test('sqlite: entries and postings cannot be changed or deleted, even by hand', async (t) => {
  const l = openSqliteLedger(tempPath(t));
  t.after(() => l.close());
  await l.openAccount({ id: 'external:payments', allowNegative: true });
  await l.openAccount({ id: 'customer:c1:balance' });
  await l.post({ key: 'k', reason: 'r', entries: [{ account: 'customer:c1:balance', amount: 5 }, { account: 'external:payments', amount: -5 }] });
  assert.throws(() => l.db.prepare('UPDATE entries SET amount = 500').run(), /immutable/);
  assert.throws(() => l.db.prepare('DELETE FROM entries').run(), /immutable/);
  assert.throws(() => l.db.prepare("UPDATE postings SET reason = 'x'").run(), /immutable/);
  assert.throws(() => l.db.prepare('DELETE FROM postings').run(), /immutable/);
  // a balance changed by hand is caught by the trial balance
  l.db.prepare("UPDATE accounts SET balance = 6 WHERE id = 'customer:c1:balance'").run();
  assert.deepEqual((await l.trialBalance()).mismatched, ['customer:c1:balance']);
});

test('sqlite: two handles on one file (two processes) never overdraw', async (t) => {
  const path = tempPath(t);
  const a = openSqliteLedger(path);
  const b = openSqliteLedger(path);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  assert.equal(await raceTwoHandles(a, b, 2, 4), 2);
});
