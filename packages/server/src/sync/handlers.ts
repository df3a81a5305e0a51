import type { Handlers } from '@micro/sdk';
import { namespaceFor } from '../auth/guard.js';
import { syncService, type LockEngine } from '@micro/sdk';

/** Time kept back from a Lock call's deadline so that its answer (a 409) arrives before the caller gives up. */
const ANSWER_MARGIN = 1_000;

/**
 * The sync service's handlers: the operations of a LockEngine, each in the caller's
 * namespace unless an admin of `micro` names another (auth/guard.ts). A Lock call that
 * waits is bounded by its own deadline, and stops waiting when its caller goes.
 */
export function syncHandlers(engine: LockEngine): Handlers<typeof syncService> {
  return {
    Lock: (req, ctx) => {
      const namespace = namespaceFor(ctx, req.namespace);
      const wait = req.wait === undefined ? undefined : Math.max(0, Math.min(req.wait, Math.floor(ctx.remaining() - ANSWER_MARGIN)));
      return engine.acquire(req.name, { namespace, ttl: req.ttl, wait, owner: req.owner, signal: ctx.signal });
    },
    Renew: (req, ctx) => engine.renew(req.name, req.holder, { namespace: namespaceFor(ctx, req.namespace), ttl: req.ttl }),
    Release: async (req, ctx) => {
      await engine.release(req.name, req.holder, { namespace: namespaceFor(ctx, req.namespace) });
      return {};
    },
    Get: async (req, ctx) => {
      const lock = await engine.inspect(req.name, { namespace: namespaceFor(ctx, req.namespace) });
      return lock ? { lock } : {};
    },
    List: async (req, ctx) => ({ locks: await engine.list({ namespace: namespaceFor(ctx, req.namespace), prefix: req.prefix, limit: req.limit }) }),
  };
}
