import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { quotaContract } from './contract.js';
import { openPostgresQuotas } from './postgres.js';
import { openPostgres } from '../postgres/index.js';

quotaContract('postgres', async (t, defaults) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return undefined;
  const prefix = testPrefix('quota');
  const quotas = await openPostgresQuotas({ url, prefix, defaults, max: 8 });
  t.after(async () => {
    const db = await openPostgres({ url, prefix });
    await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`).catch(() => undefined);
    await db.close();
  });
  return quotas;
});
