import { createHash } from 'node:crypto';
import { BLOB_CHUNK_SIZE, errors, storeEngine as E, storeService, type BlobData, type BlobInfo, type BlobListOptions, type BlobOptions, type BlobStore, type Logger, type NatsProfile, type Store, type StoreDefaults, type StoreDeleteOptions as DeleteOptions, type StoreListOptions as ListOptions, type StoreMetadataValue as MetadataValue, type StoreNamesOptions as NamesOptions, type StoreQueryOptions as QueryOptions, type StoreCountOptions as CountOptions, type StoreReadOptions as ReadOptions, type StoreRecord, type StoreTablesOptions as TablesOptions, type StoreWriteOptions as WriteOptions } from '@micro/sdk';
import { positiveFromEnv, type CoreServiceFactory } from '../core.js';
import { storeLimits } from '../quota/index.js';
import { admitBlob, admitWrite, blobCeiling, blobTooLargeForQuota, recordSize, sqlSize, type StoreLimits, type StoreUsage } from './usage.js';
import type { Limits } from '../quota/limits.js';
import { migrate, openPostgres, statement, type Migration, type Postgres, type PostgresOptions } from '../postgres/index.js';
import { storeServiceHandlers } from './handlers.js';
import { QueryUse, indexName, orderSql, postgres as dialect, whereSql, type SqlParams } from './query-sql.js';

/**
 * The store and the blob store in PostgreSQL, shared by every micro server node of a
 * platform (schema: the prefix). The same behaviour as SqliteStore and FileBlobStore
 * (storeContract, blobStoreContract):
 *
 *   records(namespace, db, tbl, key, rkey, value, metadata, expiry)
 *     PRIMARY KEY (namespace, db, tbl, key)
 *
 * - Every text column is COLLATE "C": keys compare by the bytes of their UTF-8, the code
 *   point order of every engine. A prefix is the range `key >= prefix AND key < upper`
 *   (no LIKE, whose wildcards a key could hold); a suffix is a prefix of `rkey`, the key
 *   reversed by code point, which has its own index.
 * - A write is one autocommitted statement on a connection with synchronous_commit on:
 *   once it returns, it is in Postgres's WAL on disk.
 * - Expired records are invisible at once (every query asks `expiry > now`, in epoch ms of
 *   the node's clock: keep the nodes' clocks in sync) and deleted by a purge every minute,
 *   in batches; several nodes purge without getting in each other's way (SKIP LOCKED).
 * - Blobs: chunks of 64 KiB in `blob_chunks (upload, seq, data bytea)`, written as they
 *   come under a new upload id (invisible: no row of `blobs` points to it), 1 MiB per
 *   statement; then one transaction points the blob's row to the upload and deletes the
 *   chunks of the blob it replaced. A put that fails deletes its chunks; one cut short by
 *   a crash leaves an upload row that the purge removes, with its chunks, after an hour.
 *   A get streams the chunks 1 MiB at a time; a blob replaced or deleted while it is read
 *   ends the read with a 404 (never a mix of old and new).
 */

export const STORE_POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'records and blobs',
    up: `
      CREATE TABLE records (
        namespace text COLLATE "C" NOT NULL,
        db        text COLLATE "C" NOT NULL,
        tbl       text COLLATE "C" NOT NULL,
        key       text COLLATE "C" NOT NULL,
        rkey      text COLLATE "C" NOT NULL,
        value     text NOT NULL,
        metadata  text,
        expiry    bigint,
        PRIMARY KEY (namespace, db, tbl, key)
      );
      CREATE INDEX records_suffix ON records (namespace, db, tbl, rkey);
      CREATE INDEX records_expiry ON records (expiry) WHERE expiry IS NOT NULL;
      CREATE TABLE blob_uploads (id bigserial PRIMARY KEY, started bigint NOT NULL);
      CREATE TABLE blob_chunks (upload bigint NOT NULL, seq integer NOT NULL, data bytea NOT NULL, PRIMARY KEY (upload, seq));
      -- blobs are mostly compressed already: store the chunks as they are
      ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
      CREATE TABLE blobs (
        namespace text COLLATE "C" NOT NULL,
        key       text COLLATE "C" NOT NULL,
        upload    bigint NOT NULL,
        size      bigint NOT NULL,
        sha256    text NOT NULL,
        updated   bigint NOT NULL,
        PRIMARY KEY (namespace, key)
      );
    `,
  },
  {
    version: 2,
    description: 'usage of each namespace, kept by triggers (quota)',
    up: async (client, schema) => {
      await client.query(usageMigration(schema));
    },
  },
  {
    version: 3,
    description: 'the query indexes of each table (Store.query)',
    up: 'CREATE TABLE query_indexes (namespace text COLLATE "C" NOT NULL, db text COLLATE "C" NOT NULL, tbl text COLLATE "C" NOT NULL, path text NOT NULL, name text NOT NULL, PRIMARY KEY (namespace, db, tbl, path))',
  },
];

/** A column's size in bytes in PostgreSQL. */
const BYTES = (column: string) => `octet_length(${column})`;

/**
 * The usage of each namespace (see usage.ts), counted from the rows there are, then kept
 * by triggers in every transaction that changes records or blobs.
 */
function usageMigration(s: string): string {
  const bump = (ns: string, bytes: string, records: string, blobs: string) =>
    `INSERT INTO ${s}.store_usage AS u (namespace, bytes, records, blob_bytes) VALUES (${ns}, ${bytes}, ${records}, ${blobs})
     ON CONFLICT (namespace) DO UPDATE SET bytes = u.bytes + excluded.bytes, records = u.records + excluded.records, blob_bytes = u.blob_bytes + excluded.blob_bytes;`;
  const trigger = (table: string, when: string, body: string) => `
    CREATE FUNCTION ${s}.${table}_usage_${when.toLowerCase()}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN ${body} RETURN NULL; END $fn$;
    CREATE TRIGGER ${table}_usage_${when.toLowerCase()} AFTER ${when} ON ${s}.${table} FOR EACH ROW EXECUTE FUNCTION ${s}.${table}_usage_${when.toLowerCase()}();`;
  return `
    CREATE TABLE ${s}.store_usage (namespace text COLLATE "C" PRIMARY KEY, bytes bigint NOT NULL, records bigint NOT NULL, blob_bytes bigint NOT NULL);
    INSERT INTO ${s}.store_usage SELECT namespace, sum(${sqlSize('', BYTES)}), count(*), 0 FROM ${s}.records GROUP BY namespace;
    INSERT INTO ${s}.store_usage AS u SELECT namespace, 0, 0, sum(size) FROM ${s}.blobs GROUP BY namespace
      ON CONFLICT (namespace) DO UPDATE SET blob_bytes = excluded.blob_bytes;
    ${trigger('records', 'INSERT', bump('NEW.namespace', sqlSize('NEW.', BYTES), '1', '0'))}
    ${trigger('records', 'UPDATE', bump('NEW.namespace', `${sqlSize('NEW.', BYTES)} - ${sqlSize('OLD.', BYTES)}`, '0', '0'))}
    ${trigger('records', 'DELETE', bump('OLD.namespace', `-${sqlSize('OLD.', BYTES)}`, '-1', '0'))}
    ${trigger('blobs', 'INSERT', bump('NEW.namespace', '0', '0', 'NEW.size'))}
    ${trigger('blobs', 'UPDATE', bump('NEW.namespace', '0', '0', 'NEW.size - OLD.size'))}
    ${trigger('blobs', 'DELETE', bump('OLD.namespace', '0', '0', '-OLD.size'))}
  `;
}

/**
 * The lock a growing write of a namespace holds to its commit: writes that could pass a
 * limit run one at a time per namespace, on every node (deletes and purges need none: they
 * only make room).
 */
export const NAMESPACE_LOCK = 'SELECT pg_advisory_xact_lock(hashtextextended($1, 0))';

const PURGE_BATCH = 1000;
/** batches per purge run: the rest waits for the next run */
const PURGE_BATCHES = 20;
/** chunks per statement, written and read (1 MiB) */
const CHUNKS_PER_STATEMENT = 16;
/** an upload older than this is a put that died: the purge removes it */
const UPLOAD_TIMEOUT = 3_600_000;

type Params = (string | number | null | Buffer)[];

interface Row {
  key: string;
  value: string;
  metadata: string | null;
  expiry: string | null;
}

export interface PostgresStoreOptions extends StoreDefaults, Omit<PostgresOptions, 'errorId'> {
  /** ms between purges of expired records and dead uploads (default 60,000; 0 = none, call purge()) */
  purgeInterval?: number;
  /** the largest blob, bytes (default 64 MiB) */
  blobMaxSize?: number;
  /** the clock, epoch ms (tests) */
  now?: () => number;
  /** the quota limits a write must stay within (default none: unchecked) */
  limits?: StoreLimits;
  /** queries of a field of a table after which it gets an index (default 5; 0 = never) */
  indexAfter?: number;
}

/** Appends `column` starts with `prefix` as a key range to `where`. */
function prefixRange(column: string, prefix: string, where: string[], params: Params): void {
  params.push(prefix);
  where.push(`${column} >= $${params.length}`);
  const upper = E.prefixUpperBound(prefix);
  if (upper !== undefined) {
    params.push(upper);
    where.push(`${column} < $${params.length}`);
  }
}

export class PostgresStore implements Store {
  readonly name = 'postgres';
  /** the blobs, in the same schema (closed with the store) */
  readonly blobs: PostgresBlobStore;
  private readonly defaults: Required<StoreDefaults>;
  private readonly now: () => number;
  private readonly sql: { read: string; write: string; delete: string; databases: string; tables: string; purge: string; uploads: string; size: string };
  private readonly limits: StoreLimits | undefined;
  private purger: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly use: QueryUse;
  /** the index builds asked for, one after the other, off the calls that asked */
  private indexing: Promise<void> = Promise.resolve();

  /** Opens the pool, brings the schema up to date, and starts the purges. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const defaults = E.checkDefaults(options);
    const db = await openPostgres({ ...options, errorId: E.STORE_ERROR_ID });
    try {
      await migrate(db, 'store', STORE_POSTGRES_MIGRATIONS);
    } catch (err) {
      await db.close();
      throw err;
    }
    return new PostgresStore(db, defaults, options);
  }

  private constructor(
    readonly db: Postgres,
    defaults: Required<StoreDefaults>,
    options: PostgresStoreOptions,
  ) {
    this.defaults = defaults;
    this.now = options.now ?? Date.now;
    this.limits = options.limits;
    this.use = new QueryUse(options.indexAfter ?? 5);
    const s = db.schema;
    const live = '(expiry IS NULL OR expiry > $';
    this.sql = {
      size: `SELECT ${sqlSize('', BYTES)}::float8 AS size FROM ${s}.records WHERE namespace = $1 AND db = $2 AND tbl = $3 AND key = $4`,
      read: `SELECT key, value, metadata, expiry FROM ${s}.records WHERE namespace = $1 AND db = $2 AND tbl = $3 AND key = $4 AND ${live}5)`,
      write: `INSERT INTO ${s}.records (namespace, db, tbl, key, rkey, value, metadata, expiry) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
              ON CONFLICT (namespace, db, tbl, key) DO UPDATE SET value = excluded.value, metadata = excluded.metadata, expiry = excluded.expiry`,
      delete: `DELETE FROM ${s}.records WHERE namespace = $1 AND db = $2 AND tbl = $3 AND key = $4`,
      databases: `SELECT DISTINCT db AS name FROM ${s}.records WHERE namespace = $1 AND ${live}2) ORDER BY name LIMIT $3 OFFSET $4`,
      tables: `SELECT DISTINCT tbl AS name FROM ${s}.records WHERE namespace = $1 AND db = $2 AND ${live}3) ORDER BY name LIMIT $4 OFFSET $5`,
      // SKIP LOCKED: nodes purging at once take different rows rather than wait for each other
      purge: `DELETE FROM ${s}.records WHERE ctid = ANY (ARRAY(
                SELECT ctid FROM ${s}.records WHERE expiry IS NOT NULL AND expiry <= $1 LIMIT ${PURGE_BATCH} FOR UPDATE SKIP LOCKED))`,
      uploads: `WITH dead AS (DELETE FROM ${s}.blob_uploads WHERE started < $1 RETURNING id)
                DELETE FROM ${s}.blob_chunks WHERE upload IN (SELECT id FROM dead)`,
    };
    this.blobs = new PostgresBlobStore(db, options);
    const interval = options.purgeInterval ?? 60_000;
    if (interval > 0) {
      this.purger = setInterval(() => {
        // Postgres away: the next run tries again, and expired rows stay invisible meanwhile
        this.purge().catch(() => undefined);
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
      const { rows } = await this.db.query<Row>(this.sql.read, [scope.namespace, scope.database, scope.table, plan.exact, now]);
      return rows.map(toRecord);
    }
    const { sql, params } = scanQuery(this.db.schema, scope, plan.scan, now);
    const { rows } = await this.db.query<Row>(`SELECT key, value, metadata, expiry ${sql}`, params);
    return rows.map(toRecord);
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
    const params = [scope.namespace, scope.database, scope.table, key, E.reverseKey(key), value, meta, expiry ?? null];
    const limits = await this.limits?.(scope.namespace);
    if (!limits || (limits.storeBytes === null && limits.storeRecords === null)) {
      await this.db.query(this.sql.write, params);
      return;
    }
    await this.db.transaction(async (client) => {
      await client.query(NAMESPACE_LOCK, [`${this.db.schema} ${scope.namespace}`]);
      const old = (await client.query<{ size: number }>(this.sql.size, params.slice(0, 4))).rows[0]?.size;
      admitWrite(scope.namespace, await usageIn((sql, p) => client.query<StoreUsage>(sql, p), this.db.schema, scope.namespace), recordSize(key, value, meta), old, limits);
      await client.query(this.sql.write, params);
    });
  }

  /** What a namespace has in the store: counted in the same transactions as the rows (expired rows count until purged). */
  async usage(namespace: string): Promise<StoreUsage> {
    this.checkOpen();
    return usageIn((sql, p) => this.db.query<StoreUsage>(sql, p), this.db.schema, E.checkNamespace(namespace));
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    this.checkOpen();
    const k = E.checkKey(key);
    const scope = E.resolveScope(options, this.defaults);
    await this.db.query(this.sql.delete, [scope.namespace, scope.database, scope.table, k]);
  }

  async list(options: ListOptions = {}): Promise<string[]> {
    this.checkOpen();
    const scan = E.listScan(options);
    const scope = E.resolveScope(options, this.defaults);
    const { sql, params } = scanQuery(this.db.schema, scope, scan, this.now());
    const { rows } = await this.db.query<{ key: string }>(`SELECT key ${sql}`, params);
    return rows.map((r) => r.key);
  }

  async databases(options: NamesOptions = {}): Promise<string[]> {
    this.checkOpen();
    const namespace = E.checkNamespace(options.namespace);
    const limit = E.checkLimit(options.limit);
    const offset = E.checkOffset(options.offset);
    const { rows } = await this.db.query<{ name: string }>(this.sql.databases, [namespace, this.now(), limit, offset]);
    return rows.map((r) => r.name);
  }

  async tables(options: TablesOptions = {}): Promise<string[]> {
    this.checkOpen();
    const namespace = E.checkNamespace(options.namespace);
    const database = E.checkName(options.database, 'database', this.defaults.database);
    const limit = E.checkLimit(options.limit);
    const offset = E.checkOffset(options.offset);
    const { rows } = await this.db.query<{ name: string }>(this.sql.tables, [namespace, database, this.now(), limit, offset]);
    return rows.map((r) => r.name);
  }

  async query(options: QueryOptions = {}): Promise<StoreRecord[]> {
    this.checkOpen();
    const q = E.checkQuery(options);
    const scope = E.resolveScope(options, this.defaults);
    this.noteUse(scope, E.queriedPaths(q));
    const { rows } = await this.db.query<Row>(...this.querySql(scope, q));
    return rows.map(toRecord);
  }

  async count(options: CountOptions = {}): Promise<number> {
    this.checkOpen();
    const where = E.checkCount(options);
    const scope = E.resolveScope(options, this.defaults);
    this.noteUse(scope, E.queriedPaths({ where }));
    const { sql, params } = this.matching(scope, where);
    const { rows } = await this.db.query<{ n: string }>(`SELECT count(*) AS n ${sql}`, params);
    return Number(rows[0]?.n ?? 0);
  }

  /** The plan PostgreSQL chose for a query (EXPLAIN's lines), for tests that check an index serves it. */
  async explainQuery(options: QueryOptions = {}): Promise<string[]> {
    const [sql, params] = this.querySql(E.resolveScope(options, this.defaults), E.checkQuery(options));
    const { rows } = await this.db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
    return rows.map((r) => r['QUERY PLAN']);
  }

  /** Resolves once the index builds asked for so far are done (tests, benchmarks). */
  async indexed(): Promise<void> {
    await this.indexing;
  }

  private querySql(scope: E.Scope, q: E.CheckedQuery): [string, SqlParams] {
    const { sql, params } = this.matching(scope, q.where);
    params.push(q.limit, q.offset);
    const n = params.length;
    return [`SELECT key, value, metadata, expiry ${sql} ORDER BY ${orderSql(dialect, q, true)} LIMIT $${n - 1} OFFSET $${n}`, params];
  }

  /** The FROM/WHERE of the live records of a table that match. */
  private matching(scope: E.Scope, where: E.CheckedWhere | undefined): { sql: string; params: SqlParams } {
    const params: SqlParams = [scope.namespace, scope.database, scope.table, this.now()];
    let sql = `FROM ${this.db.schema}.records WHERE namespace = $1 AND db = $2 AND tbl = $3 AND (expiry IS NULL OR expiry > $4)`;
    if (where) sql += ` AND ${whereSql(dialect, where, params, (n) => `$${n}`)}`;
    return { sql, params };
  }

  /**
   * Counts the fields a query names; one queried often gets an expression index of its
   * table (partial: only that table's rows), built CONCURRENTLY (writes go on meanwhile)
   * after the call that asked returns. At most MAX_QUERY_INDEXES per table, on every node.
   */
  private noteUse(scope: E.Scope, paths: string[][]): void {
    const due = this.use.due(scope, paths);
    if (due.length === 0) return;
    this.indexing = this.indexing.then(async () => {
      for (const path of due) {
        // Postgres away or another node building the same index: queries stay right without it
        await this.createIndex(scope, path).catch(() => undefined);
      }
    });
  }

  /** The index of one field of one table (see noteUse); false when the table has its share. */
  async createIndex(scope: E.Scope, path: string[]): Promise<boolean> {
    if (this.closed) return false;
    const s = this.db.schema;
    const name = indexName(scope, path);
    const field = path.join('.');
    const claimed = await this.db.query(
      `INSERT INTO ${s}.query_indexes (namespace, db, tbl, path, name)
       SELECT $1, $2, $3, $4, $5 WHERE (SELECT count(*) FROM ${s}.query_indexes WHERE namespace = $1 AND db = $2 AND tbl = $3) < ${E.MAX_QUERY_INDEXES}
       ON CONFLICT DO NOTHING`,
      [scope.namespace, scope.database, scope.table, field, name],
    );
    const known = await this.db.query(`SELECT 1 FROM ${s}.query_indexes WHERE namespace = $1 AND db = $2 AND tbl = $3 AND path = $4`, [scope.namespace, scope.database, scope.table, field]);
    if (known.rowCount === 0) return false;
    if (claimed.rowCount === 0 && (await this.indexValid(name))) return true;
    // literals only of checked names (indexable) and a checked path: DDL takes no parameters.
    // Not a prepared statement (CONCURRENTLY runs outside any transaction).
    const ddl = `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${name} ON ${s}.records (namespace, db, tbl, ${dialect.field(path)} NULLS FIRST, key)
                 WHERE namespace = '${scope.namespace}' AND db = '${scope.database}' AND tbl = '${scope.table}'`;
    try {
      await this.db.pool.query(ddl);
    } catch (err) {
      // a build that failed leaves an invalid index behind: drop it so that a later one can try again
      await this.db.pool.query(`DROP INDEX CONCURRENTLY IF EXISTS ${s}.${name}`).catch(() => undefined);
      await this.db.query(`DELETE FROM ${s}.query_indexes WHERE namespace = $1 AND db = $2 AND tbl = $3 AND path = $4`, [scope.namespace, scope.database, scope.table, field]);
      throw this.db.fail(err);
    }
    // statistics of the new expression, so the planner weighs the index (ANALYZE samples: bounded work)
    await this.db.pool.query(`ANALYZE ${s}.records`).catch(() => undefined);
    return true;
  }

  private async indexValid(name: string): Promise<boolean> {
    const { rows } = await this.db.query<{ valid: boolean }>(
      `SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 AND n.nspname = $2`,
      [name, this.db.prefix],
    );
    return rows[0]?.valid === true;
  }

  /**
   * Deletes expired records, a bounded number per run, and the chunks of uploads that
   * died (older than an hour); returns how many records went.
   */
  async purge(): Promise<number> {
    if (this.closed) return 0;
    const now = this.now();
    let total = 0;
    for (let i = 0; i < PURGE_BATCHES; i++) {
      const { rowCount } = await this.db.query(this.sql.purge, [now]);
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < PURGE_BATCH) break;
    }
    await this.db.query(this.sql.uploads, [now - UPLOAD_TIMEOUT]);
    return total;
  }

  /**
   * Deletes every record and blob of a namespace (purge/) in one transaction, under the
   * namespace's write lock (no growing write of it runs meanwhile, on any node): the usage
   * triggers count them out, and the usage row, at zero, goes too.
   */
  async purgeNamespace(namespace: string): Promise<void> {
    this.checkOpen();
    const ns = E.checkNamespace(namespace);
    const s = this.db.schema;
    await this.db.transaction(async (client) => {
      await client.query(NAMESPACE_LOCK, [`${s} ${ns}`]);
      await client.query(`DELETE FROM ${s}.records WHERE namespace = $1`, [ns]);
      await client.query(`WITH gone AS (DELETE FROM ${s}.blobs WHERE namespace = $1 RETURNING upload) DELETE FROM ${s}.blob_chunks WHERE upload IN (SELECT upload FROM gone)`, [ns]);
      await client.query(`DELETE FROM ${s}.store_usage WHERE namespace = $1 AND bytes = 0 AND records = 0 AND blob_bytes = 0`, [ns]);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.purger) clearInterval(this.purger);
    this.purger = undefined;
    await this.blobs.close();
    await this.db.close();
  }

  private checkOpen(): void {
    if (this.closed) throw errors.ServiceUnavailable(E.STORE_ERROR_ID, 'store is closed');
  }
}

/**
 * The FROM/WHERE/ORDER/LIMIT of a scan. The SQL depends only on which conditions are
 * present and the order (so it is prepared once per shape); the values are parameters.
 */
function scanQuery(schema: string, scope: E.Scope, scan: E.KeyScan, now: number): { sql: string; params: Params } {
  const params: Params = [scope.namespace, scope.database, scope.table, now];
  const where = ['namespace = $1', 'db = $2', 'tbl = $3', '(expiry IS NULL OR expiry > $4)'];
  if (scan.prefix) prefixRange('key', scan.prefix, where, params);
  if (scan.suffix) prefixRange('rkey', E.reverseKey(scan.suffix), where, params);
  if (scan.after !== undefined) {
    params.push(scan.after);
    where.push(`key > $${params.length}`);
  }
  if (scan.before !== undefined) {
    params.push(scan.before);
    where.push(`key < $${params.length}`);
  }
  params.push(scan.limit, scan.offset);
  const n = params.length;
  return { sql: `FROM ${schema}.records WHERE ${where.join(' AND ')} ORDER BY key ${scan.order === 'desc' ? 'DESC' : 'ASC'} LIMIT $${n - 1} OFFSET $${n}`, params };
}

type UsageQuery = (sql: string, params: unknown[]) => Promise<{ rows: StoreUsage[] }>;

async function usageIn(query: UsageQuery, schema: string, namespace: string): Promise<StoreUsage> {
  const { rows } = await query(
    `SELECT bytes::float8 AS "storeBytes", records::float8 AS "storeRecords", blob_bytes::float8 AS "blobBytes" FROM ${schema}.store_usage WHERE namespace = $1`,
    [namespace],
  );
  return rows[0] ?? { storeBytes: 0, storeRecords: 0, blobBytes: 0 };
}

function toRecord(row: Row): StoreRecord {
  const record: StoreRecord = { key: row.key, value: JSON.parse(row.value) as unknown };
  if (row.metadata !== null) record.metadata = JSON.parse(row.metadata) as Record<string, MetadataValue>;
  if (row.expiry !== null) record.expiry = Number(row.expiry);
  return record;
}

interface BlobRow {
  key: string;
  upload: string;
  size: string;
  sha256: string;
  updated: string;
}

/** Blobs in Postgres: see PostgresStore. Made by PostgresStore.open (`store.blobs`). */
export class PostgresBlobStore implements BlobStore {
  readonly name = 'postgres';
  private readonly maxSize: number;
  private readonly now: () => number;
  private readonly sql: { begin: string; get: string; chunks: string; done: string; current: string; update: string; create: string; drop: string; remove: string; abandon: string };
  private readonly inserts = new Map<number, string>();
  private closed = false;

  constructor(
    private readonly db: Postgres,
    private readonly options: { blobMaxSize?: number; now?: () => number; limits?: StoreLimits } = {},
  ) {
    this.maxSize = E.checkMaxSize(options.blobMaxSize);
    this.now = options.now ?? Date.now;
    const s = db.schema;
    this.sql = {
      begin: `INSERT INTO ${s}.blob_uploads (started) VALUES ($1) RETURNING id`,
      get: `SELECT key, upload, size, sha256, updated FROM ${s}.blobs WHERE namespace = $1 AND key = $2`,
      chunks: `SELECT data FROM ${s}.blob_chunks WHERE upload = $1 AND seq >= $2 ORDER BY seq LIMIT ${CHUNKS_PER_STATEMENT}`,
      done: `DELETE FROM ${s}.blob_uploads WHERE id = $1`,
      current: `SELECT upload, size::float8 AS size FROM ${s}.blobs WHERE namespace = $1 AND key = $2 FOR UPDATE`,
      update: `UPDATE ${s}.blobs SET upload = $3, size = $4, sha256 = $5, updated = $6 WHERE namespace = $1 AND key = $2`,
      create: `INSERT INTO ${s}.blobs (namespace, key, upload, size, sha256, updated) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (namespace, key) DO NOTHING`,
      drop: `DELETE FROM ${s}.blob_chunks WHERE upload = $1`,
      remove: `DELETE FROM ${s}.blobs WHERE namespace = $1 AND key = $2 RETURNING upload`,
      abandon: `WITH gone AS (DELETE FROM ${s}.blob_uploads WHERE id = $1) DELETE FROM ${s}.blob_chunks WHERE upload = $1`,
    };
  }

  async put(key: string, data: BlobData, options: BlobOptions = {}): Promise<BlobInfo> {
    this.checkOpen();
    const k = E.checkKey(key);
    const namespace = E.checkNamespace(options.namespace);
    const limits = await this.options.limits?.(namespace);
    const ceiling = blobCeiling(limits);
    const started = this.now();
    const upload = (await this.db.query<{ id: string }>(this.sql.begin, [started])).rows[0]?.id as string;
    let committed = false;
    try {
      const hash = createHash('sha256');
      let size = 0;
      let seq = 0;
      let pending: Buffer[] = [];
      let buffered: Buffer[] = [];
      let bufferedBytes = 0;
      const flush = async () => {
        if (pending.length === 0) return;
        const batch = pending;
        pending = [];
        await this.db.query(this.insert(batch.length), [upload, seq, ...batch]);
        seq += batch.length;
      };
      // cut into chunks of exactly 64 KiB (the last one shorter), 16 to a statement
      const cut = async (final: boolean) => {
        const all = Buffer.concat(buffered, bufferedBytes);
        let offset = 0;
        while (all.length - offset >= BLOB_CHUNK_SIZE || (final && offset < all.length)) {
          const end = Math.min(offset + BLOB_CHUNK_SIZE, all.length);
          pending.push(all.subarray(offset, end));
          offset = end;
          if (pending.length >= CHUNKS_PER_STATEMENT) await flush();
        }
        const rest = all.subarray(offset);
        buffered = rest.length > 0 ? [rest] : [];
        bufferedBytes = rest.length;
      };
      for await (const chunk of E.blobChunks(data)) {
        size += chunk.length;
        if (size > this.maxSize) throw E.blobTooLarge(this.maxSize);
        if (size > ceiling) throw blobTooLargeForQuota(namespace, await usageIn((sql, p) => this.db.query<StoreUsage>(sql, p), this.db.schema, namespace), limits as Limits);
        hash.update(chunk);
        // copied: the caller may reuse its buffer once the iterator moves on
        buffered.push(Buffer.from(chunk));
        bufferedBytes += chunk.length;
        if (bufferedBytes >= BLOB_CHUNK_SIZE) await cut(false);
      }
      await cut(true);
      await flush();
      this.checkOpen();
      const info: BlobInfo = { key: k, size, sha256: hash.digest('hex'), updated: this.now() };
      // one transaction: the upload becomes the blob, and the blob it replaces goes
      await this.db.transaction(async (client) => {
        const q = (sql: string, params: unknown[]) => client.query<{ upload: string; size: number }>(statement(sql, params));
        // a limited namespace's puts take its lock (as its writes do): the usage read below stays true until the commit
        const quota = limits && limits.blobBytes !== null ? limits : undefined;
        if (quota) await client.query(NAMESPACE_LOCK, [`${this.db.schema} ${namespace}`]);
        const usage = quota ? await usageIn((sql, p) => client.query<StoreUsage>(sql, p), this.db.schema, namespace) : undefined;
        // the upload's row goes: it is a blob now, not a put that may have died
        if ((await q(this.sql.done, [upload])).rowCount !== 1) {
          throw errors.ServiceUnavailable(E.STORE_ERROR_ID, `the put of blob "${E.printable(k)}" took over ${UPLOAD_TIMEOUT / 60_000} minutes and was given up: put it again`);
        }
        const row = [namespace, k, upload, size, info.sha256, info.updated];
        for (;;) {
          const old = (await q(this.sql.current, [namespace, k])).rows[0];
          if (quota) admitBlob(namespace, usage as StoreUsage, size, old?.size ?? 0, quota);
          if (old) {
            await q(this.sql.update, row);
            await q(this.sql.drop, [old.upload]);
            return;
          }
          // none yet; when another put creates it meanwhile, this one waits for it, then replaces it
          if ((await q(this.sql.create, row)).rowCount === 1) return;
        }
      });
      committed = true;
      return info;
    } finally {
      // a put that failed leaves nothing; when Postgres is away, the purge removes it later
      if (!committed) await this.db.query(this.sql.abandon, [upload]).catch(() => undefined);
    }
  }

  get(key: string, options: BlobOptions = {}): AsyncIterable<Uint8Array> {
    // checked at once, so a bad key fails the call rather than the first read
    return this.read(E.checkNamespace(options.namespace), E.checkKey(key));
  }

  private async *read(namespace: string, key: string): AsyncGenerator<Uint8Array> {
    // twice at most: a put that replaces the blob between the lookup and the first chunks
    for (let attempt = 0; attempt < 2; attempt++) {
      this.checkOpen();
      const row = (await this.db.query<BlobRow>(this.sql.get, [namespace, key])).rows[0];
      if (!row) break;
      const size = Number(row.size);
      let position = 0;
      let seq = 0;
      while (position < size) {
        const { rows } = await this.db.query<{ data: Buffer }>(this.sql.chunks, [row.upload, seq]);
        if (rows.length === 0) {
          if (position === 0) break;
          // replaced or deleted while it was read: never a mix of the old and the new
          throw errors.NotFound(E.STORE_ERROR_ID, `blob "${E.printable(key)}" was replaced or deleted while it was read in namespace ${namespace}`);
        }
        for (const r of rows) {
          position += r.data.length;
          seq++;
          yield r.data;
        }
      }
      if (position === size) return;
      if (position > 0) throw errors.InternalServerError(E.STORE_ERROR_ID, `blob "${E.printable(key)}" is shorter than its index says`);
    }
    throw E.blobNotFound(key, namespace);
  }

  async delete(key: string, options: BlobOptions = {}): Promise<void> {
    this.checkOpen();
    const k = E.checkKey(key);
    const namespace = E.checkNamespace(options.namespace);
    await this.db.transaction(async (client) => {
      const { rows } = await client.query<{ upload: string }>(statement(this.sql.remove, [namespace, k]));
      if (rows[0]) await client.query(statement(this.sql.drop, [rows[0].upload]));
    });
  }

  async list(options: BlobListOptions = {}): Promise<BlobInfo[]> {
    this.checkOpen();
    const scan = E.blobListScan(options);
    const namespace = E.checkNamespace(options.namespace);
    const where = ['namespace = $1'];
    const params: Params = [namespace];
    if (scan.prefix) prefixRange('key', scan.prefix, where, params);
    if (scan.after !== undefined) {
      params.push(scan.after);
      where.push(`key > $${params.length}`);
    }
    params.push(scan.limit, scan.offset);
    const n = params.length;
    const { rows } = await this.db.query<BlobRow>(
      `SELECT key, upload, size, sha256, updated FROM ${this.db.schema}.blobs WHERE ${where.join(' AND ')} ORDER BY key LIMIT $${n - 1} OFFSET $${n}`,
      params,
    );
    return rows.map((r) => ({ key: r.key, size: Number(r.size), sha256: r.sha256, updated: Number(r.updated) }));
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** INSERT of `n` chunks: $1 the upload, $2 the first seq, then the chunks (sent as binary). */
  private insert(n: number): string {
    let sql = this.inserts.get(n);
    if (!sql) {
      const rows = Array.from({ length: n }, (_, i) => `($1, $2::int + ${i}, $${i + 3}::bytea)`);
      sql = `INSERT INTO ${this.db.schema}.blob_chunks (upload, seq, data) VALUES ${rows.join(', ')}`;
      this.inserts.set(n, sql);
    }
    return sql;
  }

  private checkOpen(): void {
    if (this.closed) throw errors.ServiceUnavailable(E.STORE_ERROR_ID, 'blob store is closed');
  }
}

export interface PostgresStoreServiceOptions {
  /** the largest blob in bytes (default MICRO_STORE_BLOB_MAX_SIZE, else 64 MiB) */
  blobMaxSize?: number;
  /** ms between purges (default 60,000) */
  purgeInterval?: number;
  logger?: Logger;
}

/**
 * The store core service on Postgres (MICRO_PROFILE=nats): records and blobs in the
 * schema of the profile's prefix. `postgresStoreCoreService(profile)`.
 */
export function postgresStoreCoreService(profile: Pick<NatsProfile, 'postgresUrl' | 'prefix'>, options: PostgresStoreServiceOptions = {}): CoreServiceFactory {
  return async (ctx) => {
    const store = await PostgresStore.open({
      limits: storeLimits(ctx),
      url: profile.postgresUrl,
      prefix: profile.prefix,
      logger: options.logger ?? ctx.logger,
      purgeInterval: options.purgeInterval,
      blobMaxSize: options.blobMaxSize ?? positiveFromEnv('MICRO_STORE_BLOB_MAX_SIZE', 'number of bytes'),
    });
    // what the store counts shows in quota.Read
    ctx.quotas?.addSource((namespace) => store.usage(namespace));
    return { def: storeService, handlers: storeServiceHandlers(store, store.blobs), blobs: store.blobs, stop: () => store.close(), purge: (namespace) => store.purgeNamespace(namespace) };
  };
}
