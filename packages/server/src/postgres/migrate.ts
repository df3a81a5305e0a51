import type pg from 'pg';
import type { Postgres } from './pool.js';

/**
 * Schema migrations: each component (store, sync, auth...) has its own numbered list,
 * and `<schema>.schema_version` records how far each component's tables are.
 */

export interface Migration {
  /** 1, 2, 3…: each list starts at 1 and has no gaps */
  version: number;
  /** what it does, for logs */
  description: string;
  /**
   * SQL (may hold several statements) or a function, run inside the migration's
   * transaction with `search_path` set to the schema: unqualified names land there.
   */
  up: string | ((client: pg.PoolClient, schema: string) => Promise<void>);
}

/** The highest version of a list of migrations (checked: 1..n, in order). */
export function latestVersion(component: string, migrations: readonly Migration[]): number {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations of ${component} must be numbered 1, 2, 3… in order (entry ${i} is ${m.version})`);
  });
  return migrations.length;
}

// the first key of the advisory lock every migration of micro takes (the second: the schema)
const MIGRATE_LOCK = 0x6d696372; // "micr"

/**
 * Brings `component`'s tables in the schema to the last version of `migrations`, in one
 * transaction under an advisory lock of the schema, so that several nodes starting at
 * once migrate once and the others find the work done. Creates the schema and the
 * schema_version table when missing. A database whose version is newer than the list
 * (written by a newer micro server) is refused with an error that says to upgrade.
 * Returns the version the tables were at before.
 */
export async function migrate(db: Postgres, component: string, migrations: readonly Migration[]): Promise<number> {
  const latest = latestVersion(component, migrations);
  return db.transaction(async (client) => {
    // held until COMMIT or ROLLBACK: the other nodes wait here, then find the work done
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATE_LOCK, db.prefix]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${db.schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${db.schema}.schema_version (component text PRIMARY KEY, version integer NOT NULL, updated timestamptz NOT NULL DEFAULT now())`,
    );
    const row = await client.query<{ version: number }>(`SELECT version FROM ${db.schema}.schema_version WHERE component = $1`, [component]);
    const current = row.rows[0]?.version ?? 0;
    if (current > latest) {
      throw new SchemaVersionError(component, current, latest, db.url, db.prefix);
    }
    if (current === latest) return current;
    await client.query(`SET LOCAL search_path TO ${db.schema}`);
    for (const m of migrations.slice(current)) {
      if (typeof m.up === 'string') await client.query(m.up);
      else await m.up(client, db.schema);
    }
    await client.query(
      `INSERT INTO ${db.schema}.schema_version (component, version) VALUES ($1, $2)
       ON CONFLICT (component) DO UPDATE SET version = excluded.version, updated = now()`,
      [component, latest],
    );
    return current;
  });
}

/** A database written by a newer micro server: this one must not read or write it. */
export class SchemaVersionError extends Error {
  constructor(
    readonly component: string,
    readonly found: number,
    readonly known: number,
    url: string,
    prefix: string,
  ) {
    super(
      `database schema of ${component} is version ${found} (schema "${prefix}" at ${url}), this micro server knows up to ${known}: upgrade it`,
    );
    this.name = 'SchemaVersionError';
  }
}
