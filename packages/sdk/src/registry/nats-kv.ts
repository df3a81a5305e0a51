/*
 * The registry on a JetStream key-value bucket, `<prefix>_registry`: what several
 * micro server nodes share in the nats profile (see README.md in this folder).
 *
 * - One key per node: `<namespace>.<service>.<version>.<node id>`, each token encoded with
 *   encodeKeySegment (so dots, `*`, `>`, spaces and long names are safe). The value is the
 *   version's record with that one node, its TTL and when its definition was first written.
 * - TTL: NATS 2.9 has no per-message TTL, so a node's expiry is the server's timestamp of
 *   its last write plus its TTL; readers drop expired nodes, and every heart-beat writes
 *   the key again. The bucket's max_age (default 24 h) removes what dead nodes leave, and
 *   bounds every TTL: a node without TTL must be registered again within max_age.
 * - Each instance keeps a mirror of the bucket, fed by one KV watch (an ordered consumer
 *   over every key). Reads are served from it; watchers get the same create/update/delete
 *   events as the MemoryRegistry, computed per version from the mirror, so every instance
 *   (every server node) hears of every change, whoever made it. A write returns once the
 *   mirror has seen it: read-your-writes on one instance.
 * - NATS away: writes fail at once with a 503; reads answer from the mirror (nodes keep
 *   expiring by their TTL); the feed resumes where it stopped when NATS is back.
 */

import type { NatsConnection } from '@nats-io/transport-node';
import type { KV, KvEntry } from '@nats-io/kv';
import { headers } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { ServiceUnavailable } from '../errors/errors.js';
import type { Profile } from '../engines/profile.js';
import type { LinkOptions } from '../transport/nats/link.js';
import { MemoryRegistry } from './memory.js';
import {
  acquireNats,
  checkConnected,
  checkValueSize,
  encodeKeySegment,
  natsError,
  openBucket,
  packValue,
  trackConnection,
  unpackValue,
} from '../engines/nats-kv.js';
import { DEFAULT_PREFIX, checkPrefix } from '../engines/profile.js';
import type { NamespaceOptions, NodeRecord, RegisterOptions, Registry, ServiceRecord, WatchEventType, WatchOptions, Watcher } from './registry.js';
import {
  REGISTRY_ERROR_ID,
  checkDeregistration,
  checkName,
  checkNamespace,
  checkRegistration,
  checkTtl,
  cloneRecord,
  definitionSignature,
  nodeSignature,
} from './util.js';
import { DEFAULT_WATCH_BUFFER, QueueWatcher } from './watcher.js';

export interface KvRegistryOptions {
  /** what the bucket's name starts with: `<prefix>_registry` (default `micro`, see MICRO_PREFIX) */
  prefix?: string;
  /** the bucket's max_age in seconds, when this instance creates it (default 86,400) */
  maxAge?: number;
  /** replicas of the bucket, when this instance creates it (default 1) */
  replicas?: number;
  /** events a watcher may fall behind by before it is dropped (default 10,000) */
  watchBuffer?: number;
  /** how long open() waits for the first full read of the bucket, in ms (default 10,000) */
  readyTimeout?: number;
  /** how long a write waits to show up in this instance's mirror, in ms (default 5,000) */
  syncTimeout?: number;
}

const FORMAT_VERSION = 1;
const DEFAULT_MAX_AGE = 24 * 3600;

/** What one node's key holds. */
interface NodeValue {
  v: number;
  namespace: string;
  /** the version's record with exactly one node: this one */
  service: ServiceRecord;
  /** seconds; 0 = until the bucket's max_age */
  ttl: number;
  /** when this definition of the node was first written (epoch ms): the newest definition of a version wins */
  since: number;
}

interface NodeEntry {
  value: NodeValue;
  node: NodeRecord;
  /** epoch ms, from the NATS server's timestamp of the write */
  expires: number;
  signature: string;
}

interface VersionView {
  record: ServiceRecord;
  signature: string;
}

interface Subscriber {
  namespace: string;
  service: string | undefined;
  watcher: QueueWatcher;
}

/** name → version → key → node */
type Services = Map<string, Map<string, Map<string, NodeEntry>>>;

export class KvRegistry implements Registry {
  readonly name = 'nats';
  readonly bucket: string;

  private readonly nodes = new Map<string, Services>();
  /** what watchers were last told, per namespace and `name NUL version` */
  private readonly views = new Map<string, Map<string, VersionView>>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly watchBuffer: number;
  private readonly syncTimeout: number;
  private readonly maxAgeMs: number;
  /** the last revision the feed delivered, and the last one whose changes watchers were told of */
  private lastRevision = 0;
  private flushedRevision = 0;
  /** versions changed by entries not yet told to watchers: `namespace NUL name NUL version` */
  private readonly dirty = new Set<string>();
  private flushTimer: NodeJS.Timeout | undefined;
  private waiters: { revision: number; resolve: () => void }[] = [];
  private feed: { stop(): void } | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private expiryAt = Infinity;
  private closed = false;
  /** gives back the shared connection, when this registry took it (KvRegistry.connect) */
  private release: (() => void) | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    bucket: string,
    maxAgeMs: number,
    options: KvRegistryOptions,
  ) {
    this.bucket = bucket;
    this.maxAgeMs = maxAgeMs;
    this.watchBuffer = options.watchBuffer ?? DEFAULT_WATCH_BUFFER;
    this.syncTimeout = options.syncTimeout ?? 5_000;
  }

  /** Opens (creating if needed) the bucket on `nc` and reads it once; `nc` stays the caller's to close. */
  static async open(nc: NatsConnection, options: KvRegistryOptions = {}): Promise<KvRegistry> {
    const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
    const maxAge = options.maxAge ?? DEFAULT_MAX_AGE;
    if (!Number.isFinite(maxAge) || maxAge <= 0) throw new Error(`KvRegistry maxAge must be a positive number of seconds, not ${maxAge}`);
    trackConnection(nc);
    const bucket = `${prefix}_registry`;
    const kv = await openBucket(nc, bucket, { ttl: maxAge * 1000, replicas: options.replicas ?? 1, description: 'micro registry: one key per service node' });
    // the bucket's own max_age, whoever created it, is the bound of every TTL
    const status = await kv.status();
    const maxAgeMs = status.ttl > 0 ? status.ttl : Infinity;
    const registry = new KvRegistry(nc, kv, bucket, maxAgeMs, options);
    await registry.startFeed(status.values === 0, options.readyTimeout ?? 10_000);
    return registry;
  }

  /** Opens the registry on the process's shared NATS connection to `url`; close() gives the connection back. */
  static async connect(url: string, options: KvRegistryOptions & LinkOptions = {}): Promise<KvRegistry> {
    const link = await acquireNats(url, options);
    try {
      const registry = await KvRegistry.open(link.nc, options);
      registry.release = link.release;
      return registry;
    } catch (err) {
      link.release();
      throw err;
    }
  }

  async register(service: ServiceRecord, options: RegisterOptions & NamespaceOptions = {}): Promise<void> {
    this.checkOpen();
    const record = checkRegistration(service);
    const ttl = checkTtl(options.ttl);
    const namespace = checkNamespace(options.namespace);
    checkConnected(this.nc, REGISTRY_ERROR_ID, 'cannot register');
    const { nodes, ...definition } = record;
    const definitionSig = definitionSignature(record);
    const now = Date.now();
    const writes = nodes.map((node) => {
      const key = this.key(namespace, record.name, record.version, node.id);
      const old = this.entry(namespace, record.name, record.version, key);
      const signature = definitionSig + nodeSignature(node);
      // a heart-beat keeps the time the definition was first written
      const since = old && old.signature === signature ? old.value.since : now;
      const value: NodeValue = { v: FORMAT_VERSION, namespace, service: { ...definition, nodes: [node] }, ttl, since };
      const packed = packValue(JSON.stringify(value));
      checkValueSize(this.nc, packed, REGISTRY_ERROR_ID, `the record of service ${record.name} ${record.version}`);
      return { key, packed };
    });
    let revision: number;
    try {
      const revisions = await Promise.all(writes.map((w) => this.kv.put(w.key, w.packed)));
      revision = Math.max(...revisions);
    } catch (err) {
      throw natsError(err, REGISTRY_ERROR_ID, `cannot register ${record.name} ${record.version}`);
    }
    await this.synced(revision);
  }

  async deregister(service: ServiceRecord, options: NamespaceOptions = {}): Promise<void> {
    this.checkOpen();
    const { name, version, nodeIds } = checkDeregistration(service);
    const namespace = checkNamespace(options.namespace);
    checkConnected(this.nc, REGISTRY_ERROR_ID, 'cannot deregister');
    const js = jetstream(this.nc);
    let revision: number;
    try {
      // the delete marker kv.delete writes, published here for its sequence: the mirror is waited for below
      const acks = await Promise.all(
        nodeIds.map((id) => {
          const h = headers();
          h.set('KV-Operation', 'DEL');
          return js.publish(`$KV.${this.bucket}.${this.key(namespace, name, version, id)}`, undefined, { headers: h });
        }),
      );
      revision = Math.max(...acks.map((a) => a.seq));
    } catch (err) {
      throw natsError(err, REGISTRY_ERROR_ID, `cannot deregister ${name} ${version}`);
    }
    await this.synced(revision);
  }

  async getService(name: string, options: NamespaceOptions = {}): Promise<ServiceRecord[]> {
    this.checkOpen();
    checkName(name, 'name');
    const namespace = checkNamespace(options.namespace);
    const versions = this.nodes.get(namespace)?.get(name);
    if (!versions) return [];
    const now = Date.now();
    const out: ServiceRecord[] = [];
    for (const nodes of versions.values()) {
      const view = buildView(namespace, nodes, now);
      if (view) out.push(cloneRecord(view.record));
    }
    return out;
  }

  async listServices(options: NamespaceOptions = {}): Promise<ServiceRecord[]> {
    this.checkOpen();
    const namespace = checkNamespace(options.namespace);
    const services = this.nodes.get(namespace);
    if (!services) return [];
    const now = Date.now();
    const out: ServiceRecord[] = [];
    for (const versions of services.values()) {
      for (const nodes of versions.values()) {
        const view = buildView(namespace, nodes, now);
        if (view) out.push(cloneRecord(view.record));
      }
    }
    return out;
  }

  watch(options: WatchOptions = {}): Watcher {
    this.checkOpen();
    const namespace = checkNamespace(options.namespace);
    const service = options.service === undefined ? undefined : checkName(options.service, 'service');
    // subscribed before returning: every change the mirror sees afterwards is delivered
    const subscriber: Subscriber = { namespace, service, watcher: new QueueWatcher(() => this.subscribers.delete(subscriber), this.watchBuffer) };
    this.subscribers.add(subscriber);
    return subscriber.watcher;
  }

  /** Stops the feed and the watchers; the NATS connection stays open (it is the caller's). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.feed?.stop();
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const s of [...this.subscribers]) s.watcher.stop();
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
    this.nodes.clear();
    this.release?.();
  }

  // ---- the mirror ------------------------------------------------------------------------

  private async startFeed(empty: boolean, readyTimeout: number): Promise<void> {
    let ready!: () => void;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    if (empty) ready();
    const run = async (): Promise<void> => {
      let delay = 250;
      while (!this.closed) {
        try {
          const iter = await this.kv.watch({ key: '>', ...(this.lastRevision > 0 ? { resumeFromRevision: this.lastRevision + 1 } : {}) });
          this.feed = { stop: () => iter.stop() };
          if (this.closed) iter.stop();
          delay = 250;
          for await (const entry of iter) {
            this.apply(entry);
            // delta is what the consumer has still to deliver: 0 = caught up with the bucket
            if (entry.delta === 0) ready();
          }
        } catch {
          // NATS away or the consumer lost: start again from the last revision seen
        }
        if (this.closed) return;
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
        delay = Math.min(delay * 2, 5_000);
      }
    };
    void run();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the registry bucket ${this.bucket} could not be read within ${readyTimeout} ms`)), readyTimeout);
    });
    try {
      await Promise.race([isReady, timeout]);
    } catch (err) {
      await this.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** One entry of the feed into the mirror, and the watchers told what it changed. */
  private apply(entry: KvEntry): void {
    if (entry.revision > this.lastRevision) this.lastRevision = entry.revision;
    const parsed = entry.operation === 'PUT' ? this.parse(entry) : undefined;
    const segments = entry.key.split('.');
    if (parsed) {
      const { value } = parsed;
      const services = getOrSet(this.nodes, value.namespace, () => new Map());
      const versions = getOrSet(services, value.service.name, () => new Map());
      getOrSet(versions, value.service.version, () => new Map()).set(entry.key, parsed);
      this.dirty.add(`${value.namespace}\u0000${value.service.name}\u0000${value.service.version}`);
    } else {
      // a delete marker (or a value that is not ours): drop what the key held
      const found = this.find(entry.key, segments);
      if (found) {
        found.nodes.delete(entry.key);
        this.dirty.add(`${found.namespace}\u0000${found.name}\u0000${found.version}`);
      }
    }
    // The nodes of one registration are one write each: while the consumer has more to
    // deliver (delta > 0) the changes are gathered, so watchers hear of a registration of
    // several nodes as one event, as with the other registries. A timer bounds the wait.
    if (entry.delta === 0) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), 20);
  }

  /** Tells watchers of the gathered changes, then releases the writes waiting for them. */
  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const d of this.dirty) {
      const [namespace, name, version] = d.split('\u0000') as [string, string, string];
      this.refresh(namespace, name, version);
    }
    this.dirty.clear();
    this.flushedRevision = this.lastRevision;
    const done = this.waiters.filter((w) => w.revision <= this.flushedRevision);
    if (done.length > 0) {
      this.waiters = this.waiters.filter((w) => w.revision > this.flushedRevision);
      for (const w of done) w.resolve();
    }
  }

  /** A node value, checked: anything not written by a KvRegistry, or not under its own key, is ignored. */
  private parse(entry: KvEntry): NodeEntry | undefined {
    let raw: unknown;
    try {
      raw = JSON.parse(unpackValue(entry.value));
    } catch {
      return undefined;
    }
    if (typeof raw !== 'object' || raw === null) return undefined;
    const v = raw as Partial<NodeValue>;
    if (v.v !== FORMAT_VERSION || typeof v.namespace !== 'string' || typeof v.ttl !== 'number' || typeof v.since !== 'number') return undefined;
    let service: ServiceRecord;
    try {
      checkNamespace(v.namespace);
      checkTtl(v.ttl);
      service = checkRegistration(v.service);
    } catch {
      return undefined;
    }
    const node = service.nodes[0];
    if (!node || service.nodes.length !== 1) return undefined;
    if (this.key(v.namespace, service.name, service.version, node.id) !== entry.key) return undefined;
    const lifetime = Math.min(v.ttl > 0 ? v.ttl * 1000 : Infinity, this.maxAgeMs);
    const value: NodeValue = { v: v.v, namespace: v.namespace, service, ttl: v.ttl, since: v.since };
    return { value, node, expires: entry.created.getTime() + lifetime, signature: definitionSignature(service) + nodeSignature(node) };
  }

  /** Where the mirror keeps a key (for a delete, whose value says nothing). */
  private find(key: string, segments: string[]): { namespace: string; name: string; version: string; nodes: Map<string, NodeEntry> } | undefined {
    if (segments.length !== 4) return undefined;
    for (const [namespace, services] of this.nodes) {
      if (encodeKeySegment(namespace) !== segments[0]) continue;
      for (const [name, versions] of services) {
        if (encodeKeySegment(name) !== segments[1]) continue;
        for (const [version, nodes] of versions) {
          if (nodes.has(key)) return { namespace, name, version, nodes };
        }
      }
    }
    return undefined;
  }

  /** After a change to one version: drop its expired nodes, tell watchers the difference, arm the expiry timer. */
  private refresh(namespace: string, name: string, version: string): void {
    const now = Date.now();
    const services = this.nodes.get(namespace);
    const versions = services?.get(name);
    const nodes = versions?.get(version);
    if (nodes) {
      for (const [key, n] of nodes) if (n.expires <= now) nodes.delete(key);
      if (nodes.size === 0) versions?.delete(version);
      if (versions?.size === 0) services?.delete(name);
      if (services?.size === 0) this.nodes.delete(namespace);
    }
    const view = nodes && nodes.size > 0 ? buildView(namespace, nodes, now) : undefined;
    const vkey = `${name}\u0000${version}`;
    const views = getOrSet(this.views, namespace, () => new Map());
    const old = views.get(vkey);
    if (view) {
      views.set(vkey, view);
      if (!old) this.emit('create', namespace, view.record);
      else if (old.signature !== view.signature) this.emit('update', namespace, view.record);
      let first = Infinity;
      for (const n of nodes!.values()) first = Math.min(first, n.expires);
      this.armExpiry(first);
    } else if (old) {
      views.delete(vkey);
      if (views.size === 0) this.views.delete(namespace);
      // a delete carries the nodes that went: those of the version as last told
      this.emit('delete', namespace, old.record);
    }
  }

  private armExpiry(at: number): void {
    if (this.closed || at >= this.expiryAt || at === Infinity) return;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryAt = at;
    this.expiryTimer = setTimeout(() => this.expire(), Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1)) + 5);
    // expiry is housekeeping: it must never keep a process alive on its own
    this.expiryTimer.unref();
  }

  /** Drops expired nodes everywhere (watchers hear of nodes that died even when nobody reads). */
  private expire(): void {
    this.expiryTimer = undefined;
    this.expiryAt = Infinity;
    const now = Date.now();
    const due: [string, string, string][] = [];
    let next = Infinity;
    for (const [namespace, services] of this.nodes) {
      for (const [name, versions] of services) {
        for (const [version, nodes] of versions) {
          for (const n of nodes.values()) {
            if (n.expires <= now) due.push([namespace, name, version]);
            else next = Math.min(next, n.expires);
          }
        }
      }
    }
    for (const [namespace, name, version] of due) this.refresh(namespace, name, version);
    this.armExpiry(next);
  }

  /** Resolves once the mirror has seen `revision` (or after syncTimeout: the write is durable either way). */
  private synced(revision: number): Promise<void> {
    if (revision <= this.flushedRevision || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = { revision, resolve: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve();
      }, this.syncTimeout);
      timer.unref();
      this.waiters.push(waiter);
    });
  }

  private emit(type: WatchEventType, namespace: string, service: ServiceRecord): void {
    for (const s of this.subscribers) {
      if (s.namespace !== namespace || (s.service !== undefined && s.service !== service.name)) continue;
      // each watcher gets its own copy: one reader mutating an event cannot affect another
      s.watcher.push({ type, namespace, service: { ...cloneRecord(service), namespace } });
    }
  }

  private entry(namespace: string, name: string, version: string, key: string): NodeEntry | undefined {
    return this.nodes.get(namespace)?.get(name)?.get(version)?.get(key);
  }

  private key(namespace: string, name: string, version: string, id: string): string {
    return `${encodeKeySegment(namespace)}.${encodeKeySegment(name)}.${encodeKeySegment(version)}.${encodeKeySegment(id)}`;
  }

  private checkOpen(): void {
    if (this.closed) throw ServiceUnavailable(REGISTRY_ERROR_ID, 'registry is closed');
  }
}

/** The version as readers see it: its live nodes in id order, the newest definition among them. */
function buildView(namespace: string, nodes: Map<string, NodeEntry>, now: number): VersionView | undefined {
  const live = [...nodes.values()].filter((n) => n.expires > now);
  if (live.length === 0) return undefined;
  // nodes in id order: every instance sees the same order (stable round robin, stable diffs)
  live.sort((a, b) => (a.node.id < b.node.id ? -1 : a.node.id > b.node.id ? 1 : 0));
  let newest = live[0] as NodeEntry;
  for (const n of live) if (n.value.since > newest.value.since) newest = n;
  const { nodes: _one, ...definition } = newest.value.service;
  const record: ServiceRecord = { ...definition, namespace, nodes: live.map((n) => n.node) };
  return { record, signature: definitionSignature(record) + live.map((n) => nodeSignature(n.node)).join('') };
}

function getOrSet<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

/**
 * The registry of micro server for a profile: in memory (local: the server is the one
 * place services register), or the KV bucket shared by every node (nats).
 */
export async function openRegistry(profile: Profile, options: KvRegistryOptions & LinkOptions = {}): Promise<Registry> {
  if (profile.name !== 'nats') return new MemoryRegistry();
  return KvRegistry.connect(profile.natsUrl, { prefix: profile.prefix, ...options });
}
