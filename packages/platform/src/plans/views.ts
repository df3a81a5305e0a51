import type { LimitKey } from '@micro/server/engine';
import { nextPeriod } from '../billing/periods.js';
import type { SignupStorage } from '../signup/storage.js';
import { fullFee } from './charges.js';
import { COMMUNITY, MAX_SEATS, namespacePlan, type PlanVersion } from './plans.js';
import type { Standing, Subscriptions } from './subscriptions.js';

/** Plans and subscriptions as the service answers them (definition.ts). */

/** A plan version with its limits in full: the plan's over the platform defaults (`defaults`: the quotas'), `members` 1 without shared namespaces. */
export function planView(v: PlanVersion, defaults: Readonly<Partial<Record<LimitKey, number>>> = {}) {
  const { plan } = v;
  return { ...plan, limits: { ...defaults, ...namespacePlan(plan).limits } as Record<string, number>, sla: { ...plan.sla }, from: v.from };
}

export async function subscriptionView(subs: Subscriptions, signup: Pick<SignupStorage, 'getCustomer'>, s: Standing, defaults: Readonly<Partial<Record<LimitKey, number>>>) {
  const [customer, seating, seats, charges, book] = await Promise.all([
    signup.getCustomer({ id: s.customer }),
    subs.seating(s.customer),
    subs.seats(s.customer, s.period.id),
    subs.charges(s.customer, s.period.id),
    subs.book(),
  ]);
  const next = nextPeriod(s.period);
  const nextPlan = !s.row || s.row.cancelAtPeriodEnd || s.row.status === 'ended' ? COMMUNITY : s.plan.plan.id;
  const nextVersion = book.inForce(nextPlan, next.id) ?? s.plan;
  const members = seating.members.size;
  return {
    customer: s.customer,
    ...(customer?.email ? { email: customer.email } : {}),
    subscribed: Boolean(s.row),
    status: s.row?.status ?? 'active',
    plan: planView(s.plan, defaults),
    since: s.row?.since ?? customer?.createdAt ?? 0,
    cancelAtPeriodEnd: s.row?.cancelAtPeriodEnd ?? false,
    period: { id: s.period.id, start: s.period.start, end: s.period.end },
    namespaces: seating.namespaces,
    seats: seats.length,
    members,
    charged: charges.reduce((sum, c) => sum + c.amount, 0),
    next: { period: next.id, plan: nextVersion.plan.id, name: nextVersion.plan.name, price: nextVersion.plan.price, seats: members, amount: fullFee(nextVersion.plan.price, Math.min(members, MAX_SEATS)) },
  };
}
