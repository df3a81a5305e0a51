import { migrate, type Migration, type Postgres } from '@micro/server/engine';
import { PRICING_SCHEMA, settingOf, type PriceKey, type PriceSetting, type PricingStorage } from './storage.js';

/**
 * The pricing storage of the nats profile: two tables in the platform's schema of the
 * shared PostgreSQL (billing's handle, hub.billing), so every node reads the same prices.
 * A set or clear updates the one row of pricing_state in its transaction: changes are
 * serialised by that row's lock, and `version` tells every node that something moved.
 * `max` is counted inside that same lock, so it holds across nodes too.
 */

export const PRICING_POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'pricing: the prices admins set per endpoint, and a change counter',
    up: PRICING_SCHEMA,
  },
];

interface Row {
  namespace: string;
  service: string;
  endpoint: string;
  price: string;
  free_quota: string;
  set_by: string;
  set_at: string;
}

export async function openPgPricing(db: Postgres): Promise<PricingStorage> {
  await migrate(db, 'pricing', PRICING_POSTGRES_MIGRATIONS);
  const s = db.schema;
  const key = (k: PriceKey) => [k.namespace, k.service, k.endpoint];
  return {
    version: async () => Number((await db.query<{ version: string }>(`SELECT version FROM ${s}.pricing_state WHERE id = 1`)).rows[0]?.version ?? 0),
    // REPEATABLE READ: the version and the rows of one snapshot
    load: () =>
      db.transaction(async (c) => {
        await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
        const v = await c.query<{ version: string }>(`SELECT version FROM ${s}.pricing_state WHERE id = 1`);
        const rows = await c.query<Row>(`SELECT * FROM ${s}.pricing_settings ORDER BY namespace, service, endpoint`);
        return { version: Number(v.rows[0]?.version ?? 0), settings: rows.rows.map(settingOf) };
      }),
    set: (p: PriceSetting, max: number) =>
      db.transaction(async (c) => {
        // the state row's lock first: every change waits here, so the count below is exact
        await c.query(`UPDATE ${s}.pricing_state SET version = version + 1 WHERE id = 1`);
        const known = await c.query(`SELECT 1 FROM ${s}.pricing_settings WHERE namespace = $1 AND service = $2 AND endpoint = $3`, key(p));
        if (known.rows.length === 0) {
          const n = await c.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${s}.pricing_settings`);
          // a ROLLBACK undoes the version's bump too
          if (Number(n.rows[0]?.n ?? 0) >= max) throw new Full();
        }
        await c.query(
          `INSERT INTO ${s}.pricing_settings (namespace, service, endpoint, price, free_quota, set_by, set_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (namespace, service, endpoint) DO UPDATE SET price = excluded.price, free_quota = excluded.free_quota, set_by = excluded.set_by, set_at = excluded.set_at`,
          [...key(p), p.price, p.freeQuota, p.setBy, p.setAt],
        );
        return 'set' as const;
      }).catch((err: unknown) => {
        if (err instanceof Full) return 'full' as const;
        throw err;
      }),
    clear: (k: PriceKey) =>
      db.transaction(async (c) => {
        const gone = await c.query(`DELETE FROM ${s}.pricing_settings WHERE namespace = $1 AND service = $2 AND endpoint = $3`, key(k));
        if ((gone.rowCount ?? 0) === 0) return false;
        await c.query(`UPDATE ${s}.pricing_state SET version = version + 1 WHERE id = 1`);
        return true;
      }),
  };
}

/** thrown inside set's transaction to roll it back when the settings are full */
class Full extends Error {}
