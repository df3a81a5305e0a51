import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPostgres } from '@micro/server/engine';
import { testPostgres } from '@micro/server/testing';
import { pricingStorageContract, setting } from './contract.js';
import { openPgPricing } from './postgres.js';

// two nodes: two pools on one schema (another URL spelling gives the second its own connections)
pricingStorageContract('postgres', async (t) => {
  const db = await testPostgres(t, 'pricing');
  if (!db) return undefined;
  const other = await openPostgres({ url: `${db.url}${db.url.includes('?') ? '&' : '?'}application_name=node-b`, prefix: db.prefix });
  t.after(() => other.close());
  return [await openPgPricing(db), await openPgPricing(other)];
});

test('postgres: two nodes migrate once; the database refuses a negative price set by hand', async (t) => {
  const db = await testPostgres(t, 'pricing');
  if (!db) return;
  const [a, b] = await Promise.all([openPgPricing(db), openPgPricing(db)]);
  await a.set(setting('Read', 100), 10);
  assert.deepEqual((await b.load()).settings, [setting('Read', 100)]);
  await assert.rejects(db.query(`UPDATE ${db.schema}.pricing_settings SET price = -1`), /check constraint/);
});
