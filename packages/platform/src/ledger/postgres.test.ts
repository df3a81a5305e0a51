import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testPostgres } from '@micro/server/testing';
import { ledgerContract, raceTwoHandles } from './contract.js';
import { openPgLedger } from './postgres.js';

ledgerContract('postgres', async (t, options) => {
  const db = await testPostgres(t, 'ledger');
  if (!db) return undefined;
  return openPgLedger({ url: db.url, prefix: db.prefix, ...options });
});

test('postgres: entries and postings cannot be changed, deleted or truncated, even by hand', async (t) => {
  const db = await testPostgres(t, 'ledger');
  if (!db) return;
  const l = await openPgLedger({ url: db.url, prefix: db.prefix });
  t.after(() => l.close());
  await l.openAccount({ id: 'external:payments', allowNegative: true });
  await l.openAccount({ id: 'customer:c1:balance' });
  await l.post({ key: 'k', reason: 'r', entries: [{ account: 'customer:c1:balance', amount: 5 }, { account: 'external:payments', amount: -5 }] });
  for (const sql of ['UPDATE entries SET amount = 500', 'DELETE FROM entries', "UPDATE postings SET reason = 'x'", 'DELETE FROM postings', 'TRUNCATE entries CASCADE', 'TRUNCATE postings CASCADE']) {
    await assert.rejects(db.query(sql.replace(/(entries|postings)/, `${db.schema}.$1`)), /immutable/, sql);
  }
  await db.query(`UPDATE ${db.schema}.accounts SET balance = 6 WHERE id = 'customer:c1:balance'`);
  assert.deepEqual((await l.trialBalance()).mismatched, ['customer:c1:balance']);
});

test('postgres: two nodes (two pools) spending one balance never overdraw', async (t) => {
  const db = await testPostgres(t, 'ledger');
  if (!db) return;
  // two handles on the same URL share a pool: another URL spelling gives each node its own connections
  const a = await openPgLedger({ url: db.url, prefix: db.prefix });
  const b = await openPgLedger({ url: `${db.url}${db.url.includes('?') ? '&' : '?'}application_name=node-b`, prefix: db.prefix });
  t.after(async () => {
    await a.close();
    await b.close();
  });
  assert.equal(await raceTwoHandles(a, b, 5, 16), 5);
});
