import { z } from 'zod';
import { clientStream, defineService, endpoint, serverStream } from '../service/definition.js';
import { STORE_LIMITS } from './util.js';

/**
 * The store as a service: `micro server` serves it (SQLite underneath) and RemoteStore /
 * RemoteBlobStore use it. The schemas give the shape and loose bounds (in characters);
 * the engine behind the service checks the exact ones (bytes, names, JSON) itself, the
 * same way for every engine.
 *
 * Answers that could outgrow one frame (Read and List of up to 1000 large records or
 * long keys, Blob.List) stop early with `more: true`; the remote store then asks again
 * after the last key it got, so callers never see the cut.
 */

const LIMITS = STORE_LIMITS;
const Namespace = z.string().max(LIMITS.namespaceChars).optional().describe('default: the namespace of the caller; others need an admin of micro');
const Database = z.string().max(LIMITS.nameChars).optional().describe('default micro');
const Table = z.string().max(LIMITS.nameChars).optional().describe('default "default"');
const Key = z.string().max(LIMITS.keyBytes);
const Metadata = z.record(z.string().max(LIMITS.metadataKey), z.union([z.string().max(LIMITS.metadataValue), z.number(), z.boolean()]));
const Limit = z.number().int().min(1).max(LIMITS.maxLimit).optional().describe(`default ${LIMITS.defaultLimit}, at most ${LIMITS.maxLimit}`);
const Offset = z.number().int().min(0).max(LIMITS.maxOffset).optional();
const Scan = {
  after: Key.optional().describe('only keys after this one (a cursor: the last key of a page)'),
  before: Key.optional().describe('only keys before this one'),
  order: z.enum(['asc', 'desc']).optional().describe('key order, default asc'),
  limit: Limit,
  offset: Offset,
};

/**
 * A where tree (`{field, op, value}`, `{and: [...]}`, `{or: [...]}`): taken as any JSON here
 * and checked by the engine (query.ts), whose 400s name the exact part that is wrong.
 */
const Where = z.unknown();

export const StoreRecordSchema = z.object({
  key: z.string(),
  value: z.unknown().describe('any JSON value'),
  metadata: Metadata.optional(),
  expiry: z.number().optional().describe('when the record expires, epoch ms'),
});

const BlobInfoSchema = z.object({
  key: z.string(),
  size: z.number().describe('bytes'),
  sha256: z.string().describe('hex SHA-256 of the content'),
  updated: z.number().describe('epoch ms'),
});

/** Base64 of at most one 64 KiB chunk. */
export const BLOB_CHUNK_BASE64 = 4 * Math.ceil((64 * 1024) / 3);

export const storeService = defineService({
  name: 'store',
  version: '1.0.0',
  description: 'Key-value records and blobs, durable and namespaced',
  endpoints: {
    Read: endpoint({
      description: 'The record at key, or with prefix/suffix every record whose key matches',
      request: z.object({
        key: Key,
        prefix: z.boolean().optional().describe('the key is a prefix'),
        suffix: z.boolean().optional().describe('the key is a suffix'),
        ...Scan,
        namespace: Namespace,
        database: Database,
        table: Table,
      }),
      response: z.object({ records: z.array(StoreRecordSchema), more: z.boolean().optional().describe('cut to fit one answer: read again after the last key') }),
      idempotent: true,
      readonly: true,
    }),
    Write: endpoint({
      description: 'Creates or replaces a record; durable once answered',
      request: z.object({
        record: StoreRecordSchema,
        ttl: z.number().min(0).max(LIMITS.maxTtlSeconds).optional().describe('seconds until the record expires (0 = never)'),
        namespace: Namespace,
        database: Database,
        table: Table,
      }),
      response: z.object({}),
      idempotent: true,
    }),
    Delete: endpoint({
      description: 'Deletes the record at key (deleting a missing one is not an error)',
      request: z.object({ key: Key, namespace: Namespace, database: Database, table: Table }),
      response: z.object({}),
      idempotent: true,
    }),
    List: endpoint({
      description: 'The keys of a table in key order',
      request: z.object({
        prefix: Key.optional(),
        suffix: Key.optional(),
        ...Scan,
        namespace: Namespace,
        database: Database,
        table: Table,
      }),
      response: z.object({ keys: z.array(z.string()), more: z.boolean().optional().describe('cut to fit one answer: list again after the last key') }),
      idempotent: true,
      readonly: true,
    }),
    Databases: endpoint({
      description: 'The databases of the namespace that hold records',
      request: z.object({ namespace: Namespace, limit: Limit, offset: Offset }),
      response: z.object({ databases: z.array(z.string()) }),
      idempotent: true,
      readonly: true,
    }),
    Tables: endpoint({
      description: 'The tables of a database that hold records',
      request: z.object({ namespace: Namespace, database: Database, limit: Limit, offset: Offset }),
      response: z.object({ tables: z.array(z.string()) }),
      idempotent: true,
      readonly: true,
    }),
    Query: endpoint({
      description: 'The records of a table whose JSON values match where, ordered by a field, a page of them',
      request: z.object({
        where: Where.optional().describe('{field, op, value} or {and: [...]} / {or: [...]}; field a dotted path'),
        orderBy: z.string().max(256).optional().describe('a field path (default: the key)'),
        order: z.enum(['asc', 'desc']).optional(),
        limit: Limit,
        offset: Offset,
        namespace: Namespace,
        database: Database,
        table: Table,
      }),
      response: z.object({ records: z.array(StoreRecordSchema), more: z.boolean().optional().describe('cut to fit one answer: query again with the offset moved on') }),
      idempotent: true,
      readonly: true,
    }),
    Count: endpoint({
      description: 'How many records of a table match where',
      request: z.object({ where: Where.optional(), namespace: Namespace, database: Database, table: Table }),
      response: z.object({ count: z.number() }),
      idempotent: true,
      readonly: true,
    }),
    'Blob.Put': clientStream({
      description: 'Stores a blob sent as a stream: the first message names the key, every message may carry a base64 chunk of at most 64 KiB',
      request: z.object({
        key: Key.optional().describe('in the first message'),
        namespace: Namespace,
        data: z.string().max(BLOB_CHUNK_BASE64).optional().describe('base64 of the next chunk'),
      }),
      response: BlobInfoSchema,
    }),
    'Blob.Get': serverStream({
      description: 'A blob as a stream of base64 chunks of at most 64 KiB',
      request: z.object({ key: Key, namespace: Namespace }),
      response: z.object({ data: z.string() }),
      readonly: true,
    }),
    'Blob.Delete': endpoint({
      request: z.object({ key: Key, namespace: Namespace }),
      response: z.object({}),
      idempotent: true,
    }),
    'Blob.List': endpoint({
      request: z.object({ prefix: Key.optional(), after: Key.optional(), limit: Limit, offset: Offset, namespace: Namespace }),
      response: z.object({ blobs: z.array(BlobInfoSchema), more: z.boolean().optional() }),
      idempotent: true,
      readonly: true,
    }),
  },
});

export type StoreService = typeof storeService;
