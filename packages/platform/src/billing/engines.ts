import { join } from 'node:path';
import { ensureSchema, type CoreContext, type Postgres } from '@micro/server/engine';
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

/**
 * Brings a part's tables in billing.db to `version` with `create`. The file's own
 * `schema_version` is the ledger's, so each part keeps its version under
 * `schema_version.<part>` of the same `meta` table: a part that joins a file made before
 * it is created there, and a file written by a newer micro is refused rather than misread.
 * (PostgreSQL: `migrate(pg, '<part>', …)` keeps one version a component already.)
 */
export function ensureBillingSchema(db: Database, part: string, version: number, create: () => void): void {
  ensureSchema(db, db.name, part, version, create, `schema_version.${part}`);
}
