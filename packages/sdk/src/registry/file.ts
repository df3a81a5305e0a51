/*
 * A registry in a directory: discovery between the processes of one machine without a
 * server, the way go-micro's mdns default needs no setup.
 *
 * Layout: `<dir>/<namespace>/<service>/<version>/<node id>.json`, one file per node,
 * holding the service record with that single node, its expiry and the pid of the
 * process that wrote it. Each path segment is encoded (see `encodeSegment`), so no name
 * can reach outside `dir`. Files are replaced atomically (temp file + rename), so a
 * reader sees the old or the new file, never half of one.
 *
 * A node goes away when it is deregistered, when its TTL passes without a heart-beat, or
 * when the process that wrote it (on this machine) is dead — so `kill -9` of a service
 * does not leave it in the registry until its TTL runs out.
 *
 * Reads are served from a per-namespace snapshot, rebuilt when it is older than `maxAge`,
 * when a node in it expires, or when `fs.watch` reports a change to the `.changed` marker
 * that every writer touches. fs.watch only makes changes show up sooner: correctness rests
 * on the max-age, because fs.watch misses events on some file systems.
 */

import { createHash, randomBytes } from 'node:crypto';
import { watch as fsWatch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { ServiceUnavailable } from '../errors/errors.js';
import { processAlive } from '../util/process.js';
import type {
  NamespaceOptions,
  RegisterOptions,
  Registry,
  ServiceRecord,
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

export interface FileRegistryOptions {
  /** the registry directory, e.g. `<MICRO_HOME>/registry`; created (mode 0700) if missing */
  dir: string;
  /** how long a read snapshot is trusted, in ms (default 1000) */
  maxAge?: number;
  /** how often watchers re-read the directory, in ms (default 500) */
  pollInterval?: number;
  /** events a watcher may fall behind by before it is dropped (default 10,000) */
  watchBuffer?: number;
  /** the clock, in epoch ms; tests inject one to move time without sleeping */
  now?: () => number;
}

const FORMAT_VERSION = 1;
const MARKER = '.changed';
const HOST = hostname();
/**
 * An expired file is deleted only this long after it expired. Readers ignore it at once;
 * waiting keeps a reader from deleting the file a late heart-beat is just replacing.
 */
const EXPIRED_FILE_GRACE_MS = 5_000;
/** A temp file this old belongs to a writer that died between write and rename. */
const STALE_TEMP_MS = 60_000;
const MAX_SEGMENT = 150;

/** What one node file holds. */
interface NodeFile {
  v: number;
  namespace: string;
  /** the version's record with exactly one node: this one */
  service: ServiceRecord;
  /** epoch ms; 0 = never */
  expires: number;
  pid: number;
  host: string;
  /** when this definition of the node was first written: the newest definition of a version wins */
  since: number;
}

interface Entry {
  path: string;
  file: NodeFile;
  // identity of the file on disk, to reuse a parse and to delete only what was read
  ino: number;
  mtimeMs: number;
  size: number;
}

interface VersionView {
  record: ServiceRecord;
  /** changes exactly when a watcher should hear of it (not on heart-beats) */
  signature: string;
}

interface Snapshot {
  gen: number;
  entries: Map<string, Entry>;
  /** key: name NUL version, sorted */
  versions: Map<string, VersionView>;
  /** performance.now() when the scan started: the max-age runs on a monotonic clock */
  scannedAt: number;
  /** the earliest expiry of a node in it (clock ms): the snapshot is stale from then on */
  firstExpiry: number;
}

interface Subscriber {
  service: string | undefined;
  watcher: QueueWatcher;
}

interface NamespaceState {
  /** bumped by every known change; a snapshot of an older generation is stale */
  gen: number;
  snapshot?: Snapshot;
  refreshing?: Promise<Snapshot>;
  subscribers: Set<Subscriber>;
}

/**
 * Turns any name into one safe path segment: lower-case letters, digits, `_`, `-` and
 * (not first) `.` stay; every other byte becomes `%XX`. So `/`, `\`, `..`, a leading dot
 * and NUL cannot appear, and names differing only in case stay apart on case-insensitive
 * file systems. Long results are shortened with a hash (`~` never appears otherwise).
 * The encoding is never decoded: the record inside each file is the source of truth.
 */
export function encodeSegment(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const keep =
      (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x5f || byte === 0x2d || (byte === 0x2e && out.length > 0);
    out += keep ? String.fromCharCode(byte) : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  if (out.length > MAX_SEGMENT) out = `${out.slice(0, 80)}~${createHash('sha256').update(value).digest('hex').slice(0, 40)}`;
  return out;
}

function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    const code = errno(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}

async function ignoreMissing(op: Promise<unknown>): Promise<void> {
  try {
    await op;
  } catch (err) {
    const code = errno(err);
    if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw err;
  }
}

export class FileRegistry implements Registry {
  readonly name = 'file';
  readonly dir: string;

  private readonly maxAge: number;
  private readonly pollInterval: number;
  private readonly watchBuffer: number;
  private readonly now: () => number;
  private readonly states = new Map<string, NamespaceState>();
  /** what this process last wrote for each node file: keeps `since` across heart-beats */
  private readonly written = new Map<string, { signature: string; since: number }>();
  private initialised: Promise<void> | undefined;
  private fsWatcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: FileRegistryOptions) {
    if (!options || typeof options.dir !== 'string' || options.dir.length === 0) {
      throw new TypeError('FileRegistry needs a directory: new FileRegistry({ dir })');
    }
    this.dir = options.dir;
    this.maxAge = options.maxAge ?? 1000;
    this.pollInterval = options.pollInterval ?? 500;
    this.watchBuffer = options.watchBuffer ?? DEFAULT_WATCH_BUFFER;
    this.now = options.now ?? Date.now;
  }

  async register(service: ServiceRecord, options: RegisterOptions & NamespaceOptions = {}): Promise<void> {
    this.checkOpen();
    const record = checkRegistration(service);
    const ttl = checkTtl(options.ttl);
    const namespace = checkNamespace(options.namespace);
    await this.init();
    const now = this.now();
    const expires = ttl > 0 ? now + ttl * 1000 : 0;
    const { nodes, ...definition } = record;
    const definitionSig = definitionSignature(record);
    let changed = false;
    await Promise.all(
      nodes.map(async (node) => {
        const path = this.nodePath(namespace, record.name, record.version, node.id);
        const signature = definitionSig + nodeSignature(node);
        const mine = this.written.get(path);
        const same = mine?.signature === signature;
        if (!same) changed = true;
        const file: NodeFile = {
          v: FORMAT_VERSION,
          namespace,
          service: { ...definition, nodes: [node] },
          expires,
          pid: process.pid,
          host: HOST,
          since: same && mine ? mine.since : now,
        };
        await this.writeAtomic(path, JSON.stringify(file));
        this.written.set(path, { signature, since: file.since });
      }),
    );
    this.invalidate(namespace);
    // A heart-beat of an unchanged node need not wake every other process up.
    if (changed) await this.touchMarker();
  }

  async deregister(service: ServiceRecord, options: NamespaceOptions = {}): Promise<void> {
    this.checkOpen();
    const { name, version, nodeIds } = checkDeregistration(service);
    const namespace = checkNamespace(options.namespace);
    await this.init();
    await Promise.all(
      nodeIds.map(async (id) => {
        const path = this.nodePath(namespace, name, version, id);
        await ignoreMissing(unlink(path));
        this.written.delete(path);
      }),
    );
    await this.removeEmptyDirs(namespace, name, version);
    this.invalidate(namespace);
    await this.touchMarker();
  }

  async getService(name: string, options: NamespaceOptions = {}): Promise<ServiceRecord[]> {
    this.checkOpen();
    checkName(name, 'name');
    const namespace = checkNamespace(options.namespace);
    const snapshot = await this.read(namespace);
    const out: ServiceRecord[] = [];
    for (const view of snapshot.versions.values()) if (view.record.name === name) out.push(cloneRecord(view.record));
    return out;
  }

  async listServices(options: NamespaceOptions = {}): Promise<ServiceRecord[]> {
    this.checkOpen();
    const namespace = checkNamespace(options.namespace);
    const snapshot = await this.read(namespace);
    return [...snapshot.versions.values()].map((view) => cloneRecord(view.record));
  }

  watch(options: WatchOptions = {}): Watcher {
    this.checkOpen();
    const namespace = checkNamespace(options.namespace);
    const service = options.service === undefined ? undefined : checkName(options.service, 'service');
    const state = this.state(namespace);
    // Subscribed before returning, against the current snapshot (or, if there is none
    // yet, against the first one read): a read after watch() returns sees that snapshot
    // or a newer one, and every later difference reaches this watcher.
    const subscriber: Subscriber = {
      service,
      watcher: new QueueWatcher(() => {
        state.subscribers.delete(subscriber);
        if (!this.hasSubscribers()) this.stopPoller();
      }, this.watchBuffer),
    };
    state.subscribers.add(subscriber);
    this.startPoller();
    if (!state.snapshot && !state.refreshing) void this.read(namespace).catch(() => undefined);
    return subscriber.watcher;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopPoller();
    if (this.soon) clearTimeout(this.soon);
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
    for (const state of this.states.values()) for (const s of [...state.subscribers]) s.watcher.stop();
    this.states.clear();
  }

  // --- reading -------------------------------------------------------------------------

  /** A snapshot at least as new as every change this process knew of when it was called. */
  private async read(namespace: string): Promise<Snapshot> {
    await this.init();
    const state = this.state(namespace);
    const wanted = state.gen;
    for (;;) {
      const current = state.snapshot;
      if (current && current.gen === state.gen && this.isFresh(current)) return current;
      if (!state.refreshing) {
        state.refreshing = this.scan(namespace, state).finally(() => {
          state.refreshing = undefined;
        });
      }
      const snapshot = await state.refreshing;
      // A scan that started before a change we know of may have missed it: scan again.
      if (snapshot.gen >= wanted) return snapshot;
    }
  }

  private isFresh(snapshot: Snapshot): boolean {
    return performance.now() - snapshot.scannedAt < this.maxAge && this.now() < snapshot.firstExpiry;
  }

  private async scan(namespace: string, state: NamespaceState): Promise<Snapshot> {
    const gen = state.gen;
    const scannedAt = performance.now();
    const now = this.now();
    const previous = state.snapshot?.entries;
    const nsDir = join(this.dir, encodeSegment(namespace));
    const entries = new Map<string, Entry>();
    const alive = new Map<number, boolean>();
    const isLive = (file: NodeFile): boolean => {
      if (file.host !== HOST || file.pid === process.pid) return true;
      let live = alive.get(file.pid);
      if (live === undefined) alive.set(file.pid, (live = processAlive(file.pid)));
      return live;
    };

    const scanFile = async (svcName: string, verName: string, fileName: string): Promise<void> => {
      const path = join(nsDir, svcName, verName, fileName);
      if (fileName.startsWith('.')) return this.removeStaleTemp(path);
      if (!fileName.endsWith('.json')) return;
      let stats;
      try {
        stats = await lstat(path);
      } catch (err) {
        if (errno(err) === 'ENOENT') return;
        throw err;
      }
      if (!stats.isFile()) return;
      const old = previous?.get(path);
      let entry: Entry | undefined;
      if (old && old.ino === stats.ino && old.mtimeMs === stats.mtimeMs && old.size === stats.size) {
        entry = old;
      } else {
        const file = await this.parse(path, namespace, [svcName, verName, fileName]);
        if (!file) return;
        entry = { path, file, ino: stats.ino, mtimeMs: stats.mtimeMs, size: stats.size };
      }
      const { expires } = entry.file;
      if (expires > 0 && expires <= now) {
        if (expires + EXPIRED_FILE_GRACE_MS <= now) await this.removeEntry(entry);
        return;
      }
      if (!isLive(entry.file)) {
        await this.removeEntry(entry);
        return;
      }
      entries.set(path, entry);
    };

    await Promise.all(
      (await list(nsDir)).map(async (svcName) => {
        const versions = await list(join(nsDir, svcName));
        await Promise.all(
          versions.map(async (verName) => {
            const files = await list(join(nsDir, svcName, verName));
            await Promise.all(files.map((f) => scanFile(svcName, verName, f)));
          }),
        );
      }),
    );

    const snapshot = this.buildSnapshot(namespace, gen, entries, scannedAt);
    const before = state.snapshot;
    state.snapshot = snapshot;
    if (before && state.subscribers.size > 0) this.diff(namespace, state, before, snapshot);
    return snapshot;
  }

  /** Reads and checks one node file; anything that is not ours or not where it should be is ignored. */
  private async parse(path: string, namespace: string, segments: [string, string, string]): Promise<NodeFile | undefined> {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(path, 'utf8'));
    } catch {
      return undefined; // vanished, unreadable or not JSON: not a node
    }
    if (typeof raw !== 'object' || raw === null) return undefined;
    const f = raw as Partial<NodeFile>;
    if (f.v !== FORMAT_VERSION || f.namespace !== namespace) return undefined;
    if (typeof f.expires !== 'number' || typeof f.pid !== 'number' || typeof f.host !== 'string' || typeof f.since !== 'number') {
      return undefined;
    }
    let service: ServiceRecord;
    try {
      service = checkRegistration(f.service);
    } catch {
      return undefined;
    }
    const node = service.nodes[0];
    if (!node || service.nodes.length !== 1) return undefined;
    const [svcName, verName, fileName] = segments;
    if (encodeSegment(service.name) !== svcName || encodeSegment(service.version) !== verName || `${encodeSegment(node.id)}.json` !== fileName) {
      return undefined;
    }
    return { v: f.v, namespace, service, expires: f.expires, pid: f.pid, host: f.host, since: f.since };
  }

  private buildSnapshot(namespace: string, gen: number, entries: Map<string, Entry>, scannedAt: number): Snapshot {
    const groups = new Map<string, Entry[]>();
    let firstExpiry = Infinity;
    for (const entry of entries.values()) {
      const { service, expires } = entry.file;
      if (expires > 0 && expires < firstExpiry) firstExpiry = expires;
      const key = `${service.name}\u0000${service.version}`;
      const group = groups.get(key);
      if (group) group.push(entry);
      else groups.set(key, [entry]);
    }
    const versions = new Map<string, VersionView>();
    for (const key of [...groups.keys()].sort()) {
      const group = groups.get(key) as Entry[];
      // Nodes in id order: every process sees the same order (stable round robin, stable diffs).
      group.sort((a, b) => (a.file.service.nodes[0]!.id < b.file.service.nodes[0]!.id ? -1 : 1));
      // Processes may disagree on a version's endpoints (a rolling update): the newest definition wins.
      let newest = group[0] as Entry;
      for (const e of group) if (e.file.since > newest.file.since) newest = e;
      const { nodes: _ignored, ...definition } = newest.file.service;
      const nodes = group.map((e) => e.file.service.nodes[0]!);
      const record: ServiceRecord = { ...definition, namespace, nodes };
      versions.set(key, { record, signature: definitionSignature(record) + nodes.map(nodeSignature).join('') });
    }
    return { gen, entries, versions, scannedAt, firstExpiry };
  }

  private diff(namespace: string, state: NamespaceState, before: Snapshot, after: Snapshot): void {
    const emit = (type: WatchEventType, record: ServiceRecord): void => {
      for (const s of state.subscribers) {
        if (s.service !== undefined && s.service !== record.name) continue;
        s.watcher.push({ type, namespace, service: cloneRecord(record) });
      }
    };
    for (const [key, view] of after.versions) {
      const old = before.versions.get(key);
      if (!old) emit('create', view.record);
      else if (old.signature !== view.signature) emit('update', view.record);
    }
    for (const [key, old] of before.versions) if (!after.versions.has(key)) emit('delete', old.record);
  }

  // --- writing and cleaning up ---------------------------------------------------------

  private nodePath(namespace: string, name: string, version: string, id: string): string {
    return join(this.dir, encodeSegment(namespace), encodeSegment(name), encodeSegment(version), `${encodeSegment(id)}.json`);
  }

  private async writeAtomic(path: string, data: string): Promise<void> {
    const dir = dirname(path);
    for (let attempt = 0; ; attempt++) {
      const tmp = join(dir, `.${randomBytes(8).toString('hex')}.${process.pid}.tmp`);
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await writeFile(tmp, data, { mode: 0o600, flag: 'wx' });
        try {
          await rename(tmp, path);
        } catch (err) {
          await ignoreMissing(unlink(tmp));
          throw err;
        }
        return;
      } catch (err) {
        // Another process removed the (then empty) directory between our mkdir and
        // rename: make it again.
        if (errno(err) === 'ENOENT' && attempt < 5) continue;
        throw err;
      }
    }
  }

  /**
   * Deletes a node file that was read as dead, unless it has been rewritten since.
   * Cleaning up is a courtesy: a reader without the right to delete still reads.
   */
  private async removeEntry(entry: Entry): Promise<void> {
    try {
      const stats = await lstat(entry.path);
      if (stats.ino !== entry.ino || stats.mtimeMs !== entry.mtimeMs) return;
      await unlink(entry.path);
      const { namespace, service } = entry.file;
      await this.removeEmptyDirs(namespace, service.name, service.version);
    } catch {
      // already gone, or not ours to delete
    }
  }

  private async removeStaleTemp(path: string): Promise<void> {
    if (!path.endsWith('.tmp')) return;
    try {
      const stats = await lstat(path);
      if (Date.now() - stats.mtimeMs > STALE_TEMP_MS) await unlink(path);
    } catch {
      // already renamed or removed
    }
  }

  /** rmdir fails on a non-empty directory, so this never removes a node someone just wrote. */
  private async removeEmptyDirs(namespace: string, name: string, version: string): Promise<void> {
    const svcDir = join(this.dir, encodeSegment(namespace), encodeSegment(name));
    await ignoreMissing(rmdir(join(svcDir, encodeSegment(version))));
    await ignoreMissing(rmdir(svcDir));
  }

  private async touchMarker(): Promise<void> {
    await writeFile(join(this.dir, MARKER), `${process.pid} ${Date.now()}\n`, { mode: 0o600 });
  }

  // --- change detection ----------------------------------------------------------------

  private init(): Promise<void> {
    this.initialised ??= (async () => {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      if (this.closed) return;
      try {
        // Every writer touches the marker in `dir`, so one non-recursive watch is enough.
        const watcher = fsWatch(this.dir, { persistent: false }, () => this.changedElsewhere());
        watcher.on('error', () => {
          watcher.close();
          if (this.fsWatcher === watcher) this.fsWatcher = undefined;
        });
        this.fsWatcher = watcher;
      } catch {
        // No fs.watch here: the max-age alone keeps reads fresh.
      }
    })();
    return this.initialised;
  }

  private changedElsewhere(): void {
    this.invalidate();
    if (!this.hasSubscribers() || this.soon || this.closed) return;
    // Coalesce a burst of writes into one re-read.
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.poll();
    }, 20);
    this.soon.unref();
  }

  /** Marks the snapshot of one namespace (or of all) stale. */
  private invalidate(namespace?: string): void {
    if (namespace !== undefined) {
      const state = this.states.get(namespace);
      if (state) state.gen++;
      return;
    }
    for (const state of this.states.values()) state.gen++;
  }

  /** Re-reads every watched namespace: the diff against the last snapshot feeds the watchers. */
  private poll(): void {
    for (const [namespace, state] of this.states) {
      if (state.subscribers.size === 0 || state.refreshing) continue;
      state.gen++;
      void this.read(namespace).catch(() => undefined);
    }
  }

  private startPoller(): void {
    if (this.poller || this.closed) return;
    this.poller = setInterval(() => this.poll(), this.pollInterval);
    this.poller.unref();
  }

  private stopPoller(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
  }

  private hasSubscribers(): boolean {
    for (const state of this.states.values()) if (state.subscribers.size > 0) return true;
    return false;
  }

  private state(namespace: string): NamespaceState {
    let state = this.states.get(namespace);
    if (!state) {
      state = { gen: 0, subscribers: new Set() };
      this.states.set(namespace, state);
    }
    return state;
  }

  private checkOpen(): void {
    if (this.closed) throw ServiceUnavailable(REGISTRY_ERROR_ID, 'registry is closed');
  }
}
