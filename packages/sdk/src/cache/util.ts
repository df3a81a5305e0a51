/*
 * What every cache engine shares: the checks of every input, so that every engine
 * accepts and refuses exactly the same requests with the same 400s, and the 409s of the
 * counters. Values and namespaces follow the store's rules (store/util.ts), which these
 * reuse; keys are stricter than the store's: no control character at all, since cache
 * keys end up in Redis key names, logs and terminals.
 */

import { BadRequest, Conflict, MicroError } from '../errors/errors.js';
import { DEFAULT_NAMESPACE } from '../registry/registry.js';
import { checkNamespace as checkStoreNamespace, checkValue as checkStoreValue, printable } from '../store/util.js';
import { CACHE_ERROR_ID, CACHE_LIMITS } from './cache.js';

export function bad(detail: string): MicroError {
  return BadRequest(CACHE_ERROR_ID, detail);
}

/** The store's check, with the cache's error id. */
function asCache<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof MicroError) throw new MicroError(CACHE_ERROR_ID, err.code, err.detail);
    throw err;
  }
}

const CONTROL = /\p{Cc}/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * A key (or, with `allowEmpty`, a prefix): well-formed Unicode without control
 * characters, at most 1 KiB as UTF-8. `*`, `?` and `[` are ordinary characters.
 */
export function checkKey(value: unknown, field = 'key', allowEmpty = false): string {
  if (typeof value !== 'string') throw bad(`${field} must be a string`);
  if (value.length === 0 && !allowEmpty) throw bad(`${field} must not be empty`);
  // a quick bound before the exact byte count: a UTF-16 unit is at most 3 UTF-8 bytes
  if (value.length > CACHE_LIMITS.keyBytes || Buffer.byteLength(value, 'utf8') > CACHE_LIMITS.keyBytes) {
    throw bad(`${field} must be at most ${CACHE_LIMITS.keyBytes} bytes as UTF-8`);
  }
  if (CONTROL.test(value)) throw bad(`${field} must not contain control characters (got "${printable(value)}")`);
  // a lone surrogate has no UTF-8 form: two different keys would become one
  if (LONE_SURROGATE.test(value)) throw bad(`${field} must be well-formed Unicode (it has a lone surrogate)`);
  return value;
}

/** The value as the JSON text an engine keeps: any JSON, at most 1 MiB. */
export function checkValue(value: unknown): string {
  return asCache(() => checkStoreValue(value));
}

export function checkNamespace(value: unknown, fallback: string = DEFAULT_NAMESPACE): string {
  return asCache(() => checkStoreNamespace(value, fallback));
}

/** A TTL in seconds (fractions allowed): 0 = never expires. */
export function checkTtl(value: unknown): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > CACHE_LIMITS.maxTtlSeconds) {
    throw bad(`ttl must be a number of seconds from 0 (never expires) to ${CACHE_LIMITS.maxTtlSeconds}`);
  }
  return value;
}

/** The TTL as the milliseconds an engine keeps (at least 1), or 0 for none. */
export function ttlMillis(ttl: number): number {
  return ttl === 0 ? 0 : Math.max(1, Math.ceil(ttl * 1000));
}

/** What Get says of a key with `ms` left: whole seconds, rounded up, so a live key never says 0 (none). */
export function secondsLeft(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

const INTEGER_TEXT = /^-?\d{1,16}$/;

/**
 * The delta of Increment/Decrement: a safe integer (default 1). A decimal string of one
 * is taken too, as JSON APIs of int64 fields (M3O's among them) send them.
 */
export function checkDelta(value: unknown, field = 'value'): number {
  if (value === undefined || value === null) return 1;
  const n = typeof value === 'string' && INTEGER_TEXT.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
    throw bad(`${field} must be an integer from -${Number.MAX_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}`);
  }
  // -0 is 0 (JSON would say 0 anyway)
  return n === 0 ? 0 : n;
}

export function checkLimit(value: unknown, field = 'limit'): number {
  if (value === undefined || value === null) return CACHE_LIMITS.defaultLimit;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > CACHE_LIMITS.maxLimit) {
    throw bad(`${field} must be an integer from 1 to ${CACHE_LIMITS.maxLimit}`);
  }
  return value;
}

/** The 409 of a counter on a key that holds no safe integer. */
export function notAnInteger(key: string): MicroError {
  return Conflict(CACHE_ERROR_ID, `the value of key "${printable(key)}" is not an integer; increment and decrement need one`);
}

/** The 409 of a counter whose result would leave the safe integers. */
export function overflow(key: string, delta: number): MicroError {
  return Conflict(CACHE_ERROR_ID, `adding ${delta} to key "${printable(key)}" would leave the integers JSON can carry exactly (|n| ≤ ${Number.MAX_SAFE_INTEGER})`);
}

/** The counter's new value from the JSON text a key holds (undefined: missing), or a 409. */
export function addTo(key: string, json: string | undefined, delta: number): number {
  let current = 0;
  if (json !== undefined) {
    const v: unknown = JSON.parse(json);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw notAnInteger(key);
    current = v;
  }
  const next = current + delta;
  if (!Number.isSafeInteger(next)) throw overflow(key, delta);
  return next === 0 ? 0 : next;
}

export { printable };
