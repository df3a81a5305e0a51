import { defineService, endpoint, FULLTEXT_LIMITS, z } from '@micro/sdk';
import { i64, m3oRequest } from '@micro/services-kit';

const Index = z.string().max(FULLTEXT_LIMITS.indexChars).optional().describe('the index: letters, digits, _ . - (each tenant has its own)');
const Data = z.record(z.string(), z.unknown()).optional().describe('a JSON object: its strings are searchable text, its numbers comparable');
const Record = z.object({ id: z.string(), data: z.record(z.string(), z.unknown()) });
const Empty = z.object({});

/** The search service, as M3O's search API: indexes of JSON records, searched with a query language. */
export const searchDef = defineService({
  name: 'search',
  version: '1.0.0',
  description: "Full-text search of JSON records: field == 'words' (a word ending in * is a prefix), field >= n, field <= n, AND, OR and parentheses; best match first",
  public: true,
  endpoints: {
    CreateIndex: endpoint({
      description: 'Makes an index (making one that exists is not an error)',
      request: m3oRequest({ index: Index }),
      response: Empty,
      idempotent: true,
      price: 1,
      freeQuota: 1_000,
    }),
    DeleteIndex: endpoint({
      description: 'Deletes an index with every record in it; 404 when there is none',
      request: m3oRequest({ index: Index }),
      response: Empty,
      idempotent: true,
      price: 1,
      freeQuota: 1_000,
    }),
    Delete: endpoint({
      description: 'Deletes a record by id (a missing one is not an error); 404 when the index is missing',
      request: m3oRequest({ id: z.string().max(FULLTEXT_LIMITS.idChars).optional(), index: Index }),
      response: Empty,
      idempotent: true,
      price: 1,
      freeQuota: 10_000,
    }),
    Index: endpoint({
      description: 'Stores a record in the index (made on first use), replacing the one of its id; a new id when none is given',
      request: m3oRequest({ data: Data, id: z.string().max(FULLTEXT_LIMITS.idChars).optional(), index: Index }),
      response: z.object({ record: Record }),
      idempotent: true,
      price: 2,
      freeQuota: 10_000,
    }),
    Search: endpoint({
      description: `The records that match the query, best first: at most limit (default ${FULLTEXT_LIMITS.defaultLimit}, at most ${FULLTEXT_LIMITS.maxLimit}); 404 when the index is missing`,
      request: m3oRequest({ index: Index, query: z.string().max(FULLTEXT_LIMITS.queryChars).optional(), limit: i64().optional() }),
      response: z.object({ records: z.array(Record) }),
      idempotent: true,
      readonly: true,
      price: 2,
      freeQuota: 10_000,
    }),
  },
});

export type SearchDef = typeof searchDef;
