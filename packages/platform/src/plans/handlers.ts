import { errors, type Account, type Context, type Handlers } from '@micro/sdk';
import { isAdmin, requireAdmin, type LimitKey } from '@micro/server/engine';
import { normaliseEmail } from '../signup/email.js';
import { checkNamespaceName } from '../signup/names.js';
import type { SignupStorage } from '../signup/storage.js';
import type { billingService } from './definition.js';
import { BILLING_ERROR_ID, checkPlanId, type PlanFields } from './plans.js';
import type { Subscriptions } from './subscriptions.js';
import { planView, subscriptionView } from './views.js';

export interface BillingHandlerOptions {
  /** who may call the staff endpoints (default requireAdmin: admins of micro) */
  admin?: (ctx: Context) => void;
}

interface Deps {
  subs: Subscriptions;
  signup: Pick<SignupStorage, 'getCustomer' | 'memberByAccount'>;
  payerOf: (namespace: string) => Promise<string>;
  /** the platform's default limits (the quotas'), to show a plan's limits in full */
  defaults?: Readonly<Partial<Record<LimitKey, number>>>;
}

interface Who {
  customer?: string;
  namespace?: string;
}

/**
 * The handlers of the billing service. The tenant rule is one function, `payerFor`: staff
 * name any customer; anyone else acts for the payer of its own namespace — any member
 * reads, only that payer (the owner who pays, with a token of scope admin) changes.
 */
export function billingHandlers(deps: Deps, options: BillingHandlerOptions = {}): Handlers<typeof billingService> {
  const { subs, signup } = deps;
  const staff = options.admin ?? requireAdmin;
  const defaults = deps.defaults ?? {};
  const payerFor = tenantRule(deps);
  const view = async (customer: string, s = subs.standing(customer)) => subscriptionView(subs, signup, await s, defaults);

  return {
    Plans: async () => {
      const book = await subs.book();
      const period = periodNow(subs);
      const plans = book
        .ids()
        .map((id) => book.inForce(id, period))
        .filter((v) => v !== undefined && v.plan.status !== 'retired')
        .map((v) => planView(v as NonNullable<typeof v>, defaults));
      return { period, plans };
    },
    Subscription: async (req, ctx) => ({ subscription: await view(await payerFor(ctx, req, false)) }),
    ChangePlan: async (req, ctx) => {
      const customer = await payerFor(ctx, req, true);
      const { standing, charged } = await subs.change(customer, checkPlanId(req.plan));
      return { subscription: await view(customer, Promise.resolve(standing)), charged };
    },
    Cancel: async (req, ctx) => {
      const customer = await payerFor(ctx, req, true);
      return { subscription: await view(customer, subs.setCancel(customer, true)) };
    },
    Resume: async (req, ctx) => {
      const customer = await payerFor(ctx, req, true);
      return { subscription: await view(customer, subs.setCancel(customer, false)) };
    },

    ListPlans: async (_req, ctx) => {
      staff(ctx);
      const book = await subs.book();
      const period = periodNow(subs);
      const plans = book.ids().map((id) => {
        const current = book.inForce(id, period) ?? (book.latest(id) as NonNullable<ReturnType<typeof book.latest>>);
        const next = book.after(id, period);
        return { current: planView(current, defaults), ...(next ? { next: planView(next, defaults) } : {}), versions: book.versions(id).length };
      });
      return { period, plans };
    },
    CreatePlan: async ({ id, ...fields }, ctx) => {
      staff(ctx);
      return { plan: planView(await subs.createPlan(checkPlanId(id, 'id'), fields as PlanFields), defaults) };
    },
    UpdatePlan: async ({ id, ...fields }, ctx) => {
      staff(ctx);
      if (Object.keys(fields).length === 0) throw errors.BadRequest(BILLING_ERROR_ID, 'give at least one field to change (name, description, price, limits, support, sla, inviteOnly, sharedNamespaces, perNamespaceQuotas, status)');
      return { plan: planView(await subs.updatePlan(checkPlanId(id, 'id'), fields as PlanFields), defaults) };
    },
    RetirePlan: async ({ id }, ctx) => {
      staff(ctx);
      return { plan: planView(await subs.updatePlan(checkPlanId(id, 'id'), { status: 'retired' }), defaults) };
    },
    ListSubscriptions: async ({ limit, after, plan }, ctx) => {
      staff(ctx);
      const page = await subs.list({ limit: limit ?? 100, ...(after ? { after } : {}), ...(plan ? { plan: checkPlanId(plan) } : {}) });
      return {
        subscriptions: page.items.map(({ customer, plan: p, since, period, cancelAtPeriodEnd, status }) => ({ customer, plan: p, since, period, cancelAtPeriodEnd, status })),
        ...(page.next ? { next: page.next } : {}),
      };
    },
  };
}

function periodNow(subs: Subscriptions): string {
  return subs.currentPeriod().id;
}

/**
 * The customer a call acts for. Staff: the customer named (id or email) or the payer of
 * the namespace named. Others: the payer of their own namespace (a namespace that no
 * customer owns has no plan: 404), naming no other customer or namespace (403); a change
 * needs that payer itself, with a token of scope admin (403 for its members, co-owners
 * and keys without admin).
 */
function tenantRule(deps: Deps) {
  const { signup, payerOf } = deps;
  const customerOf = async (ref: string) => {
    const c = await signup.getCustomer(ref.includes('@') ? { email: normaliseEmail(ref) } : { id: ref });
    if (!c || c.status === 'deleted') throw errors.NotFound(BILLING_ERROR_ID, `customer: no customer ${ref.slice(0, 64)}`);
    return c.id;
  };
  const payerOfNamespace = async (namespace: string) => {
    const payer = await payerOf(namespace);
    if (payer.startsWith('ns.')) throw errors.NotFound(BILLING_ERROR_ID, `namespace: ${namespace} belongs to no customer: plans are for customers who signed up`);
    return payer;
  };

  return async (ctx: Context, who: Who, change: boolean): Promise<string> => {
    const me = ctx.account as Account;
    if (isAdmin(me)) {
      if (who.customer !== undefined) return customerOf(who.customer);
      if (who.namespace !== undefined) return payerOfNamespace(checkNamespaceName(who.namespace));
      throw errors.BadRequest(BILLING_ERROR_ID, 'customer: staff name the customer (id or email) or the namespace whose plan it is');
    }
    const namespace = me.issuer;
    if (who.namespace !== undefined && who.namespace !== namespace) {
      throw errors.Forbidden(BILLING_ERROR_ID, `namespace: account ${me.id} of ${namespace} may not see or change the plan of ${who.namespace.slice(0, 64)}`);
    }
    const payer = await payerOfNamespace(namespace);
    if (who.customer !== undefined && who.customer !== payer) {
      throw errors.Forbidden(BILLING_ERROR_ID, `customer: the plan of ${namespace} is its owner's; account ${me.id} may not act for customer ${who.customer.slice(0, 64)}`);
    }
    const member = await signup.memberByAccount(namespace, me.id);
    if (!member) throw errors.Forbidden(BILLING_ERROR_ID, `${ctx.endpoint} is for the members of ${namespace}; account ${me.id} is not one`);
    if (change && (member.customer !== payer || member.role !== 'owner' || !me.scopes.includes('admin'))) {
      const why = member.customer !== payer ? `you are ${member.role}, and the plan is the paying owner's` : 'with a token or key without scope admin';
      throw errors.Forbidden(BILLING_ERROR_ID, `${ctx.endpoint}: only the owner who pays for ${namespace} changes its plan (${why})`);
    }
    return payer;
  };
}
