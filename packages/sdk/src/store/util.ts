/*
 * What every store engine shares: the bounds, the checks of every input (so that every
 * engine accepts and refuses exactly the same requests, with the same 400s), the order
 * of keys, and the normalised form of a scan that engines translate into their own
 * queries.
 */

import { BadRequest } from '../errors/errors.js';
import { DEFAULT_NAMESPACE } from '../registry/registry.js';
import type { ListOptions, MetadataValue, Order, ReadOptions, ScanOptions, ScopeOptions, StoreDefaults, StoreRecord } from './store.js';

/** The id store errors carry. */
export const STORE_ERROR_ID = 'micro.store';

export const DEFAULT_DATABASE = 'micro';
export const DEFAULT_TABLE = 'default';

/** Bounds on every input: no call can make a store hold or return without limit. */
export const STORE_LIMITS = Object.freeze({
  /** a key, a prefix, a suffix or a cursor, in UTF-8 bytes */
  keyBytes: 1024,
  /** a value as JSON, in UTF-8 bytes */
  valueBytes: 1024 * 1024,
  /** how deep a value may nest */
  valueDepth: 100,
  metadataEntries: 64,
  metadataKey: 256,
  metadataValue: 1024,
  /** database and table names */
  nameChars: 128,
  namespaceChars: 255,
  defaultLimit: 100,
  maxLimit: 1000,
  maxOffset: 100_000,
  /** ten years: anything longer is a mistake for a TTL */
  maxTtlSeconds: 10 * 365 * 24 * 3600,
});

export function bad(detail: string): Error {
  return BadRequest(STORE_ERROR_ID, detail);
}

// Control characters would corrupt log lines, file names and terminals.
const CONTROL = /\p{Cc}/u;
// A lone surrogate has no UTF-8 form: an engine would store U+FFFD instead, and two
// different keys would become one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Database and table names: safe as file, schema and subject names in every engine. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function checkNamespace(value: unknown, fallback: string = DEFAULT_NAMESPACE): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value.length === 0) throw bad('namespace must be a non-empty string');
  if (value.length > STORE_LIMITS.namespaceChars) throw bad(`namespace must be at most ${STORE_LIMITS.namespaceChars} characters`);
  if (CONTROL.test(value) || LONE_SURROGATE.test(value)) throw bad('namespace must not contain control characters');
  return value;
}

/** A database or table name: letters, digits, `_`, `.`, `-`, at most 128 characters. */
export function checkName(value: unknown, field: 'database' | 'table', fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value.length === 0) throw bad(`${field} must be a non-empty string`);
  if (value.length > STORE_LIMITS.nameChars) throw bad(`${field} must be at most ${STORE_LIMITS.nameChars} characters (got ${value.length})`);
  if (!NAME.test(value)) throw bad(`${field} "${printable(value)}" may hold only letters, digits, "_", "." and "-", and must not start with "." or "-"`);
  return value;
}

/**
 * A key (or a prefix, suffix or cursor when `allowEmpty`): well-formed Unicode without
 * NUL, at most 1 KiB as UTF-8.
 */
export function checkKey(value: unknown, field = 'key', allowEmpty = false): string {
  if (typeof value !== 'string') throw bad(`${field} must be a string`);
  if (value.length === 0 && !allowEmpty) throw bad(`${field} must not be empty`);
  // a quick bound before the exact byte count: a UTF-16 unit is at most 3 UTF-8 bytes
  if (value.length > STORE_LIMITS.keyBytes || Buffer.byteLength(value, 'utf8') > STORE_LIMITS.keyBytes) {
    throw bad(`${field} must be at most ${STORE_LIMITS.keyBytes} bytes as UTF-8`);
  }
  if (value.includes('\u0000')) throw bad(`${field} must not contain NUL characters`);
  if (LONE_SURROGATE.test(value)) throw bad(`${field} must be well-formed Unicode (it has a lone surrogate)`);
  return value;
}

/** The value as the JSON text an engine stores; a 400 naming where it is not JSON. */
export function checkValue(value: unknown): string {
  if (value === undefined) throw bad('value is required (use null for an empty value)');
  checkJson(value, 'value', 0);
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw bad(`value is not JSON: ${(err as Error).message}`);
  }
  if (typeof text !== 'string') throw bad('value is not JSON');
  if (text.length > STORE_LIMITS.valueBytes || Buffer.byteLength(text, 'utf8') > STORE_LIMITS.valueBytes) {
    throw bad(`value must be at most ${STORE_LIMITS.valueBytes} bytes as JSON (use the blob store for large data)`);
  }
  return text;
}

/** What JSON.stringify would silently change (NaN → null, a function dropped) is refused instead. */
function checkJson(value: unknown, path: string, depth: number): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw bad(`${path} must be a finite number (JSON has no NaN or Infinity)`);
      return;
    case 'object': {
      if (value === null) return;
      if (depth >= STORE_LIMITS.valueDepth) throw bad(`${path} nests deeper than ${STORE_LIMITS.valueDepth} levels`);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (value[i] === undefined) throw bad(`${path}[${i}] is undefined (JSON has no undefined; use null)`);
          checkJson(value[i], `${path}[${i}]`, depth + 1);
        }
        return;
      }
      // objects that say how they are JSON (Date) are taken as they say
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return;
      for (const key of Object.keys(value)) {
        const v = (value as Record<string, unknown>)[key];
        // an undefined property is absent in JSON, as it is for every JSON API
        if (v !== undefined) checkJson(v, `${path}.${key}`, depth + 1);
      }
      return;
    }
    default:
      throw bad(`${path} is a ${typeof value}, which JSON cannot hold`);
  }
}

/** Metadata: at most 64 flat pairs of a name and a string, finite number or boolean. */
export function checkMetadata(value: unknown): Record<string, MetadataValue> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw bad('metadata must be an object of strings, numbers and booleans');
  const keys = Object.keys(value);
  if (keys.length > STORE_LIMITS.metadataEntries) throw bad(`metadata must have at most ${STORE_LIMITS.metadataEntries} entries (got ${keys.length})`);
  if (keys.length === 0) return undefined;
  const entries: [string, MetadataValue][] = [];
  for (const key of keys) {
    if (key.length === 0 || key.length > STORE_LIMITS.metadataKey) throw bad(`metadata keys must be 1 to ${STORE_LIMITS.metadataKey} characters`);
    if (CONTROL.test(key) || LONE_SURROGATE.test(key)) throw bad(`metadata key "${printable(key)}" must not contain control characters`);
    // JSON parsers (zod's records among them) treat it as the prototype, not as a key
    if (key === '__proto__') throw bad('metadata key "__proto__" is not allowed');
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'string') {
      if (v.length > STORE_LIMITS.metadataValue) throw bad(`metadata.${key} must be at most ${STORE_LIMITS.metadataValue} characters`);
      if (LONE_SURROGATE.test(v)) throw bad(`metadata.${key} must be well-formed Unicode`);
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw bad(`metadata.${key} must be a finite number`);
    } else if (typeof v !== 'boolean') {
      throw bad(`metadata.${key} must be a string, a number or a boolean`);
    }
    entries.push([key, v]);
  }
  // fromEntries defines own properties: a key named __proto__ stays a plain key
  return Object.fromEntries(entries);
}

/** TTL in seconds (fractions allowed); 0 = no expiry. */
export function checkTtl(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > STORE_LIMITS.maxTtlSeconds) {
    throw bad(`ttl must be a number of seconds between 0 and ${STORE_LIMITS.maxTtlSeconds}`);
  }
  return value;
}

/** The expiry (epoch ms) of a write: from `ttl` when given, else the record's own. */
export function expiryOf(record: Pick<StoreRecord, 'expiry'>, ttl: number | undefined, now: number): number | undefined {
  if (ttl !== undefined) {
    const seconds = checkTtl(ttl);
    return seconds === 0 ? undefined : Math.ceil(now + seconds * 1000);
  }
  if (record.expiry === undefined || record.expiry === null) return undefined;
  const e = record.expiry;
  if (typeof e !== 'number' || !Number.isInteger(e) || e < 0 || e > now + STORE_LIMITS.maxTtlSeconds * 1000) {
    throw bad('expiry must be a time in epoch milliseconds at most ten years ahead');
  }
  return e;
}

export function checkLimit(value: unknown, field = 'limit'): number {
  if (value === undefined) return STORE_LIMITS.defaultLimit;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > STORE_LIMITS.maxLimit) {
    throw bad(`${field} must be an integer from 1 to ${STORE_LIMITS.maxLimit}`);
  }
  return value;
}

export function checkOffset(value: unknown, field = 'offset'): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > STORE_LIMITS.maxOffset) {
    throw bad(`${field} must be an integer from 0 to ${STORE_LIMITS.maxOffset} (page further with after, the last key of a page)`);
  }
  return value;
}

function checkOrder(value: unknown): Order {
  if (value === undefined || value === 'asc') return 'asc';
  if (value === 'desc') return 'desc';
  throw bad('order must be "asc" or "desc"');
}

/** Where a call goes, with the store's defaults filled in. */
export interface Scope {
  namespace: string;
  database: string;
  table: string;
}

export function resolveScope(options: ScopeOptions, defaults: Required<StoreDefaults>, namespace = DEFAULT_NAMESPACE): Scope {
  return {
    namespace: checkNamespace(options.namespace, namespace),
    database: checkName(options.database, 'database', defaults.database),
    table: checkName(options.table, 'table', defaults.table),
  };
}

export function checkDefaults(defaults: StoreDefaults = {}): Required<StoreDefaults> {
  return { database: checkName(defaults.database, 'database', DEFAULT_DATABASE), table: checkName(defaults.table, 'table', DEFAULT_TABLE) };
}

/**
 * A scan of the keys of one table, normalised: keys that start with `prefix`, end with
 * `suffix`, lie strictly between `after` and `before`, in `order`, `offset` skipped,
 * `limit` at most. Empty strings mean "no condition".
 */
export interface KeyScan {
  prefix: string;
  suffix: string;
  after: string | undefined;
  before: string | undefined;
  order: Order;
  limit: number;
  offset: number;
}

function checkScan(options: ScanOptions, prefix: string, suffix: string): KeyScan {
  return {
    prefix,
    suffix,
    after: options.after === undefined ? undefined : checkKey(options.after, 'after', true),
    before: options.before === undefined ? undefined : checkKey(options.before, 'before', true),
    order: checkOrder(options.order),
    limit: checkLimit(options.limit),
    offset: checkOffset(options.offset),
  };
}

/** A read: one exact key, or a scan when `prefix` or `suffix` is set. */
export type ReadPlan = { exact: string } | { scan: KeyScan };

export function readPlan(key: unknown, options: ReadOptions): ReadPlan {
  const byPrefix = checkFlag(options.prefix, 'prefix');
  const bySuffix = checkFlag(options.suffix, 'suffix');
  if (!byPrefix && !bySuffix) {
    // the window means nothing for one key, but a bad one is refused the same everywhere
    checkScan(options, '', '');
    return { exact: checkKey(key) };
  }
  const k = checkKey(key, 'key', true);
  return { scan: checkScan(options, byPrefix ? k : '', bySuffix ? k : '') };
}

export function listScan(options: ListOptions): KeyScan {
  const prefix = options.prefix === undefined ? '' : checkKey(options.prefix, 'prefix', true);
  const suffix = options.suffix === undefined ? '' : checkKey(options.suffix, 'suffix', true);
  return checkScan(options, prefix, suffix);
}

function checkFlag(value: unknown, field: string): boolean {
  if (value === undefined || value === false) return false;
  if (value === true) return true;
  throw bad(`${field} must be true or false`);
}

// ---- key order ---------------------------------------------------------------------

/**
 * Compares keys by Unicode code point, which is the byte order of their UTF-8 (what
 * SQLite, Postgres with C collation and NATS use). JavaScript's own `<` compares UTF-16
 * code units, which differs only between surrogates (U+10000 and up) and U+E000–U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) return codePointRank(x) - codePointRank(y);
    return x - y;
  }
  return a.length - b.length;
}

/** Surrogates (code points above U+FFFF) rank after U+E000–U+FFFF. */
function codePointRank(unit: number): number {
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/**
 * The least key greater than every key that starts with `prefix` (for `key >= prefix AND
 * key < bound`), or undefined when there is none (the prefix is all U+10FFFF) or the
 * prefix is empty.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const points = [...prefix];
  while (points.length > 0) {
    const last = (points.pop() as string).codePointAt(0) as number;
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      return points.join('') + String.fromCodePoint(next);
    }
  }
  return undefined;
}

/** The key read backwards by code point: suffix scans become prefix scans over it. */
export function reverseKey(key: string): string {
  return [...key].reverse().join('');
}

/** Whether a key is in the scan's window (prefix, suffix, after, before). */
export function keyMatches(key: string, scan: KeyScan): boolean {
  if (scan.prefix && !key.startsWith(scan.prefix)) return false;
  if (scan.suffix && !key.endsWith(scan.suffix)) return false;
  if (scan.after !== undefined && compareKeys(key, scan.after) <= 0) return false;
  if (scan.before !== undefined && compareKeys(key, scan.before) >= 0) return false;
  return true;
}

/** For error messages: no control characters, not too long. */
export function printable(text: string, max = 64): string {
  const clean = text.replace(/\p{Cc}/gu, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/**
 * Cuts a list of answers so that their JSON fits in one response frame: items are kept
 * while the running total stays under `budget` bytes (at least one is always kept).
 * Returns how many fit.
 */
export function fitting<T>(items: readonly T[], budget: number): number {
  let total = 0;
  for (let i = 0; i < items.length; i++) {
    total += Buffer.byteLength(JSON.stringify(items[i]), 'utf8') + 1;
    if (total > budget && i > 0) return i;
  }
  return items.length;
}
