/**
 * Config: one JSON document per namespace, read and written at dotted paths.
 *
 * - `get('db.host')` is the value at that path (`db.hosts.0` indexes an array);
 *   `get()` the whole document.
 * - `set('db', {host: 'h'})` merges objects deeply into what is there; any other value
 *   (a string, a number, an array, null) replaces what is at the path.
 * - `set('db.password', 'p', {secret: true})` stores the value encrypted (AES-256-GCM).
 *   Reads show it as `••••••` unless `{secrets: true}` is asked for. A value that is a
 *   secret stays one: setting a new value at its path (directly or through a merge of a
 *   parent) encrypts the new value too; delete it to make it plain again.
 * - `delete('db.host')` removes the key; `watch('db')` yields a change each time the
 *   value at `db` changes.
 *
 * Every key of every stored object is a valid path segment, so everything stored can be
 * addressed: see `parsePath` for the rules (no empty segment, no `.` in a key,
 * no `__proto__`/`constructor`/`prototype`, at most 32 levels and 256 characters).
 */

/** A JSON value: what config holds. */
export type ConfigValue = null | boolean | number | string | ConfigValue[] | { [key: string]: ConfigValue };

export interface ConfigOptions {
  /** the namespace of the document (default `micro`; a remote config uses the caller's) */
  namespace?: string;
}

export interface ConfigGetOptions extends ConfigOptions {
  /** show secrets in clear instead of `••••••` (on the server: admins of `micro` and accounts with scope config:secrets) */
  secrets?: boolean;
}

export interface ConfigSetOptions extends ConfigOptions {
  /** store the value encrypted; it reads as `••••••` unless secrets are asked for */
  secret?: boolean;
}

/**
 * What a watcher yields: first the value at the watched path when the watch starts
 * (`op: 'current'`), then one item per change of that value.
 */
export interface ConfigChange {
  namespace: string;
  /** the watched path ('' for the whole document) */
  path: string;
  /** the value now at the watched path, secrets masked; absent when nothing is there any more */
  value?: ConfigValue;
  /** what caused it: `current` for the first item, then the set or delete */
  op: 'current' | 'set' | 'delete';
  /** the path the set or delete named (the watched path for `current`) */
  changed: string;
  /** the version of the namespace's document after the change (it grows by one per change) */
  version: number;
}

/** An async iterator of changes; `stop()` (or leaving a for-await) ends it. */
export interface ConfigWatcher extends AsyncIterable<ConfigChange> {
  stop(): void;
}

export interface Config {
  readonly name: string;
  /** The value at `path` ('' or absent: the whole document, `{}` when empty); undefined when nothing is there. */
  get(path?: string, options?: ConfigGetOptions): Promise<ConfigValue | undefined>;
  /** Merges `value` in at `path` ('' merges into the root, and then `value` must be an object). Durable when it returns. */
  set(path: string, value: ConfigValue, options?: ConfigSetOptions): Promise<void>;
  /** Removes what is at `path`; false when nothing was there. Durable when it returns. */
  delete(path: string, options?: ConfigOptions): Promise<boolean>;
  /**
   * The value at `path` now, then each change of it: nothing is missed between reading
   * and watching. Secrets are masked.
   */
  watch(path?: string, options?: ConfigOptions): ConfigWatcher;
  close?(): Promise<void>;
}

/** The id config errors carry. */
export const CONFIG_ERROR_ID = 'micro.config';

/** What a secret reads as unless secrets are asked for. */
export const SECRET_MASK = '••••••';

/** Bounds on every input. */
export const CONFIG_LIMITS = Object.freeze({
  /** a path, in characters */
  pathChars: 256,
  /** segments of a path */
  pathDepth: 32,
  /** a key of an object inside a value, in characters */
  keyChars: 256,
  /** nesting of objects and arrays inside one value */
  valueDepth: 64,
  /** one value, as JSON in UTF-8 */
  valueBytes: 256 * 1024,
  /** the whole document of a namespace as stored (secrets encrypted), as JSON in UTF-8 */
  documentBytes: 1024 * 1024,
  /** namespace name, in characters */
  namespaceChars: 255,
  /** changes a watcher may fall behind by before it is dropped */
  watchBuffer: 1000,
  /** watchers open at once on one config */
  watchers: 10_000,
  /** watchers open at once on one namespace (so that one cannot take them all) */
  watchersPerNamespace: 1000,
});
