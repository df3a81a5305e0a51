import type Database from 'better-sqlite3';
import { ensureSchema, openDatabase } from '../sqlite.js';
import { LocalLockEngine, LockSync, SYNC_LIMITS, lockInfo, tooManyLocks, type AcquireResult, type LockInfo, type LockRow } from '@micro/sdk';

/**
 * Locks in SQLite (<home>/data/sync.db):
 *
 * - `locks(namespace, name, holder, owner, fence, expires_at)`: one row per lock taken
 *   and not released. A row whose lease passed stays until the lock is taken again or
 *   it is swept a minute later (its holder may renew it meanwhile, see SYNC_LIMITS.renewGrace).
 * - `fences(namespace, fence)`: the last fencing token of each namespace. Each
 *   acquisition takes the next one in the same transaction that writes the lock, so
 *   tokens never go back — not when a lock's row goes, not after a restart.
 *
 * WAL with synchronous = FULL and one IMMEDIATE transaction per acquisition: a lock that
 * was granted is on disk before the caller hears of it. Waiting is the shared logic of
 * LocalLockEngine (woken in this process by releases and by passing leases).
 */

export const SYNC_SCHEMA_VERSION = 1;
/** how often passed leases are swept, at most (ms) */
const SWEEP_EVERY = 10_000;

interface Row {
  holder: string;
  owner: string | null;
  fence: number;
  expires_at: number;
}

export class SqliteLocks extends LocalLockEngine {
  readonly name = 'sqlite';
  readonly path: string;
  private readonly db: Database.Database;
  private lastSweep = 0;
  private readonly stmt: {
    row: Database.Statement<[string, string], Row>;
    count: Database.Statement<[string, number], { n: number }>;
    fence: Database.Statement<[string], { fence: number }>;
    put: Database.Statement<[string, string, string, string | null, number, number]>;
    extend: Database.Statement<[number, string, string, string]>;
    remove: Database.Statement<[string, string, string]>;
    live: Database.Statement<[string, string, number], Row & { name: string }>;
    sweep: Database.Statement<[number]>;
  };
  private readonly acquireTx: (namespace: string, name: string, ttl: number, owner: string | undefined, holder: string, now: number) => AcquireResult;

  constructor(options: { path: string }) {
    super();
    this.path = options.path;
    this.db = openDatabase(options.path);
    try {
      migrate(this.db, options.path);
      this.stmt = {
        row: this.db.prepare('SELECT holder, owner, fence, expires_at FROM locks WHERE namespace = ? AND name = ?'),
        count: this.db.prepare('SELECT count(*) AS n FROM locks WHERE namespace = ? AND expires_at > ?'),
        fence: this.db.prepare('INSERT INTO fences (namespace, fence) VALUES (?, 1) ON CONFLICT (namespace) DO UPDATE SET fence = fence + 1 RETURNING fence'),
        put: this.db.prepare('INSERT OR REPLACE INTO locks (namespace, name, holder, owner, fence, expires_at) VALUES (?, ?, ?, ?, ?, ?)'),
        extend: this.db.prepare('UPDATE locks SET expires_at = ? WHERE namespace = ? AND name = ? AND holder = ?'),
        remove: this.db.prepare('DELETE FROM locks WHERE namespace = ? AND name = ? AND holder = ?'),
        live: this.db.prepare('SELECT name, holder, owner, fence, expires_at FROM locks WHERE namespace = ? AND name >= ? AND expires_at > ? ORDER BY name'),
        sweep: this.db.prepare('DELETE FROM locks WHERE expires_at < ?'),
      };
    } catch (err) {
      this.db.close();
      throw err;
    }
    const tx = this.db.transaction((namespace: string, name: string, ttl: number, owner: string | undefined, holder: string, now: number): AcquireResult => {
      const current = this.stmt.row.get(namespace, name);
      if (current && current.expires_at > now) return { held: lockInfo(namespace, name, toLockRow(current)) };
      if (!current && (this.stmt.count.get(namespace, now)?.n ?? 0) >= SYNC_LIMITS.locksPerNamespace) throw tooManyLocks(namespace);
      const fence = (this.stmt.fence.get(namespace) as { fence: number }).fence;
      const expiresAt = now + ttl;
      this.stmt.put.run(namespace, name, holder, owner ?? null, fence, expiresAt);
      return { lease: { namespace, name, token: fence, ...(owner !== undefined ? { owner } : {}), expiresAt, holder } };
    });
    this.acquireTx = (...args) => tx.immediate(...args);
  }

  protected tryAcquire(namespace: string, name: string, ttl: number, owner: string | undefined, holder: string, now: number): AcquireResult {
    if (now - this.lastSweep >= SWEEP_EVERY) {
      this.lastSweep = now;
      this.stmt.sweep.run(now - SYNC_LIMITS.renewGrace);
    }
    return this.acquireTx(namespace, name, ttl, owner, holder, now);
  }

  protected row(namespace: string, name: string): LockRow | undefined {
    const row = this.stmt.row.get(namespace, name);
    return row && toLockRow(row);
  }

  protected extend(namespace: string, name: string, holder: string, expiresAt: number): boolean {
    return this.stmt.extend.run(expiresAt, namespace, name, holder).changes === 1;
  }

  protected remove(namespace: string, name: string, holder: string): boolean {
    return this.stmt.remove.run(namespace, name, holder).changes === 1;
  }

  protected live(namespace: string, prefix: string, limit: number, now: number): LockInfo[] {
    const out: LockInfo[] = [];
    for (const row of this.stmt.live.iterate(namespace, prefix, now)) {
      // ordered by name: past the names with the prefix, nothing more can match
      if (!row.name.startsWith(prefix) || out.length >= limit) break;
      out.push(lockInfo(namespace, row.name, toLockRow(row)));
    }
    return out;
  }

  protected async release_(): Promise<void> {
    this.db.close();
  }
}

/** Sync over SqliteLocks: what the sync service serves, and what tests use directly. */
export class SqliteSync extends LockSync {
  constructor(options: { path: string }) {
    super(new SqliteLocks(options));
  }
}

function toLockRow(row: Row): LockRow {
  return { holder: row.holder, token: row.fence, expiresAt: row.expires_at, ...(row.owner !== null ? { owner: row.owner } : {}) };
}

/** Creates the schema of a new file; refuses a file written by a newer micro. */
function migrate(db: Database.Database, path: string): void {
  ensureSchema(db, path, 'sync', SYNC_SCHEMA_VERSION, () => {
    db.exec(`CREATE TABLE IF NOT EXISTS locks (
      namespace  TEXT NOT NULL,
      name       TEXT NOT NULL,
      holder     TEXT NOT NULL,
      owner      TEXT,
      fence      INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      PRIMARY KEY (namespace, name)
    ) WITHOUT ROWID`);
    db.exec('CREATE INDEX IF NOT EXISTS locks_expiry ON locks (expires_at)');
    db.exec('CREATE TABLE IF NOT EXISTS fences (namespace TEXT PRIMARY KEY, fence INTEGER NOT NULL) WITHOUT ROWID');
  });
}
