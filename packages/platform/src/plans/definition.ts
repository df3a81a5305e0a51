import { defineService, endpoint, z } from '@micro/sdk';

/**
 * The billing service of the platform (namespace micro): plans (public), a customer's
 * subscription (its members read it, the owner who pays changes it), and the staff's
 * endpoints (plans edited, any customer's subscription). Money is integer units
 * (10^-6 USD: $35 = 35000000). The schemas bound every field; the handlers check the rest
 * and name the field that is wrong.
 */

export const BILLING_LIMITS = { page: 100 };

const PlanId = z.string().min(1).max(64).describe('a plan id: community, developer, team, platform, cloud, or one the staff made');
const CustomerRef = z.string().min(1).max(254).describe("staff: the customer (cus_… or its email); a member may name only its own namespace's payer");
const NamespaceRef = z.string().min(1).max(64).describe("the namespace whose payer's plan it is (default the caller's)");
const Who = { customer: CustomerRef.optional(), namespace: NamespaceRef.optional() };
const Units = z.number().int().describe('units (10^-6 USD)');
const Time = z.number().int().describe('epoch milliseconds');
const PeriodId = z.string().describe('a billing period (UTC month) YYYY-MM');

export const PlanSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  price: Units.describe('units (10^-6 USD) per seat a month'),
  limits: z.record(z.string(), z.number()).describe("each namespace's quota limits on this plan (the platform defaults where the plan says nothing)"),
  support: z.enum(['community', 'email', 'priority']),
  sla: z.object({ uptimeBasisPoints: z.number().int().nullable().describe('9995 = 99.95 %'), responseHours: z.number().int().nullable() }),
  inviteOnly: z.boolean(),
  sharedNamespaces: z.boolean().describe('namespaces with members besides their owner (teams)'),
  perNamespaceQuotas: z.boolean().describe("owners set their namespaces' quotas within the plan"),
  status: z.enum(['available', 'reserved', 'retired']),
  from: PeriodId.describe('this version is in force from this period'),
});

const SubscriptionSchema = z.object({
  customer: z.string(),
  email: z.string().optional(),
  subscribed: z.boolean().describe('false: never subscribed, on Community'),
  status: z.enum(['active', 'ended']),
  plan: PlanSchema.describe('the version in force this period'),
  since: Time.describe('on this plan since'),
  cancelAtPeriodEnd: z.boolean().describe('back to Community when this period ends'),
  period: z.object({ id: PeriodId, start: Time, end: Time }),
  namespaces: z.array(z.string()).describe('the namespaces whose seats this customer pays'),
  seats: z.number().int().describe('seats charged this period'),
  members: z.number().int().describe('distinct members of those namespaces now, the owner included: the seats of the next period'),
  charged: Units.describe('charged this period so far: seat fees and pro-rations, credits subtracted'),
  next: z.object({ period: PeriodId, plan: z.string(), name: z.string(), price: Units, seats: z.number().int(), amount: Units.describe('the seat fee posted when it starts, as things stand') }),
});

const PlanFields = {
  name: z.string().max(200).optional(),
  description: z.string().max(1000).optional(),
  price: z.number().optional().describe('units (10^-6 USD) per seat a month, 0 to 100000000000'),
  limits: z.record(z.string().max(64), z.unknown()).optional().describe('quota limits to set (others stay): whole numbers'),
  support: z.string().max(32).optional().describe('community, email or priority'),
  sla: z.object({ uptimeBasisPoints: z.number().nullable().optional(), responseHours: z.number().nullable().optional() }).strict().optional(),
  inviteOnly: z.boolean().optional(),
  sharedNamespaces: z.boolean().optional(),
  perNamespaceQuotas: z.boolean().optional(),
  status: z.string().max(16).optional().describe('available, reserved or retired'),
};

const AdminPlan = z.object({ current: PlanSchema, next: PlanSchema.optional().describe('the version in force from the next period, when changed'), versions: z.number().int() });

export const billingService = defineService({
  name: 'billing',
  version: '1.0.0',
  description: 'Plans and subscriptions: seats at a price per user a month, pro-rated to the second',
  endpoints: {
    // --- public
    Plans: endpoint({
      description: 'The plans with their prices and what they include (public): the available ones and those reserved for later',
      idempotent: true,
      readonly: true,
      request: z.object({}).strict(),
      response: z.object({ period: PeriodId, plans: z.array(PlanSchema) }),
    }),
    // --- a customer's members (the owner who pays changes), staff for any customer
    Subscription: endpoint({
      description: "The plan of the caller's namespace's payer: plan, seats, period, charges, next fee (members; staff: any customer)",
      idempotent: true,
      readonly: true,
      request: z.object(Who).strict(),
      response: z.object({ subscription: SubscriptionSchema }),
    }),
    ChangePlan: endpoint({
      description: 'Subscribes or changes plan now, pro-rated to the second; refused when the namespaces use more than the plan includes (the owner who pays; staff)',
      request: z.object({ plan: PlanId, ...Who }).strict(),
      response: z.object({ subscription: SubscriptionSchema, charged: Units.describe('posted now: positive charged, negative credited') }),
    }),
    Cancel: endpoint({
      description: 'Back to Community when the period ends; nothing is credited (the owner who pays; staff)',
      idempotent: true,
      request: z.object(Who).strict(),
      response: z.object({ subscription: SubscriptionSchema }),
    }),
    Resume: endpoint({
      description: 'Keeps the plan past the period after all (the owner who pays; staff)',
      idempotent: true,
      request: z.object(Who).strict(),
      response: z.object({ subscription: SubscriptionSchema }),
    }),
    // --- admins of micro
    ListPlans: endpoint({
      description: 'Every plan, retired ones too, with the version in force and the next one (admins of micro)',
      idempotent: true,
      readonly: true,
      request: z.object({}).strict(),
      response: z.object({ period: PeriodId, plans: z.array(AdminPlan) }),
    }),
    CreatePlan: endpoint({
      description: 'A new plan, in force now (admins of micro)',
      request: z.object({ id: PlanId, ...PlanFields }).strict(),
      response: z.object({ plan: PlanSchema }),
    }),
    UpdatePlan: endpoint({
      description: 'Changes a plan from the next period on, never retroactively (admins of micro)',
      request: z.object({ id: PlanId, ...PlanFields }).strict(),
      response: z.object({ plan: PlanSchema.describe('the version in force from the next period') }),
    }),
    RetirePlan: endpoint({
      description: 'No new subscriptions from the next period; those on it keep it (admins of micro)',
      request: z.object({ id: PlanId }).strict(),
      response: z.object({ plan: PlanSchema }),
    }),
    ListSubscriptions: endpoint({
      description: 'Subscriptions by customer id (admins of micro)',
      idempotent: true,
      readonly: true,
      request: z.object({ limit: z.number().int().min(1).max(BILLING_LIMITS.page).optional(), after: z.string().max(64).optional(), plan: PlanId.optional() }).strict(),
      response: z.object({
        subscriptions: z.array(z.object({ customer: z.string(), plan: z.string(), since: Time, period: PeriodId, cancelAtPeriodEnd: z.boolean(), status: z.enum(['active', 'ended']) })),
        next: z.string().optional(),
      }),
    }),
  },
});

/** The endpoints a stranger may call without a token. */
export const BILLING_PUBLIC_ENDPOINTS: readonly string[] = ['Plans'];
