/*
 * An in-process store, for unit tests and for data a process may lose. It behaves as the
 * durable engines do: same checks, same key order, same TTLs. Values are kept as their
 * JSON text, so a caller that changes an object after writing it (or after reading it)
 * changes nothing stored, exactly as with a real database. Expired records are dropped
 * when a scan meets them and by a sweep every few thousand writes, so no timer runs.
 */

import { ServiceUnavailable } from '../errors/errors.js';
import type { CountOptions, DeleteOptions, QueryOptions, ListOptions, MetadataValue, NamesOptions, ReadOptions, Store, StoreDefaults, StoreRecord, TablesOptions, WriteOptions } from './store.js';
import {
  STORE_ERROR_ID,
  bad,
  checkDefaults,
  checkKey,
  checkLimit,
  checkMetadata,
  checkName,
  checkNamespace,
  checkOffset,
  checkValue,
  compareKeys,
  expiryOf,
  keyMatches,
  listScan,
  readPlan,
  resolveScope,
  type KeyScan,
  type Scope,
} from './util.js';
import { checkCount, checkQuery, compareForOrder, matches } from './query.js';

export interface MemoryStoreOptions extends StoreDefaults {
  /** the clock, epoch ms; tests inject one to move time without sleeping */
  now?: () => number;
}

interface Entry {
  value: string;
  metadata: Record<string, MetadataValue> | undefined;
  expiry: number | undefined;
}

type Table = Map<string, Entry>;
/** namespace → database → table → key → entry */
type Data = Map<string, Map<string, Map<string, Table>>>;

/** Writes between two sweeps of expired records. */
const SWEEP_EVERY = 4096;

export class MemoryStore implements Store {
  readonly name = 'memory';
  private readonly data: Data = new Map();
  private readonly defaults: Required<StoreDefaults>;
  private readonly now: () => number;
  private writes = 0;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.defaults = checkDefaults(options);
    this.now = options.now ?? Date.now;
  }

  async read(key: string, options: ReadOptions = {}): Promise<StoreRecord[]> {
    this.checkOpen();
    const plan = readPlan(key, options);
    const scope = resolveScope(options, this.defaults);
    const table = this.table(scope, false);
    if (!table) return [];
    const now = this.now();
    if ('exact' in plan) {
      const entry = this.live(table, plan.exact, now);
      return entry ? [toRecord(plan.exact, entry)] : [];
    }
    return this.scan(table, plan.scan, now).map((k) => toRecord(k, table.get(k) as Entry));
  }

  async write(record: StoreRecord, options: WriteOptions = {}): Promise<void> {
    this.checkOpen();
    if (typeof record !== 'object' || record === null) throw bad('record must be an object with a key and a value');
    const key = checkKey(record.key);
    const value = checkValue(record.value);
    const metadata = checkMetadata(record.metadata);
    const now = this.now();
    const expiry = expiryOf(record, options.ttl, now);
    const scope = resolveScope(options, this.defaults);
    this.table(scope, true).set(key, { value, metadata, expiry });
    if (++this.writes % SWEEP_EVERY === 0) this.sweep();
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    this.checkOpen();
    const k = checkKey(key);
    const scope = resolveScope(options, this.defaults);
    const table = this.table(scope, false);
    if (!table) return;
    table.delete(k);
    if (table.size === 0) this.prune(scope);
  }

  async list(options: ListOptions = {}): Promise<string[]> {
    this.checkOpen();
    const scan = listScan(options);
    const scope = resolveScope(options, this.defaults);
    const table = this.table(scope, false);
    return table ? this.scan(table, scan, this.now()) : [];
  }

  async databases(options: NamesOptions = {}): Promise<string[]> {
    this.checkOpen();
    const namespace = checkNamespace(options.namespace);
    const limit = checkLimit(options.limit);
    const offset = checkOffset(options.offset);
    const dbs = this.data.get(namespace);
    if (!dbs) return [];
    const now = this.now();
    const names = [...dbs.entries()].filter(([, tables]) => [...tables.values()].some((t) => this.anyLive(t, now))).map(([name]) => name);
    return names.sort(compareKeys).slice(offset, offset + limit);
  }

  async tables(options: TablesOptions = {}): Promise<string[]> {
    this.checkOpen();
    const namespace = checkNamespace(options.namespace);
    const database = checkName(options.database, 'database', this.defaults.database);
    const limit = checkLimit(options.limit);
    const offset = checkOffset(options.offset);
    const tables = this.data.get(namespace)?.get(database);
    if (!tables) return [];
    const now = this.now();
    const names = [...tables.entries()].filter(([, t]) => this.anyLive(t, now)).map(([name]) => name);
    return names.sort(compareKeys).slice(offset, offset + limit);
  }

  async query(options: QueryOptions = {}): Promise<StoreRecord[]> {
    this.checkOpen();
    const q = checkQuery(options);
    const scope = resolveScope(options, this.defaults);
    const found = this.matching(scope, q.where);
    found.sort(compareForOrder(q.orderBy, q.order));
    return found.slice(q.offset, q.offset + q.limit).map(([key, , entry]) => toRecord(key, entry));
  }

  async count(options: CountOptions = {}): Promise<number> {
    this.checkOpen();
    const where = checkCount(options);
    return this.matching(resolveScope(options, this.defaults), where).length;
  }

  /** The live records of a table whose values match, parsed once each. */
  private matching(scope: Scope, where: Parameters<typeof matches>[1]): [string, unknown, Entry][] {
    const table = this.table(scope, false);
    if (!table) return [];
    const now = this.now();
    const out: [string, unknown, Entry][] = [];
    for (const [key, entry] of table) {
      if (expired(entry, now)) continue;
      const value = JSON.parse(entry.value) as unknown;
      if (matches(value, where)) out.push([key, value, entry]);
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.data.clear();
  }

  /** Drops every expired record (runs every few thousand writes; tests may call it). */
  sweep(): void {
    const now = this.now();
    for (const [namespace, dbs] of this.data) {
      for (const [database, tables] of dbs) {
        for (const [table, entries] of tables) {
          for (const [key, entry] of entries) if (expired(entry, now)) entries.delete(key);
          if (entries.size === 0) this.prune({ namespace, database, table });
        }
      }
    }
  }

  /** The keys in the window of the scan, in its order; expired ones met on the way go. */
  private scan(table: Table, scan: KeyScan, now: number): string[] {
    const keys: string[] = [];
    for (const [key, entry] of table) {
      if (expired(entry, now)) {
        table.delete(key);
        continue;
      }
      if (keyMatches(key, scan)) keys.push(key);
    }
    keys.sort(scan.order === 'asc' ? compareKeys : (a, b) => compareKeys(b, a));
    return keys.slice(scan.offset, scan.offset + scan.limit);
  }

  private live(table: Table, key: string, now: number): Entry | undefined {
    const entry = table.get(key);
    if (!entry) return undefined;
    if (!expired(entry, now)) return entry;
    table.delete(key);
    return undefined;
  }

  private anyLive(table: Table, now: number): boolean {
    for (const entry of table.values()) if (!expired(entry, now)) return true;
    return false;
  }

  private table(scope: Scope, create: true): Table;
  private table(scope: Scope, create: false): Table | undefined;
  private table(scope: Scope, create: boolean): Table | undefined {
    let dbs = this.data.get(scope.namespace);
    if (!dbs) {
      if (!create) return undefined;
      dbs = new Map();
      this.data.set(scope.namespace, dbs);
    }
    let tables = dbs.get(scope.database);
    if (!tables) {
      if (!create) return undefined;
      tables = new Map();
      dbs.set(scope.database, tables);
    }
    let table = tables.get(scope.table);
    if (!table && create) {
      table = new Map();
      tables.set(scope.table, table);
    }
    return table;
  }

  /** Forgets an empty table, and its database and namespace when they are empty too. */
  private prune(scope: Scope): void {
    const dbs = this.data.get(scope.namespace);
    const tables = dbs?.get(scope.database);
    if (tables?.get(scope.table)?.size === 0) tables.delete(scope.table);
    if (tables?.size === 0) dbs?.delete(scope.database);
    if (dbs?.size === 0) this.data.delete(scope.namespace);
  }

  private checkOpen(): void {
    if (this.closed) throw ServiceUnavailable(STORE_ERROR_ID, 'store is closed');
  }
}

function expired(entry: Entry, now: number): boolean {
  return entry.expiry !== undefined && entry.expiry <= now;
}

function toRecord(key: string, entry: Entry): StoreRecord {
  const record: StoreRecord = { key, value: JSON.parse(entry.value) };
  if (entry.metadata) record.metadata = { ...entry.metadata };
  if (entry.expiry !== undefined) record.expiry = entry.expiry;
  return record;
}
