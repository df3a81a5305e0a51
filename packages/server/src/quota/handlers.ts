import { errors, type Context, type Handlers, type QuotaReadResponse, type QuotaService } from '@micro/sdk';
import { isAdmin, isNamespaceAdmin, namespaceFor } from '../auth/guard.js';
import { checkQuotaNamespace } from './engine.js';
import { checkSettings, QUOTA_ERROR_ID, type LimitKey, type LimitSettings } from './limits.js';
import type { Quotas } from './quotas.js';

export interface QuotaHandlerOptions {
  /** the namespace a Read acts in; throws (403) when the caller may not read it (default: namespaceFor) */
  namespace?: (ctx: Context, asked: string | undefined) => string;
  /**
   * What a caller may set for a namespace: throws (403) when it may not set these limits.
   * Default `withinPlan`: admins of micro anything; admins of the namespace (team owners and
   * admins) up to the platform defaults, their plan until plans exist
   */
  maySet?: (ctx: Context, namespace: string, settings: LimitSettings, quotas: Quotas) => void;
}

/**
 * The quota service: Read shows a namespace its limits and usage (its own; admins of micro
 * any), Set changes them (`maySet`: staff anything, a namespace's owners and admins within
 * their plan). Both rules are options so that the handlers hold no policy of their own.
 */
export function quotaHandlers(quotas: Quotas, options: QuotaHandlerOptions = {}): Handlers<QuotaService> {
  const ns = options.namespace ?? namespaceFor;
  const maySet = options.maySet ?? withinPlan;
  return {
    Read: async (req, ctx) => answer(quotas, checkQuotaNamespace(ns(ctx, req.namespace))),
    Set: async (req, ctx) => {
      // who first: a tenant learns nothing about another namespace or the shape it must have
      if (!isNamespaceAdmin(ctx.account, req.namespace)) throw errors.Forbidden(QUOTA_ERROR_ID, 'only admins of micro, or the owners and admins of a namespace, set its limits');
      const namespace = checkQuotaNamespace(req.namespace);
      const settings = checkSettings(req.limits);
      maySet(ctx, namespace, settings, quotas);
      await quotas.set(namespace, settings);
      return answer(quotas, namespace);
    },
  };
}

/**
 * Staff (admins of micro) set any limit; the owners and admins of a namespace may set its
 * limits up to the platform defaults — to keep a team inside what it means to spend, or
 * one namespace from eating another's share — never above them.
 */
export function withinPlan(ctx: Context, namespace: string, settings: LimitSettings, quotas: Quotas): void {
  if (isAdmin(ctx.account)) return;
  if (!isNamespaceAdmin(ctx.account, namespace)) throw errors.Forbidden(QUOTA_ERROR_ID, 'only admins of micro, or the owners and admins of a namespace, set its limits');
  for (const [key, value] of Object.entries(settings) as [LimitKey, number][]) {
    const ceiling = quotas.defaults[key];
    if (value > ceiling) throw errors.Forbidden(QUOTA_ERROR_ID, `${key}: ${value} is more than your plan's ${ceiling}; ask the platform's staff for more`);
  }
}

async function answer(quotas: Quotas, namespace: string): Promise<QuotaReadResponse> {
  const [limits, usage, custom] = await Promise.all([quotas.limits(namespace), quotas.usage(namespace), quotas.settings(namespace)]);
  return { namespace, limits, usage, custom: Object.keys(custom) };
}
