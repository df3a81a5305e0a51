import { migrate, openPostgres, type Migration, type Postgres, type PostgresOptions } from '../postgres/index.js';
import { defaultsFromEnv, QUOTA_ERROR_ID, type LimitKey, type LimitSettings, type Usage } from './limits.js';
import { QuotaEngine, type QuotaRows } from './engine.js';
import type { Counted } from './quotas.js';

export const QUOTA_POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'quota settings and counters',
    up: `
      CREATE TABLE quota_settings (namespace text COLLATE "C" NOT NULL, name text NOT NULL, value bigint NOT NULL, PRIMARY KEY (namespace, name));
      CREATE TABLE quota_counters (namespace text COLLATE "C" NOT NULL, name text NOT NULL, used bigint NOT NULL, PRIMARY KEY (namespace, name));
    `,
  },
];

export interface PostgresQuotasOptions extends Omit<PostgresOptions, 'errorId'> {
  /** the platform defaults (default MICRO_QUOTA_DEFAULTS over the built-in ones) */
  defaults?: Readonly<Record<LimitKey, number>>;
}

/**
 * Quotas in PostgreSQL (the nats profile): the nodes share settings and counters. `add`
 * is one statement whose conditional upsert takes the counter's row lock, so concurrent
 * takes from any node see each other and never pass the limit together.
 */
export async function openPostgresQuotas(options: PostgresQuotasOptions): Promise<QuotaEngine> {
  const db = await openPostgres({ ...options, errorId: QUOTA_ERROR_ID });
  try {
    await migrate(db, 'quota', QUOTA_POSTGRES_MIGRATIONS);
  } catch (err) {
    await db.close();
    throw err;
  }
  return new QuotaEngine(new PostgresQuotaRows(db), { defaults: options.defaults ?? defaultsFromEnv() });
}

class PostgresQuotaRows implements QuotaRows {
  private readonly s: string;

  constructor(private readonly db: Postgres) {
    this.s = db.schema;
  }

  async settings(namespace: string): Promise<LimitSettings> {
    const { rows } = await this.db.query<{ name: LimitKey; value: string }>(`SELECT name, value FROM ${this.s}.quota_settings WHERE namespace = $1`, [namespace]);
    return Object.fromEntries(rows.map((r) => [r.name, Number(r.value)]));
  }

  async put(namespace: string, settings: LimitSettings): Promise<void> {
    const entries = Object.entries(settings);
    if (entries.length === 0) return;
    await this.db.query(
      `INSERT INTO ${this.s}.quota_settings (namespace, name, value) SELECT $1, * FROM unnest($2::text[], $3::bigint[])
       ON CONFLICT (namespace, name) DO UPDATE SET value = excluded.value`,
      [namespace, entries.map((e) => e[0]), entries.map((e) => e[1])],
    );
  }

  async unset(namespace: string, keys: readonly LimitKey[]): Promise<void> {
    if (keys.length === 0) return;
    await this.db.query(`DELETE FROM ${this.s}.quota_settings WHERE namespace = $1 AND name = ANY($2::text[])`, [namespace, [...keys]]);
  }

  async clear(namespace: string): Promise<void> {
    await this.db.query(`DELETE FROM ${this.s}.quota_settings WHERE namespace = $1`, [namespace]);
  }

  async forget(namespace: string): Promise<void> {
    await this.db.query(`WITH s AS (DELETE FROM ${this.s}.quota_settings WHERE namespace = $1) DELETE FROM ${this.s}.quota_counters WHERE namespace = $1`, [namespace]);
  }

  async counters(namespace: string): Promise<Usage> {
    const { rows } = await this.db.query<{ name: LimitKey; used: string }>(`SELECT name, used FROM ${this.s}.quota_counters WHERE namespace = $1`, [namespace]);
    return Object.fromEntries(rows.map((r) => [r.name, Number(r.used)]));
  }

  async add(namespace: string, limit: Counted, amount: number, max: number | null): Promise<number | undefined> {
    // a new row is checked by the WHERE of the SELECT, an existing one by the upsert's WHERE (under its row lock)
    const { rows } = await this.db.query<{ used: string }>(
      `INSERT INTO ${this.s}.quota_counters AS c (namespace, name, used) SELECT $1, $2, $3::bigint WHERE $4::bigint IS NULL OR $3::bigint <= $4::bigint
       ON CONFLICT (namespace, name) DO UPDATE SET used = c.used + excluded.used WHERE $4::bigint IS NULL OR c.used + excluded.used <= $4::bigint
       RETURNING used`,
      [namespace, limit, amount, max],
    );
    return rows.length === 0 ? undefined : Number(rows[0]!.used) - amount;
  }

  async sub(namespace: string, limit: Counted, amount: number): Promise<void> {
    await this.db.query(`UPDATE ${this.s}.quota_counters SET used = greatest(used - $3, 0) WHERE namespace = $1 AND name = $2`, [namespace, limit, amount]);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
