/*
 * An in-process registry: for tests, and for services that only call each other inside
 * one process. State is namespace → service name → version → nodes, each node with its
 * own expiry. Expired nodes are dropped when read and by a periodic sweep, so watchers
 * hear about nodes that died even when nobody reads.
 */

import { ServiceUnavailable } from '../errors/errors.js';
import type {
  NamespaceOptions,
  NodeRecord,
  RegisterOptions,
  Registry,
  ServiceRecord,
  WatchEvent,
  WatchEventType,
  WatchOptions,
  Watcher,
} from './registry.js';
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

export interface MemoryRegistryOptions {
  /** how often expired nodes are swept, in ms (default 1000) */
  sweepInterval?: number;
  /** events a watcher may fall behind by before it is dropped (default 10,000) */
  watchBuffer?: number;
  /** the clock, in epoch ms; tests inject one to move time without sleeping */
  now?: () => number;
}

interface NodeEntry {
  node: NodeRecord;
  /** epoch ms; 0 = never */
  expires: number;
}

interface VersionEntry {
  /** the version without its nodes (endpoints, metadata, description) */
  record: ServiceRecord;
  signature: string;
  nodes: Map<string, NodeEntry>;
}

type Versions = Map<string, VersionEntry>;

interface Subscriber {
  namespace: string;
  service: string | undefined;
  watcher: QueueWatcher;
}

export class MemoryRegistry implements Registry {
  readonly name = 'memory';

  private readonly namespaces = new Map<string, Map<string, Versions>>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly sweepInterval: number;
  private readonly watchBuffer: number;
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: MemoryRegistryOptions = {}) {
    this.sweepInterval = options.sweepInterval ?? 1000;
    this.watchBuffer = options.watchBuffer ?? DEFAULT_WATCH_BUFFER;
    this.now = options.now ?? Date.now;
  }

  async register(service: ServiceRecord, options: RegisterOptions & NamespaceOptions = {}): Promise<void> {
    this.checkOpen();
    const record = checkRegistration(service);
    const ttl = checkTtl(options.ttl);
    const namespace = checkNamespace(options.namespace);
    const now = this.now();
    // Drop expired nodes first, so a node that comes back after expiring is news.
    this.expire(namespace, record.name, now);

    const versions = this.versionsOf(namespace, record.name, true);
    const { nodes, ...definition } = record;
    const signature = definitionSignature(record);
    let entry = versions.get(record.version);
    const created = entry === undefined;
    let changed = created || entry?.signature !== signature;
    if (!entry) {
      entry = { record: { ...definition, nodes: [] }, signature, nodes: new Map() };
      versions.set(record.version, entry);
    } else {
      entry.record = { ...definition, nodes: [] };
      entry.signature = signature;
    }
    const expires = ttl > 0 ? now + ttl * 1000 : 0;
    for (const node of nodes) {
      const old = entry.nodes.get(node.id);
      if (!old || nodeSignature(old.node) !== nodeSignature(node)) changed = true;
      entry.nodes.set(node.id, { node, expires });
    }
    if (expires > 0) this.startSweeper();
    if (changed) this.emit(created ? 'create' : 'update', namespace, this.snapshot(entry));
  }

  async deregister(service: ServiceRecord, options: NamespaceOptions = {}): Promise<void> {
    this.checkOpen();
    const { name, version, nodeIds } = checkDeregistration(service);
    const namespace = checkNamespace(options.namespace);
    const entry = this.versionsOf(namespace, name, false)?.get(version);
    if (!entry) return;
    const gone: NodeRecord[] = [];
    for (const id of nodeIds) {
      const old = entry.nodes.get(id);
      if (!old) continue;
      entry.nodes.delete(id);
      gone.push(old.node);
    }
    this.settle(namespace, name, version, entry, gone);
  }

  async getService(name: string, options: NamespaceOptions = {}): Promise<ServiceRecord[]> {
    this.checkOpen();
    checkName(name, 'name');
    const namespace = checkNamespace(options.namespace);
    this.expire(namespace, name, this.now());
    const versions = this.versionsOf(namespace, name, false);
    if (!versions) return [];
    return [...versions.values()].map((entry) => this.copy(namespace, entry));
  }

  async listServices(options: NamespaceOptions = {}): Promise<ServiceRecord[]> {
    this.checkOpen();
    const namespace = checkNamespace(options.namespace);
    const services = this.namespaces.get(namespace);
    if (!services) return [];
    const now = this.now();
    const out: ServiceRecord[] = [];
    for (const name of [...services.keys()]) {
      this.expire(namespace, name, now);
      const versions = services.get(name);
      if (versions) for (const entry of versions.values()) out.push(this.copy(namespace, entry));
    }
    return out;
  }

  watch(options: WatchOptions = {}): Watcher {
    this.checkOpen();
    const namespace = checkNamespace(options.namespace);
    const service = options.service === undefined ? undefined : checkName(options.service, 'service');
    // Subscribed before returning: every change after watch() returns is delivered.
    const subscriber: Subscriber = {
      namespace,
      service,
      watcher: new QueueWatcher(() => this.subscribers.delete(subscriber), this.watchBuffer),
    };
    this.subscribers.add(subscriber);
    return subscriber.watcher;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopSweeper();
    for (const s of [...this.subscribers]) s.watcher.stop();
    this.namespaces.clear();
  }

  /** Drops expired nodes of every service; runs on the sweep timer. */
  sweep(): void {
    const now = this.now();
    let expiring = false;
    for (const [namespace, services] of this.namespaces) {
      for (const name of [...services.keys()]) {
        this.expire(namespace, name, now);
        const versions = services.get(name);
        if (!versions) continue;
        for (const entry of versions.values()) {
          for (const n of entry.nodes.values()) if (n.expires > 0) expiring = true;
        }
      }
    }
    // Nothing left that can expire: no reason to keep waking up.
    if (!expiring) this.stopSweeper();
  }

  private expire(namespace: string, name: string, now: number): void {
    const versions = this.versionsOf(namespace, name, false);
    if (!versions) return;
    for (const [version, entry] of [...versions]) {
      const gone: NodeRecord[] = [];
      for (const [id, n] of entry.nodes) {
        if (n.expires > 0 && n.expires <= now) {
          entry.nodes.delete(id);
          gone.push(n.node);
        }
      }
      this.settle(namespace, name, version, entry, gone);
    }
  }

  /** After nodes went away: drop an empty version and tell the watchers. */
  private settle(namespace: string, name: string, version: string, entry: VersionEntry, gone: NodeRecord[]): void {
    if (gone.length === 0) return;
    if (entry.nodes.size > 0) {
      this.emit('update', namespace, this.snapshot(entry));
      return;
    }
    const services = this.namespaces.get(namespace);
    const versions = services?.get(name);
    versions?.delete(version);
    if (versions && versions.size === 0) services?.delete(name);
    if (services && services.size === 0) this.namespaces.delete(namespace);
    this.emit('delete', namespace, { ...entry.record, nodes: gone });
  }

  private versionsOf(namespace: string, name: string, create: true): Versions;
  private versionsOf(namespace: string, name: string, create: false): Versions | undefined;
  private versionsOf(namespace: string, name: string, create: boolean): Versions | undefined {
    let services = this.namespaces.get(namespace);
    if (!services) {
      if (!create) return undefined;
      services = new Map();
      this.namespaces.set(namespace, services);
    }
    let versions = services.get(name);
    if (!versions && create) {
      versions = new Map();
      services.set(name, versions);
    }
    return versions;
  }

  /** The version with its current nodes; shares structure with the state, so copy before handing out. */
  private snapshot(entry: VersionEntry): ServiceRecord {
    return { ...entry.record, nodes: [...entry.nodes.values()].map((n) => n.node) };
  }

  private copy(namespace: string, entry: VersionEntry): ServiceRecord {
    return { ...cloneRecord(this.snapshot(entry)), namespace };
  }

  private emit(type: WatchEventType, namespace: string, service: ServiceRecord): void {
    for (const s of this.subscribers) {
      if (s.namespace !== namespace || (s.service !== undefined && s.service !== service.name)) continue;
      // Each watcher gets its own copy: one reader mutating an event cannot affect another.
      const event: WatchEvent = { type, namespace, service: { ...cloneRecord(service), namespace } };
      s.watcher.push(event);
    }
  }

  private startSweeper(): void {
    if (this.sweeper || this.closed) return;
    this.sweeper = setInterval(() => this.sweep(), this.sweepInterval);
    // The sweep is housekeeping: it must never keep a process alive on its own.
    this.sweeper.unref();
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private checkOpen(): void {
    if (this.closed) throw ServiceUnavailable(REGISTRY_ERROR_ID, 'registry is closed');
  }
}
