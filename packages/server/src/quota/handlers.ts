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
   * admins) up to their plan's limits (the platform defaults without a plan), when the plan
   * lets owners set limits
   */
  maySet?: (ctx: Context, namespace: string, settings: LimitSettings, quotas: Quotas) => void | Promise<void>;
  /** told of each namespace whose limits were set, once they are (the runtime's NamespaceHook) */
  changed?: (namespace: string) => void;
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
      await maySet(ctx, namespace, settings, quotas);
      await quotas.set(namespace, settings);
      options.changed?.(namespace);
      return answer(quotas, namespace);
    },
  };
}

/**
 * Staff (admins of micro) set any limit; the owners and admins of a namespace may set its
 * limits up to its plan's (the platform defaults when it has no plan) — to keep a team
 * inside what it means to spend, or one namespace from eating another's share — never
 * above them, and only when the plan includes per-namespace quotas.
 */
export async function withinPlan(ctx: Context, namespace: string, settings: LimitSettings, quotas: Quotas): Promise<void> {
  if (isAdmin(ctx.account)) return;
  if (!isNamespaceAdmin(ctx.account, namespace)) throw errors.Forbidden(QUOTA_ERROR_ID, 'only admins of micro, or the owners and admins of a namespace, set its limits');
  const plan = await quotas.plan(namespace);
  if (plan && !plan.ownersSetLimits) {
    throw errors.Forbidden(QUOTA_ERROR_ID, `your plan (${plan.name}) does not include per-namespace quotas: change to a plan that does (micro plan), or ask the platform's staff`);
  }
  const ceilings = await quotas.planLimits(namespace);
  for (const [key, value] of Object.entries(settings) as [LimitKey, number][]) {
    const ceiling = ceilings[key];
    if (ceiling !== null && value > ceiling) throw errors.Forbidden(QUOTA_ERROR_ID, `${key}: ${value} is more than your plan's ${ceiling}${plan ? ` (${plan.name})` : ''}; ask the platform's staff for more`);
  }
}

async function answer(quotas: Quotas, namespace: string): Promise<QuotaReadResponse> {
  const [limits, usage, custom] = await Promise.all([quotas.limits(namespace), quotas.usage(namespace), quotas.settings(namespace)]);
  return { namespace, limits, usage, custom: Object.keys(custom) };
}
