import type { SqliteLedger } from '../ledger/sqlite.js';

type Database = SqliteLedger['db'];

/**
 * Brings a part's own tables in billing.db (usage records, subscriptions, invoices) to
 * `version` with `create`, in one transaction, recording the version under
 * `schema_version.<part>` in the file's `meta` table. (`ensureSchema` of @micro/server keeps
 * one `schema_version` per file, which the ledger's tables hold: a second part calling it
 * on billing.db would find version 1 and create nothing.) A file written by a newer micro
 * is refused rather than misread. On PostgreSQL, `migrate(pg, part, …)` keeps one version
 * per component already.
 */
export function ensurePartSchema(db: Database, part: string, version: number, create: () => void): void {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(part)) throw new Error(`a billing part is named a-z, 0-9 and -, not ${JSON.stringify(part)}`);
  const key = `schema_version.${part}`;
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
  db.transaction(() => {
    const row = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(key);
    const current = row ? Number(row.value) : 0;
    if (current > version) throw new Error(`billing.db has ${part} schema version ${current}, newer than this micro server knows (${version}): upgrade micro`);
    if (current === version) return;
    create();
    db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, String(version));
  }).immediate();
}
