import { test } from 'node:test';
import assert from 'node:assert/strict';
import { engineUrl, fulltextContract, testPrefix } from '@micro/sdk/testing';
import { openPostgres } from '../postgres/index.js';
import { fulltextCore } from './index.js';
import { PostgresFulltext } from './postgres.js';

/*
 * Full-text search on PostgreSQL: the contract in a schema of its own per test (dropped
 * after), purge, and two engines (two nodes) on one schema.
 */

async function open(url: string, prefix: string) {
  return PostgresFulltext.open({ url, prefix, max: 4 });
}

async function dropSchema(url: string, prefix: string) {
  const db = await openPostgres({ url, prefix, max: 1 });
  await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
  await db.close();
}

// the contract registers its own tests: without PostgreSQL it is left out (the reason printed)
const url = await engineUrl({ skip: () => undefined }, 'postgres');
if (url) {
  fulltextContract('postgres', async () => {
    const prefix = testPrefix('fulltext');
    const impl = await open(url, prefix);
    return {
      impl,
      close: async () => {
        await impl.close();
        await dropSchema(url, prefix);
      },
    };
  });
}

test('postgres fulltext: two nodes share the indexes; purge deletes a namespace\'s, cascading to its documents', async (t) => {
  const u = await engineUrl(t, 'postgres');
  if (!u) return;
  const prefix = testPrefix('fulltext');
  const one = await open(u, prefix);
  const two = await open(u, prefix);
  t.after(async () => {
    await one.close();
    await two.close();
    await dropSchema(u, prefix);
  });
  await one.put('books', { id: 'b', data: { title: 'shared between nodes', year: 2020 } }, { namespace: 'acme' });
  await one.put('books', { id: 'b', data: { title: 'globex keeps this' } }, { namespace: 'globex' });
  assert.deepEqual((await two.search('books', "title == 'nodes' and year >= 2020", { namespace: 'acme' })).map((h) => h.id), ['b']);
  // concurrent makers never pass the bound
  await Promise.all(Array.from({ length: 120 }, (_, i) => two.createIndex(`i${i}`, { namespace: 'busy' }).catch(() => undefined)));
  assert.equal((await one.listIndexes({ namespace: 'busy' })).length, 100);
  await fulltextCore(two).purge?.('acme');
  assert.deepEqual(await one.listIndexes({ namespace: 'acme' }), []);
  const db = await openPostgres({ url: u, prefix, max: 1 });
  t.after(() => db.close());
  const left = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${db.schema}.fulltext_text`);
  assert.equal(left.rows[0]?.n, 1, 'only globex\'s words are left');
  assert.equal((await one.search('books', "title == 'globex'", { namespace: 'globex' })).length, 1);
});
