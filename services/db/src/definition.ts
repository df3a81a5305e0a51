import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest } from '@micro/services-kit';

/**
 * The db service as M3O published it: JSON records in tables of the caller's own, read by
 * id or by a query (`age > 18 and user.name == 'ada'`). Prices in units of 10^-6 USD.
 */

const Table = z.string().max(256).optional().describe('default "default"; lower-cased, "-" becomes "_", letters, digits and "_" only');
const Id = z.string().max(512).optional();
const Record = z.record(z.string(), z.unknown()).optional().describe('a JSON object');

const reads = { price: 10, freeQuota: 100_000 };
const writes = { price: 20, freeQuota: 100_000 };
const tables = { price: 100, freeQuota: 1_000 };

export const db = defineService({
  name: 'db',
  version: '1.0.0',
  public: true,
  description: 'JSON records in tables, queried with M3O\'s query language',
  endpoints: {
    Create: endpoint({
      description: 'Creates a record; its id is `id`, else the record\'s own string `id`, else a new UUID (written into the record)',
      request: m3oRequest({ table: Table, id: Id, record: Record }),
      response: z.object({ id: z.string() }),
      ...writes,
    }),
    Read: endpoint({
      description: 'The record of an id, or the records that match a query, ordered and paged',
      request: m3oRequest({
        table: Table,
        id: Id,
        query: z.string().max(4096).optional().describe("e.g. age > 18 and user.name == 'ada'"),
        orderBy: z.string().max(256).optional().describe('a field (default: creation time)'),
        order: z.string().max(8).optional().describe('asc (default) or desc'),
        limit: z.number().optional().describe('default 100, at most 1000'),
        offset: z.number().optional(),
      }),
      response: z.object({ records: z.array(z.record(z.string(), z.unknown())) }),
      idempotent: true,
      ...reads,
    }),
    Update: endpoint({
      description: 'Sets the given top-level fields of a record (the id: `id` or the record\'s own)',
      request: m3oRequest({ table: Table, id: Id, record: Record }),
      response: z.object({}),
      ...writes,
    }),
    Delete: endpoint({
      description: 'Deletes a record',
      request: m3oRequest({ table: Table, id: Id }),
      response: z.object({}),
      idempotent: true,
      ...writes,
    }),
    Count: endpoint({
      description: 'How many records a table holds',
      request: m3oRequest({ table: Table }),
      response: z.object({ count: z.number() }),
      idempotent: true,
      ...reads,
    }),
    ListTables: endpoint({
      description: 'The tables that hold records',
      request: m3oRequest({}),
      response: z.object({ tables: z.array(z.string()) }),
      idempotent: true,
      ...reads,
    }),
    Truncate: endpoint({
      description: 'Deletes every record of a table',
      request: m3oRequest({ table: Table }),
      response: z.object({}),
      idempotent: true,
      ...tables,
    }),
    DropTable: endpoint({
      description: 'Deletes a table with its records',
      request: m3oRequest({ table: Table }),
      response: z.object({}),
      idempotent: true,
      ...tables,
    }),
    RenameTable: endpoint({
      description: 'Renames a table; the new name must be free',
      request: m3oRequest({ from: Table, to: Table }),
      response: z.object({}),
      ...tables,
    }),
  },
});

export type Db = typeof db;
