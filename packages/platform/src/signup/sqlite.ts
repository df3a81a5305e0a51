import { randomBytes } from 'node:crypto';
import { ensureSchema, openDatabase } from '@micro/server/engine';
import { SIGNUP_SCHEMA, SIGNUP_SCHEMA_V2, SqlSignupStorage, UniqueViolation, type SqlDriver } from './sql.js';

/**
 * The signup storage of the local profile: `<dataDir>/signup.db` (0600, WAL, synchronous
 * FULL: see openDatabase). better-sqlite3 is synchronous and has one connection, so the
 * driver runs one statement or one transaction at a time (a queue): a transaction's
 * awaits never let another request's statement into it.
 */

export const SIGNUP_SQLITE_VERSION = 2;

export interface SqliteSignup {
  storage: SqlSignupStorage;
  /** the key of the codes' HMAC: random, made with the file, kept in it (the file is the secret's boundary here, as auth.db's) */
  codeKey: Buffer;
}

export function openSqliteSignup(path: string): SqliteSignup {
  const db = openDatabase(path);
  try {
    const from = schemaVersion(db);
    ensureSchema(db, path, 'signup', SIGNUP_SQLITE_VERSION, () => {
      if (from < 1) db.exec(SIGNUP_SCHEMA);
      db.exec(SIGNUP_SCHEMA_V2);
    });
    let key = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'code_key'").get()?.value;
    if (!key) {
      key = randomBytes(32).toString('hex');
      db.prepare("INSERT INTO meta (key, value) VALUES ('code_key', ?)").run(key);
    }
    return { storage: new SqlSignupStorage(sqliteDriver(db)), codeKey: Buffer.from(key, 'hex') };
  } catch (err) {
    db.close();
    throw err;
  }
}

type Database = ReturnType<typeof openDatabase>;

/** The version a file has before ensureSchema (0: new), to run only the steps it lacks. */
function schemaVersion(db: Database): number {
  const meta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  if (!meta) return 0;
  return Number(db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get()?.value ?? 0);
}

function sqliteDriver(db: Database): SqlDriver {
  const statements = new Map<string, ReturnType<typeof db.prepare<unknown[]>>>();
  const prepared = (sql: string) => {
    let st = statements.get(sql);
    if (!st) statements.set(sql, (st = db.prepare<unknown[]>(sql)));
    return st;
  };
  const direct: SqlDriver = {
    all: async <R>(sql: string, params: unknown[] = []) => guard(() => (prepared(sql).reader ? (prepared(sql).all(...params) as R[]) : (prepared(sql).run(...params), []))),
    run: async (sql, params = []) => guard(() => prepared(sql).run(...params).changes),
    tx: (fn) => fn(direct),
    close: async () => undefined,
  };
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const result = queue.then(fn, fn);
    queue = result.catch(() => undefined);
    return result;
  };
  return {
    all: (sql, params) => serial(() => direct.all(sql, params)),
    run: (sql, params) => serial(() => direct.run(sql, params)),
    tx: (fn) =>
      serial(async () => {
        db.exec('BEGIN IMMEDIATE');
        try {
          const out = await fn(direct);
          db.exec('COMMIT');
          return out;
        } catch (err) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw err;
        }
      }),
    close: () => serial(async () => void (db.open && db.close())),
  };
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new UniqueViolation((err as Error).message);
    throw err;
  }
}
