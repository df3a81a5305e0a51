import { join } from 'node:path';
import type { Logger } from '@micro/sdk';
import { openPostgres, type CoreContext } from '@micro/server/engine';
import type { BillingEngines } from '../billing/engines.js';
import type { Pricing } from '../pricing/pricing.js';
import { PgMeterEngine, type PgMeterOptions } from './postgres.js';
import { SqliteMeterEngine, type SqliteMeterOptions } from './sqlite.js';
import type { MeterEngine } from './storage.js';

export { Meter, postCharges, usagePosting } from './meter.js';
export type { MeterOptions } from './meter.js';
export { BLOCKED_ID, insufficientCredit, usageCapExceeded, idemPosting, requestPosting } from './core.js';
export { SqliteMeterEngine, METERING_SQLITE_VERSION } from './sqlite.js';
export type { SqliteMeterOptions } from './sqlite.js';
export { PgMeterEngine, METERING_POSTGRES_MIGRATIONS } from './postgres.js';
export type { PgMeterOptions } from './postgres.js';
export type { MeterEngine, Admission, Hold, Outcome, CallRecord, Charge, Posted, UsageFilter, UsageRow, QuotaRow } from './storage.js';

/** A pricing that prices nothing: no call is metered (the platform's until pricing is configured). */
export const NO_PRICES: Pricing = { priceOf: () => undefined };

/**
 * The meter's engine of the server's profile, on the billing engines the hub opened: the
 * tables in billing.db beside the ledger (local), or in the platform's schema of the shared
 * PostgreSQL (nats), through a handle of its own on the shared pool.
 */
export async function openMeterEngine(
  ctx: Pick<CoreContext, 'profile' | 'dataDir'>,
  billing: BillingEngines,
  options: { logger?: Logger } & Pick<PgMeterOptions, 'node' | 'heartbeat' | 'holdTtl' | 'idleInTransaction'> & Pick<SqliteMeterOptions, 'balanceTtl'> = {},
): Promise<MeterEngine> {
  if (ctx.profile.name === 'nats') {
    const db = await openPostgres({ url: ctx.profile.postgresUrl, prefix: ctx.profile.prefix, errorId: 'micro.usage' });
    return new PgMeterEngine(db, options);
  }
  if (!billing.sqlite) throw new Error('the local profile keeps billing in billing.db: the hub opened no SQLite database');
  return new SqliteMeterEngine(billing.sqlite, billing.ledger, join(ctx.dataDir, 'billing.db'), { logger: options.logger, balanceTtl: options.balanceTtl });
}
