import type Database from 'better-sqlite3';
import { openDatabase } from '../sqlite.js';
import { admitWrite, recordSize, sqlSize, type StoreLimits, type StoreUsage } from './usage.js';
import { errors } from '@micro/sdk';
import { QueryUse, indexName, orderSql, sqlite as dialect, whereSql, type SqlParams } from './query-sql.js';
import { storeEngine as E, type Store, type StoreDefaults, type StoreDeleteOptions as DeleteOptions, type StoreListOptions as ListOptions, type StoreMetadataValue as MetadataValue, type StoreNamesOptions as NamesOptions, type StoreQueryOptions as QueryOptions, type StoreCountOptions as CountOptions, type StoreReadOptions as ReadOptions, type StoreRecord, type StoreTablesOptions as TablesOptions, type StoreWriteOptions as WriteOptions } from '@micro/sdk';

/**
 * The store in SQLite: one row per record in <dataDir>/store.db.
 *
 *   records(namespace, "database", tbl, key, rkey, value, metadata, expiry)
 *     PRIMARY KEY (namespace, "database", tbl, key)
 *
 * - WAL with synchronous = FULL, one statement per write: a write is committed and
 *   flushed before it returns, so a kill -9 right after loses nothing.
 * - Keys are TEXT compared with SQLite's BINARY collation, the byte order of UTF-8, which
 *   is the code point order every engine uses. A prefix is the range
 *   `key >= prefix AND key < upper` (upper: the prefix with its last code point + 1), so
 *   no LIKE, no wildcard to escape. A suffix is a prefix of `rkey`, the key reversed by
 *   code point, which has its own index.
 * - Expired rows are invisible at once (every query asks `expiry > now`) and deleted by
 *   a purge every minute, in batches, so a purge never holds the database for long.
 * - Statements are prepared once: the fixed ones when the engine opens, the scans once
 *   per shape (which of prefix/suffix/after/before and the order), cached.
 * - The schema version is PRAGMA user_version: created at 1 on first open; a database
 *   of a newer version is refused rather than misread.
 */

export const STORE_SCHEMA_VERSION = 3;
const PURGE_BATCH = 1000;
/** batches per purge run: the rest waits for the next run */
const PURGE_BATCHES = 20;

export interface SqliteStoreOptions extends StoreDefaults {
  /** the database file, e.g. <home>/data/store.db */
  path: string;
  /** ms between purges of expired rows (default 60,000; 0 = none, call purge()) */
  purgeInterval?: number;
  /** the clock, epoch ms (tests) */
  now?: () => number;
  /** the quota limits a write must stay within (default none: unchecked) */
  limits?: StoreLimits;
  /** queries of a field of a table after which it gets an index (default 5; 0 = never) */
  indexAfter?: number;
}

interface Row {
  key: string;
  value: string;
  metadata: string | null;
  expiry: number | null;
}

export type Params = (string | number)[];

/**
 * `column` starts with `prefix`, as a range (`>= prefix AND < the next prefix`) so that
 * the column's index serves it; no LIKE, whose wildcards a key could contain.
 */
export function prefixRange(column: string, prefix: string, where: string[], params: Params): void {
  where.push(`${column} >= ?`);
  params.push(prefix);
  const upper = E.prefixUpperBound(prefix);
  if (upper !== undefined) {
    where.push(`${column} < ?`);
    params.push(upper);
  }
}

export class SqliteStore implements Store {
  readonly name = 'sqlite';
  readonly path: string;
  /** the database, shared with the blob index (see blobs.ts) */
  readonly db: Database.Database;
  private readonly defaults: Required<StoreDefaults>;
  private readonly now: () => number;
  private readonly scans = new Map<string, Database.Statement<Params, Row>>();
  private readonly lists = new Map<string, Database.Statement<Params, { key: string }>>();
  private readonly stmt: {
    read: Database.Statement<[string, string, string, string, number], Row>;
    write: Database.Statement<[string, string, string, string, string, string, string | null, number | null]>;
    delete: Database.Statement<[string, string, string, string]>;
    databases: Database.Statement<[string, number, number, number], { name: string }>;
    tables: Database.Statement<[string, string, number, number, number], { name: string }>;
    purge: Database.Statement<[number]>;
  };
  private purger: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly limits: StoreLimits | undefined;
  private readonly queries = new Map<string, Database.Statement<SqlParams, Row & { n: number }>>();
  private readonly use: QueryUse;
  /** the index builds asked for, one after the other, off the calls that asked */
  private indexing: Promise<void> = Promise.resolve();
  private readonly quota: {
    size: Database.Statement<[string, string, string, string], { size: number }>;
    usage: Database.Statement<[string], { storeBytes: number; storeRecords: number; blobBytes: number }>;
  };

  constructor(options: SqliteStoreOptions) {
    this.limits = options.limits;
    this.use = new QueryUse(options.indexAfter ?? 5);
    this.path = options.path;
    this.defaults = E.checkDefaults(options);
    this.now = options.now ?? Date.now;
    this.db = openDatabase(options.path);
    try {
      migrate(this.db, options.path);
      const live = '(expiry IS NULL OR expiry > ?)';
      this.stmt = {
        read: this.db.prepare(`SELECT key, value, metadata, expiry FROM records WHERE namespace = ? AND "database" = ? AND tbl = ? AND key = ? AND ${live}`),
        write: this.db.prepare(
          `INSERT INTO records (namespace, "database", tbl, key, rkey, value, metadata, expiry) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (namespace, "database", tbl, key) DO UPDATE SET value = excluded.value, metadata = excluded.metadata, expiry = excluded.expiry`,
        ),
        delete: this.db.prepare('DELETE FROM records WHERE namespace = ? AND "database" = ? AND tbl = ? AND key = ?'),
        databases: this.db.prepare(`SELECT DISTINCT "database" AS name FROM records WHERE namespace = ? AND ${live} ORDER BY name LIMIT ? OFFSET ?`),
        tables: this.db.prepare(`SELECT DISTINCT tbl AS name FROM records WHERE namespace = ? AND "database" = ? AND ${live} ORDER BY name LIMIT ? OFFSET ?`),
        purge: this.db.prepare(`DELETE FROM records WHERE rowid IN (SELECT rowid FROM records WHERE expiry IS NOT NULL AND expiry <= ? LIMIT ${PURGE_BATCH})`),
      };
      this.quota = {
        size: this.db.prepare(`SELECT ${sqlSize('', BYTES)} AS size FROM records WHERE namespace = ? AND "database" = ? AND tbl = ? AND key = ?`),
        usage: this.db.prepare('SELECT bytes AS storeBytes, records AS storeRecords, blob_bytes AS blobBytes FROM store_usage WHERE namespace = ?'),
      };
    } catch (err) {
      this.db.close();
      throw err;
    }
    const interval = options.purgeInterval ?? 60_000;
    if (interval > 0) {
      this.purger = setInterval(() => {
        try {
          this.purge();
        } catch {
          // a busy or full disk: the next run tries again, and expired rows stay invisible meanwhile
        }
      }, interval);
      // housekeeping must never keep the process alive on its own
      this.purger.unref();
    }
  }

  async read(key: string, options: ReadOptions = {}): Promise<StoreRecord[]> {
    this.checkOpen();
    const plan = E.readPlan(key, options);
    const scope = E.resolveScope(options, this.defaults);
    const now = this.now();
    if ('exact' in plan) {
      const row = this.stmt.read.get(scope.namespace, scope.database, scope.table, plan.exact, now);
      return row ? [toRecord(row)] : [];
    }
    const { sql, params } = scanQuery(scope, plan.scan, now);
    let stmt = this.scans.get(sql);
    if (!stmt) {
      stmt = this.db.prepare<Params, Row>(`SELECT key, value, metadata, expiry ${sql}`);
      this.scans.set(sql, stmt);
    }
    return stmt.all(...params).map(toRecord);
  }

  async write(record: StoreRecord, options: WriteOptions = {}): Promise<void> {
    this.checkOpen();
    if (typeof record !== 'object' || record === null) throw E.bad('record must be an object with a key and a value');
    const key = E.checkKey(record.key);
    const value = E.checkValue(record.value);
    const metadata = E.checkMetadata(record.metadata);
    const expiry = E.expiryOf(record, options.ttl, this.now());
    const scope = E.resolveScope(options, this.defaults);
    const meta = metadata ? JSON.stringify(metadata) : null;
    const limits = await this.limits?.(scope.namespace);
    this.checkOpen();
    // one transaction: no other write of this process runs between the check and the write
    this.db.transaction(() => {
      if (limits) {
        const old = this.quota.size.get(scope.namespace, scope.database, scope.table, key)?.size;
        admitWrite(scope.namespace, this.usageOf(scope.namespace), recordSize(key, value, meta), old, limits);
      }
      this.stmt.write.run(scope.namespace, scope.database, scope.table, key, E.reverseKey(key), value, meta, expiry ?? null);
    })();
  }

  /** What a namespace has in the store: counted in the same transactions as the rows (expired rows count until purged). */
  async usage(namespace: string): Promise<StoreUsage> {
    this.checkOpen();
    return this.usageOf(E.checkNamespace(namespace));
  }

  private usageOf(namespace: string): StoreUsage {
    return this.quota.usage.get(namespace) ?? { storeBytes: 0, storeRecords: 0, blobBytes: 0 };
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    this.checkOpen();
    const k = E.checkKey(key);
    const scope = E.resolveScope(options, this.defaults);
    this.stmt.delete.run(scope.namespace, scope.database, scope.table, k);
  }

  async list(options: ListOptions = {}): Promise<string[]> {
    this.checkOpen();
    const scan = E.listScan(options);
    const scope = E.resolveScope(options, this.defaults);
    const { sql, params } = scanQuery(scope, scan, this.now());
    let stmt = this.lists.get(sql);
    if (!stmt) {
      stmt = this.db.prepare<Params, { key: string }>(`SELECT key ${sql}`);
      this.lists.set(sql, stmt);
    }
    return stmt.all(...params).map((r) => r.key);
  }

  async databases(options: NamesOptions = {}): Promise<string[]> {
    this.checkOpen();
    const namespace = E.checkNamespace(options.namespace);
    const limit = E.checkLimit(options.limit);
    const offset = E.checkOffset(options.offset);
    return this.stmt.databases.all(namespace, this.now(), limit, offset).map((r) => r.name);
  }

  async tables(options: TablesOptions = {}): Promise<string[]> {
    this.checkOpen();
    const namespace = E.checkNamespace(options.namespace);
    const database = E.checkName(options.database, 'database', this.defaults.database);
    const limit = E.checkLimit(options.limit);
    const offset = E.checkOffset(options.offset);
    return this.stmt.tables.all(namespace, database, this.now(), limit, offset).map((r) => r.name);
  }

  async query(options: QueryOptions = {}): Promise<StoreRecord[]> {
    this.checkOpen();
    const q = E.checkQuery(options);
    const scope = E.resolveScope(options, this.defaults);
    this.noteUse(scope, E.queriedPaths(q));
    const { sql, params } = this.matching(scope, q.where);
    params.push(q.limit, q.offset);
    return this.prepared(`SELECT key, value, metadata, expiry ${sql} ORDER BY ${orderSql(dialect, q, false)} LIMIT ? OFFSET ?`).all(...params).map(toRecord);
  }

  async count(options: CountOptions = {}): Promise<number> {
    this.checkOpen();
    const where = E.checkCount(options);
    const scope = E.resolveScope(options, this.defaults);
    this.noteUse(scope, E.queriedPaths({ where }));
    const { sql, params } = this.matching(scope, where);
    return this.prepared(`SELECT count(*) AS n ${sql}`).get(...params)?.n ?? 0;
  }

  /** The query plan SQLite chose for a query (its detail lines), for tests that check an index serves it. */
  explainQuery(options: QueryOptions = {}): string[] {
    const q = E.checkQuery(options);
    const { sql, params } = this.matching(E.resolveScope(options, this.defaults), q.where);
    params.push(q.limit, q.offset);
    const plan = this.db.prepare<SqlParams, { detail: string }>(`EXPLAIN QUERY PLAN SELECT key, value, metadata, expiry ${sql} ORDER BY ${orderSql(dialect, q, false)} LIMIT ? OFFSET ?`);
    return plan.all(...params).map((r) => r.detail);
  }

  /** Resolves once the index builds asked for so far are done (tests, benchmarks). */
  async indexed(): Promise<void> {
    await this.indexing;
  }

  /** The FROM/WHERE of the live records of a table that match. */
  private matching(scope: E.Scope, where: E.CheckedWhere | undefined): { sql: string; params: SqlParams } {
    const params: SqlParams = [scope.namespace, scope.database, scope.table, this.now()];
    let sql = 'FROM records WHERE namespace = ? AND "database" = ? AND tbl = ? AND (expiry IS NULL OR expiry > ?)';
    if (where) sql += ` AND ${whereSql(dialect, where, params, () => '?')}`;
    return { sql, params };
  }

  private prepared(sql: string): Database.Statement<SqlParams, Row & { n: number }> {
    let stmt = this.queries.get(sql);
    if (!stmt) {
      // bounded: the texts vary with the shape of the where
      if (this.queries.size >= 1000) this.queries.clear();
      stmt = this.db.prepare<SqlParams, Row & { n: number }>(sql);
      this.queries.set(sql, stmt);
    }
    return stmt;
  }

  /**
   * Counts the fields a query names; one queried often gets an expression index of its
   * table (partial: only that table's rows), built after the call that asked returns.
   * At most MAX_QUERY_INDEXES per table.
   */
  private noteUse(scope: E.Scope, paths: string[][]): void {
    const due = this.use.due(scope, paths);
    if (due.length === 0) return;
    this.indexing = this.indexing.then(
      () =>
        new Promise<void>((resolve) => {
          setImmediate(() => {
            for (const path of due) {
              try {
                this.createIndex(scope, path);
              } catch {
                // a busy database or a closed store: the field stays unindexed, queries stay right
              }
            }
            resolve();
          });
        }),
    );
  }

  /** The index of one field of one table (see noteUse); false when the table has its share. */
  createIndex(scope: E.Scope, path: string[]): boolean {
    if (this.closed) return false;
    const name = indexName(scope, path);
    const field = path.join('.');
    return this.db.transaction(() => {
      const known = this.db.prepare<[string, string, string, string], { name: string }>('SELECT name FROM query_indexes WHERE namespace = ? AND "database" = ? AND tbl = ? AND path = ?').get(scope.namespace, scope.database, scope.table, field);
      if (known) return true;
      const n = this.db.prepare<[string, string, string], { n: number }>('SELECT count(*) AS n FROM query_indexes WHERE namespace = ? AND "database" = ? AND tbl = ?').get(scope.namespace, scope.database, scope.table)?.n ?? 0;
      if (n >= E.MAX_QUERY_INDEXES) return false;
      // literals only of checked names (indexable) and a checked path: DDL takes no parameters
      this.db.exec(
        `CREATE INDEX IF NOT EXISTS ${name} ON records (namespace, "database", tbl, ${dialect.field(path)}, key) WHERE namespace = '${scope.namespace}' AND "database" = '${scope.database}' AND tbl = '${scope.table}'`,
      );
      this.db.prepare('INSERT INTO query_indexes (namespace, "database", tbl, path, name) VALUES (?, ?, ?, ?, ?)').run(scope.namespace, scope.database, scope.table, field, name);
      // the planner weighs the new index against the others by statistics of them all (a
      // sample misjudges a table's share of the rows); the build itself read every row already
      this.db.exec('ANALYZE records');
      return true;
    })();
  }

  /**
   * Deletes every record of a namespace (purge/): the usage triggers count them out, and
   * the namespace's usage row, at zero once its blobs went too (FileBlobStore.purgeNamespace
   * first), goes in the same transaction.
   */
  purgeNamespace(namespace: string): number {
    this.checkOpen();
    const ns = E.checkNamespace(namespace);
    return this.db.transaction(() => {
      const { changes } = this.db.prepare('DELETE FROM records WHERE namespace = ?').run(ns);
      this.db.prepare('DELETE FROM store_usage WHERE namespace = ? AND bytes = 0 AND records = 0 AND blob_bytes = 0').run(ns);
      return changes;
    })();
  }

  /** Deletes expired rows, a bounded number per run; returns how many went. */
  purge(): number {
    if (this.closed) return 0;
    const now = this.now();
    let total = 0;
    for (let i = 0; i < PURGE_BATCHES; i++) {
      const { changes } = this.stmt.purge.run(now);
      total += changes;
      if (changes < PURGE_BATCH) break;
    }
    return total;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.purger) clearInterval(this.purger);
    this.purger = undefined;
    this.db.close();
  }

  private checkOpen(): void {
    if (this.closed) throw errors.ServiceUnavailable(E.STORE_ERROR_ID, 'store is closed');
  }
}

/**
 * The FROM/WHERE/ORDER/LIMIT of a scan. The SQL depends only on which conditions are
 * present and the order (so it is prepared once per shape); the values are parameters.
 */
function scanQuery(scope: E.Scope, scan: E.KeyScan, now: number): { sql: string; params: Params } {
  const where = ['namespace = ?', '"database" = ?', 'tbl = ?', '(expiry IS NULL OR expiry > ?)'];
  const params: Params = [scope.namespace, scope.database, scope.table, now];
  if (scan.prefix) prefixRange('key', scan.prefix, where, params);
  if (scan.suffix) prefixRange('rkey', E.reverseKey(scan.suffix), where, params);
  if (scan.after !== undefined) {
    where.push('key > ?');
    params.push(scan.after);
  }
  if (scan.before !== undefined) {
    where.push('key < ?');
    params.push(scan.before);
  }
  params.push(scan.limit, scan.offset);
  return { sql: `FROM records WHERE ${where.join(' AND ')} ORDER BY key ${scan.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ? OFFSET ?`, params };
}

function toRecord(row: Row): StoreRecord {
  const record: StoreRecord = { key: row.key, value: JSON.parse(row.value) as unknown };
  if (row.metadata !== null) record.metadata = JSON.parse(row.metadata) as Record<string, MetadataValue>;
  if (row.expiry !== null) record.expiry = row.expiry;
  return record;
}

/** Creates the schema on first open; refuses a database made by a newer version. */
function migrate(db: Database.Database, path: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > STORE_SCHEMA_VERSION) {
    throw new Error(`${path} has store schema version ${version}, newer than this micro server understands (${STORE_SCHEMA_VERSION}); upgrade micro`);
  }
  if (version === STORE_SCHEMA_VERSION) return;
  db.transaction(() => {
    if (version < 1) createTables(db);
    if (version < 2) createUsage(db);
    db.exec('CREATE TABLE IF NOT EXISTS query_indexes (namespace TEXT NOT NULL, "database" TEXT NOT NULL, tbl TEXT NOT NULL, path TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (namespace, "database", tbl, path))');
    db.pragma(`user_version = ${STORE_SCHEMA_VERSION}`);
  })();
}

/** A column's size in bytes in SQLite: TEXT as its UTF-8 bytes. */
const BYTES = (column: string) => `length(CAST(${column} AS BLOB))`;

/**
 * Version 2: the usage of each namespace (see usage.ts), counted from the rows there are,
 * then kept by triggers in every transaction that changes records or blobs.
 */
function createUsage(db: Database.Database): void {
  const bump = (ns: string, bytes: string, records: string, blobs: string) =>
    `INSERT INTO store_usage (namespace, bytes, records, blob_bytes) VALUES (${ns}, ${bytes}, ${records}, ${blobs})
     ON CONFLICT (namespace) DO UPDATE SET bytes = bytes + excluded.bytes, records = records + excluded.records, blob_bytes = blob_bytes + excluded.blob_bytes;`;
  db.exec(`
    CREATE TABLE store_usage (namespace TEXT PRIMARY KEY, bytes INTEGER NOT NULL, records INTEGER NOT NULL, blob_bytes INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO store_usage (namespace, bytes, records, blob_bytes) SELECT namespace, sum(${sqlSize('', BYTES)}), count(*), 0 FROM records GROUP BY namespace;
    INSERT INTO store_usage (namespace, bytes, records, blob_bytes) SELECT namespace, 0, 0, sum(size) FROM blobs WHERE true GROUP BY namespace
      ON CONFLICT (namespace) DO UPDATE SET blob_bytes = excluded.blob_bytes;
    CREATE TRIGGER records_usage_insert AFTER INSERT ON records BEGIN ${bump('NEW.namespace', sqlSize('NEW.', BYTES), '1', '0')} END;
    CREATE TRIGGER records_usage_update AFTER UPDATE ON records BEGIN ${bump('NEW.namespace', `${sqlSize('NEW.', BYTES)} - ${sqlSize('OLD.', BYTES)}`, '0', '0')} END;
    CREATE TRIGGER records_usage_delete AFTER DELETE ON records BEGIN ${bump('OLD.namespace', `-${sqlSize('OLD.', BYTES)}`, '-1', '0')} END;
    CREATE TRIGGER blobs_usage_insert AFTER INSERT ON blobs BEGIN ${bump('NEW.namespace', '0', '0', 'NEW.size')} END;
    CREATE TRIGGER blobs_usage_update AFTER UPDATE ON blobs BEGIN ${bump('NEW.namespace', '0', '0', 'NEW.size - OLD.size')} END;
    CREATE TRIGGER blobs_usage_delete AFTER DELETE ON blobs BEGIN ${bump('OLD.namespace', '0', '0', '-OLD.size')} END;
  `);
}

function createTables(db: Database.Database): void {
  {
    db.exec(`
      CREATE TABLE IF NOT EXISTS records (
        namespace TEXT NOT NULL,
        "database" TEXT NOT NULL,
        tbl TEXT NOT NULL,
        key TEXT NOT NULL,
        rkey TEXT NOT NULL,
        value TEXT NOT NULL,
        metadata TEXT,
        expiry INTEGER,
        PRIMARY KEY (namespace, "database", tbl, key)
      );
      CREATE INDEX IF NOT EXISTS records_suffix ON records (namespace, "database", tbl, rkey);
      CREATE INDEX IF NOT EXISTS records_expiry ON records (expiry) WHERE expiry IS NOT NULL;
      CREATE TABLE IF NOT EXISTS blobs (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        file TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        updated INTEGER NOT NULL,
        PRIMARY KEY (namespace, key)
      );
    `);
  }
}
