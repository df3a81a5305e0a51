import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testPostgres } from '@micro/server/testing';
import { checkRace, fundRace, ledgerContract, raceKeysTwoHandles, raceTwoHandles, spendAndRace } from './contract.js';
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

/** two handles on one schema as two nodes have them: each with its own pool (another URL spelling: handles of one URL share a pool) */
async function twoNodes(t: Parameters<typeof testPostgres>[0]) {
  const db = await testPostgres(t, 'ledger');
  if (!db) return undefined;
  const a = await openPgLedger({ url: db.url, prefix: db.prefix });
  const b = await openPgLedger({ url: `${db.url}${db.url.includes('?') ? '&' : '?'}application_name=node-b`, prefix: db.prefix });
  t.after(async () => {
    await a.close();
    await b.close();
  });
  return { a, b };
}

test('postgres: two nodes (two pools) spending one balance never overdraw', async (t) => {
  const nodes = await twoNodes(t);
  if (!nodes) return;
  assert.equal(await raceTwoHandles(nodes.a, nodes.b, 5, 16), 5);
});

test('postgres: two nodes racing for the same keys record each once', async (t) => {
  const nodes = await twoNodes(t);
  if (!nodes) return;
  await raceKeysTwoHandles(nodes.a, nodes.b);
});

test('postgres: two nodes, 64 callers each, group-committing at once: exactly the funds are spent, each key once', async (t) => {
  const nodes = await twoNodes(t);
  if (!nodes) return;
  const { a, b } = nodes;
  await fundRace(a);
  const [x, y] = await Promise.all([spendAndRace(a, 'a'), spendAndRace(b, 'b')]);
  await checkRace(b, x, y);
});
