import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPostgres } from '@micro/server/engine';
import { relay, silencedInTransaction, testPostgres } from '@micro/server/testing';
import { checkRace, fundRace, ledgerContract, raceKeysTwoHandles, raceTwoHandles, spendAndRace } from './contract.js';
import { openPgLedger, PgLedger } from './postgres.js';

ledgerContract('postgres', async (t, options) => {
  const db = await testPostgres(t, 'ledger');
  if (!db) return undefined;
  return openPgLedger({ url: db.url, prefix: db.prefix, ...options });
});

test('postgres: entries and postings cannot be changed, deleted or truncated, accounts not deleted, even by hand; the trial balance finds entries written by hand', async (t) => {
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
  for (const sql of ["DELETE FROM accounts WHERE id = 'customer:c1:balance'", 'TRUNCATE accounts CASCADE']) {
    await assert.rejects(db.query(sql.replace('accounts', `${db.schema}.accounts`)), /accounts are never deleted/, sql);
  }
  await db.query(`UPDATE ${db.schema}.accounts SET balance = 6 WHERE id = 'customer:c1:balance'`);
  assert.deepEqual((await l.trialBalance()).mismatched, ['customer:c1:balance']);
  // entries of no account, or of no posting (no foreign key stops a hand that writes them): reported too
  await db.query(`INSERT INTO ${db.schema}.entries (posting, account, amount, balance_after) VALUES ((SELECT max(id) FROM ${db.schema}.postings), 'customer:ghost:balance', 1, 1)`);
  await db.query(`INSERT INTO ${db.schema}.entries (posting, account, amount, balance_after) VALUES (-7, 'external:payments', -1, -6)`);
  const trial = await l.trialBalance();
  assert.deepEqual([trial.ok, trial.mismatched], [false, ['customer:c1:balance', 'customer:ghost:balance', 'external:payments']]);
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

test('postgres: a node that goes silent inside a posting (its host gone: the connection is not closed) holds the accounts it locked for seconds, not hours', { timeout: 60_000 }, async (t) => {
  const db = await testPostgres(t, 'ledger');
  if (!db) return;
  const other = await openPgLedger({ url: db.url, prefix: db.prefix });
  t.after(() => other.close());
  const cable = await relay(db.url);
  const pool = await openPostgres({ url: `${cable.url}${cable.url.includes('?') ? '&' : '?'}application_name=silent`, prefix: db.prefix });
  const silenced = silencedInTransaction(pool, cable, /FOR UPDATE/);
  const silent = new PgLedger(silenced.db);
  t.after(async () => {
    await cable.close();
    await silent.close();
  });
  await other.openAccount({ id: 'external:payments', allowNegative: true });
  for (const c of ['c1', 'c2']) await other.openAccount({ id: `customer:${c}:balance` });
  const topUp = (l: PgLedger, c: string, key: string) => l.post({ key, reason: 'top-up', entries: [{ account: `customer:${c}:balance`, amount: 5 }, { account: 'external:payments', amount: -5 }] });
  // the silent node has locked external:payments (and c1's balance) when its network goes
  const frozen = silenced.arm();
  const lost = topUp(silent, 'c1', 'silent').catch((err: unknown) => err);
  await frozen;
  // another node's posting to external:payments waits until PostgreSQL ends the silent session (5 s); were it kept, it
  // would fail with the pool's 503 after its 30 s query timeout, and every posting to that account after it
  const started = Date.now();
  await topUp(other, 'c2', 'other');
  t.diagnostic(`the other node's posting waited ${Date.now() - started} ms for the silent node's locks`);
  cable.thaw();
  assert.equal(((await lost) as { code?: number }).code, 503, 'the silent posting failed');
  assert.equal(await other.posting('silent'), undefined, 'and was rolled back');
  assert.equal(await other.balance('external:payments'), -5);
  assert.equal((await other.trialBalance()).ok, true);
});
