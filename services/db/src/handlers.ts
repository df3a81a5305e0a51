import { randomUUID } from 'node:crypto';
import { errors, type Context, type Engines, type StoreRecord, type StoreWhere } from '@micro/sdk';
import { publicService, tenantStore, withTenantLock, type TenantStore } from '@micro/services-kit';
import { db } from './definition.js';
import { parseQuery, QueryError } from './query.js';

/*
 * Each tenant's tables are tables of its own namespace's store, database `db`. A record
 * is stored as `{created, data}`: `data` is the caller's record, `created` (epoch ms)
 * orders reads that name no orderBy, as M3O did. Queries are parsed here and run by the
 * store engine (SQLite or PostgreSQL), which indexes the fields queried often; no table
 * is ever loaded whole.
 */

export { db } from './definition.js';

export const DB_LIMITS = Object.freeze({
  /** a record as JSON, bytes (the store keeps at most 1 MiB with the wrapper) */
  recordBytes: 1_000_000,
  /** nesting of a record */
  recordDepth: 32,
  /** characters of an id */
  idChars: 512,
  /** characters of a table name */
  tableChars: 64,
  defaultLimit: 100,
  maxLimit: 1000,
  /** records moved or deleted per step of Truncate, DropTable and RenameTable */
  batch: 500,
});

const ID = 'db';

interface Stored {
  created: number;
  data: Record<string, unknown>;
}

/** M3O's table names: default `default`, lower-cased, `-` → `_`, letters, digits and `_` only. */
export function tableName(value: string | undefined, field = 'table'): string {
  if (value === undefined || value === '') return 'default';
  const name = value.toLowerCase().replace(/-/g, '_');
  if (name.length > DB_LIMITS.tableChars) throw errors.BadRequest(ID, `${field} must be at most ${DB_LIMITS.tableChars} characters`);
  if (!/^[a-z0-9_]+$/.test(name)) throw errors.BadRequest(ID, `${field} "${printable(value)}" may hold only letters, digits, "_" and "-"`);
  return name;
}

function printable(text: string): string {
  const clean = text.replace(/\p{Cc}/gu, '?');
  return clean.length > 64 ? `${clean.slice(0, 64)}…` : clean;
}

function checkId(id: string, field = 'id'): string {
  if (id.length === 0) throw errors.BadRequest(ID, `${field} must not be empty`);
  if (id.length > DB_LIMITS.idChars) throw errors.BadRequest(ID, `${field} must be at most ${DB_LIMITS.idChars} characters`);
  if (/\p{Cc}/u.test(id) || /[\uD800-\uDFFF]/.test(id)) throw errors.BadRequest(ID, `${field} must not contain control characters or lone surrogates`);
  return id;
}

/** A record: a non-empty JSON object within the depth and size bounds, copied as JSON. */
function checkRecord(record: Record<string, unknown> | undefined, allowEmpty = false): Record<string, unknown> {
  if (record === undefined || (!allowEmpty && Object.keys(record).length === 0)) throw errors.BadRequest(ID, 'Missing record');
  const depth = (v: unknown, d: number): void => {
    if (d > DB_LIMITS.recordDepth) throw errors.BadRequest(ID, `record nests deeper than ${DB_LIMITS.recordDepth} levels`);
    if (v !== null && typeof v === 'object') for (const x of Object.values(v)) depth(x, d + 1);
  };
  depth(record, 1);
  const text = JSON.stringify(record);
  if (Buffer.byteLength(text, 'utf8') > DB_LIMITS.recordBytes) throw errors.BadRequest(ID, `record must be at most ${DB_LIMITS.recordBytes} bytes as JSON`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** The id of a Create or Update: `id`, else the record's own string id. */
function idOf(id: string | undefined, record: Record<string, unknown>): string | undefined {
  if (id) return checkId(id);
  if (typeof record.id === 'string' && record.id !== '') return checkId(record.id, 'record.id');
  return undefined;
}

function where(query: string | undefined): StoreWhere | undefined {
  if (!query || query.trim() === '') return undefined;
  try {
    const conditions = parseQuery(query).map((c) => ({ field: ['data', ...c.path].join('.'), op: c.op, value: c.value }));
    return conditions.length === 1 ? conditions[0] : { and: conditions };
  } catch (err) {
    if (err instanceof QueryError) throw errors.BadRequest(ID, `query: ${err.message}`);
    throw err;
  }
}

function orderBy(field: string | undefined): string {
  if (!field) return 'created';
  if (field.length > 256 || !/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+){0,6}$/.test(field)) {
    throw errors.BadRequest(ID, `orderBy "${printable(field)}" must be a field such as "age" or "user.age" (letters, digits and "_", joined by ".")`);
  }
  return `data.${field}`;
}

function page(limit: number | undefined, offset: number | undefined): { limit: number; offset: number } {
  const l = limit === undefined || limit === 0 ? DB_LIMITS.defaultLimit : limit;
  if (!Number.isInteger(l) || l < 0 || l > DB_LIMITS.maxLimit) throw errors.BadRequest(ID, `limit must be a whole number from 0 to ${DB_LIMITS.maxLimit} (0: the default, ${DB_LIMITS.defaultLimit})`);
  const o = offset ?? 0;
  if (!Number.isInteger(o) || o < 0 || o > 100_000) throw errors.BadRequest(ID, 'offset must be a whole number from 0 to 100000');
  return { limit: l, offset: o };
}

function order(value: string | undefined): 'asc' | 'desc' {
  const o = (value ?? '').toLowerCase();
  if (o === '' || o === 'asc') return 'asc';
  if (o === 'desc') return 'desc';
  throw errors.BadRequest(ID, `order must be "asc" or "desc", not "${printable(value ?? '')}"`);
}

const dataOf = (r: StoreRecord) => (r.value as Stored).data;

/** Deletes every record of a table, a batch at a time (never the whole table in memory). */
async function emptyTable(store: TenantStore, table: string): Promise<void> {
  for (;;) {
    const keys = await store.list({ table, limit: DB_LIMITS.batch });
    if (keys.length === 0) return;
    await Promise.all(keys.map((key) => store.delete(key, { table })));
  }
}

export const service = publicService(db, (engines: Engines) => {
  const tenant = (ctx: Context) => tenantStore(engines.store, ctx, 'db');
  return {
    Create: async (req, ctx) => {
      const record = checkRecord(req.record);
      const table = tableName(req.table);
      const id = idOf(req.id, record) ?? randomUUID();
      record.id = id;
      const store = tenant(ctx);
      // one writer at a time per record: of two Creates of one id, one is a 409
      return withTenantLock(engines, ctx, 'db', `${table}\n${id}`, async () => {
        if ((await store.read(id, { table })).length > 0) throw errors.Conflict(ID, `a record with id "${printable(id)}" exists in table ${table} (use Update)`);
        await store.write({ key: id, value: { created: Date.now(), data: record } satisfies Stored }, { table });
        return { id };
      });
    },
    Update: async (req, ctx) => {
      const record = checkRecord(req.record);
      const table = tableName(req.table);
      const id = idOf(req.id, record);
      if (!id) throw errors.BadRequest(ID, 'Missing id (give id, or record.id)');
      const store = tenant(ctx);
      // the merge reads then writes: concurrent Updates of one record each keep the other's fields
      return withTenantLock(engines, ctx, 'db', `${table}\n${id}`, async () => {
        const [old] = await store.read(id, { table });
        if (!old) throw errors.NotFound(ID, `no record with id "${printable(id)}" in table ${table}`);
        const stored = old.value as Stored;
        const data = { ...stored.data, ...record, id };
        if (Buffer.byteLength(JSON.stringify(data), 'utf8') > DB_LIMITS.recordBytes) throw errors.BadRequest(ID, `record must be at most ${DB_LIMITS.recordBytes} bytes as JSON (with what it merges into)`);
        await store.write({ key: id, value: { created: stored.created, data } satisfies Stored }, { table });
        return {};
      });
    },
    Read: async (req, ctx) => {
      const table = tableName(req.table);
      const store = tenant(ctx);
      const { limit, offset } = page(req.limit, req.offset);
      const dir = order(req.order);
      if (req.id) return { records: (await store.read(checkId(req.id), { table })).map(dataOf) };
      const records = await store.query({ table, where: where(req.query), orderBy: orderBy(req.orderBy), order: dir, limit: limit === 0 ? DB_LIMITS.defaultLimit : limit, offset });
      return { records: records.map(dataOf) };
    },
    Delete: async (req, ctx) => {
      if (!req.id) throw errors.BadRequest(ID, 'Missing id');
      await tenant(ctx).delete(checkId(req.id), { table: tableName(req.table) });
      return {};
    },
    Count: async (req, ctx) => ({ count: await tenant(ctx).count({ table: tableName(req.table) }) }),
    ListTables: async (_req, ctx) => ({ tables: await tenant(ctx).tables() }),
    Truncate: async (req, ctx) => {
      await emptyTable(tenant(ctx), tableName(req.table));
      return {};
    },
    // a table exists while it holds records: dropping one is emptying it
    DropTable: async (req, ctx) => {
      await emptyTable(tenant(ctx), tableName(req.table));
      return {};
    },
    RenameTable: async (req, ctx) => {
      if (!req.from) throw errors.BadRequest(ID, 'Missing from');
      if (!req.to) throw errors.BadRequest(ID, 'Missing to');
      const from = tableName(req.from, 'from');
      const to = tableName(req.to, 'to');
      if (from === to) return {};
      const store = tenant(ctx);
      if ((await store.count({ table: from })) === 0) throw errors.NotFound(ID, `no table ${from}`);
      if ((await store.count({ table: to })) > 0) throw errors.BadRequest(ID, `table ${to} exists: drop it first or choose another name`);
      // moved a batch at a time: each record is written to the new table before it leaves the old one
      for (;;) {
        const batch = await store.read('', { table: from, prefix: true, limit: DB_LIMITS.batch });
        if (batch.length === 0) return {};
        await Promise.all(batch.map((r) => store.write({ key: r.key, value: r.value }, { table: to })));
        await Promise.all(batch.map((r) => store.delete(r.key, { table: from })));
      }
    },
  };
});
