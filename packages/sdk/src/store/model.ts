/*
 * Typed models on top of any Store, as Go Micro's model package: a collection of
 * entities of one zod schema, found by their key and queried through indexes.
 *
 * ```ts
 * const users = model(store, { name: 'users', schema: User, key: 'id', indexes: ['email', 'age'] });
 * await users.create({ id: '1', email: 'a@x.io', age: 42 });
 * await users.list({ where: { age: { gte: 18 } }, orderBy: 'age', order: 'desc', limit: 10 });
 * ```
 *
 * Layout, in the table named after the model (database: the model's or the store's):
 *
 *   id:<key>                                  the entity (JSON)
 *   ix:<field>:<encoded value>\u0001<key>     one entry per indexed field, value null
 *
 * Encoded values sort as the values do (encode.ts), so an equality is a prefix scan and
 * a range or an order is a window of keys (list with after/before/order). Without
 * transactions in the Store interface, writes are ordered so that a crash can leave
 * only extra, stale index entries, never a missing one: a write puts the new index
 * entries first, then the entity, then deletes the entries of the old values; a delete
 * removes the entity first. Queries check every index hit against the entity itself and
 * skip stale ones, so they are always exact.
 *
 * Decisions:
 * - Queries name only the key and indexed fields (in where and orderBy); any other field
 *   is a 400 naming it, not a silent full scan.
 * - Indexed values are strings, finite numbers, booleans or null; a missing one is
 *   indexed as null (so `where: { f: null }` finds it, and it sorts first).
 * - One field drives a query: orderBy if given, else an equality, else a range; other
 *   conditions filter what it finds. A query that examines more than 100,000 index
 *   entries beyond its offset is refused (400) rather than run without bound: add an
 *   equality on an indexed field.
 * - Writes of one key through one model object are serialized (in this process), so
 *   create's 409 for a key that exists, update's 404 for one that does not, and the
 *   index entries are exact for concurrent calls. Writers of one key in several
 *   processes are not serialized (the Store has no transactions): the last entity wins,
 *   and its index entries may be left stale or missing until it is written again. Keep
 *   the writes of a key in one service instance, or accept that. Unique indexes are not
 *   offered for the same reason.
 */

import type { z } from 'zod';
import { Conflict, NotFound } from '../errors/errors.js';
import { formatIssues } from '../service/validate.js';
import { TERMINATOR, encodeIndexable, isIndexable, kindOf, kindWindow, type Indexable, type Kind } from './encode.js';
import type { Order, Store } from './store.js';
import { STORE_ERROR_ID, STORE_LIMITS, bad, checkLimit, checkName, checkOffset, compareKeys, printable } from './util.js';

export type Range<V> = { gt?: V; gte?: V; lt?: V; lte?: V };
export type Where<T> = { [K in keyof T]?: T[K] | Range<NonNullable<T[K]>> | null };

export interface Query<T> {
  where?: Where<T>;
  /** the key or an indexed field (default: the key) */
  orderBy?: keyof T & string;
  /** default asc */
  order?: Order;
  /** default 100, at most 1000 */
  limit?: number;
  /** default 0, at most 100,000 */
  offset?: number;
}

export interface ModelCallOptions {
  /** default: the model's */
  namespace?: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any object schema
type AnyObject = z.ZodObject<any>;

export interface ModelOptions<S extends AnyObject> {
  /** the table the model lives in */
  name: string;
  schema: S;
  /** the field that identifies an entity, a string (default `id`) */
  key?: keyof z.output<S> & string;
  /** fields to query and order by */
  indexes?: readonly (keyof z.output<S> & string)[];
  /** default: the store's */
  database?: string;
  /** default: the store's */
  namespace?: string;
}

export interface Model<S extends AnyObject> {
  readonly name: string;
  readonly key: string;
  readonly indexes: readonly string[];
  /** Adds an entity; a 409 when its key exists. */
  create(value: z.input<S>, options?: ModelCallOptions): Promise<z.output<S>>;
  /** Replaces an entity; a 404 when its key does not exist. */
  update(value: z.input<S>, options?: ModelCallOptions): Promise<z.output<S>>;
  /** Adds or replaces an entity. */
  upsert(value: z.input<S>, options?: ModelCallOptions): Promise<z.output<S>>;
  read(key: string, options?: ModelCallOptions): Promise<z.output<S> | undefined>;
  /** Deletes an entity; deleting a missing one is not an error. */
  delete(key: string, options?: ModelCallOptions): Promise<void>;
  list(query?: Query<z.output<S>>, options?: ModelCallOptions): Promise<z.output<S>[]>;
}

const FIELD = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/;
const PRIMARY = 'id:';
const INDEX = 'ix:';
/** index entries examined beyond the offset before a query is refused */
const MAX_EXAMINED = 100_000;
/** entities read at once when checking index hits */
const CONCURRENCY = 16;

export function model<S extends AnyObject>(store: Store, options: ModelOptions<S>): Model<S> {
  return new StoreModel(store, options);
}

type Entity = Record<string, unknown>;
type Condition = { eq: Indexable } | { range: Range<Indexable>; kind: Kind };

/** A window of keys to scan, and how an index hit is read from a key. */
interface Plan {
  field: string;
  prefix: string;
  after?: string;
  before?: string;
  /** a key equal to the inclusive lower bound of a range on the key field, read first (or last, going down) */
  inclusive?: string;
  order: Order;
}

class StoreModel<S extends AnyObject> implements Model<S> {
  readonly name: string;
  readonly key: string;
  readonly indexes: readonly string[];
  private readonly schema: S;
  /** the write in progress per key (namespace + key): writes of one key run one at a time */
  private readonly writing = new Map<string, Promise<unknown>>();
  private readonly database: string | undefined;
  private readonly namespace: string | undefined;

  constructor(
    private readonly store: Store,
    options: ModelOptions<S>,
  ) {
    this.name = checkName(options.name, 'table', '');
    this.schema = options.schema;
    const shape = (options.schema as { shape?: Record<string, unknown> }).shape;
    if (!shape || typeof shape !== 'object') throw new TypeError(`model ${this.name}: schema must be a zod object`);
    this.key = options.key ?? 'id';
    if (!Object.hasOwn(shape, this.key)) throw new TypeError(`model ${this.name}: the key field "${this.key}" is not in the schema`);
    const indexes = [...new Set(options.indexes ?? [])];
    for (const field of indexes) {
      if (!FIELD.test(field)) throw new TypeError(`model ${this.name}: index "${field}" must be a field name (letters, digits, _ or $, at most 64)`);
      if (!Object.hasOwn(shape, field)) throw new TypeError(`model ${this.name}: the index field "${field}" is not in the schema`);
      if (field === this.key) throw new TypeError(`model ${this.name}: "${field}" is the key; it needs no index`);
    }
    this.indexes = Object.freeze(indexes);
    this.database = options.database === undefined ? undefined : checkName(options.database, 'database', '');
    this.namespace = options.namespace;
  }

  async create(value: z.input<S>, options: ModelCallOptions = {}): Promise<z.output<S>> {
    return this.save(value, options, 'create');
  }

  async update(value: z.input<S>, options: ModelCallOptions = {}): Promise<z.output<S>> {
    return this.save(value, options, 'update');
  }

  async upsert(value: z.input<S>, options: ModelCallOptions = {}): Promise<z.output<S>> {
    return this.save(value, options, 'upsert');
  }

  async read(key: string, options: ModelCallOptions = {}): Promise<z.output<S> | undefined> {
    return (await this.fetch(this.checkId(key, this.key), options)) as z.output<S> | undefined;
  }

  async delete(key: string, options: ModelCallOptions = {}): Promise<void> {
    const id = this.checkId(key, this.key);
    await this.exclusive(id, options, async () => {
      const old = await this.fetch(id, options);
      if (!old) return;
      // the entity first: from then on its index entries are stale, and skipped
      await this.store.delete(PRIMARY + id, this.scope(options));
      for (const k of this.indexKeys(old, id)) await this.store.delete(k, this.scope(options));
    });
  }

  async list(query: Query<z.output<S>> = {}, options: ModelCallOptions = {}): Promise<z.output<S>[]> {
    const limit = checkLimit(query.limit);
    const offset = checkOffset(query.offset);
    const order = query.order ?? 'asc';
    if (order !== 'asc' && order !== 'desc') throw bad('order must be "asc" or "desc"');
    const conditions = this.conditions(query.where);
    const keyCondition = conditions.get(this.key);
    // an equality on the key: one entity at most
    if (keyCondition && 'eq' in keyCondition) {
      if (typeof keyCondition.eq !== 'string') return [];
      const entity = await this.fetch(keyCondition.eq, options);
      return entity && offset === 0 && this.satisfies(entity, conditions) ? [entity as z.output<S>] : [];
    }
    const plan = this.plan(conditions, query.orderBy, order);
    const out: Entity[] = [];
    let skipped = 0;
    let examined = 0;
    for await (const batch of this.candidates(plan, options, Math.min(STORE_LIMITS.maxLimit, Math.max(50, offset + limit)))) {
      for (const entity of batch) {
        if (!entity || !this.satisfies(entity, conditions)) continue;
        if (skipped < offset) skipped++;
        else out.push(entity);
        if (out.length >= limit) return out as z.output<S>[];
      }
      examined += batch.length;
      if (examined - skipped > MAX_EXAMINED) {
        throw bad(`query on ${this.name} examined more than ${MAX_EXAMINED} entries without filling the page; narrow it with an equality on an indexed field (${[this.key, ...this.indexes].join(', ')})`);
      }
    }
    return out as z.output<S>[];
  }

  // ---- writing ---------------------------------------------------------------------

  private async save(value: z.input<S>, options: ModelCallOptions, mode: 'create' | 'update' | 'upsert'): Promise<z.output<S>> {
    const parsed = this.schema.safeParse(value);
    if (!parsed.success) throw bad(`invalid ${this.name}: ${formatIssues(parsed.error.issues)}`);
    const entity = parsed.data as Entity;
    const id = this.checkId(entity[this.key], this.key);
    const next = this.indexKeys(entity, id);
    return this.exclusive(id, options, () => this.write(id, entity, next, options, mode));
  }

  private async write(id: string, entity: Entity, next: string[], options: ModelCallOptions, mode: 'create' | 'update' | 'upsert'): Promise<z.output<S>> {
    const scope = this.scope(options);
    const old = await this.fetch(id, options);
    if (mode === 'create' && old) throw Conflict(STORE_ERROR_ID, `${this.name} "${printable(id)}" exists already`);
    if (mode === 'update' && !old) throw NotFound(STORE_ERROR_ID, `${this.name} "${printable(id)}" not found`);
    const previous = new Set(old ? this.indexKeys(old, id) : []);
    // new entries, the entity, then the entries that went stale: a crash between any two
    // steps leaves an extra entry (skipped by queries), never a missing one
    for (const k of next) if (!previous.has(k)) await this.store.write({ key: k, value: null }, scope);
    await this.store.write({ key: PRIMARY + id, value: entity }, scope);
    const current = new Set(next);
    for (const k of previous) if (!current.has(k)) await this.store.delete(k, scope);
    return entity as z.output<S>;
  }

  /** Runs `fn` after every earlier write of the same key through this model has settled. */
  private async exclusive<T>(id: string, options: ModelCallOptions, fn: () => Promise<T>): Promise<T> {
    const lock = `${options.namespace ?? this.namespace ?? ''}\u0000${id}`;
    const run = (this.writing.get(lock) ?? Promise.resolve()).then(fn, fn);
    const settled = run.catch(() => undefined);
    this.writing.set(lock, settled);
    try {
      return await run;
    } finally {
      if (this.writing.get(lock) === settled) this.writing.delete(lock);
    }
  }

  /** The index keys of an entity; a 400 naming the field whose value cannot be indexed. */
  private indexKeys(entity: Entity, id: string): string[] {
    return this.indexes.map((field) => {
      const value = entity[field] ?? null;
      if (!isIndexable(value)) throw bad(`${field}: only strings, finite numbers, booleans and null can be indexed`);
      const key = `${INDEX}${field}:${encodeIndexable(value)}${TERMINATOR}${id}`;
      if (Buffer.byteLength(key, 'utf8') > STORE_LIMITS.keyBytes) {
        throw bad(`${field}: the value is too long to index with key "${printable(id)}" (index keys hold at most ${STORE_LIMITS.keyBytes} bytes)`);
      }
      return key;
    });
  }

  private checkId(value: unknown, field: string): string {
    if (typeof value !== 'string' || value.length === 0) throw bad(`${field} must be a non-empty string`);
    if (/\p{Cc}/u.test(value)) throw bad(`${field} must not contain control characters`);
    if (Buffer.byteLength(PRIMARY + value, 'utf8') > STORE_LIMITS.keyBytes) throw bad(`${field} must be at most ${STORE_LIMITS.keyBytes - PRIMARY.length} bytes`);
    return value;
  }

  // ---- reading ---------------------------------------------------------------------

  private async fetch(id: string, options: ModelCallOptions): Promise<Entity | undefined> {
    const [record] = await this.store.read(PRIMARY + id, this.scope(options));
    return record ? (record.value as Entity) : undefined;
  }

  private scope(options: ModelCallOptions) {
    return { namespace: options.namespace ?? this.namespace, database: this.database, table: this.name };
  }

  /** The conditions of a query, checked: only the key and indexed fields, only indexable values. */
  private conditions(where: object | undefined): Map<string, Condition> {
    const out = new Map<string, Condition>();
    if (where === undefined) return out;
    if (typeof where !== 'object' || where === null || Array.isArray(where)) throw bad('where must be an object of fields');
    for (const [field, cond] of Object.entries(where)) {
      if (cond === undefined) continue;
      this.checkQueryField(field, `where.${field}`);
      if (cond !== null && typeof cond === 'object' && !Array.isArray(cond)) {
        const range: Range<Indexable> = {};
        let kind: Kind | undefined;
        for (const [op, v] of Object.entries(cond)) {
          if (op !== 'gt' && op !== 'gte' && op !== 'lt' && op !== 'lte') throw bad(`where.${field}: unknown operator "${printable(op)}" (use gt, gte, lt, lte)`);
          if (v === undefined) continue;
          if (v === null || !isIndexable(v)) throw bad(`where.${field}.${op} must be a string, a finite number or a boolean`);
          if (kind !== undefined && kindOf(v) !== kind) throw bad(`where.${field}: the bounds of a range must be of one kind`);
          kind = kindOf(v);
          range[op] = v;
        }
        if (kind === undefined) throw bad(`where.${field} needs a value or one of gt, gte, lt, lte`);
        out.set(field, { range, kind });
      } else {
        if (!isIndexable(cond)) throw bad(`where.${field} must be a string, a finite number, a boolean, null or a range`);
        out.set(field, { eq: cond });
      }
    }
    return out;
  }

  private checkQueryField(field: string, name: string): void {
    if (field !== this.key && !this.indexes.includes(field)) {
      throw bad(`${name}: "${printable(field)}" is not indexed; query by ${[this.key, ...this.indexes].join(', ')} (add it to the model's indexes)`);
    }
  }

  /** Which field drives the query, and the window of its keys to scan. */
  private plan(conditions: Map<string, Condition>, orderBy: string | undefined, order: Order): Plan {
    let field: string;
    if (orderBy !== undefined) {
      if (typeof orderBy !== 'string') throw bad('orderBy must be a field name');
      this.checkQueryField(orderBy, 'orderBy');
      field = orderBy;
    } else {
      const entries = [...conditions.entries()];
      field = (entries.find(([, c]) => 'eq' in c) ?? entries.find(([, c]) => 'range' in c))?.[0] ?? this.key;
    }
    const condition = conditions.get(field);
    if (field === this.key) return this.keyPlan(condition, order);
    const base = `${INDEX}${field}:`;
    if (!condition) return { field, prefix: base, order };
    if ('eq' in condition) return { field, prefix: base + encodeIndexable(condition.eq) + TERMINATOR, order };
    // a range stays among values of its kind: the window starts and ends at the kind's tag
    const { gt, gte, lt, lte } = condition.range;
    const [low, high] = kindWindow(condition.kind);
    const lower = gt !== undefined ? base + encodeIndexable(gt) + '\u0002' : gte !== undefined ? base + encodeIndexable(gte) : base + low;
    const upper = lt !== undefined ? base + encodeIndexable(lt) : lte !== undefined ? base + encodeIndexable(lte) + '\u0002' : base + high;
    return { field, prefix: base, after: lower, before: upper, order };
  }

  /**
   * A scan of the entities themselves. Keys hold no control characters, so `id:<v>\u0001`
   * lies between `id:<v>` and every longer key; only an inclusive lower bound has no
   * exclusive twin, so that key is read on its own.
   */
  private keyPlan(condition: Condition | undefined, order: Order): Plan {
    if (!condition || !('range' in condition)) return { field: this.key, prefix: PRIMARY, order };
    const { gt, gte, lt, lte } = condition.range;
    const bound = (v: Indexable | undefined) => (typeof v === 'string' ? v : undefined);
    if ([gt, gte, lt, lte].some((v) => v !== undefined && typeof v !== 'string')) {
      // keys are strings: a range of another kind holds none
      return { field: this.key, prefix: PRIMARY, after: PRIMARY, before: PRIMARY, order };
    }
    const plan: Plan = { field: this.key, prefix: PRIMARY, order };
    if (bound(gt) !== undefined) plan.after = PRIMARY + gt;
    else if (bound(gte) !== undefined) {
      plan.after = PRIMARY + gte;
      plan.inclusive = PRIMARY + gte;
    }
    if (bound(lt) !== undefined) plan.before = PRIMARY + lt;
    else if (bound(lte) !== undefined) plan.before = `${PRIMARY}${lte}\u0001`;
    return plan;
  }

  /**
   * The entities of the plan's window in its order, page by page: an entity for each
   * live hit, undefined for a stale index entry (or a key that went meanwhile).
   */
  private async *candidates(plan: Plan, options: ModelCallOptions, pageSize: number): AsyncGenerator<(Entity | undefined)[]> {
    const scope = this.scope(options);
    const inclusiveFirst = plan.inclusive !== undefined && plan.order === 'asc';
    if (inclusiveFirst) yield [await this.fetch((plan.inclusive as string).slice(PRIMARY.length), options)];
    let after = plan.after;
    let before = plan.before;
    for (;;) {
      if (after !== undefined && before !== undefined && compareKeys(after, before) >= 0) break;
      const window = { ...scope, after, before, order: plan.order, limit: pageSize };
      if (plan.field === this.key) {
        // the entities themselves, values included: no second read
        const records = await this.store.read(plan.prefix, { ...window, prefix: true });
        if (records.length > 0) yield records.map((r) => r.value as Entity);
        if (records.length < pageSize) break;
        const last = (records.at(-1) as { key: string }).key;
        if (plan.order === 'asc') after = last;
        else before = last;
      } else {
        const keys = await this.store.list({ ...window, prefix: plan.prefix });
        if (keys.length > 0) yield await this.resolve(plan.field, keys, options);
        if (keys.length < pageSize) break;
        const last = keys.at(-1) as string;
        if (plan.order === 'asc') after = last;
        else before = last;
      }
    }
    if (plan.inclusive !== undefined && !inclusiveFirst) yield [await this.fetch(plan.inclusive.slice(PRIMARY.length), options)];
  }

  /** The entities of index hits, each checked to still hold the indexed value (else undefined). */
  private async resolve(field: string, keys: string[], options: ModelCallOptions): Promise<(Entity | undefined)[]> {
    const base = `${INDEX}${field}:`;
    const out: (Entity | undefined)[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i += CONCURRENCY) {
      await Promise.all(
        keys.slice(i, i + CONCURRENCY).map(async (key, j) => {
          const cut = key.indexOf(TERMINATOR, base.length);
          if (cut < 0) return;
          const encoded = key.slice(base.length, cut);
          const entity = await this.fetch(key.slice(cut + 1), options);
          const value = entity?.[field] ?? null;
          out[i + j] = entity && isIndexable(value) && encodeIndexable(value) === encoded ? entity : undefined;
        }),
      );
    }
    return out;
  }

  private satisfies(entity: Entity, conditions: Map<string, Condition>): boolean {
    for (const [field, condition] of conditions) {
      const value = entity[field] ?? null;
      if (!isIndexable(value)) return false;
      if ('eq' in condition) {
        if (encodeIndexable(value) !== encodeIndexable(condition.eq)) return false;
        continue;
      }
      const { gt, gte, lt, lte } = condition.range;
      if (kindOf(value) !== condition.kind) return false;
      const v = encodeIndexable(value);
      if (gt !== undefined && compareKeys(v, encodeIndexable(gt)) <= 0) return false;
      if (gte !== undefined && compareKeys(v, encodeIndexable(gte)) < 0) return false;
      if (lt !== undefined && compareKeys(v, encodeIndexable(lt)) >= 0) return false;
      if (lte !== undefined && compareKeys(v, encodeIndexable(lte)) > 0) return false;
    }
    return true;
  }
}
