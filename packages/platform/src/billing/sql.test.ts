import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { billingSql, type BillingMigration } from './sql.js';
import { BILLING_ENGINES, testBillingEngines } from './testing.js';

const V1: BillingMigration = { version: 1, description: 'things', sql: 'CREATE TABLE things (id TEXT PRIMARY KEY, n BIGINT NOT NULL);' };
const V2: BillingMigration = { version: 2, description: 'things.note', sql: 'ALTER TABLE things ADD COLUMN note TEXT;' };

for (const engine of BILLING_ENGINES) {
  describe(`billing sql on ${engine}`, () => {
    test("a part's tables beside the ledger's, versioned by the part's own name", async (t) => {
      const engines = await testBillingEngines(t, engine);
      if (!engines) return;
      const a = await billingSql(engines, 'things', [V1]);
      assert.equal(a.dialect, engine);
      assert.equal(await a.run('INSERT INTO @things (id, n) VALUES (?, ?)', ['x', 9_007_199_254_740_991]), 1);
      // the ledger's own tables are untouched and still there (a second component of one file)
      await engines.ledger.openAccount({ id: 'customer:c:balance' });
      assert.equal(await engines.ledger.balance('customer:c:balance'), 0);
      // again (another start), then a new version: only the missing step runs, rows stay
      await billingSql(engines, 'things', [V1]);
      const b = await billingSql(engines, 'things', [V1, V2]);
      await b.run('UPDATE @things SET note = ? WHERE id = ?', ['hi', 'x']);
      const rows = await b.all<{ id: string; n: string | number; note: string }>('SELECT id, n, note FROM @things WHERE id = ?', ['x']);
      assert.deepEqual(rows.map((r) => [r.id, Number(r.n), r.note]), [['x', 9_007_199_254_740_991, 'hi']]);
      // another part of the same database has its own version
      const other = await billingSql(engines, 'others', [{ version: 1, description: 'o', sql: 'CREATE TABLE others (id TEXT PRIMARY KEY);' }]);
      assert.equal(await other.run('INSERT INTO @others (id) VALUES (?)', ['o']), 1);
      // an older server meets a newer table: refused with what to do
      await assert.rejects(billingSql(engines, 'things', [V1]), /newer than this micro server knows \(1\): upgrade micro$|version 2 .*knows up to 1: upgrade it/);
      await assert.rejects(billingSql(engines, 'things', [{ ...V1, version: 2 }]), /numbered 1, 2, 3/);
    });

    test('exclusive: sections of one key never overlap', async (t) => {
      const engines = await testBillingEngines(t, engine);
      if (!engines) return;
      const sql = await billingSql(engines, 'things', [V1]);
      let inside = 0;
      let most = 0;
      const section = () =>
        sql.exclusive('payer-1', async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 5));
          inside--;
        });
      await Promise.all(Array.from({ length: 8 }, section));
      assert.equal(most, 1);
      // a failing section releases the lock
      await assert.rejects(sql.exclusive('payer-1', async () => Promise.reject(new Error('boom'))), /boom/);
      assert.equal(await sql.exclusive('payer-1', async () => 'after'), 'after');
    });
  });
}
