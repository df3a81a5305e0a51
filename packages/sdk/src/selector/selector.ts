/*
 * The selector picks the node a call goes to. It sits on the hot path of every call, so
 * it answers from a cache: one lookup of (namespace, service) and a walk over a frozen
 * array, no registry call and no allocation. The cache stays fresh through one registry
 * watcher per namespace in use (any change to a service drops its entry; the next call
 * re-reads it) and, should a watcher die or miss something, a max-age.
 *
 * Each node has a circuit breaker fed by `mark()`: after `failureThreshold` consecutive
 * failures the node is skipped for `resetTimeout` ms, then one trial call may go to it;
 * success closes the circuit, failure opens it again.
 */

import { BadRequest, NotFound, ServiceUnavailable } from '../errors/errors.js';
import { DEFAULT_NAMESPACE } from '../registry/registry.js';
import type { NodeRecord, Registry, ServiceRecord, Watcher } from '../registry/registry.js';

export type Strategy = 'roundrobin' | 'random';

export interface BreakerOptions {
  /** consecutive failures that open a node's circuit (default 5) */
  failureThreshold?: number;
  /** ms an open circuit waits before one trial call (default 10,000) */
  resetTimeout?: number;
}

export interface SelectorOptions {
  registry: Registry;
  /** default `roundrobin` */
  strategy?: Strategy;
  breaker?: BreakerOptions;
  /** ms a cached service is trusted even without news from the watcher (default 30,000) */
  cacheMaxAge?: number;
  /** (namespace, service) pairs kept in the cache at most (default 10,000) */
  cacheSize?: number;
  /** the clock, in ms; tests inject one to move time without sleeping */
  now?: () => number;
}

export interface SelectOptions {
  namespace?: string;
  /** only nodes of this version */
  version?: string;
  /** ids of nodes already tried by this call */
  exclude?: ReadonlySet<string>;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

const ERROR_ID = 'micro.selector';
const MAX_NAME = 255;
/** An unknown service is re-checked this soon (ms): it may be starting. */
const NEGATIVE_MAX_AGE = 1000;
/** When the registry fails, the last known nodes are used this long (ms) before asking again. */
const STALE_RETRY = 1000;
/** A namespace whose watcher failed is not watched again sooner than this (ms). */
const WATCH_RETRY = 1000;
/** Breaker states kept at most: failures of nodes that went away must not pile up. */
const MAX_BREAKERS = 10_000;
const NO_NODES: readonly NodeRecord[] = Object.freeze([]);

interface Entry {
  namespace: string;
  service: string;
  /** clock ms after which the entry is re-read */
  expiresAt: number;
  /** nodes of every version, frozen: handed to callers as they are */
  nodes: readonly NodeRecord[];
  byVersion: Map<string, readonly NodeRecord[]>;
  /** round-robin positions: `cursor` over all nodes, `cursors` per version */
  cursor: number;
  cursors: Map<string, number>;
}

interface Fetch {
  promise: Promise<Entry>;
  /** set when a watch event arrived during the fetch: its result is used once, not cached */
  stale: boolean;
}

interface Breaker {
  state: BreakerState;
  failures: number;
  openedAt: number;
  /** when the half-open trial call was handed out */
  trialAt: number;
}

function freezeNode(node: NodeRecord): NodeRecord {
  if (node.metadata) Object.freeze(node.metadata);
  return Object.freeze(node);
}

function checkName(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME) {
    throw BadRequest(ERROR_ID, `${field} must be a non-empty string of at most ${MAX_NAME} characters`);
  }
  return value;
}

export class Selector {
  private readonly registry: Registry;
  private readonly strategy: Strategy;
  private readonly failureThreshold: number;
  private readonly resetTimeout: number;
  private readonly maxAge: number;
  private readonly cacheSize: number;
  private readonly now: () => number;

  /** namespace → service → entry */
  private readonly cache = new Map<string, Map<string, Entry>>();
  /** the default namespace's map, held directly: most calls skip the outer lookup */
  private readonly defaultCache = new Map<string, Entry>();
  private cached = 0;
  private readonly fetches = new Map<string, Fetch>();
  private readonly watchers = new Map<string, Watcher>();
  private readonly watchFailedAt = new Map<string, number>();
  private readonly breakers = new Map<string, Breaker>();
  private closed = false;

  constructor(options: SelectorOptions) {
    if (!options?.registry) throw new TypeError('Selector needs a registry: new Selector({ registry })');
    const strategy = options.strategy ?? 'roundrobin';
    if (strategy !== 'roundrobin' && strategy !== 'random') {
      throw new TypeError(`unknown selector strategy "${String(strategy)}": use roundrobin or random`);
    }
    const threshold = options.breaker?.failureThreshold ?? 5;
    if (!Number.isInteger(threshold) || threshold < 1) throw new TypeError('breaker.failureThreshold must be an integer of at least 1');
    const reset = options.breaker?.resetTimeout ?? 10_000;
    if (!Number.isFinite(reset) || reset < 0) throw new TypeError('breaker.resetTimeout must be a number of ms, at least 0');
    this.registry = options.registry;
    this.strategy = strategy;
    this.failureThreshold = threshold;
    this.resetTimeout = reset;
    this.maxAge = options.cacheMaxAge ?? 30_000;
    this.cacheSize = options.cacheSize ?? 10_000;
    this.now = options.now ?? Date.now;
    this.cache.set(DEFAULT_NAMESPACE, this.defaultCache);
  }

  /**
   * A node from the cache, or undefined when the service is not cached (call `select`).
   * Throws like `select` when the cache knows there is no usable node.
   */
  selectSync(service: string, options?: SelectOptions): NodeRecord | undefined {
    const namespace = options?.namespace;
    const services = namespace === undefined || namespace === DEFAULT_NAMESPACE ? this.defaultCache : this.cache.get(namespace);
    const entry = services?.get(service);
    if (entry === undefined || this.now() >= entry.expiresAt) return undefined;
    return this.pick(entry, options);
  }

  /** A node of the service: from the cache when it can, else after reading the registry. */
  async select(service: string, options?: SelectOptions): Promise<NodeRecord> {
    const hit = this.selectSync(service, options);
    if (hit) return hit;
    if (this.closed) throw ServiceUnavailable(ERROR_ID, 'selector is closed');
    checkName(service, 'service');
    const namespace = options?.namespace === undefined ? DEFAULT_NAMESPACE : checkName(options.namespace, 'namespace');
    if (options?.version !== undefined) checkName(options.version, 'version');
    return this.pick(await this.fetch(namespace, service), options);
  }

  /** Reports the outcome of a call to a node: feeds its circuit breaker. */
  mark(nodeId: string, ok: boolean): void {
    if (ok) {
      // Success closes the circuit whatever its state; a healthy node keeps no state.
      if (this.breakers.size > 0) this.breakers.delete(nodeId);
      return;
    }
    let b = this.breakers.get(nodeId);
    if (!b) {
      if (this.breakers.size >= MAX_BREAKERS) {
        const oldest = this.breakers.keys().next();
        if (!oldest.done) this.breakers.delete(oldest.value);
      }
      b = { state: 'closed', failures: 0, openedAt: 0, trialAt: 0 };
      this.breakers.set(nodeId, b);
    }
    const now = this.now();
    if (b.state === 'half-open') {
      b.state = 'open';
      b.openedAt = now;
    } else if (b.state === 'closed' && ++b.failures >= this.failureThreshold) {
      b.state = 'open';
      b.openedAt = now;
    }
  }

  /** The circuit state of a node (for diagnostics and tests). */
  breakerState(nodeId: string): BreakerState {
    return this.breakers.get(nodeId)?.state ?? 'closed';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers.values()) w.stop();
    this.watchers.clear();
    this.cache.clear();
    this.defaultCache.clear();
    this.cached = 0;
    this.breakers.clear();
  }

  // --- picking -------------------------------------------------------------------------

  private pick(entry: Entry, options: SelectOptions | undefined): NodeRecord {
    const version = options?.version;
    const nodes = version === undefined ? entry.nodes : (entry.byVersion.get(version) ?? NO_NODES);
    const n = nodes.length;
    if (n === 0) {
      const what = version === undefined ? `service ${entry.service}` : `service ${entry.service} version ${version}`;
      throw NotFound(ERROR_ID, `${what} not found in namespace ${entry.namespace}`);
    }
    const exclude = options?.exclude;
    const now = this.breakers.size > 0 ? this.now() : 0;

    if (this.strategy === 'roundrobin') {
      const start = version === undefined ? entry.cursor : (entry.cursors.get(version) ?? 0);
      for (let i = 0; i < n; i++) {
        const index = (start + i) % n;
        const node = nodes[index] as NodeRecord;
        if (exclude?.has(node.id) || !this.allows(node.id, now)) continue;
        // Continue after the node picked, so skipped nodes do not double the load on the next one.
        if (version === undefined) entry.cursor = (index + 1) % n;
        else entry.cursors.set(version, (index + 1) % n);
        this.take(node.id, now);
        return node;
      }
    } else {
      const first = nodes[Math.floor(Math.random() * n)] as NodeRecord;
      if (!exclude?.has(first.id) && this.allows(first.id, now)) {
        this.take(first.id, now);
        return first;
      }
      // The unlucky path: choose among the usable nodes only.
      const usable = nodes.filter((node) => !exclude?.has(node.id) && this.allows(node.id, now));
      const node = usable[Math.floor(Math.random() * usable.length)];
      if (node) {
        this.take(node.id, now);
        return node;
      }
    }
    return this.noneUsable(entry.service, nodes, exclude);
  }

  private noneUsable(service: string, nodes: readonly NodeRecord[], exclude: ReadonlySet<string> | undefined): never {
    const tried = exclude ? nodes.filter((node) => exclude.has(node.id)).length : 0;
    if (tried === nodes.length) throw ServiceUnavailable(ERROR_ID, `every node of ${service} has already been tried`);
    throw ServiceUnavailable(ERROR_ID, `circuit open for every node of ${service}`);
  }

  /** Whether the breaker lets a call through to the node (does not change its state). */
  private allows(nodeId: string, now: number): boolean {
    if (this.breakers.size === 0) return true;
    const b = this.breakers.get(nodeId);
    if (!b || b.state === 'closed') return true;
    if (b.state === 'open') return now - b.openedAt >= this.resetTimeout;
    // half-open: the trial call is out. If it never reported back, allow another.
    return now - b.trialAt >= this.resetTimeout;
  }

  /** The node was picked: an open circuit past its timeout turns half-open (this call is the trial). */
  private take(nodeId: string, now: number): void {
    if (this.breakers.size === 0) return;
    const b = this.breakers.get(nodeId);
    if (!b || b.state === 'closed') return;
    b.state = 'half-open';
    b.trialAt = now;
  }

  // --- the cache -----------------------------------------------------------------------

  private fetch(namespace: string, service: string): Promise<Entry> {
    const key = `${namespace}\u0000${service}`;
    const running = this.fetches.get(key);
    if (running) return running.promise;
    // Watch before reading: whatever changes after the read is then heard of.
    this.watch(namespace);
    const fetch: Fetch = { stale: false, promise: undefined as unknown as Promise<Entry> };
    fetch.promise = this.registry
      .getService(service, { namespace })
      .then(
        (records) => {
          const entry = this.entry(namespace, service, records);
          if (!fetch.stale && !this.closed) this.store(entry);
          return entry;
        },
        (err: unknown) => {
          // The registry is unreachable: the last known nodes beat no nodes at all.
          const old = this.cache.get(namespace)?.get(service);
          if (!old || this.closed) throw err;
          old.expiresAt = this.now() + STALE_RETRY;
          return old;
        },
      )
      .finally(() => {
        if (this.fetches.get(key) === fetch) this.fetches.delete(key);
      });
    this.fetches.set(key, fetch);
    return fetch.promise;
  }

  private entry(namespace: string, service: string, records: ServiceRecord[]): Entry {
    const nodes: NodeRecord[] = [];
    const byVersion = new Map<string, readonly NodeRecord[]>();
    for (const record of records) {
      const versionNodes = record.nodes.map(freezeNode);
      nodes.push(...versionNodes);
      const known = byVersion.get(record.version);
      byVersion.set(record.version, Object.freeze(known ? [...known, ...versionNodes] : versionNodes));
    }
    const maxAge = nodes.length > 0 ? this.maxAge : Math.min(this.maxAge, NEGATIVE_MAX_AGE);
    return {
      namespace,
      service,
      expiresAt: this.now() + maxAge,
      nodes: Object.freeze(nodes),
      byVersion,
      cursor: 0,
      cursors: new Map(),
    };
  }

  private store(entry: Entry): void {
    let services = this.cache.get(entry.namespace);
    if (!services) {
      services = new Map();
      this.cache.set(entry.namespace, services);
    }
    const old = services.get(entry.service);
    if (old) {
      // Keep the round-robin position across refreshes, so a refresh does not restart at node 0.
      entry.cursor = old.cursor;
      entry.cursors = old.cursors;
    } else {
      if (this.cached >= this.cacheSize) this.evictOne();
      this.cached++;
    }
    services.set(entry.service, entry);
  }

  private evictOne(): void {
    for (const services of this.cache.values()) {
      const oldest = services.keys().next();
      if (!oldest.done) {
        services.delete(oldest.value);
        this.cached--;
        return;
      }
    }
  }

  private invalidate(namespace: string, service: string): void {
    const services = this.cache.get(namespace);
    if (services?.delete(service)) this.cached--;
    const fetch = this.fetches.get(`${namespace}\u0000${service}`);
    if (fetch) fetch.stale = true;
  }

  private dropNamespace(namespace: string): void {
    const services = this.cache.get(namespace);
    if (!services) return;
    this.cached -= services.size;
    services.clear();
    for (const [key, fetch] of this.fetches) if (key.startsWith(`${namespace}\u0000`)) fetch.stale = true;
  }

  // --- watching ------------------------------------------------------------------------

  private watch(namespace: string): void {
    if (this.closed || this.watchers.has(namespace)) return;
    const failedAt = this.watchFailedAt.get(namespace);
    if (failedAt !== undefined && this.now() - failedAt < WATCH_RETRY) return;
    let watcher: Watcher;
    try {
      watcher = this.registry.watch({ namespace });
    } catch {
      // Not watchable now: the max-age keeps the cache honest meanwhile.
      this.watchFailedAt.set(namespace, this.now());
      return;
    }
    this.watchers.set(namespace, watcher);
    void this.follow(namespace, watcher);
  }

  private async follow(namespace: string, watcher: Watcher): Promise<void> {
    try {
      for await (const event of watcher) this.invalidate(namespace, event.service.name);
    } catch {
      // dropped (fell behind) or the registry failed: handled below
    } finally {
      if (this.watchers.get(namespace) === watcher) this.watchers.delete(namespace);
      if (!this.closed) {
        // Changes may have been missed while the watcher was dying: forget what we knew.
        this.watchFailedAt.set(namespace, this.now());
        this.dropNamespace(namespace);
      }
    }
  }
}
