import type { Context } from '../context/context.js';
import type { Handlers } from '../service/handlers.js';
import type { fulltextService } from './definition.js';
import type { Fulltext } from './fulltext.js';

/**
 * Serves a Fulltext as the fulltext service. `micro server` passes its namespace rule (an
 * account acts in its own namespace unless it is an admin of micro); without one,
 * requests act in the namespace they name.
 */
export interface FulltextHandlerOptions {
  /** the namespace a request acts in; throws (403) when the caller may not act there */
  namespace?: (ctx: Context, asked: string | undefined) => string | undefined;
}

export function fulltextHandlers(engine: Fulltext, options: FulltextHandlerOptions = {}): Handlers<typeof fulltextService> {
  const ns = (ctx: Context, asked: string | undefined) => ({ namespace: (options.namespace ?? ((_c, a) => a))(ctx, asked) });
  return {
    CreateIndex: async (req, ctx) => {
      await engine.createIndex(req.index, ns(ctx, req.namespace));
      return {};
    },
    DeleteIndex: async (req, ctx) => {
      await engine.deleteIndex(req.index, ns(ctx, req.namespace));
      return {};
    },
    ListIndexes: async (req, ctx) => ({ indexes: await engine.listIndexes(ns(ctx, req.namespace)) }),
    Put: async (req, ctx) => engine.put(req.index, { id: req.id, data: req.data }, ns(ctx, req.namespace)),
    Delete: async (req, ctx) => {
      await engine.delete(req.index, req.id, ns(ctx, req.namespace));
      return {};
    },
    Search: async (req, ctx) => ({ hits: await engine.search(req.index, req.query, { ...ns(ctx, req.namespace), limit: req.limit }) }),
  };
}
