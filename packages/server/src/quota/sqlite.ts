import type Database from 'better-sqlite3';
import { ensureSchema, openDatabase } from '../sqlite.js';
import { defaultsFromEnv, type LimitKey, type LimitSettings, type Usage } from './limits.js';
import { QuotaEngine, type QuotaRows } from './engine.js';
import type { Counted } from './quotas.js';

export interface SqliteQuotasOptions {
  /** the database file, e.g. <home>/data/quota.db */
  path: string;
  /** the platform defaults (default MICRO_QUOTA_DEFAULTS over the built-in ones) */
  defaults?: Readonly<Record<LimitKey, number>>;
}

/**
 * Quotas in SQLite (the local profile): settings and counters in one file. One process
 * writes it and better-sqlite3 runs each statement to the end before the next, so the
 * conditional UPDATE of `add` is atomic without locks.
 */
export function openSqliteQuotas(options: SqliteQuotasOptions): QuotaEngine {
  return new QuotaEngine(new SqliteQuotaRows(options.path), { defaults: options.defaults ?? defaultsFromEnv() });
}

class SqliteQuotaRows implements QuotaRows {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = openDatabase(path);
    try {
      ensureSchema(this.db, path, 'quota', 1, () =>
        this.db.exec(`
          CREATE TABLE quota_settings (namespace TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (namespace, name)) WITHOUT ROWID;
          CREATE TABLE quota_counters (namespace TEXT NOT NULL, name TEXT NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (namespace, name)) WITHOUT ROWID;
        `),
      );
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  async settings(namespace: string): Promise<LimitSettings> {
    const rows = this.db.prepare<[string], { name: LimitKey; value: number }>('SELECT name, value FROM quota_settings WHERE namespace = ?').all(namespace);
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  }

  async put(namespace: string, settings: LimitSettings): Promise<void> {
    const upsert = this.db.prepare('INSERT INTO quota_settings (namespace, name, value) VALUES (?, ?, ?) ON CONFLICT (namespace, name) DO UPDATE SET value = excluded.value');
    this.db.transaction(() => {
      for (const [name, value] of Object.entries(settings)) upsert.run(namespace, name, value);
    })();
  }

  async unset(namespace: string, keys: readonly LimitKey[]): Promise<void> {
    const del = this.db.prepare('DELETE FROM quota_settings WHERE namespace = ? AND name = ?');
    this.db.transaction(() => {
      for (const key of keys) del.run(namespace, key);
    })();
  }

  async clear(namespace: string): Promise<void> {
    this.db.prepare('DELETE FROM quota_settings WHERE namespace = ?').run(namespace);
  }

  async forget(namespace: string): Promise<void> {
    this.db.transaction(() => {
      for (const table of ['quota_settings', 'quota_counters']) this.db.prepare(`DELETE FROM ${table} WHERE namespace = ?`).run(namespace);
    })();
  }

  async counters(namespace: string): Promise<Usage> {
    const rows = this.db.prepare<[string], { name: LimitKey; used: number }>('SELECT name, used FROM quota_counters WHERE namespace = ?').all(namespace);
    return Object.fromEntries(rows.map((r) => [r.name, r.used]));
  }

  async add(namespace: string, limit: Counted, amount: number, max: number | null): Promise<number | undefined> {
    return this.db.transaction(() => {
      const row = this.db.prepare<[string, string], { used: number }>('SELECT used FROM quota_counters WHERE namespace = ? AND name = ?').get(namespace, limit);
      const before = row?.used ?? 0;
      if (max !== null && amount > 0 && before + amount > max) return undefined;
      this.db.prepare('INSERT INTO quota_counters (namespace, name, used) VALUES (?, ?, ?) ON CONFLICT (namespace, name) DO UPDATE SET used = used + excluded.used').run(namespace, limit, amount);
      return before;
    })();
  }

  async sub(namespace: string, limit: Counted, amount: number): Promise<void> {
    this.db.prepare('UPDATE quota_counters SET used = max(used - ?, 0) WHERE namespace = ? AND name = ?').run(amount, namespace, limit);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
