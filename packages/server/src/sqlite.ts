import { chmodSync, closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';

/**
 * Opens an engine's SQLite file the way every embedded engine of micro server needs it
 * (store, config, sync, events, auth):
 *
 * - 0600: the file is made (or tightened) before SQLite opens it, and SQLite gives its
 *   -wal and -shm files the same mode;
 * - WAL with synchronous = FULL: a commit is flushed before it returns, so what was
 *   acknowledged survives a kill -9 or a power cut;
 * - busy_timeout: a reader does not fail at once while a checkpoint holds the file.
 */
export function openDatabase(path: string): Database.Database {
  if (path !== ':memory:') {
    closeSync(openSync(path, 'a', 0o600));
    chmodSync(path, 0o600);
  }
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/**
 * Brings an engine's database to `version` with `create` (run in one transaction when the
 * file is new), recorded in a `meta` table; a file written by a newer micro is refused
 * rather than misread. One version per file: a part that adds its tables to another
 * engine's file uses ensurePartSchema.
 */
export function ensureSchema(db: Database.Database, path: string, what: string, version: number, create: () => void): void {
  versioned(db, path, what, 'schema_version', version, create);
}

/**
 * The same for one part of a file shared by several (the billing parts' tables beside the
 * ledger's in billing.db): the part's version is kept under its own key
 * (`schema_version.<part>`, billing's convention), so it neither reads nor moves the version of the file's owner.
 */
export function ensurePartSchema(db: Database.Database, path: string, part: string, version: number, create: () => void): void {
  if (!/^[a-z][a-z0-9_-]{0,63}$/.test(part)) throw new Error(`invalid schema part name ${JSON.stringify(part)}`);
  versioned(db, path, part, `schema_version.${part}`, version, create);
}

function versioned(db: Database.Database, path: string, what: string, key: string, version: number, create: () => void): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
  const row = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(key);
  const current = row ? Number(row.value) : 0;
  if (current > version) {
    throw new Error(`${path} has ${what} schema version ${current}, newer than this micro server knows (${version}): upgrade micro`);
  }
  if (current < version) {
    db.transaction(() => {
      create();
      db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, String(version));
    })();
  }
}
