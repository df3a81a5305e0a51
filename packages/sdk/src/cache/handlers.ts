import type { Context } from '../context/context.js';
import { NotFound } from '../errors/errors.js';
import type { Handlers } from '../service/handlers.js';
import { CACHE_ERROR_ID, type Cache } from './cache.js';
import type { cacheService } from './definition.js';
import { checkDelta, printable } from './util.js';

/**
 * Serves a Cache as the cache service. `micro server` passes its namespace rule (an
 * account acts in its own namespace unless it is an admin of micro); without one,
 * requests act in the namespace they name.
 */
export interface CacheHandlerOptions {
  /** the namespace a request acts in; throws (403) when the caller may not act there */
  namespace?: (ctx: Context, asked: string | undefined) => string | undefined;
}

/** What Set and Delete answer, as M3O's Cache API does. */
const OK = { status: 'ok' };

export function cacheHandlers(cache: Cache, options: CacheHandlerOptions = {}): Handlers<typeof cacheService> {
  const ns = options.namespace ?? ((_ctx: Context, asked: string | undefined) => asked);
  return {
    Set: async (req, ctx) => {
      await cache.set(req.key, req.value, { ttl: req.ttl, namespace: ns(ctx, req.namespace) });
      return OK;
    },
    Get: async (req, ctx) => {
      const item = await cache.get(req.key, { namespace: ns(ctx, req.namespace) });
      if (!item) throw NotFound(CACHE_ERROR_ID, `no key "${printable(req.key)}" in the cache`);
      return item;
    },
    Delete: async (req, ctx) => {
      await cache.delete(req.key, { namespace: ns(ctx, req.namespace) });
      return OK;
    },
    Increment: async (req, ctx) => {
      const namespace = ns(ctx, req.namespace);
      return { key: req.key, value: await cache.increment(req.key, checkDelta(req.value), { namespace }) };
    },
    Decrement: async (req, ctx) => {
      const namespace = ns(ctx, req.namespace);
      return { key: req.key, value: await cache.decrement(req.key, checkDelta(req.value), { namespace }) };
    },
    ListKeys: async (req, ctx) => ({ keys: await cache.listKeys({ prefix: req.prefix, limit: req.limit, namespace: ns(ctx, req.namespace) }) }),
  };
}
