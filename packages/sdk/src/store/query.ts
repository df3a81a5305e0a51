/*
 * Queries over the JSON values of a table (Store.query and Store.count): a small typed
 * tree of conditions that each engine compiles itself (memory evaluates it here, SQLite
 * and PostgreSQL turn it into SQL with every value a bound parameter). The checks and
 * the meaning live here, once, so every engine accepts, refuses and answers the same.
 *
 * Meaning (what storeContract checks on every engine):
 * - A field is a dotted path into the record's value (`user.age`): segments of
 *   [A-Za-z0-9_], at most 8 deep. A record whose value has no such field, or a field of
 *   another JSON type than the condition's value, does not match (`==`, `<`, ...).
 * - `!=` is the negation of `==`: it matches records without the field too.
 * - Strings compare by code point, numbers as numbers; booleans only with `==`/`!=`.
 * - orderBy (a field path) orders by that field, records without it first in `asc` and
 *   last in `desc`; ties (and no orderBy) go by key, in the same direction. Records whose
 *   field holds different JSON types order by type in an engine's own way.
 */

import type { Order, QueryOptions, CountOptions, StoreQueryValue, StoreQueryOp } from './store.js';
import { STORE_LIMITS, bad, checkLimit, checkOffset, compareKeys, printable } from './util.js';

export const QUERY_LIMITS = Object.freeze({
  /** segments of a field path */
  pathDepth: 8,
  /** characters of a field path */
  pathChars: 256,
  /** characters of a string value */
  valueChars: 1024,
  /** conditions (and/or nodes included) in one where */
  nodes: 64,
  /** nesting of and/or */
  depth: 8,
});

export const QUERY_OPS: readonly StoreQueryOp[] = ['==', '!=', '<', '>', '<=', '>='];

const SEGMENT = /^[A-Za-z0-9_]+$/;

/** A field path as its segments; a 400 naming `field` when it is not one. */
export function checkPath(value: unknown, field = 'field'): string[] {
  if (typeof value !== 'string' || value.length === 0) throw bad(`${field} must be a non-empty field path such as "user.age"`);
  if (value.length > QUERY_LIMITS.pathChars) throw bad(`${field} must be at most ${QUERY_LIMITS.pathChars} characters`);
  const segments = value.split('.');
  if (segments.length > QUERY_LIMITS.pathDepth) throw bad(`${field} "${printable(value)}" is deeper than ${QUERY_LIMITS.pathDepth} segments`);
  for (const s of segments) if (!SEGMENT.test(s)) throw bad(`${field} "${printable(value)}" may hold only segments of letters, digits and "_" joined by "."`);
  return segments;
}

/** A checked condition: its path split, ready for an engine. */
export type CheckedWhere = { path: string[]; field: string; op: StoreQueryOp; value: StoreQueryValue } | { and: CheckedWhere[] } | { or: CheckedWhere[] };

/** The where of a query, checked (bounded size and depth, known ops, typed values). */
export function checkWhere(where: unknown): CheckedWhere | undefined {
  if (where === undefined || where === null) return undefined;
  const count = { n: 0 };
  return checkNode(where, 'where', 0, count);
}

function checkNode(node: unknown, at: string, depth: number, count: { n: number }): CheckedWhere {
  if (++count.n > QUERY_LIMITS.nodes) throw bad(`where must have at most ${QUERY_LIMITS.nodes} conditions`);
  if (typeof node !== 'object' || node === null || Array.isArray(node)) throw bad(`${at} must be a condition {field, op, value} or {and: [...]} / {or: [...]}`);
  const n = node as Record<string, unknown>;
  for (const join of ['and', 'or'] as const) {
    if (!(join in n)) continue;
    if (depth >= QUERY_LIMITS.depth) throw bad(`${at} nests and/or deeper than ${QUERY_LIMITS.depth} levels`);
    const list = n[join];
    if (!Array.isArray(list) || list.length === 0) throw bad(`${at}.${join} must be a non-empty array of conditions`);
    const checked = list.map((c, i) => checkNode(c, `${at}.${join}[${i}]`, depth + 1, count));
    return join === 'and' ? { and: checked } : { or: checked };
  }
  const path = checkPath(n.field, `${at}.field`);
  const op = n.op as StoreQueryOp;
  if (!QUERY_OPS.includes(op)) throw bad(`${at}.op must be one of ${QUERY_OPS.join(' ')}`);
  const value = checkQueryValue(n.value, `${at}.value`);
  if (typeof value === 'boolean' && op !== '==' && op !== '!=') throw bad(`${at}: booleans compare only with == and !=`);
  return { path, field: path.join('.'), op, value };
}

function checkQueryValue(value: unknown, at: string): StoreQueryValue {
  if (typeof value === 'string') {
    if (value.length > QUERY_LIMITS.valueChars) throw bad(`${at} must be at most ${QUERY_LIMITS.valueChars} characters`);
    if (value.includes('\u0000')) throw bad(`${at} must not contain NUL characters`);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw bad(`${at} must be a finite number`);
    return value;
  }
  if (typeof value === 'boolean') return value;
  throw bad(`${at} must be a string, a number or a boolean`);
}

/** A query, checked: what every engine compiles. */
export interface CheckedQuery {
  where: CheckedWhere | undefined;
  orderBy: string[] | undefined;
  order: Order;
  limit: number;
  offset: number;
}

export function checkQuery(options: QueryOptions): CheckedQuery {
  const order = options.order ?? 'asc';
  if (order !== 'asc' && order !== 'desc') throw bad('order must be "asc" or "desc"');
  return {
    where: checkWhere(options.where),
    orderBy: options.orderBy === undefined ? undefined : checkPath(options.orderBy, 'orderBy'),
    order,
    limit: checkLimit(options.limit),
    offset: checkOffset(options.offset),
  };
}

export function checkCount(options: CountOptions): CheckedWhere | undefined {
  return checkWhere(options.where);
}

/** Every distinct field path a query names (where and orderBy), for engines that index them. */
export function queriedPaths(query: { where: CheckedWhere | undefined; orderBy?: string[] | undefined }): string[][] {
  const seen = new Map<string, string[]>();
  const walk = (w: CheckedWhere | undefined) => {
    if (!w) return;
    if ('and' in w) w.and.forEach(walk);
    else if ('or' in w) w.or.forEach(walk);
    else seen.set(w.field, w.path);
  };
  walk(query.where);
  if (query.orderBy) seen.set(query.orderBy.join('.'), query.orderBy);
  return [...seen.values()];
}

// ---- evaluation in JavaScript (the memory engine, and a reference for the others) ----

const MISSING = Symbol('missing');

/** The JSON value at `path` in `value`, or MISSING. Own properties only: `__proto__` is data. */
export function valueAt(value: unknown, path: readonly string[]): unknown {
  let cur: unknown = value;
  for (const segment of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.prototype.hasOwnProperty.call(cur, segment)) return MISSING;
    cur = (cur as Record<string, unknown>)[segment];
  }
  return cur;
}

export function matches(value: unknown, where: CheckedWhere | undefined): boolean {
  if (!where) return true;
  if ('and' in where) return where.and.every((w) => matches(value, w));
  if ('or' in where) return where.or.some((w) => matches(value, w));
  const field = valueAt(value, where.path);
  if (where.op === '!=') return !(typeof field === typeof where.value && field === where.value);
  if (typeof field !== typeof where.value) return false;
  const c = typeof field === 'string' ? compareKeys(field, where.value as string) : (field as number) - (where.value as number);
  switch (where.op) {
    case '==':
      return field === where.value;
    case '<':
      return c < 0;
    case '>':
      return c > 0;
    case '<=':
      return c <= 0;
    default:
      return c >= 0;
  }
}

/** Orders [key, value, ...] tuples as every engine does (see the top of this file). */
export function compareForOrder(orderBy: readonly string[] | undefined, order: Order): (a: readonly [string, unknown, ...unknown[]], b: readonly [string, unknown, ...unknown[]]) => number {
  const sign = order === 'desc' ? -1 : 1;
  return (a, b) => {
    if (orderBy) {
      const c = compareFieldValues(valueAt(a[1], orderBy), valueAt(b[1], orderBy));
      if (c !== 0) return sign * c;
    }
    return sign * compareKeys(a[0], b[0]);
  };
}

/** Missing (and null) first, then numbers, then strings, then anything else by its JSON. */
function compareFieldValues(x: unknown, y: unknown): number {
  const rank = (v: unknown) => (v === MISSING || v === null ? 0 : typeof v === 'boolean' ? 1 : typeof v === 'number' ? 2 : typeof v === 'string' ? 3 : 4);
  const rx = rank(x);
  const ry = rank(y);
  if (rx !== ry) return rx - ry;
  if (rx === 2) return (x as number) - (y as number);
  if (rx === 1) return Number(x) - Number(y);
  if (rx === 3) return compareKeys(x as string, y as string);
  if (rx === 4) return compareKeys(JSON.stringify(x), JSON.stringify(y));
  return 0;
}

/** For engines that bound how many query indexes a table may have. */
export const MAX_QUERY_INDEXES = 8;

/** The largest result a query may return: the store's page bound. */
export const MAX_QUERY_LIMIT = STORE_LIMITS.maxLimit;
