import { MicroError, type Context, type Engines, type Handlers } from '@micro/sdk';
import { missing, publicService } from '@micro/services-kit';
import { searchDef } from './definition.js';

/** The id of the search service's errors, as M3O answered them. */
const SEARCH = 'search';

/**
 * The search service's handlers over the engines' full-text search (micro server's
 * fulltext service: SQLite FTS5 or PostgreSQL), every call in the calling tenant's own
 * namespace (ctx.tenant): no request field names a namespace, so an index name reaches the
 * caller's own indexes only, and purging the namespace deletes them.
 */
export function searchHandlers(engines: Pick<Engines, 'fulltext'>): Handlers<typeof searchDef> {
  const own = (ctx: Context) => ({ namespace: ctx.tenant });
  return {
    CreateIndex: ({ index }, ctx) => answer(async () => {
      await engines.fulltext.createIndex(required(index, 'index'), own(ctx));
      return {};
    }),
    DeleteIndex: ({ index }, ctx) => answer(async () => {
      await engines.fulltext.deleteIndex(required(index, 'index'), own(ctx));
      return {};
    }),
    Delete: ({ id, index }, ctx) => answer(async () => {
      const name = required(index, 'index');
      await engines.fulltext.delete(name, required(id, 'id'), own(ctx));
      return {};
    }),
    Index: ({ data, id, index }, ctx) => answer(async () => {
      const name = required(index, 'index');
      if (data === undefined) throw missing(SEARCH, 'data');
      return { record: await engines.fulltext.put(name, { id: id || undefined, data }, own(ctx)) };
    }),
    Search: ({ index, query, limit }, ctx) => answer(async () => {
      const name = required(index, 'index');
      const hits = await engines.fulltext.search(name, required(query, 'query'), { ...own(ctx), limit: limit || undefined });
      return { records: hits.map((h) => ({ id: h.id, data: h.data })) };
    }),
  };
}

function required(value: string | undefined, field: string): string {
  if (value === undefined || value === '') throw missing(SEARCH, field);
  return value;
}

/** The engine's errors as the search service's own (same status and detail, id `search`). */
async function answer<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof MicroError && err.code < 500) throw new MicroError(SEARCH, err.code, err.detail);
    throw err;
  }
}

/** The search service as micro server hosts it. */
export const service = publicService(searchDef, (engines) => searchHandlers(engines));

