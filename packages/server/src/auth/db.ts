import type Database from 'better-sqlite3';
import { openDatabase } from '../sqlite.js';

/**
 * The database of auth, `<dataDir>/auth.db` (0600 in a 0700 folder): accounts, their
 * hashed secrets, API keys, refresh tokens, rules and the namespaces seen so far.
 *
 * WAL with synchronous=FULL: a change is on disk before the call that made it answers.
 * The schema is made (or migrated, MIGRATIONS) on open; a database of a newer schema is
 * refused rather than misread (so a server that does not know of blocked keys never
 * opens a database that has some).
 */

export type Db = Database.Database;

export const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
  namespace TEXT NOT NULL,
  id TEXT NOT NULL,
  type TEXT NOT NULL,
  scopes TEXT NOT NULL,
  metadata TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS secrets (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  namespace TEXT NOT NULL,
  account TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('scrypt', 'hmac')),
  salt TEXT,
  hash TEXT NOT NULL,
  ephemeral INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  FOREIGN KEY (namespace, account) REFERENCES accounts (namespace, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS secrets_account ON secrets (namespace, account);
CREATE TABLE IF NOT EXISTS api_keys (
  key_id TEXT PRIMARY KEY,
  namespace TEXT NOT NULL,
  account TEXT NOT NULL,
  name TEXT NOT NULL,
  scopes TEXT NOT NULL,
  hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  FOREIGN KEY (namespace, account) REFERENCES accounts (namespace, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS api_keys_account ON api_keys (namespace, account);
CREATE TABLE IF NOT EXISTS refresh_tokens (
  hash TEXT PRIMARY KEY,
  family TEXT NOT NULL,
  namespace TEXT NOT NULL,
  account TEXT NOT NULL,
  used_at INTEGER,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  FOREIGN KEY (namespace, account) REFERENCES accounts (namespace, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS refresh_family ON refresh_tokens (family);
CREATE INDEX IF NOT EXISTS refresh_account ON refresh_tokens (namespace, account);
CREATE TABLE IF NOT EXISTS rules (
  namespace TEXT NOT NULL,
  id TEXT NOT NULL,
  resource TEXT NOT NULL,
  scope TEXT NOT NULL,
  access TEXT NOT NULL CHECK (access IN ('granted', 'denied')),
  priority INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, id)
);
`;

/**
 * The steps from one version to the next, each run once in the transaction that records
 * the new version (a database made now runs them all: SCHEMA is version 1).
 */
const MIGRATIONS: Record<number, string> = {
  // API keys: a description, the services they may call (existing keys: any), their last
  // use, and blocks (an admin's, with the message the caller is told)
  2: `
ALTER TABLE api_keys ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN services TEXT NOT NULL DEFAULT '["*"]';
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN blocked_at INTEGER;
ALTER TABLE api_keys ADD COLUMN block_message TEXT;
`,
};

export function openAuthDb(path: string): Db {
  const db = openDatabase(path);
  try {
    db.pragma('foreign_keys = ON');
    db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
    const version = row ? Number(row.value) : 0;
    if (version > SCHEMA_VERSION) throw new Error(`${path} has schema version ${version}, newer than this server's ${SCHEMA_VERSION}: upgrade micro`);
    if (version < SCHEMA_VERSION) {
      db.transaction(() => {
        if (version === 0) db.exec(SCHEMA);
        for (let v = Math.max(version, 1) + 1; v <= SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v] as string);
        db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
      })();
    }
    // added later, additive (an older server ignores it)
    const columns = db.prepare<[], { name: string }>('PRAGMA table_info(accounts)').all();
    if (!columns.some((c) => c.name === 'disabled')) db.exec('ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
