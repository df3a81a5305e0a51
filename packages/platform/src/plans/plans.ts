import { errors, MicroError } from '@micro/sdk';
import { checkSettings, type LimitSettings, type NamespacePlan } from '@micro/server/engine';
import { checkUnits } from '../billing/amounts.js';
import { UNITS_PER_DOLLAR } from '../ledger/index.js';

/**
 * Plans as data: what a plan costs per seat a month and what it includes (the quotas of a
 * namespace, support and SLA levels, flags). Plans are kept as versions, each in force
 * from a billing period on (see README: "Plan versions").
 */

export const BILLING_ERROR_ID = 'billing';

export const SUPPORT_LEVELS = ['community', 'email', 'priority'] as const;
export type SupportLevel = (typeof SUPPORT_LEVELS)[number];

/**
 * `available`: anyone may subscribe; `reserved`: shown, not subscribable yet (Cloud);
 * `retired`: no new subscriptions, those on it keep it.
 */
export const PLAN_STATUSES = ['available', 'reserved', 'retired'] as const;
export type PlanStatus = (typeof PLAN_STATUSES)[number];

export interface Sla {
  /** promised uptime in basis points (9995 = 99.95 %), null: none */
  uptimeBasisPoints: number | null;
  /** hours within which a support request is answered, null: none */
  responseHours: number | null;
}

export interface Plan {
  /** `[a-z][a-z0-9-]{1,31}` */
  id: string;
  name: string;
  description: string;
  /** units (10^-6 USD) per seat a month */
  price: number;
  /** quota limits of each namespace of a customer on the plan; a key absent is the platform default */
  limits: LimitSettings;
  support: SupportLevel;
  sla: Sla;
  /** signup on this plan is by invitation only */
  inviteOnly: boolean;
  /** namespaces may have members besides their owner (teams); without it a namespace's `members` limit is 1 */
  sharedNamespaces: boolean;
  /** owners may set their namespaces' quotas, up to the plan's (quota.Set) */
  perNamespaceQuotas: boolean;
  status: PlanStatus;
}

/** A plan as it is from a period on. */
export interface PlanVersion {
  plan: Plan;
  /** the first period (`YYYY-MM`) it is in force */
  from: string;
  /** when it was recorded (ms) */
  at: number;
}

/** the plan every customer is on without a subscription, and after a cancellation: free, never retired */
export const COMMUNITY = 'community';

/** the most a seat may cost a month: $100,000; with at most MAX_SEATS seats a fee stays within one ledger entry's bound */
export const MAX_PRICE = 100_000 * UNITS_PER_DOLLAR;
/** the most seats one payer is billed for */
export const MAX_SEATS = 10_000;

/** the period the built-in plans are in force from: before any period a clock gives */
export const SEED_PERIOD = '1970-01';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const DAY = 24 * 3600;
const DOLLARS = UNITS_PER_DOLLAR;
const NO_SLA: Sla = { uptimeBasisPoints: null, responseHours: null };

const developerLimits: LimitSettings = {
  services: 20,
  instancesPerService: 2,
  storeBytes: GiB,
  storeRecords: 1_000_000,
  blobBytes: 10 * GiB,
  apiKeys: 50,
  requestsPerSecond: 50,
  cacheBytes: 64 * MiB,
  members: 1,
  requestsPerMonth: 10_000_000,
  eventsBytes: GiB,
  eventRetention: 7 * DAY,
};

/**
 * The plans a new platform starts with (the roadmap's tiers). Memory and CPU per instance
 * are left to the platform defaults below Platform: every plan must run a service.
 */
export const DEFAULT_PLANS: readonly Plan[] = Object.freeze([
  {
    id: COMMUNITY,
    name: 'Community',
    description: 'Free, by invitation: a namespace of your own to try Micro, with small quotas and community support',
    price: 0,
    limits: {
      services: 3,
      instancesPerService: 1,
      storeBytes: 64 * MiB,
      storeRecords: 100_000,
      blobBytes: 256 * MiB,
      apiKeys: 5,
      requestsPerSecond: 10,
      cacheBytes: 8 * MiB,
      members: 1,
      requestsPerMonth: 100_000,
      eventsBytes: 64 * MiB,
      eventRetention: DAY,
    },
    support: 'community',
    sla: NO_SLA,
    inviteOnly: true,
    sharedNamespaces: false,
    perNamespaceQuotas: false,
    status: 'available',
  },
  {
    id: 'developer',
    name: 'Developer',
    description: 'For one developer building services: larger quotas, email support',
    price: 35 * DOLLARS,
    limits: developerLimits,
    support: 'email',
    sla: NO_SLA,
    inviteOnly: false,
    sharedNamespaces: false,
    perNamespaceQuotas: false,
    status: 'available',
  },
  {
    id: 'team',
    name: 'Team',
    description: 'Shared namespaces for a team, with quotas per namespace set by its owners',
    price: 35 * DOLLARS,
    limits: { ...developerLimits, apiKeys: 100, members: 50 },
    support: 'email',
    sla: NO_SLA,
    inviteOnly: false,
    sharedNamespaces: true,
    perNamespaceQuotas: true,
    status: 'available',
  },
  {
    id: 'platform',
    name: 'Platform',
    description: 'For production: the largest quotas, priority support and an SLA',
    price: 100 * DOLLARS,
    limits: {
      services: 100,
      instancesPerService: 8,
      memoryPerInstance: 2 * GiB,
      cpuPerInstance: 2000,
      storeBytes: 10 * GiB,
      storeRecords: 10_000_000,
      blobBytes: 100 * GiB,
      apiKeys: 500,
      requestsPerSecond: 500,
      cacheBytes: 256 * MiB,
      members: 100,
      requestsPerMonth: 100_000_000,
      eventsBytes: 10 * GiB,
      eventRetention: 30 * DAY,
    },
    support: 'priority',
    sla: { uptimeBasisPoints: 9995, responseHours: 4 },
    inviteOnly: false,
    sharedNamespaces: true,
    perNamespaceQuotas: true,
    status: 'available',
  },
  {
    id: 'cloud',
    name: 'Cloud',
    description: 'Isolated environments of your own: coming later, priced when it opens',
    price: 0,
    limits: {},
    support: 'priority',
    sla: NO_SLA,
    inviteOnly: false,
    sharedNamespaces: true,
    perNamespaceQuotas: true,
    status: 'reserved',
  },
] satisfies Plan[]);

function bad(detail: string): MicroError {
  return errors.BadRequest(BILLING_ERROR_ID, detail);
}

const PLAN_ID = /^[a-z][a-z0-9-]{1,31}$/;
// eslint-disable-next-line no-control-regex -- control characters are what is refused
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** A plan id given by a caller: 400 naming the field otherwise. */
export function checkPlanId(value: unknown, field = 'plan'): string {
  if (typeof value !== 'string' || !PLAN_ID.test(value)) {
    throw bad(`${field}: ${JSON.stringify(String(value).slice(0, 40))} is not a plan id (a-z, 0-9 and -, starting with a letter, 2 to 32 characters)`);
  }
  return value;
}

function text(field: string, value: unknown, min: number, max: number): string {
  if (typeof value !== 'string' || value.trim().length < min || value.length > max || CONTROL.test(value)) {
    throw bad(`${field}: ${min}–${max} printable characters on one line`);
  }
  return value.trim();
}

function flag(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw bad(`${field}: true or false`);
  return value;
}

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (!(allowed as readonly unknown[]).includes(value)) throw bad(`${field}: one of ${allowed.join(', ')}, not ${JSON.stringify(String(value).slice(0, 20))}`);
  return value as T;
}

function wholeOrNull(field: string, value: unknown, min: number, max: number): number | null {
  if (value === null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw bad(`${field}: a whole number from ${min} to ${max}, or null for none`);
  return value;
}

/** A price per seat a month: whole units from 0 to MAX_PRICE. */
export function checkPrice(value: unknown): number {
  let price: number;
  try {
    price = checkUnits('price', value, { allowZero: true });
  } catch (err) {
    throw bad(`${(err as Error).message} (a price is units per seat a month: $35 = 35000000)`);
  }
  if (typeof value !== 'number') throw bad('price: a number of units, not a string');
  if (price > MAX_PRICE) throw bad(`price: at most ${MAX_PRICE} units ($${MAX_PRICE / UNITS_PER_DOLLAR}) per seat a month, not ${price}`);
  return price;
}

function checkLimits(value: unknown): LimitSettings {
  try {
    return checkSettings(value, 'limits');
  } catch (err) {
    // the quota engine's 400 under this service's id
    throw bad(err instanceof MicroError ? err.detail : String(err));
  }
}

/** What a caller may give of a plan: every field optional (an update names only what changes). */
export type PlanFields = Partial<Omit<Plan, 'id' | 'sla'>> & { sla?: Partial<Sla> };

/**
 * `fields` over `base` (an update) or over nothing (a new plan: name and price required,
 * the rest defaulted), each field checked with a 400 naming it. The free plan every
 * customer falls back to stays free and available.
 */
export function planFrom(id: string, fields: PlanFields, base?: Plan): Plan {
  checkPlanId(id, 'id');
  if (!base && (fields.name === undefined || fields.price === undefined)) throw bad('a new plan needs a name and a price');
  const b: Plan = base ?? { id, name: '', description: '', price: 0, limits: {}, support: 'community', sla: { uptimeBasisPoints: null, responseHours: null }, inviteOnly: false, sharedNamespaces: false, perNamespaceQuotas: false, status: 'available' };
  const sla = fields.sla ?? {};
  const plan: Plan = {
    id,
    name: fields.name === undefined ? b.name : text('name', fields.name, 1, 64),
    description: fields.description === undefined ? b.description : text('description', fields.description, 0, 500),
    price: fields.price === undefined ? b.price : checkPrice(fields.price),
    // limits merge: a key given replaces the plan's, the others stay
    limits: fields.limits === undefined ? b.limits : { ...b.limits, ...checkLimits(fields.limits) },
    support: fields.support === undefined ? b.support : oneOf('support', fields.support, SUPPORT_LEVELS),
    sla: {
      uptimeBasisPoints: sla.uptimeBasisPoints === undefined ? b.sla.uptimeBasisPoints : wholeOrNull('sla.uptimeBasisPoints', sla.uptimeBasisPoints, 0, 10_000),
      responseHours: sla.responseHours === undefined ? b.sla.responseHours : wholeOrNull('sla.responseHours', sla.responseHours, 1, 8760),
    },
    inviteOnly: fields.inviteOnly === undefined ? b.inviteOnly : flag('inviteOnly', fields.inviteOnly),
    sharedNamespaces: fields.sharedNamespaces === undefined ? b.sharedNamespaces : flag('sharedNamespaces', fields.sharedNamespaces),
    perNamespaceQuotas: fields.perNamespaceQuotas === undefined ? b.perNamespaceQuotas : flag('perNamespaceQuotas', fields.perNamespaceQuotas),
    status: fields.status === undefined ? b.status : oneOf('status', fields.status, PLAN_STATUSES),
  };
  if (id === COMMUNITY && (plan.price !== 0 || plan.status !== 'available')) {
    throw bad(`${COMMUNITY} is the free plan every customer falls back to: its price stays 0 and it stays available`);
  }
  return plan;
}

/**
 * What the quotas take of a plan: its limits, a `members` limit of 1 (the owner alone)
 * when it has no shared namespaces, and whether owners set their namespaces' limits.
 */
export function namespacePlan(plan: Plan): NamespacePlan {
  return { id: plan.id, name: plan.name, limits: plan.sharedNamespaces ? plan.limits : { ...plan.limits, members: 1 }, ownersSetLimits: plan.perNamespaceQuotas };
}

/**
 * Every version of every plan, to answer which version is in force in a period: the
 * latest whose `from` is at or before it (periods compare as text: `YYYY-MM`).
 */
export class PlanBook {
  private readonly byPlan = new Map<string, PlanVersion[]>();

  constructor(versions: readonly PlanVersion[]) {
    for (const v of versions) {
      const list = this.byPlan.get(v.plan.id) ?? [];
      list.push(v);
      this.byPlan.set(v.plan.id, list);
    }
    for (const list of this.byPlan.values()) list.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  }

  ids(): string[] {
    return [...this.byPlan.keys()].sort(byDefaultOrder);
  }

  has(id: string): boolean {
    return this.byPlan.has(id);
  }

  /** the version in force in `period`, or undefined when the plan did not exist then */
  inForce(id: string, period: string): PlanVersion | undefined {
    const list = this.byPlan.get(id) ?? [];
    let found: PlanVersion | undefined;
    for (const v of list) if (v.from <= period) found = v;
    return found;
  }

  /** the newest version (in force now or from a later period) */
  latest(id: string): PlanVersion | undefined {
    return this.byPlan.get(id)?.at(-1);
  }

  /** the version that takes over after `period`, when one is recorded */
  after(id: string, period: string): PlanVersion | undefined {
    return this.byPlan.get(id)?.find((v) => v.from > period);
  }

  versions(id: string): PlanVersion[] {
    return [...(this.byPlan.get(id) ?? [])];
  }
}

const ORDER = DEFAULT_PLANS.map((p) => p.id);

/** the built-in plans in the roadmap's order, then the others by id */
function byDefaultOrder(a: string, b: string): number {
  const ia = ORDER.indexOf(a);
  const ib = ORDER.indexOf(b);
  if (ia >= 0 || ib >= 0) return (ia < 0 ? Infinity : ia) - (ib < 0 ? Infinity : ib);
  return a < b ? -1 : a > b ? 1 : 0;
}
