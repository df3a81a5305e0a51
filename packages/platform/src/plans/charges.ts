import { dueAccount, PLATFORM_REVENUE } from '../billing/accounts.js';
import { formatDollars, prorate } from '../billing/amounts.js';
import type { Period } from '../billing/periods.js';
import { MAX_AMOUNT } from '../ledger/index.js';
import { MAX_SEATS, type Plan } from './plans.js';
import type { ChargeKind, ChargeRow } from './storage.js';

/**
 * The money of subscriptions: seat fees and pro-rations as ledger postings. Pro-ration is
 * to the second: a share of a period is the whole seconds left in it (`secondsLeft`,
 * truncated) over the seconds it has, applied by `prorate` (billing/amounts.ts: bigint,
 * truncated toward zero), the one rounding of billing. See README: "Pro-ration".
 */

/** seconds in a period (a UTC month: 28 to 31 days, always whole) */
export function secondsIn(p: Period): number {
  return (p.end - p.start) / 1000;
}

/** whole seconds from `at` to the period's end, truncated (the part of a second `at` is into never counts) */
export function secondsLeft(p: Period, at: number): number {
  return Math.min(secondsIn(p), Math.max(0, Math.floor((p.end - at) / 1000)));
}

/** `price × seats`, refused past what one ledger entry may hold */
export function fullFee(price: number, seats: number): number {
  if (!Number.isSafeInteger(seats) || seats < 0 || seats > MAX_SEATS) throw new Error(`seats: ${seats} is more than the ${MAX_SEATS} one payer is billed for`);
  const fee = price * seats;
  if (!Number.isSafeInteger(fee) || fee > MAX_AMOUNT) throw new Error(`a fee of ${price} × ${seats} units is more than one posting holds`);
  return fee;
}

/** the share of `full` (a month's amount) for the seconds from `since` to the period's end */
export function share(full: number, p: Period, since: number): number {
  return since <= p.start ? full : prorate(full, secondsLeft(p, since), secondsIn(p));
}

/**
 * `price`: what one seat cost in this posting (seats × price = the amount) — only for a
 * whole period; a pro-rated one carries the plan's price as `listPrice`, so that an
 * invoice never shows a unit price that does not multiply to its amount.
 */
function unitPrice(price: number, p: Period, since: number): Record<string, string> {
  return since <= p.start ? { price: String(price) } : { listPrice: String(price) };
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

interface ChargeInput {
  key: string;
  payer: string;
  period: Period;
  kind: ChargeKind;
  /** positive: the payer owes it; negative: credited */
  amount: number;
  reason: string;
  metadata: Record<string, string>;
  at: number;
}

/**
 * A charge and its posting: `customer:<payer>:due −amount, platform:revenue +amount` (a
 * credit the other way), kind and period in the metadata. Undefined for 0: nothing moves.
 */
function charge(c: ChargeInput): ChargeRow | undefined {
  if (c.amount === 0) return undefined;
  return {
    key: c.key,
    payer: c.payer,
    period: c.period.id,
    kind: c.kind,
    amount: c.amount,
    at: c.at,
    posting: {
      key: c.key,
      reason: c.reason.slice(0, 500),
      entries: [
        { account: dueAccount(c.payer), amount: -c.amount },
        { account: PLATFORM_REVENUE, amount: c.amount },
      ],
      metadata: { kind: c.kind, period: c.period.id, payer: c.payer, ...c.metadata },
    },
  };
}

/**
 * The seat fee of a period: `seats × price` from `since` (the period's start: all of it;
 * later, when a subscription begins mid-period: pro-rated), key `seats:<payer>:<period>`.
 */
export function periodFee(o: { payer: string; period: Period; plan: Plan; seats: number; since: number; at: number }): ChargeRow | undefined {
  const full = fullFee(o.plan.price, o.seats);
  const amount = share(full, o.period, o.since);
  const part = o.since <= o.period.start ? 'the whole period' : `${secondsLeft(o.period, o.since)} of ${secondsIn(o.period)} s from ${iso(o.since)}`;
  return charge({
    key: `seats:${o.payer}:${o.period.id}`,
    payer: o.payer,
    period: o.period,
    kind: 'seats',
    amount,
    at: o.at,
    reason: `seats of ${o.period.id} on ${o.plan.name}: ${o.seats} × ${formatDollars(o.plan.price)}, ${part}`,
    metadata: { plan: o.plan.id, seats: String(o.seats), ...unitPrice(o.plan.price, o.period, o.since), seconds: String(o.since <= o.period.start ? secondsIn(o.period) : secondsLeft(o.period, o.since)), of: String(secondsIn(o.period)) },
  });
}

/** A member who joined mid-period: one seat pro-rated from the second they joined, key `seats:<payer>:<period>:<member>`. */
export function joinerFee(o: { payer: string; period: Period; plan: Plan; member: string; since: number; at: number }): ChargeRow | undefined {
  const seconds = o.since <= o.period.start ? secondsIn(o.period) : secondsLeft(o.period, o.since);
  return charge({
    key: `seats:${o.payer}:${o.period.id}:${o.member}`,
    payer: o.payer,
    period: o.period,
    kind: 'seats',
    amount: share(o.plan.price, o.period, o.since),
    at: o.at,
    reason: `a seat for ${o.member} from ${iso(o.since)} on ${o.plan.name}: ${formatDollars(o.plan.price)} for ${seconds} of ${secondsIn(o.period)} s`,
    metadata: { plan: o.plan.id, seats: '1', member: o.member, ...unitPrice(o.plan.price, o.period, o.since), seconds: String(seconds), of: String(secondsIn(o.period)) },
  });
}

/**
 * A change of plan at `at`: the rest of the period credited at the old plan for the seats
 * charged (`before`), charged at the new one for the seats from now on (`after`), each
 * rounded by `prorate`, posted as their difference under `proration:<payer>:<period>:<n>`
 * (n: the subscription's revision, one per change).
 */
export function changeFee(o: { payer: string; period: Period; from: Plan; to: Plan; before: number; after: number; at: number; revision: number }): { charge: ChargeRow | undefined; credit: number; owed: number } {
  const seconds = secondsLeft(o.period, o.at);
  const whole = secondsIn(o.period);
  const credit = prorate(fullFee(o.from.price, o.before), seconds, whole);
  const owed = prorate(fullFee(o.to.price, o.after), seconds, whole);
  const row = charge({
    key: `proration:${o.payer}:${o.period.id}:${o.revision}`,
    payer: o.payer,
    period: o.period,
    kind: 'proration',
    amount: owed - credit,
    at: o.at,
    reason: `from ${o.from.name} to ${o.to.name} at ${iso(o.at)}: ${formatDollars(owed)} for ${o.after} seats less ${formatDollars(credit)} for ${o.before}, ${seconds} of ${whole} s left`,
    metadata: { plan: o.to.id, previous: o.from.id, seats: String(o.after), previousSeats: String(o.before), charge: String(owed), credit: String(credit), seconds: String(seconds), of: String(whole) },
  });
  return { charge: row, credit, owed };
}
