import type { Resource } from './resources.js';
import { expired } from './status.js';
import type { KObj } from './types.js';
import { clone } from './types.js';

/**
 * The fake's etcd: every object by resource, namespace and name, one revision counter for
 * all of them (each write takes the next one, and it is the object's resourceVersion), and
 * the recent history of changes, which watches replay and which lists at an older
 * resourceVersion are rebuilt from. Past `history` changes, the oldest are forgotten, and a
 * watch or list from before them gets 410 Expired, as after an etcd compaction.
 *
 * The store checks nothing: the API server (`apiserver.ts`) decides what may be written.
 */

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  rv: number;
  type: ChangeType;
  resource: Resource;
  /** the object after the change (for DELETED, as it was, with the deletion's resourceVersion) */
  object: KObj;
  /** the object before the change (MODIFIED, DELETED) */
  prev?: KObj;
}

export type Listener = (change: Change) => void;

export function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export class Store {
  private revision = 1;
  private readonly tables = new Map<Resource, Map<string, KObj>>();
  private history: Change[] = [];
  /** every change up to this revision is forgotten */
  private compactedTo = 1;
  private readonly listeners = new Set<Listener>();

  constructor(private readonly historySize: number) {}

  get rv(): number {
    return this.revision;
  }

  private table(r: Resource): Map<string, KObj> {
    let t = this.tables.get(r);
    if (!t) this.tables.set(r, (t = new Map()));
    return t;
  }

  /** the stored object itself: callers must not change it (use `get` for a copy) */
  peek(r: Resource, namespace: string | undefined, name: string): KObj | undefined {
    return this.table(r).get(keyOf(r.namespaced ? namespace : undefined, name));
  }

  get(r: Resource, namespace: string | undefined, name: string): KObj | undefined {
    const o = this.peek(r, namespace, name);
    return o && clone(o);
  }

  /** the stored objects themselves, by key order; callers must not change them */
  scan(r: Resource, namespace?: string): KObj[] {
    const out: KObj[] = [];
    for (const [key, o] of this.table(r)) if (!namespace || !r.namespaced || key.startsWith(`${namespace}/`)) out.push(o);
    return out.sort((a, b) => (keyOf(a.metadata.namespace, a.metadata.name) < keyOf(b.metadata.namespace, b.metadata.name) ? -1 : 1));
  }

  list(r: Resource, namespace?: string): KObj[] {
    return this.scan(r, namespace).map(clone);
  }

  /** the objects as they were at revision `rv` (410 when that is older than the history) */
  listAt(r: Resource, namespace: string | undefined, rv: number): KObj[] {
    if (rv >= this.revision) return this.list(r, namespace);
    const later = this.since(rv).filter((c) => c.resource === r);
    const state = new Map(this.scan(r, namespace).map((o) => [keyOf(o.metadata.namespace, o.metadata.name), o]));
    for (const c of later.reverse()) {
      const key = keyOf(c.object.metadata.namespace, c.object.metadata.name);
      if (namespace && r.namespaced && c.object.metadata.namespace !== namespace) continue;
      if (c.type === 'ADDED') state.delete(key);
      else if (c.prev) state.set(key, c.prev);
    }
    return [...state.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, o]) => clone(o));
  }

  /** the changes after revision `rv`, oldest first (410 Expired when some are forgotten) */
  since(rv: number): Change[] {
    if (rv < this.compactedTo) throw expired(`too old resource version: ${rv} (${this.compactedTo})`);
    const i = this.history.findIndex((c) => c.rv > rv);
    return i < 0 ? [] : this.history.slice(i);
  }

  private commit(type: ChangeType, r: Resource, object: KObj, prev?: KObj): KObj {
    this.revision += 1;
    object.metadata.resourceVersion = String(this.revision);
    const change: Change = { rv: this.revision, type, resource: r, object: clone(object), ...(prev ? { prev } : {}) };
    this.history.push(change);
    while (this.history.length > this.historySize) this.compactedTo = (this.history.shift() as Change).rv;
    for (const l of this.listeners) l(change);
    return clone(object);
  }

  /** stores a new object (the caller checked that the name is free) */
  create(r: Resource, obj: KObj): KObj {
    const stored = clone(obj);
    this.table(r).set(keyOf(r.namespaced ? obj.metadata.namespace : undefined, obj.metadata.name), stored);
    return this.commit('ADDED', r, stored);
  }

  /** replaces a stored object (the caller checked it exists and its resourceVersion) */
  update(r: Resource, obj: KObj): KObj {
    const key = keyOf(r.namespaced ? obj.metadata.namespace : undefined, obj.metadata.name);
    const prev = this.table(r).get(key);
    const stored = clone(obj);
    this.table(r).set(key, stored);
    return this.commit('MODIFIED', r, stored, prev);
  }

  /** removes an object; undefined when it is not there */
  remove(r: Resource, namespace: string | undefined, name: string): KObj | undefined {
    const key = keyOf(r.namespaced ? namespace : undefined, name);
    const prev = this.table(r).get(key);
    if (!prev) return undefined;
    this.table(r).delete(key);
    return this.commit('DELETED', r, clone(prev), prev);
  }

  /** forgets the history: watches and lists from any revision given out so far get 410 */
  compact(): void {
    this.history = [];
    this.revision += 1;
    this.compactedTo = this.revision;
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
