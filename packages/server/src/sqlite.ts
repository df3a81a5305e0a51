import { chmodSync, closeSync, fdatasync, openSync } from 'node:fs';
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
 * A connection whose commits are made durable off the event loop, for a writer whose
 * fsyncs would otherwise take a large share of the event loop (the meter's records: a
 * commit every tick under load). It commits with synchronous = NORMAL: a commit is in the
 * WAL when it returns (the kernel has it: a kill -9 loses nothing) but not yet flushed;
 * `durable()` resolves once an fdatasync of the WAL begun after it was called has ended.
 * The fdatasync runs in libuv's thread pool, so the event loop serves other calls
 * meanwhile, and the commits that ask while one runs share the next: one flush for many
 * commits. Acknowledge a commit only after its `durable()`, and the promise of FULL holds
 * (flushed before acknowledged, so it survives a power cut too).
 *
 * Why this is exact: fdatasync flushes every written page of the file, whichever
 * descriptor wrote it; SQLite writes a commit's frames to the WAL with write() before the
 * commit returns; and the WAL file stays the same file while a connection to the database
 * is open (SQLite deletes it only when the last one closes). Checkpoints flush the WAL
 * themselves under NORMAL before they copy it into the database.
 */
export class DeferredSyncDatabase {
  readonly db: Database.Database;
  private readonly wal: number;
  /** the flush under way, and the one that the commits made since it began will share */
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private closed = false;

  constructor(path: string) {
    this.db = openDatabase(path);
    try {
      this.db.pragma('synchronous = NORMAL');
      // the first read of a WAL database opens (creates) its -wal file, with the database's mode
      this.db.prepare('SELECT 1 FROM sqlite_master LIMIT 1').get();
      this.wal = openSync(`${path}-wal`, 'r');
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  /** Resolves when everything committed on this connection before the call is on disk; rejects with the flush's error (EIO: the commits may be lost). */
  durable(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the database is closed'));
    if (!this.running) return (this.running = this.flush());
    // a flush began before this commit: it may miss it, so the commit waits for the one after
    return (this.next ??= this.running.then(
      () => this.flush(),
      () => this.flush(),
    ));
  }

  private flush(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => fdatasync(this.wal, (err) => (err ? reject(err) : resolve())));
    this.running = p;
    this.next = undefined;
    const done = (): void => {
      if (this.running === p) this.running = undefined;
    };
    p.then(done, done);
    return p;
  }

  /** Waits for the flush under way, then closes the connection (its last commits are flushed by SQLite's close). */
  async close(): Promise<void> {
    if (this.closed) return;
    await (this.next ?? this.running)?.catch(() => undefined);
    this.closed = true;
    closeSync(this.wal);
    this.db.close();
  }
}

/**
 * Brings an engine's database to `version` with `create` (run in one transaction when the
 * file is new), recorded in a `meta` table; a file written by a newer micro is refused
 * rather than misread. `key` is where the version is kept: a file that holds the tables of
 * several parts (billing.db) keeps one key per part, so a part added later is still created.
 */
export function ensureSchema(db: Database.Database, path: string, what: string, version: number, create: () => void, key = 'schema_version'): void {
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
