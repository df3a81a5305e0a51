import { randomUUID } from 'node:crypto';
import { errors, z, type Context, type Engines } from '@micro/sdk';
import { tenantStore, type TenantStore } from './tenant.js';
import { listen } from './listen.js';

/**
 * A tenant's records of one kind (notes, lists, comments, contacts, chat groups): each a
 * JSON value with an id and when it was made and last changed, kept in the tenant's own
 * namespace of the store (database = the service's name). What every such service needs
 * once: ids it made, bounds on how many a tenant keeps, writes serialised per tenant (so
 * that the bound holds and two updates of one record do not lose each other), a 404 for
 * an id the tenant does not have, and optionally a live stream of the changes.
 */

/** What the store keeps besides a record's own fields. */
export interface Stamped {
  id: string;
  /** epoch ms */
  created: number;
  /** epoch ms */
  updated: number;
}

export interface RecordsOptions {
  /** the service's name: the store database, the error id and the start of event topics */
  service: string;
  /** what one record is called in errors (`note`) */
  noun: string;
  /** the store table (default `records`) */
  table?: string;
  /** records one tenant may keep (default and at most 1,000: List answers them all at once) */
  maxRecords?: number;
  /** publish every change to the tenant's broker, for `changes` (default false) */
  events?: boolean;
  /** ms a write waits for another write of the same tenant before a 409 (default 10,000) */
  lockWait?: number;
  /** the clock (default Date.now) */
  now?: () => number;
}

/** Ids we make are UUIDs; ids we take are at most this and of these characters, so that they are safe as keys and topic tokens. */
export const RECORD_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A request's record id: a 400 naming the field for anything that is not one of ours (an empty one is left to the handler's `Missing id`). */
export function recordId() {
  return z.string().max(64).regex(/^[A-Za-z0-9_-]*$/, 'must be an id as this service gives them (letters, digits, - and _)');
}

/** Text of at most `max` characters with no control characters other than tab and line breaks. */
export function text(max: number) {
  // eslint-disable-next-line no-control-regex -- the point is to refuse them
  return z.string().max(max).regex(/^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$/, 'must not contain control characters');
}

/** The most records of one kind a tenant keeps: one page of the store. */
export const MAX_RECORDS = 1_000;

/** One change of a record, as the Events streams send it. */
export interface Change<R> {
  event: 'create' | 'update' | 'delete';
  record: R;
}

export class Records<R extends Stamped> {
  private readonly options: Required<Omit<RecordsOptions, 'now'>> & { now: () => number };

  constructor(
    private readonly engines: Pick<Engines, 'store' | 'sync' | 'broker'>,
    options: RecordsOptions,
  ) {
    this.options = { table: 'records', maxRecords: MAX_RECORDS, events: false, lockWait: 10_000, now: Date.now, ...options };
    if (!(this.options.maxRecords >= 1 && this.options.maxRecords <= MAX_RECORDS)) throw new RangeError(`maxRecords must be 1 to ${MAX_RECORDS}`);
  }

  /** Stores a new record made of `fields`, with a new id; a 429 when the tenant has maxRecords already. */
  async create(ctx: Context, fields: Omit<R, keyof Stamped>): Promise<R> {
    return this.locked(ctx, async (store) => {
      const held = await store.list({ table: this.options.table, limit: this.options.maxRecords });
      if (held.length >= this.options.maxRecords) {
        throw errors.TooManyRequests(this.options.service, `you keep ${this.options.maxRecords} ${this.options.noun}s already (the most one account may keep): delete some first`);
      }
      const now = this.options.now();
      const record = { ...fields, id: randomUUID(), created: now, updated: now } as R;
      await store.write({ key: record.id, value: record }, { table: this.options.table });
      await this.publish(ctx, 'create', record);
      return record;
    });
  }

  /** The record `id` of the calling tenant; a 404 when it has none. */
  async read(ctx: Context, id: string): Promise<R> {
    const found = await this.find(this.store(ctx), id);
    if (!found) throw this.notFound(id);
    return found;
  }

  /** Replaces the record `id` with what `change` makes of it (id and created kept, updated now). */
  async update(ctx: Context, id: string, change: (record: R) => R | Promise<R>): Promise<R> {
    return this.locked(ctx, async (store) => {
      const found = await this.find(store, id);
      if (!found) throw this.notFound(id);
      const record = { ...(await change(found)), id: found.id, created: found.created, updated: this.options.now() };
      await store.write({ key: id, value: record }, { table: this.options.table });
      await this.publish(ctx, 'update', record);
      return record;
    });
  }

  /** Deletes the record `id` and answers what it was; a 404 when there is none. */
  async delete(ctx: Context, id: string): Promise<R> {
    return this.locked(ctx, async (store) => {
      const found = await this.find(store, id);
      if (!found) throw this.notFound(id);
      await store.delete(id, { table: this.options.table });
      await this.publish(ctx, 'delete', found);
      return found;
    });
  }

  /** Every record of the tenant, oldest first. */
  async list(ctx: Context): Promise<R[]> {
    const page = await this.store(ctx).read('', { table: this.options.table, prefix: true, limit: MAX_RECORDS });
    return page.map((rec) => rec.value as R).sort((x, y) => x.created - y.created || (x.id < y.id ? -1 : 1));
  }

  /**
   * The changes of the tenant's records from now on (of record `id` only, when given; a
   * 404 when the tenant has no such record), until `ctx.signal` ends the stream.
   */
  async *changes(ctx: Context, id?: string): AsyncGenerator<Change<R>> {
    const stream = this.listen<Change<R>>(ctx, id ?? '*');
    try {
      // subscribed first, then checked: a record deleted in between still ends in a 404
      // rather than a stream that never says anything
      await stream.ready;
      if (id !== undefined) await this.read(ctx, id);
      yield* stream;
    } finally {
      await stream.close();
    }
  }

  /** The store of the calling tenant, for what a service keeps besides its records (e.g. chat's messages). */
  store(ctx: Pick<Context, 'tenant'>): TenantStore {
    return tenantStore(this.engines.store, ctx, this.options.service);
  }

  /** Runs `fn` holding the tenant's write lock of this kind of record. */
  async locked<T>(ctx: Context, fn: (store: TenantStore) => Promise<T>): Promise<T> {
    const lock = await this.engines.sync.lock(`${this.options.service}.${this.options.table}`, { namespace: ctx.tenant, wait: this.options.lockWait, ttl: 30_000, signal: ctx.signal });
    try {
      return await fn(this.store(ctx));
    } finally {
      await lock.release().catch(() => undefined);
    }
  }

  /** What is announced about record `id` (`*`: any record) of the tenant from now on; see `listen`. */
  listen<T>(ctx: Context, id: string) {
    return listen<T>(this.engines.broker, `${this.options.service}.${this.options.table}.${id}`, ctx);
  }

  /** Publishes `body` to the listeners of record `id` (and of all records) of the tenant. */
  async announce(ctx: Context, id: string, body: unknown): Promise<void> {
    await this.engines.broker.publish(`${this.options.service}.${this.options.table}.${id}`, body, { namespace: ctx.tenant });
  }

  private async publish(ctx: Context, event: Change<R>['event'], record: R): Promise<void> {
    if (this.options.events) await this.announce(ctx, record.id, { event, record });
  }

  private async find(store: TenantStore, id: string): Promise<R | undefined> {
    if (!RECORD_ID.test(id)) return undefined;
    const [rec] = await store.read(id, { table: this.options.table });
    return rec?.value as R | undefined;
  }

  private notFound(id: string) {
    return errors.NotFound(this.options.service, `no ${this.options.noun} ${id}`);
  }
}
