import type Database from 'better-sqlite3';
import { ensureSchema, openDatabase } from '../sqlite.js';
import { errors } from '@micro/sdk';
import { CONFIG_ERROR_ID, DocumentConfig, type ConfigCipher, type ConfigObject, type DocumentUpdate, type StoredDocument } from '@micro/sdk';

/**
 * Config in SQLite: one row per namespace holding its whole document as JSON (secrets as
 * encrypted markers), with a version that grows by one per change.
 *
 * - WAL with synchronous = FULL: a set is committed and flushed before it returns, so a
 *   kill -9 right after loses nothing.
 * - Every change is one IMMEDIATE transaction that reads the document, applies the change
 *   and writes it back if the version is still the one read (optimistic versioning, so
 *   that an engine shared by several processes never loses a write).
 * - Parsed documents are cached by version: a read costs one indexed lookup of the
 *   version unless the document changed.
 * - The fingerprint of the secret key is kept beside the documents: opened with another
 *   key while secrets exist, the engine refuses to start instead of failing later.
 */

export const CONFIG_SCHEMA_VERSION = 1;
const CACHE_ENTRIES = 128;

export interface SqliteConfigOptions {
  /** the database file, e.g. <home>/data/config.db */
  path: string;
  cipher: ConfigCipher;
  /** the namespace of calls that name none (default `micro`) */
  defaultNamespace?: string;
}

interface Row {
  document: string;
  version: number;
}

export class SqliteConfig extends DocumentConfig {
  readonly name = 'sqlite';
  readonly path: string;
  private readonly db: Database.Database;
  private readonly cache = new Map<string, StoredDocument>();
  private readonly stmt: {
    version: Database.Statement<[string], { version: number }>;
    read: Database.Statement<[string], Row>;
    insert: Database.Statement<[string, string, number]>;
    update: Database.Statement<[string, number, number, string, number]>;
  };

  constructor(options: SqliteConfigOptions) {
    super({ cipher: options.cipher, defaultNamespace: options.defaultNamespace });
    this.path = options.path;
    this.db = openDatabase(options.path);
    try {
      migrate(this.db, options.path);
      checkKey(this.db, options.cipher, options.path);
      this.stmt = {
        version: this.db.prepare('SELECT version FROM documents WHERE namespace = ?'),
        read: this.db.prepare('SELECT document, version FROM documents WHERE namespace = ?'),
        insert: this.db.prepare('INSERT INTO documents (namespace, document, version, updated_at) VALUES (?, ?, 1, ?)'),
        update: this.db.prepare('UPDATE documents SET document = ?, version = ?, updated_at = ? WHERE namespace = ? AND version = ?'),
      };
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  protected load(namespace: string): StoredDocument {
    const current = this.stmt.version.get(namespace);
    if (!current) return { document: {}, version: 0 };
    const hit = this.cache.get(namespace);
    if (hit && hit.version === current.version) return hit;
    return this.readRow(namespace) ?? { document: {}, version: 0 };
  }

  private readRow(namespace: string): StoredDocument | undefined {
    const row = this.stmt.read.get(namespace);
    if (!row) return undefined;
    let document: ConfigObject;
    try {
      document = JSON.parse(row.document) as ConfigObject;
    } catch {
      throw errors.InternalServerError(CONFIG_ERROR_ID, `the config of namespace ${namespace} in ${this.path} is not valid JSON: the file was changed by something else than micro`);
    }
    const stored = { document, version: row.version };
    this.remember(namespace, stored);
    return stored;
  }

  protected transact(namespace: string, change: (current: StoredDocument) => DocumentUpdate | undefined): { before: StoredDocument; after?: StoredDocument } {
    const run = this.db.transaction(() => {
      const before = this.load(namespace);
      const update = change(before);
      if (!update) return { before };
      const now = Date.now();
      if (before.version === 0) this.stmt.insert.run(namespace, update.json, now);
      else if (this.stmt.update.run(update.json, before.version + 1, now, namespace, before.version).changes !== 1) {
        // someone else wrote since we read (only when processes share the file): nothing was written
        throw errors.Conflict(CONFIG_ERROR_ID, `the config of namespace ${namespace} changed while it was being written; try again`);
      }
      return { before, after: { document: update.document, version: before.version + 1 } };
    });
    const result = run.immediate();
    // cached only once committed
    if (result.after) this.remember(namespace, result.after);
    return result;
  }

  /** Deletes a namespace's whole document, secrets included (purge/). */
  purgeNamespace(namespace: string): void {
    this.db.prepare('DELETE FROM documents WHERE namespace = ?').run(namespace);
    this.cache.delete(namespace);
  }

  protected async release(): Promise<void> {
    this.cache.clear();
    this.db.close();
  }

  private remember(namespace: string, stored: StoredDocument): void {
    this.cache.delete(namespace);
    this.cache.set(namespace, stored);
    if (this.cache.size > CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
  }
}

/** Creates the schema of a new file; refuses a file written by a newer micro. */
function migrate(db: Database.Database, path: string): void {
  ensureSchema(db, path, 'config', CONFIG_SCHEMA_VERSION, () => {
    db.exec(`CREATE TABLE IF NOT EXISTS documents (
      namespace  TEXT PRIMARY KEY,
      document   TEXT NOT NULL,
      version    INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
  });
}

/**
 * Secrets sealed under one key cannot be opened with another: with a different key and
 * secrets stored, starting would only turn every later read of a secret into an error
 * and mix two keys in one file. Without secrets, the new key is simply adopted.
 */
function checkKey(db: Database.Database, cipher: ConfigCipher, path: string): void {
  const stored = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'key_fingerprint'").get()?.value;
  if (stored === cipher.fingerprint) return;
  if (stored !== undefined) {
    // a JSON string containing the text "$secret": is escaped (\"), so this finds markers only
    const secrets = db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM documents WHERE document LIKE '%"$secret":%'`).get()?.n ?? 0;
    if (secrets > 0) {
      throw new Error(
        `the config secrets in ${path} were encrypted with another key than ${cipher.source} (key fingerprint ${stored}, given ${cipher.fingerprint}): ` +
          'start micro server with the key they were encrypted with (MICRO_CONFIG_SECRET_KEY, or the file <home>/server/config-secret.key it made), ' +
          'or move the file away to start with an empty config',
      );
    }
  }
  db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('key_fingerprint', ?)").run(cipher.fingerprint);
}
