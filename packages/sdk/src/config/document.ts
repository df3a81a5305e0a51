/*
 * What every config engine shares: the operations on a namespace's document (get, merge,
 * delete at a path, secrets sealed and masked) and the watchers. An engine only says how
 * to read a document and how to replace it atomically (`load` and `transact`), so the
 * in-memory config and the SQLite engine behave the same by construction.
 *
 * Stored documents are copy-on-write: an update builds new objects along the path it
 * changes and shares the rest, and nothing stored is ever changed in place, so an engine
 * may cache parsed documents and hand them to readers safely.
 */

import { BadRequest, PayloadTooLarge, ServiceUnavailable, TooManyRequests } from '../errors/errors.js';
import { DEFAULT_NAMESPACE } from '../registry/registry.js';
import type { ConfigCipher, SecretMarker } from './cipher.js';
import { isSecretMarker } from './cipher.js';
import {
  CONFIG_ERROR_ID,
  CONFIG_LIMITS,
  SECRET_MASK,
  type Config,
  type ConfigChange,
  type ConfigGetOptions,
  type ConfigOptions,
  type ConfigSetOptions,
  type ConfigValue,
  type ConfigWatcher,
} from './config.js';
import { arrayIndex, checkNamespace, checkValue, isPlainObject, joinPath, parsePath, showPath } from './path.js';
import { BoundedQueue } from '../util/bounded-queue.js';

export type ConfigObject = { [key: string]: ConfigValue };

/** A namespace's document as an engine keeps it: secrets as markers, and its version. */
export interface StoredDocument {
  document: ConfigObject;
  /** 0 for a namespace never written; one more per change */
  version: number;
}

/** What `transact` stores: the new document and its JSON text (already checked against the size bound). */
export interface DocumentUpdate {
  document: ConfigObject;
  json: string;
}

function bad(detail: string): Error {
  return BadRequest(CONFIG_ERROR_ID, detail);
}

function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

/** The operations on one namespace's document, with the cipher that seals its secrets. */
export class DocumentOps {
  constructor(
    private readonly cipher: ConfigCipher,
    private readonly namespace: string,
  ) {}

  private seal(value: ConfigValue, at: readonly string[]): SecretMarker {
    return this.cipher.seal(value, this.namespace, joinPath(at));
  }

  private open(marker: SecretMarker, at: readonly string[]): ConfigValue {
    return this.cipher.open(marker, this.namespace, joinPath(at));
  }

  /** The value at `path` as callers see it (a copy; secrets masked unless `reveal`), or undefined. */
  read(document: ConfigObject, path: readonly string[], reveal: boolean): ConfigValue | undefined {
    let node: ConfigValue = document;
    let inSecret = false;
    const at: string[] = [];
    for (const segment of path) {
      if (isSecretMarker(node)) {
        // the path goes on inside a secret: look inside to know whether it leads anywhere
        node = this.open(node, at);
        inSecret = true;
      }
      if (Array.isArray(node)) {
        const i = arrayIndex(segment);
        if (i === undefined || i >= node.length) return undefined;
        node = node[i] as ConfigValue;
      } else if (isPlainObject(node) && hasOwn(node, segment)) {
        node = node[segment] as ConfigValue;
      } else {
        return undefined;
      }
      at.push(segment);
    }
    if (inSecret) return reveal ? structuredClone(node) : SECRET_MASK;
    return this.present(node, at, reveal);
  }

  /** A copy of a stored value with its secrets masked or opened. */
  private present(node: ConfigValue, at: string[], reveal: boolean): ConfigValue {
    if (isSecretMarker(node)) return reveal ? this.open(node, at) : SECRET_MASK;
    // `at` is one stack pushed and popped on the way, not a new array per node
    if (Array.isArray(node)) {
      const out: ConfigValue[] = [];
      for (let i = 0; i < node.length; i++) {
        at.push(String(i));
        out.push(this.present(node[i] as ConfigValue, at, reveal));
        at.pop();
      }
      return out;
    }
    if (isPlainObject(node)) {
      const out: ConfigObject = {};
      for (const key of Object.keys(node)) {
        at.push(key);
        out[key] = this.present(node[key] as ConfigValue, at, reveal);
        at.pop();
      }
      return out;
    }
    return node;
  }

  /** The document with `value` merged in at `path` (sealed when `secret`, or when it lands on a secret). */
  write(document: ConfigObject, path: readonly string[], value: ConfigValue, secret: boolean): ConfigObject {
    if (path.length === 0) {
      if (secret) throw bad('a secret needs a path: the root of the document cannot be one');
      if (!isPlainObject(value)) throw bad('value must be an object to set at the root of the document (or give a path)');
      return this.merge(document, value, []) as ConfigObject;
    }
    return this.put(document, path, 0, value, secret, []) as ConfigObject;
  }

  private put(node: ConfigValue | undefined, path: readonly string[], i: number, value: ConfigValue, secret: boolean, at: string[]): ConfigValue {
    if (isSecretMarker(node)) {
      // a write inside a secret: open it, write into the plain value, seal it again
      return this.seal(this.put(this.open(node, at), path, i, value, false, at), at);
    }
    if (i === path.length) return secret ? this.seal(value, at) : this.merge(node, value, at);
    if (Array.isArray(node)) {
      throw bad(`path ${showPath(joinPath(path))} goes into the array at ${showPath(joinPath(at))}: set the whole array there instead`);
    }
    const segment = path[i] as string;
    // a scalar (or nothing) on the way is replaced by an object
    const out: ConfigObject = isPlainObject(node) ? { ...node } : {};
    out[segment] = this.put(hasOwn(out, segment) ? out[segment] : undefined, path, i + 1, value, secret, [...at, segment]);
    return out;
  }

  /** Objects merge key by key; anything else replaces; a value landing on a secret is sealed. */
  private merge(node: ConfigValue | undefined, value: ConfigValue, at: string[]): ConfigValue {
    if (isSecretMarker(node)) return this.seal(value, at);
    if (isPlainObject(node) && isPlainObject(value)) {
      const out: ConfigObject = { ...node };
      for (const key of Object.keys(value)) {
        out[key] = this.merge(hasOwn(out, key) ? out[key] : undefined, value[key] as ConfigValue, [...at, key]);
      }
      return out;
    }
    return value;
  }

  /** The document without what is at `path`, or undefined when nothing is there. */
  remove(document: ConfigObject, path: readonly string[]): ConfigObject | undefined {
    if (path.length === 0) throw bad('path is required: name what to delete, e.g. "db.host"');
    return this.cut(document, path, 0, []) as ConfigObject | undefined;
  }

  private cut(node: ConfigValue, path: readonly string[], i: number, at: string[]): ConfigValue | undefined {
    if (isSecretMarker(node)) {
      const inner = this.cut(this.open(node, at), path, i, at);
      return inner === undefined ? undefined : this.seal(inner, at);
    }
    if (Array.isArray(node)) {
      throw bad(`path ${showPath(joinPath(path))} goes into the array at ${showPath(joinPath(at))}: set the whole array there instead`);
    }
    const segment = path[i] as string;
    if (!isPlainObject(node) || !hasOwn(node, segment)) return undefined;
    const out: ConfigObject = { ...node };
    if (i === path.length - 1) {
      delete out[segment];
      return out;
    }
    const inner = this.cut(node[segment] as ConfigValue, path, i + 1, [...at, segment]);
    if (inner === undefined) return undefined;
    out[segment] = inner;
    return out;
  }
}

/**
 * The stored value at `path`, without opening secrets (a path inside a secret gives the
 * secret): enough to tell whether a change touched a watched path.
 */
export function storedAt(document: ConfigObject, path: readonly string[]): ConfigValue | undefined {
  let node: ConfigValue = document;
  for (const segment of path) {
    if (isSecretMarker(node)) return node;
    if (Array.isArray(node)) {
      const i = arrayIndex(segment);
      if (i === undefined || i >= node.length) return undefined;
      node = node[i] as ConfigValue;
    } else if (isPlainObject(node) && hasOwn(node, segment)) node = node[segment] as ConfigValue;
    else return undefined;
  }
  return node;
}

export function deepEqual(a: ConfigValue | undefined, b: ConfigValue | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => deepEqual(v, b[i]));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => hasOwn(b, k) && deepEqual(a[k], b[k]));
}

interface Subscriber {
  namespace: string;
  segments: string[];
  path: string;
  queue: BoundedQueue<ConfigChange>;
  /** the version the watcher last reflects (-1 before its first item): older changes are not news */
  version: number;
  /** the stored value at its path as last told: a change that leaves it equal is not news */
  stored: ConfigValue | undefined;
  /** changes that arrive while an asynchronous engine is still loading the first item */
  early?: { op: 'set' | 'delete'; changed: string[]; after: StoredDocument }[];
}

/** What a set or delete asked for: engines shared by several processes store it with the document, so every process can tell its watchers. */
export interface ChangeIntent {
  op: 'set' | 'delete';
  /** the path as given (joined), '' for the root */
  path: string;
}

export type TransactResult = { before: StoredDocument; after?: StoredDocument };

export interface DocumentConfigOptions {
  cipher: ConfigCipher;
  /** the namespace of calls that name none (default `micro`) */
  defaultNamespace?: string;
}

/**
 * A Config over documents kept by an engine. Subclasses implement `load` and
 * `transact`; everything else (input rules, merge, secrets, bounds, watchers) is here.
 */
export abstract class DocumentConfig implements Config {
  abstract readonly name: string;
  protected readonly cipher: ConfigCipher;
  private readonly defaultNamespace: string;
  private readonly subscribers = new Set<Subscriber>();
  private closed = false;

  constructor(options: DocumentConfigOptions) {
    this.cipher = options.cipher;
    this.defaultNamespace = options.defaultNamespace ?? DEFAULT_NAMESPACE;
  }

  /**
   * Engines whose changes can come from other processes (NATS KV) set this: then set and
   * delete do not tell the watchers themselves; the engine calls `changed` for every change
   * it sees (its own included), in version order.
   */
  protected readonly reportsChanges: boolean = false;

  /** The namespace's document ({} at version 0 when it was never written). Must not be changed by the caller. May be asynchronous (a network engine). */
  protected abstract load(namespace: string): StoredDocument | Promise<StoredDocument>;

  /**
   * Atomically: reads the namespace's document, passes it to `change`, and when that
   * returns an update, stores it as version + 1 (durably, before returning). Whatever
   * `change` throws leaves the stored document as it was. Returns the document before
   * and, when it changed, after. `change` may be called more than once (an engine that
   * retries after a concurrent write); `intent` says what the caller asked for.
   */
  protected abstract transact(
    namespace: string,
    change: (current: StoredDocument) => DocumentUpdate | undefined,
    intent: ChangeIntent,
  ): TransactResult | Promise<TransactResult>;

  /** Frees what the engine holds (databases); called once by close(). */
  protected abstract release(): Promise<void>;

  async get(path?: string, options: ConfigGetOptions = {}): Promise<ConfigValue | undefined> {
    this.checkOpen();
    const segments = parsePath(path);
    const namespace = checkNamespace(options.namespace, this.defaultNamespace);
    const { document } = await this.load(namespace);
    return new DocumentOps(this.cipher, namespace).read(document, segments, options.secrets === true);
  }

  async set(path: string, value: ConfigValue, options: ConfigSetOptions = {}): Promise<void> {
    this.checkOpen();
    const segments = parsePath(path);
    const namespace = checkNamespace(options.namespace, this.defaultNamespace);
    const checked = checkValue(value).value;
    const ops = new DocumentOps(this.cipher, namespace);
    const result = await this.transact(
      namespace,
      (current) => {
        const next = ops.write(current.document, segments, checked, options.secret === true);
        // a set that changes nothing is not a change (a secret always is: new IV)
        if (deepEqual(next, current.document)) return undefined;
        return this.sized(namespace, next);
      },
      { op: 'set', path: joinPath(segments) },
    );
    if (result.after && !this.reportsChanges) this.notify(namespace, 'set', segments, result.after);
  }

  async delete(path: string, options: ConfigOptions = {}): Promise<boolean> {
    this.checkOpen();
    const segments = parsePath(path);
    const namespace = checkNamespace(options.namespace, this.defaultNamespace);
    const ops = new DocumentOps(this.cipher, namespace);
    const result = await this.transact(
      namespace,
      (current) => {
        const next = ops.remove(current.document, segments);
        return next === undefined ? undefined : this.sized(namespace, next);
      },
      { op: 'delete', path: joinPath(segments) },
    );
    if (result.after && !this.reportsChanges) this.notify(namespace, 'delete', segments, result.after);
    return result.after !== undefined;
  }

  watch(path?: string, options: ConfigOptions = {}): ConfigWatcher {
    this.checkOpen();
    const segments = parsePath(path);
    const namespace = checkNamespace(options.namespace, this.defaultNamespace);
    if (this.subscribers.size >= CONFIG_LIMITS.watchers) {
      throw TooManyRequests(CONFIG_ERROR_ID, `too many config watchers (${CONFIG_LIMITS.watchers}): stop some first`);
    }
    let inNamespace = 0;
    for (const s of this.subscribers) if (s.namespace === namespace) inNamespace++;
    if (inNamespace >= CONFIG_LIMITS.watchersPerNamespace) {
      throw TooManyRequests(CONFIG_ERROR_ID, `namespace ${namespace} has ${CONFIG_LIMITS.watchersPerNamespace} config watchers open: stop some first`);
    }
    const sub: Subscriber = {
      namespace,
      segments,
      path: joinPath(segments),
      queue: new BoundedQueue<ConfigChange>(
        CONFIG_LIMITS.watchBuffer,
        dropped,
        () => this.subscribers.delete(sub),
      ),
      version: -1,
      stored: undefined,
    };
    const loaded = this.load(namespace);
    if (loaded instanceof Promise) {
      // an asynchronous engine: subscribed first, changes that arrive meanwhile wait for the
      // first item, and those not newer than it are dropped (the version tells)
      sub.early = [];
      this.subscribers.add(sub);
      loaded.then(
        (stored) => this.begin(sub, stored),
        (err: unknown) => sub.queue.fail(err),
      );
    } else {
      // the current value first, in the same turn as subscribing: no change can fall in between
      this.subscribers.add(sub);
      this.begin(sub, loaded);
    }
    return { stop: () => sub.queue.stop(), [Symbol.asyncIterator]: () => sub.queue };
  }

  /** An engine that reports changes (see `reportsChanges`) tells the watchers of one here. */
  protected changed(namespace: string, op: 'set' | 'delete', path: string, after: StoredDocument): void {
    this.notify(namespace, op, path === '' ? [] : path.split('.'), after);
  }

  /** Whether a watcher of the namespace is open (an engine need not decode changes nobody watches). */
  protected isWatched(namespace: string): boolean {
    for (const s of this.subscribers) if (s.namespace === namespace) return true;
    return false;
  }

  private begin(sub: Subscriber, { document, version }: StoredDocument): void {
    if (sub.queue.ended) return;
    const first: ConfigChange = { namespace: sub.namespace, path: sub.path, op: 'current', changed: sub.path, version };
    try {
      const value = new DocumentOps(this.cipher, sub.namespace).read(document, sub.segments, false);
      if (value !== undefined) first.value = value;
    } catch (err) {
      sub.queue.fail(err);
      return;
    }
    sub.version = version;
    sub.stored = storedAt(document, sub.segments);
    sub.queue.push(first);
    const early = sub.early ?? [];
    sub.early = undefined;
    for (const c of early) this.tell(sub, c.op, c.changed, c.after);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // watchers end with an error, not quietly: their readers must know the changes stopped
    const closing = ServiceUnavailable(CONFIG_ERROR_ID, `config watch ended: the config (${this.name}) is closing, e.g. micro server is stopping; watch again once it is back (a watch starts with the current value)`);
    for (const sub of [...this.subscribers]) sub.queue.fail(closing);
    await this.release();
  }

  private sized(namespace: string, document: ConfigObject): DocumentUpdate {
    const json = JSON.stringify(document);
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > CONFIG_LIMITS.documentBytes) {
      throw PayloadTooLarge(CONFIG_ERROR_ID, `the config of namespace ${namespace} would be ${bytes} bytes: at most ${CONFIG_LIMITS.documentBytes} (1 MiB); delete something first`);
    }
    return { document, json };
  }

  /** Tells the watchers whose value changed: those at, above or below the changed path. */
  private notify(namespace: string, op: 'set' | 'delete', changed: string[], after: StoredDocument): void {
    if (this.subscribers.size === 0) return;
    for (const sub of this.subscribers) {
      if (sub.namespace !== namespace || !related(sub.segments, changed)) continue;
      if (sub.early) {
        if (sub.early.length >= CONFIG_LIMITS.watchBuffer) sub.queue.fail(dropped());
        else sub.early.push({ op, changed, after });
        continue;
      }
      this.tell(sub, op, changed, after);
    }
  }

  /** One change to one watcher, when it is newer than what the watcher reflects and changes its value. */
  private tell(sub: Subscriber, op: 'set' | 'delete', changed: string[], after: StoredDocument): void {
    if (after.version <= sub.version) return;
    sub.version = after.version;
    const stored = storedAt(after.document, sub.segments);
    if (deepEqual(stored, sub.stored)) return;
    sub.stored = stored;
    const change: ConfigChange = { namespace: sub.namespace, path: sub.path, op, changed: joinPath(changed), version: after.version };
    try {
      const value = new DocumentOps(this.cipher, sub.namespace).read(after.document, sub.segments, false);
      if (value !== undefined) change.value = value;
    } catch (err) {
      // the change is stored: a watcher that cannot be told (a secret that does not open) ends, the writer does not fail
      sub.queue.fail(err);
      return;
    }
    sub.queue.push(change);
  }

  private checkOpen(): void {
    if (this.closed) throw ServiceUnavailable(CONFIG_ERROR_ID, `config (${this.name}) is closed`);
  }
}

function dropped(): Error {
  return ServiceUnavailable(CONFIG_ERROR_ID, `config watcher dropped: its reader fell more than ${CONFIG_LIMITS.watchBuffer} changes behind; watch again (a watch starts with the current value)`);
}

/** One path is a prefix of the other (or they are the same). */
function related(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
