import type { PostingInput } from '../ledger/index.js';
import type { Plan, PlanVersion } from './plans.js';
import type { ChargeKind, ChargeRow, Page, SubscriptionRow } from './storage.js';

/**
 * What both engines share: the tables (one text, the column types named per engine) and
 * rows to objects. SQLite gives integers as numbers, PostgreSQL bigints as strings.
 */

/** The tables of schema version 1; `int` and `id` are the engine's 64-bit integer and its auto-numbered key. */
export function billingTables(types: { int: string; id: string; text: string }): string {
  const { int, id, text } = types;
  return `
    CREATE TABLE plan_versions (plan ${text} NOT NULL, period ${text} NOT NULL, spec ${text} NOT NULL, at ${int} NOT NULL, PRIMARY KEY (plan, period));
    CREATE TABLE subscriptions (
      customer ${text} PRIMARY KEY, plan ${text} NOT NULL, since ${int} NOT NULL, period ${text} NOT NULL, cancel_at_period_end ${int} NOT NULL,
      status ${text} NOT NULL, revision ${int} NOT NULL, created_at ${int} NOT NULL, updated_at ${int} NOT NULL
    );
    CREATE INDEX subscriptions_due ON subscriptions (status, period, customer);
    CREATE TABLE subscription_seats (payer ${text} NOT NULL, period ${text} NOT NULL, member ${text} NOT NULL, since ${int} NOT NULL, PRIMARY KEY (payer, period, member));
    CREATE TABLE subscription_charges (
      id ${id}, key ${text} NOT NULL UNIQUE, payer ${text} NOT NULL, period ${text} NOT NULL, kind ${text} NOT NULL,
      amount ${int} NOT NULL, posting ${text} NOT NULL, at ${int} NOT NULL, posted_at ${int}
    );
    CREATE INDEX subscription_charges_payer ON subscription_charges (payer, period, id);
    CREATE INDEX subscription_charges_pending ON subscription_charges (id) WHERE posted_at IS NULL;
  `;
}

type Row = Record<string, unknown>;

export function toVersion(r: Row): PlanVersion {
  return { plan: JSON.parse(String(r.spec)) as Plan, from: String(r.period), at: Number(r.at) };
}

export function toSubscription(r: Row): SubscriptionRow {
  return {
    customer: String(r.customer),
    plan: String(r.plan),
    since: Number(r.since),
    period: String(r.period),
    cancelAtPeriodEnd: Number(r.cancel_at_period_end) === 1,
    status: r.status === 'ended' ? 'ended' : 'active',
    revision: Number(r.revision),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

export function toCharge(r: Row): ChargeRow {
  const c: ChargeRow = {
    key: String(r.key),
    payer: String(r.payer),
    period: String(r.period),
    kind: String(r.kind) as ChargeKind,
    amount: Number(r.amount),
    posting: JSON.parse(String(r.posting)) as PostingInput,
    at: Number(r.at),
  };
  if (r.posted_at !== null && r.posted_at !== undefined) c.postedAt = Number(r.posted_at);
  return c;
}

/** The values of a subscription row, in the column order of SUBSCRIPTION_COLUMNS. */
export function subscriptionValues(s: SubscriptionRow): unknown[] {
  return [s.customer, s.plan, s.since, s.period, s.cancelAtPeriodEnd ? 1 : 0, s.status, s.revision, s.createdAt, s.updatedAt];
}

export const SUBSCRIPTION_COLUMNS = 'customer, plan, since, period, cancel_at_period_end, status, revision, created_at, updated_at';

/** The values of a charge row, in the column order of CHARGE_COLUMNS. */
export function chargeValues(c: ChargeRow): unknown[] {
  return [c.key, c.payer, c.period, c.kind, c.amount, JSON.stringify(c.posting), c.at];
}

export const CHARGE_COLUMNS = 'key, payer, period, kind, amount, posting, at';

/** The WHERE of `subscriptions()` and its values; `p(i)` writes the engine's i-th placeholder (1-based). */
export function subscriptionFilter(o: { after?: string; due?: string; plan?: string }, p: (i: number) => string): { where: string; params: unknown[] } {
  const params: unknown[] = [o.after ?? ''];
  const where = [`customer > ${p(1)}`];
  if (o.due !== undefined) {
    params.push(o.due);
    where.push(`status = 'active' AND period < ${p(params.length)}`);
  }
  if (o.plan !== undefined) {
    params.push(o.plan);
    where.push(`plan = ${p(params.length)}`);
  }
  return { where: where.join(' AND '), params };
}

/** A page of `limit` from `limit + 1` rows read. */
export function pageOf<T>(items: T[], limit: number, cursor: (t: T) => string): Page<T> {
  if (items.length <= limit) return { items };
  const kept = items.slice(0, limit);
  return { items: kept, next: cursor(kept[kept.length - 1] as T) };
}
