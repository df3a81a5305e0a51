import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testPostgres } from '@micro/server/testing';
import { billingStorageContract } from './contract.js';
import { openPgBilling } from './postgres.js';

billingStorageContract('postgres', async (t) => {
  const db = await testPostgres(t, 'billing');
  if (!db) return undefined;
  return openPgBilling(db);
});

test('postgres: two nodes migrate one schema once and share the subscriptions', async (t) => {
  const db = await testPostgres(t, 'billing');
  if (!db) return;
  const [a, b] = await Promise.all([openPgBilling(db), openPgBilling(db)]);
  const row = { customer: 'cus_x', plan: 'team', since: 1, period: '2027-01', cancelAtPeriodEnd: false, status: 'active' as const, revision: 1, createdAt: 1, updatedAt: 1 };
  assert.equal(await a.commit({ expect: 0, row }), true);
  assert.deepEqual(await b.subscription('cus_x'), row);
  assert.equal(await b.commit({ expect: 0, row }), false);
});
