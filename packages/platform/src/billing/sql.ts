import { migrate } from '@micro/server/engine';
import type { BillingEngines } from './engines.js';

/**
 * A part of billing's own tables beside the ledger (billing.db on the local profile, the
 * platform's schema in PostgreSQL on the nats profile), through one small driver:
 * statements in the common dialect of SQLite (≥ 3.35) and PostgreSQL, `?` placeholders,
 * tables written `@name` (qualified with the schema on PostgreSQL).
 *
 * Only single statements: a part that needs several atomically makes them one (an upsert,
 * a conditional UPDATE), or holds `exclusive`. (On SQLite the handle is the ledger's, whose
 * postings are synchronous transactions: an open transaction of ours across an await would
 * swallow a posting into it.)
 */
export interface BillingSql {
  readonly dialect: 'sqlite' | 'postgres';
  all<R>(sql: string, params?: unknown[]): Promise<R[]>;
  /** the number of rows changed */
  run(sql: string, params?: unknown[]): Promise<number>;
  /**
   * `fn` while holding the lock of `key` on every node: a PostgreSQL advisory lock on the
   * nats profile; this process's on the local one (the only process with billing.db).
   * One exclusive section at a time per process (a PostgreSQL lock holds a connection of
   * the shared pool while `fn` needs others: one at a time, the pool cannot run dry).
   */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

export interface BillingMigration {
  version: number;
  description: string;
  /** DDL in the common dialect, tables unqualified (SQLite: the file; PostgreSQL: migrate sets the search_path) */
  sql: string;
}

// the first key of the advisory locks of `exclusive` (the second: a hash of the key): "bill"
const LOCK = 0x62696c6c;

/** The driver over the engines, with `component`'s tables brought to the last of `migrations`. */
export async function billingSql(engines: Pick<BillingEngines, 'sqlite' | 'pg'>, component: string, migrations: readonly BillingMigration[]): Promise<BillingSql> {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations of ${component} must be numbered 1, 2, 3… in order`);
  });
  const serial = serialQueue();
  if (engines.pg) {
    const pg = engines.pg;
    await migrate(pg, component, migrations.map((m) => ({ version: m.version, description: m.description, up: m.sql })));
    const cache = new Map<string, string>();
    const text = (sql: string) => {
      let out = cache.get(sql);
      if (out === undefined) {
        let n = 0;
        out = sql.replace(/@([a-z_][a-z0-9_]*)/g, (_m, t: string) => `${pg.schema}.${t}`).replace(/\?/g, () => `$${++n}`);
        cache.set(sql, out);
      }
      return out;
    };
    return {
      dialect: 'postgres',
      all: async <R>(sql: string, params: unknown[] = []) => (await pg.query(text(sql), params)).rows as R[],
      run: async (sql, params = []) => (await pg.query(text(sql), params)).rowCount ?? 0,
      exclusive: (key, fn) =>
        serial(() =>
          pg.transaction(async (client) => {
            await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK, key]);
            return fn();
          }),
        ),
    };
  }
  const db = engines.sqlite;
  if (!db) throw new Error('billing engines without a database');
  migrateSqlite(db, component, migrations);
  const statements = new Map<string, ReturnType<typeof db.prepare<unknown[]>>>();
  const prepared = (sql: string) => {
    let st = statements.get(sql);
    if (!st) statements.set(sql, (st = db.prepare<unknown[]>(sql.replace(/@([a-z_][a-z0-9_]*)/g, '$1'))));
    return st;
  };
  return {
    dialect: 'sqlite',
    all: async <R>(sql: string, params: unknown[] = []) => {
      const st = prepared(sql);
      return st.reader ? (st.all(...params) as R[]) : (st.run(...params), []);
    },
    run: async (sql, params = []) => prepared(sql).run(...params).changes,
    exclusive: (_key, fn) => serial(fn),
  };
}

type Database = NonNullable<BillingEngines['sqlite']>;

/**
 * The component's version in the `meta` table under `schema_version.<component>`: billing.db
 * holds several components (the ledger's tables and each part's), so the one key of
 * ensureSchema (`schema_version`, the ledger's) cannot say how far each is.
 */
function migrateSqlite(db: Database, component: string, migrations: readonly BillingMigration[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
  const key = `schema_version.${component}`;
  db.transaction(() => {
    const current = Number(db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(key)?.value ?? 0);
    if (current > migrations.length) throw new Error(`billing.db has ${component} schema version ${current}, newer than this micro server knows (${migrations.length}): upgrade micro`);
    for (const m of migrations.slice(current)) db.exec(m.sql);
    if (current < migrations.length) db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, String(migrations.length));
  }).immediate();
}

/** Runs functions one after another (each starts when the one before settled). */
function serialQueue(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>) => {
    const result = tail.then(fn, fn);
    tail = result.catch(() => undefined);
    return result;
  };
}
