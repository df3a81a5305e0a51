/**
 * The cache: short-lived key-value data, namespaced, with TTLs and atomic counters — the
 * API of M3O's Cache service (Set, Get, Delete, Increment, Decrement, ListKeys), so that
 * programs written for it work.
 *
 * Every engine (memory, the remote cache that talks to `micro server`, Redis in the nats
 * profile) behaves the same, which `cacheContract` in contract.ts checks:
 *
 * - A value is any JSON (at most 1 MiB as JSON); a set replaces the value and the TTL
 *   (no `ttl` or 0: no expiry).
 * - An expired key is gone at once (get, increment, listKeys).
 * - `increment`/`decrement` are atomic; a missing key counts from 0, a key that holds
 *   anything but a safe integer (|n| ≤ 2^53 − 1) is a 409, and so is a result outside
 *   that range; neither changes what is stored. They keep the key's TTL.
 * - A cache may forget a key before its TTL (that is what makes it a cache): the memory
 *   engine evicts the least recently used keys of a namespace past its bounds, Redis
 *   does what its `maxmemory-policy` says.
 * - Bad input is a 400 naming the field and changes nothing.
 */

/** The id cache errors carry. */
export const CACHE_ERROR_ID = 'micro.cache';

/** Bounds on every input. */
export const CACHE_LIMITS = Object.freeze({
  /** a key or a prefix, in UTF-8 bytes */
  keyBytes: 1024,
  /** a value as JSON, in UTF-8 bytes */
  valueBytes: 1024 * 1024,
  /** ten years: anything longer is a mistake for a TTL */
  maxTtlSeconds: 10 * 365 * 24 * 3600,
  /** ListKeys */
  defaultLimit: 100,
  maxLimit: 1000,
  namespaceChars: 255,
});

/** A key as Get returns it. */
export interface CacheItem {
  key: string;
  /** any JSON value */
  value: unknown;
  /** whole seconds left before it expires (rounded up), or 0 when it does not */
  ttl: number;
}

export interface CacheOptions {
  /** default: the cache's (memory: `micro`; remote: the caller's own) */
  namespace?: string;
}

export interface CacheSetOptions extends CacheOptions {
  /** seconds until the key expires (fractions allowed; absent or 0 = never) */
  ttl?: number;
}

export interface CacheListOptions extends CacheOptions {
  /** only keys that start with this (matched literally: `*` and `?` are no wildcards) */
  prefix?: string;
  /** default 100, at most 1000 */
  limit?: number;
}

export interface Cache {
  readonly name: string;
  /** Stores `value` at `key`, replacing its value and TTL. */
  set(key: string, value: unknown, options?: CacheSetOptions): Promise<void>;
  /** The key's value and TTL, or undefined when it is missing or expired. */
  get(key: string, options?: CacheOptions): Promise<CacheItem | undefined>;
  /** Deletes the key; deleting a missing key is not an error. */
  delete(key: string, options?: CacheOptions): Promise<void>;
  /** Adds `delta` (an integer, default 1) atomically and returns the new value. */
  increment(key: string, delta?: number, options?: CacheOptions): Promise<number>;
  /** Subtracts `delta` (an integer, default 1) atomically and returns the new value. */
  decrement(key: string, delta?: number, options?: CacheOptions): Promise<number>;
  /**
   * Keys of the namespace that start with `prefix`, sorted by code point, at most
   * `limit`. When more match, which ones come back is the engine's (memory: the first;
   * Redis: those its scan met first).
   */
  listKeys(options?: CacheListOptions): Promise<string[]>;
  close?(): Promise<void>;
}
