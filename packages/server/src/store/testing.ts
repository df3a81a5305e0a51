import type test from 'node:test';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { openPostgres } from '../postgres/index.js';
import { PostgresStore } from './postgres.js';
import type { StoreLimits } from './usage.js';

/** A PostgresStore of a schema of its own (dropped after the test), or undefined when there is no PostgreSQL. */
export async function testPostgresStore(t: test.TestContext, label: string, limits: StoreLimits): Promise<PostgresStore | undefined> {
  const url = await engineUrl(t, 'postgres');
  if (!url) return undefined;
  const prefix = testPrefix(label);
  const store = await PostgresStore.open({ url, prefix, purgeInterval: 0, limits, max: 8 });
  t.after(async () => {
    await store.close();
    const db = await openPostgres({ url, prefix, max: 1 });
    await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
    await db.close();
  });
  return store;
}
