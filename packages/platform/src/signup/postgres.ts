import { hkdfSync } from 'node:crypto';
import { migrate, openPostgres, type Migration, type Postgres } from '@micro/server/engine';
import { SIGNUP_SCHEMA, SIGNUP_SCHEMA_V2, SqlSignupStorage, UniqueViolation, type SqlDriver } from './sql.js';

/**
 * The signup storage of the nats profile: tables in the platform's schema (the prefix) of
 * the shared PostgreSQL, so every node sees one set of customers. Transactions run at READ
 * COMMITTED: the unique keys (customers.email, namespaces.name) make the second of two
 * racing signups wait for the first and then fail (a 409), and the counting statements
 * (codes.attempts, sends.count) are single conditional UPDATEs.
 */

export const SIGNUP_POSTGRES_MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'signup: customers, namespaces, invites, waitlist, codes', up: SIGNUP_SCHEMA },
  { version: 2, description: 'signup: team roles (invites name a role; members become developers)', up: SIGNUP_SCHEMA_V2 },
];

export async function openPgSignup(options: { url: string; prefix: string }): Promise<SqlSignupStorage> {
  const db = await openPostgres({ ...options, errorId: 'signup' });
  try {
    await migrate(db, 'signup', SIGNUP_POSTGRES_MIGRATIONS);
  } catch (err) {
    await db.close();
    throw err;
  }
  return new SqlSignupStorage(pgDriver(db));
}

/**
 * The key of the codes' HMAC on the nats profile: derived from MICRO_AUTH_KEY, which every
 * node has and the database never sees (a copy of the database alone cannot test codes).
 */
export function codeKeyFrom(authKey: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(authKey, 'utf8'), Buffer.from('micro-signup'), Buffer.from('code hmac v1'), 32));
}

const TABLES = /\b(FROM|INTO|UPDATE|JOIN) (customers|namespaces|members|invites|waitlist|codes|sends)\b/g;

/**
 * A statement of sql.ts for Postgres: its tables in the schema (the pool is shared with the
 * other engines, so no search_path is set) and `?` placeholders numbered `$1, $2…` (no
 * statement there holds a `?` in a literal). Cached: each text is rewritten once.
 */
function forPostgres(sql: string, schema: string, cache: Map<string, string>): string {
  let out = cache.get(sql);
  if (out === undefined) {
    let n = 0;
    out = sql.replace(TABLES, (_m, verb: string, table: string) => `${verb} ${schema}.${table}`).replace(/\?/g, () => `$${++n}`);
    cache.set(sql, out);
  }
  return out;
}

interface Query {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

function pgDriver(db: Postgres): SqlDriver {
  const cache = new Map<string, string>();
  const numbered = (sql: string) => forPostgres(sql, db.schema, cache);
  const on = (q: Query): SqlDriver => ({
    all: async <R>(sql: string, params: unknown[] = []) => (await fail(q.query(numbered(sql), params))).rows as R[],
    run: async (sql, params = []) => (await fail(q.query(numbered(sql), params))).rowCount ?? 0,
    tx: (fn) => fn(on(q)),
    close: async () => undefined,
  });
  const pool = on(db);
  return {
    all: pool.all,
    run: pool.run,
    tx: (fn) => db.transaction((client) => fn(on(client))),
    close: () => db.close(),
  };
}

async function fail<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const e = err as { code?: string; constraint?: string; table?: string; message?: string };
    if (e.code === '23505') throw new UniqueViolation(`${e.table ?? ''} ${e.constraint ?? ''} ${e.message ?? ''}`);
    throw err;
  }
}
