import { z } from 'zod';
import { defineService, endpoint } from '../service/definition.js';
import { FULLTEXT_LIMITS as LIMITS } from './fulltext.js';

/**
 * Full-text search as a core service of `micro server` (SQLite FTS5 in the local profile,
 * PostgreSQL full-text search in the nats profile); RemoteFulltext uses it. Named
 * `fulltext` so that it never shadows a value-add service (`search` is one). The schemas
 * give the shape and loose bounds; the engine checks the exact ones itself.
 */

const Index = z.string().max(LIMITS.indexChars).describe('letters, digits, _ . -');
const Namespace = z.string().max(LIMITS.namespaceChars).optional().describe('default: the namespace of the caller; others need an admin of micro');
const Data = z.record(z.string(), z.unknown()).describe('a JSON object: its strings are searchable text, its numbers comparable');
const Document = z.object({ id: z.string(), data: Data });
const Empty = z.object({});

export const fulltextService = defineService({
  name: 'fulltext',
  version: '1.0.0',
  description: 'Full-text search: JSON documents in named indexes, found by words and number ranges, best match first',
  endpoints: {
    CreateIndex: endpoint({
      description: 'Makes an index (making one that exists is not an error)',
      request: z.object({ index: Index, namespace: Namespace }),
      response: Empty,
      idempotent: true,
    }),
    DeleteIndex: endpoint({
      description: 'Deletes an index with its documents; 404 when there is none',
      request: z.object({ index: Index, namespace: Namespace }),
      response: Empty,
      idempotent: true,
    }),
    ListIndexes: endpoint({
      description: 'The indexes of the namespace, by name',
      request: z.object({ namespace: Namespace }),
      response: z.object({ indexes: z.array(z.object({ name: z.string(), created: z.number().int(), documents: z.number().int() })) }),
      idempotent: true,
      readonly: true,
    }),
    Put: endpoint({
      description: 'Stores a document in the index (made on first use), replacing the one of its id; a new id when none is given',
      request: z.object({ index: Index, id: z.string().max(LIMITS.idChars).optional(), data: Data, namespace: Namespace }),
      response: Document,
      idempotent: true,
    }),
    Delete: endpoint({
      description: 'Deletes a document (a missing one is not an error); 404 when the index is missing',
      request: z.object({ index: Index, id: z.string().max(LIMITS.idChars), namespace: Namespace }),
      response: Empty,
      idempotent: true,
    }),
    Search: endpoint({
      description: "The best hits of a query: field == 'words' (a word ending in * is a prefix), field >= n, field <= n, AND, OR, parentheses",
      request: z.object({
        index: Index,
        query: z.string().max(LIMITS.queryChars),
        limit: z.number().int().min(1).max(LIMITS.maxLimit).optional().describe(`default ${LIMITS.defaultLimit}`),
        namespace: Namespace,
      }),
      response: z.object({ hits: z.array(Document.extend({ score: z.number() })) }),
      idempotent: true,
      readonly: true,
    }),
  },
});

export type FulltextService = typeof fulltextService;
