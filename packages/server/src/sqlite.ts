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
