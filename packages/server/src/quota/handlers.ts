import type { Context, Handlers, QuotaReadResponse, QuotaService } from '@micro/sdk';
import { namespaceFor, requireAdmin } from '../auth/guard.js';
import { checkQuotaNamespace } from './engine.js';
import { checkSettings } from './limits.js';
import type { Quotas } from './quotas.js';

export interface QuotaHandlerOptions {
  /** the namespace a Read acts in; throws (403) when the caller may not read it (default: namespaceFor) */
  namespace?: (ctx: Context, asked: string | undefined) => string;
  /** throws (403) when the caller may not set limits (default: requireAdmin, admins of micro) */
  maySet?: (ctx: Context, namespace: string) => void;
}

/**
 * The quota service: Read shows a namespace its limits and usage (its own; admins of micro
 * any), Set changes them (admins of micro; owners within their plan later, through
 * `maySet`). Both rules are options so that the handlers hold no policy of their own.
 */
export function quotaHandlers(quotas: Quotas, options: QuotaHandlerOptions = {}): Handlers<QuotaService> {
  const ns = options.namespace ?? namespaceFor;
  const maySet = options.maySet ?? ((ctx: Context) => requireAdmin(ctx));
  return {
    Read: async (req, ctx) => answer(quotas, checkQuotaNamespace(ns(ctx, req.namespace))),
    Set: async (req, ctx) => {
      // who first: a tenant learns nothing about the namespace or the shape it must have
      maySet(ctx, req.namespace);
      const namespace = checkQuotaNamespace(req.namespace);
      await quotas.set(namespace, checkSettings(req.limits));
      return answer(quotas, namespace);
    },
  };
}

async function answer(quotas: Quotas, namespace: string): Promise<QuotaReadResponse> {
  const [limits, usage, custom] = await Promise.all([quotas.limits(namespace), quotas.usage(namespace), quotas.settings(namespace)]);
  return { namespace, limits, usage, custom: Object.keys(custom) };
}
