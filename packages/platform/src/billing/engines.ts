import { join } from 'node:path';
import type { CoreContext, Postgres } from '@micro/server/engine';
import { openPgLedger, openSqliteLedger, type Ledger } from '../ledger/index.js';
import type { SqliteLedger } from '../ledger/sqlite.js';
import type { PgLedger } from '../ledger/postgres.js';
import { openPlatformAccounts } from './accounts.js';

type Database = SqliteLedger['db'];

/**
 * The engines every part of billing shares in one micro server: the ledger and the
 * database it lives in, so that a part's own tables (usage records, subscriptions,
 * invoices) sit beside the ledger's — `<dataDir>/billing.db` on the local profile, the
 * platform's schema in PostgreSQL on the nats profile.
 */
export interface BillingEngines {
  ledger: Ledger;
  /** local profile: billing.db (WAL), which holds the ledger's tables; parts add theirs with ensureSchema under their own name */
  sqlite?: Database;
  /** nats profile: the ledger's handle to the shared PostgreSQL (schema `<prefix>`); parts add tables with migrate under their own name */
  pg?: Postgres;
  /** the one clock of billing (ms since the epoch) */
  clock: () => number;
}

export async function openBillingEngines(ctx: Pick<CoreContext, 'profile' | 'dataDir'>, clock: () => number = Date.now): Promise<BillingEngines> {
  if (ctx.profile.name === 'nats') {
    const ledger: PgLedger = await openPgLedger({ url: ctx.profile.postgresUrl, prefix: ctx.profile.prefix, clock });
    await openPlatformAccounts(ledger);
    return { ledger, pg: ledger.db, clock };
  }
  const ledger = openSqliteLedger(join(ctx.dataDir, 'billing.db'), { clock });
  await openPlatformAccounts(ledger);
  return { ledger, sqlite: ledger.db, clock };
}
