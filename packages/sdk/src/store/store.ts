/**
 * The store: key-value records, durable and namespaced, as in Go Micro's store.
 *
 * A record lives at (namespace, database, table, key). Values are JSON; a record may
 * carry metadata (flat string/number/boolean pairs) and an expiry. Every engine (memory,
 * SQLite in `micro server`, the remote store that talks to it, later Postgres and NATS)
 * behaves the same, which `storeContract` in contract.ts checks:
 *
 * - Keys are compared by Unicode code point (the byte order of their UTF-8), so prefix,
 *   suffix and range scans return the same records in the same order everywhere.
 * - A write replaces the whole record (value, metadata and expiry).
 * - An expired record is invisible at once (to read, list, databases and tables) and is
 *   purged later: lazily by the memory store, periodically by the SQLite engine.
 * - Every input is bounded (see STORE_LIMITS); bad input is a 400 naming the field and
 *   never changes what is stored.
 * - Defaults: namespace `micro` (the caller's own over RPC), database `micro`, table
 *   `default`; a store may be made with other defaults (e.g. the service's name).
 */

export type MetadataValue = string | number | boolean;

/** A record as it is stored and read. */
export interface StoreRecord {
  key: string;
  /** any JSON value (null included); at most 1 MiB as JSON */
  value: unknown;
  metadata?: Record<string, MetadataValue>;
  /** when the record expires, epoch ms; absent = never */
  expiry?: number;
}

export interface ScopeOptions {
  /** default: the store's (memory: `micro`; remote: the caller's own) */
  namespace?: string;
  /** default: the store's (`micro` unless made with another) */
  database?: string;
  /** default: the store's (`default` unless made with another) */
  table?: string;
}

export type Order = 'asc' | 'desc';

/**
 * A window on the keys of a table, shared by read (with prefix/suffix) and list:
 * keys strictly after `after` and strictly before `before` (in key order, whatever the
 * `order`), in `order`, skipping `offset`, at most `limit`. `after`/`before` make a
 * cursor: pass the last key of a page to get the next one without an offset.
 */
export interface ScanOptions {
  after?: string;
  before?: string;
  /** default asc */
  order?: Order;
  /** default 100, at most 1000 */
  limit?: number;
  /** default 0, at most 100,000 (use `after` to page further) */
  offset?: number;
}

export interface ReadOptions extends ScopeOptions, ScanOptions {
  /** the key is a prefix: every record whose key starts with it */
  prefix?: boolean;
  /** the key is a suffix: every record whose key ends with it (with prefix: both) */
  suffix?: boolean;
}

export interface WriteOptions extends ScopeOptions {
  /**
   * seconds until the record expires (fractions allowed; 0 = never). Without it the
   * record's own `expiry` (epoch ms) applies, if any.
   */
  ttl?: number;
}

export type DeleteOptions = ScopeOptions;

export interface ListOptions extends ScopeOptions, ScanOptions {
  /** only keys that start with this */
  prefix?: string;
  /** only keys that end with this */
  suffix?: string;
}

export interface NamesOptions {
  namespace?: string;
  /** default 100, at most 1000 */
  limit?: number;
  offset?: number;
}

export interface TablesOptions extends NamesOptions {
  database?: string;
}

export type StoreQueryValue = string | number | boolean;
export type StoreQueryOp = '==' | '!=' | '<' | '>' | '<=' | '>=';

/**
 * Conditions on the JSON value of a record: `field op value` (field a dotted path such as
 * `user.age`), combined with `and`/`or`. See query.ts for the exact meaning and bounds.
 */
export type StoreWhere = { field: string; op: StoreQueryOp; value: StoreQueryValue } | { and: StoreWhere[] } | { or: StoreWhere[] };

export interface QueryOptions extends ScopeOptions {
  /** default: every record of the table */
  where?: StoreWhere;
  /** a field path to order by (default: the key); ties go by key */
  orderBy?: string;
  /** default asc */
  order?: Order;
  /** default 100, at most 1000 */
  limit?: number;
  /** default 0, at most 100,000 */
  offset?: number;
}

export interface CountOptions extends ScopeOptions {
  where?: StoreWhere;
}

export interface Store {
  readonly name: string;
  /**
   * The record at `key` (an array of 0 or 1), or with `prefix`/`suffix` every record
   * whose key matches, in key order, bounded by `limit`.
   */
  read(key: string, options?: ReadOptions): Promise<StoreRecord[]>;
  /** Creates or replaces the record; once this resolves, the record is durable. */
  write(record: StoreRecord, options?: WriteOptions): Promise<void>;
  /** Deletes the record at `key`; deleting a missing key is not an error. */
  delete(key: string, options?: DeleteOptions): Promise<void>;
  /** The keys of a table, in key order, bounded by `limit`. */
  list(options?: ListOptions): Promise<string[]>;
  /** The databases of the namespace that hold at least one live record, sorted. */
  databases(options?: NamesOptions): Promise<string[]>;
  /** The tables of a database that hold at least one live record, sorted. */
  tables(options?: TablesOptions): Promise<string[]>;
  /**
   * The records of a table whose values match `where`, in `orderBy` order, a page of
   * them. Engines evaluate it where the data is (never by loading the table), and may
   * index the fields that are queried often.
   */
  query(options?: QueryOptions): Promise<StoreRecord[]>;
  /** How many live records of a table match `where`. */
  count(options?: CountOptions): Promise<number>;
  close?(): Promise<void>;
}

/** Defaults of a store: where a call goes when it names no database or table. */
export interface StoreDefaults {
  /** default `micro` (a service may use its own name) */
  database?: string;
  /** default `default` */
  table?: string;
}
