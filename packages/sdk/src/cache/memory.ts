/*
 * An in-process cache: the SDK's default without MICRO_SERVER, and the engine of the
 * cache core service of `micro server` in the local profile. Bounded per namespace (keys
 * and bytes), evicting the least recently used keys past the bounds, so no caller can
 * make it grow without limit. Values are kept as their JSON text: changing an object
 * after setting or getting it changes nothing cached. Expired keys are dropped when met
 * and by a sweep every few thousand writes, so no timer runs.
 */

import { PayloadTooLarge, ServiceUnavailable } from '../errors/errors.js';
import { compareKeys } from '../store/util.js';
import { CACHE_ERROR_ID, type Cache, type CacheItem, type CacheListOptions, type CacheOptions, type CacheSetOptions } from './cache.js';
import { addTo, checkDelta, checkKey, checkLimit, checkNamespace, checkTtl, checkValue, secondsLeft, ttlMillis } from './util.js';

export interface MemoryCacheOptions {
  /** keys per namespace before the least recently used go (default 100,000) */
  maxKeys?: number;
  /** bytes (UTF-8 of keys and JSON values) per namespace before the least recently used go (default 64 MiB) */
  maxBytes?: number;
  /** the namespace of calls that name none (default `micro`) */
  namespace?: string;
  /** the clock, epoch ms; tests inject one to move time without sleeping */
  now?: () => number;
  /** a per-namespace byte quota that refuses (unlike maxBytes, which evicts); default none */
  quota?: MemoryCacheQuota;
}

/**
 * A byte quota per namespace (micro server's `cacheBytes`). `limit` is asked before each
 * write; the check and the write then run with no await between, so of concurrent writes
 * with room for k exactly k pass. A write that does not grow the namespace always passes.
 */
export interface MemoryCacheQuota {
  /** the namespace's limit in bytes, or null for none */
  limit(namespace: string): Promise<number | null>;
  /** the error of a write that would pass the limit (`used`: the namespace's bytes now) */
  refuse(namespace: string, used: number, max: number): Error;
}

export const MEMORY_CACHE_DEFAULTS = Object.freeze({ maxKeys: 100_000, maxBytes: 64 * 1024 * 1024 });

interface Entry {
  json: string;
  /** epoch ms; 0 = never */
  expiry: number;
  bytes: number;
}

/** One namespace's keys, least recently used first (a Map keeps insertion order). */
interface Space {
  entries: Map<string, Entry>;
  bytes: number;
}

/** Writes between two sweeps of expired keys. */
const SWEEP_EVERY = 4096;

export class MemoryCache implements Cache {
  readonly name = 'memory';
  /** keys dropped to keep within the bounds, since the start */
  evictions = 0;
  private readonly spaces = new Map<string, Space>();
  private readonly maxKeys: number;
  private readonly maxBytes: number;
  private readonly namespace: string;
  private readonly now: () => number;
  private readonly quota: MemoryCacheQuota | undefined;
  private writes = 0;
  private closed = false;

  constructor(options: MemoryCacheOptions = {}) {
    this.maxKeys = positive(options.maxKeys, 'maxKeys', MEMORY_CACHE_DEFAULTS.maxKeys);
    this.maxBytes = positive(options.maxBytes, 'maxBytes', MEMORY_CACHE_DEFAULTS.maxBytes);
    this.namespace = checkNamespace(options.namespace);
    this.now = options.now ?? Date.now;
    this.quota = options.quota;
  }

  async set(key: string, value: unknown, options: CacheSetOptions = {}): Promise<void> {
    this.checkOpen();
    const k = checkKey(key);
    const json = checkValue(value);
    const ttl = checkTtl(options.ttl);
    const ns = checkNamespace(options.namespace, this.namespace);
    const bytes = Buffer.byteLength(k, 'utf8') + Buffer.byteLength(json, 'utf8');
    if (bytes > this.maxBytes) {
      throw PayloadTooLarge(CACHE_ERROR_ID, `key and value take ${bytes} bytes, more than this cache holds per namespace (${this.maxBytes})`);
    }
    const max = await this.limitOf(ns);
    this.put(ns, k, { json, expiry: ttl === 0 ? 0 : this.now() + ttlMillis(ttl), bytes }, max);
  }

  async get(key: string, options: CacheOptions = {}): Promise<CacheItem | undefined> {
    this.checkOpen();
    const k = checkKey(key);
    const ns = checkNamespace(options.namespace, this.namespace);
    const now = this.now();
    const entry = this.live(ns, k, now);
    if (!entry) return undefined;
    this.touch(ns, k, entry);
    return { key: k, value: JSON.parse(entry.json), ttl: entry.expiry === 0 ? 0 : secondsLeft(entry.expiry - now) };
  }

  async delete(key: string, options: CacheOptions = {}): Promise<void> {
    this.checkOpen();
    const k = checkKey(key);
    const ns = checkNamespace(options.namespace, this.namespace);
    this.remove(ns, k);
  }

  async increment(key: string, delta?: number, options: CacheOptions = {}): Promise<number> {
    return this.add(key, checkDelta(delta), options);
  }

  async decrement(key: string, delta?: number, options: CacheOptions = {}): Promise<number> {
    return this.add(key, -checkDelta(delta), options);
  }

  async listKeys(options: CacheListOptions = {}): Promise<string[]> {
    this.checkOpen();
    const prefix = options.prefix === undefined ? '' : checkKey(options.prefix, 'prefix', true);
    const limit = checkLimit(options.limit);
    const ns = checkNamespace(options.namespace, this.namespace);
    const space = this.spaces.get(ns);
    if (!space) return [];
    const now = this.now();
    const keys: string[] = [];
    for (const [key, entry] of space.entries) {
      if (expired(entry, now)) this.remove(ns, key);
      else if (key.startsWith(prefix)) keys.push(key);
    }
    return keys.sort(compareKeys).slice(0, limit);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.spaces.clear();
  }

  /** Drops every key of a namespace (the server's namespace purge). */
  purgeNamespace(namespace: string): void {
    this.checkOpen();
    this.spaces.delete(checkNamespace(namespace));
  }

  /** Drops every expired key (runs every few thousand writes; tests may call it). */
  sweep(): void {
    const now = this.now();
    for (const [ns, space] of this.spaces) {
      for (const [key, entry] of space.entries) if (expired(entry, now)) this.remove(ns, key);
    }
  }

  /** Keys and bytes a namespace holds now (expired keys not yet dropped included). */
  usage(namespace?: string): { keys: number; bytes: number } {
    const space = this.spaces.get(checkNamespace(namespace, this.namespace));
    return { keys: space?.entries.size ?? 0, bytes: space?.bytes ?? 0 };
  }

  private async add(key: string, delta: number, options: CacheOptions): Promise<number> {
    this.checkOpen();
    const k = checkKey(key);
    const ns = checkNamespace(options.namespace, this.namespace);
    const max = await this.limitOf(ns);
    const entry = this.live(ns, k, this.now());
    // a 409 leaves the key as it was
    const next = addTo(k, entry?.json, delta);
    const json = String(next);
    // the key keeps its TTL, as Redis's INCRBY does
    this.put(ns, k, { json, expiry: entry?.expiry ?? 0, bytes: Buffer.byteLength(k, 'utf8') + json.length }, max);
    return next;
  }

  /** The namespace's quota in bytes (null: none); the only await of a write. */
  private async limitOf(ns: string): Promise<number | null> {
    return this.quota ? this.quota.limit(ns) : null;
  }

  /**
   * Stores an entry as the most recently used, then evicts the least recently used past
   * the bounds. A write that would grow the namespace past `max` is refused first.
   */
  private put(ns: string, key: string, entry: Entry, max: number | null = null): void {
    this.checkOpen();
    if (this.quota && max !== null) this.admit(ns, key, entry.bytes, max, this.quota);
    let space = this.spaces.get(ns);
    if (!space) {
      space = { entries: new Map(), bytes: 0 };
      this.spaces.set(ns, space);
    }
    const old = space.entries.get(key);
    if (old) {
      space.entries.delete(key);
      space.bytes -= old.bytes;
    }
    space.entries.set(key, entry);
    space.bytes += entry.bytes;
    const now = this.now();
    for (const [k, e] of space.entries) {
      if (space.entries.size <= this.maxKeys && space.bytes <= this.maxBytes) break;
      if (k === key) continue;
      space.entries.delete(k);
      space.bytes -= e.bytes;
      // an expired key is dropped, not evicted: it was gone already
      if (!expired(e, now)) this.evictions++;
    }
    if (++this.writes % SWEEP_EVERY === 0) this.sweep();
  }

  /** Refuses a write that would grow the namespace past `max`; expired keys are dropped before a refusal (they are gone already). */
  private admit(ns: string, key: string, bytes: number, max: number, quota: MemoryCacheQuota): void {
    const over = () => {
      const space = this.spaces.get(ns);
      const growth = bytes - (space?.entries.get(key)?.bytes ?? 0);
      return growth > 0 && (space?.bytes ?? 0) + growth > max;
    };
    if (!over()) return;
    const now = this.now();
    for (const [k, e] of this.spaces.get(ns)?.entries ?? []) if (expired(e, now)) this.remove(ns, k);
    if (over()) throw quota.refuse(ns, this.spaces.get(ns)?.bytes ?? 0, max);
  }

  private live(ns: string, key: string, now: number): Entry | undefined {
    const entry = this.spaces.get(ns)?.entries.get(key);
    if (!entry) return undefined;
    if (!expired(entry, now)) return entry;
    this.remove(ns, key);
    return undefined;
  }

  /** Marks a key as the most recently used. */
  private touch(ns: string, key: string, entry: Entry): void {
    const entries = this.spaces.get(ns)?.entries;
    if (!entries) return;
    entries.delete(key);
    entries.set(key, entry);
  }

  private remove(ns: string, key: string): void {
    const space = this.spaces.get(ns);
    const entry = space?.entries.get(key);
    if (!space || !entry) return;
    space.entries.delete(key);
    space.bytes -= entry.bytes;
    if (space.entries.size === 0) this.spaces.delete(ns);
  }

  private checkOpen(): void {
    if (this.closed) throw ServiceUnavailable(CACHE_ERROR_ID, 'cache is closed');
  }
}

function expired(entry: Entry, now: number): boolean {
  return entry.expiry !== 0 && entry.expiry <= now;
}

function positive(value: number | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`MemoryCache: ${field} must be a positive integer, not ${String(value)}`);
  return value;
}
