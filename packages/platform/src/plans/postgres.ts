import { migrate, type Migration, type Postgres } from '@micro/server/engine';
import type { PlanVersion } from './plans.js';
import { billingTables, chargeValues, CHARGE_COLUMNS, pageOf, subscriptionFilter, subscriptionValues, SUBSCRIPTION_COLUMNS, toCharge, toSubscription, toVersion } from './rows.js';
import type { BillingStorage, ChargeRow, Commit, Page, SeatRow, SubscriptionRow } from './storage.js';

export const BILLING_POSTGRES_MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'billing: plan versions, subscriptions, seats and charges', up: billingTables({ int: 'bigint', id: 'bigserial PRIMARY KEY', text: 'text COLLATE "C"' }) },
];

type Row = Record<string, unknown>;
/** a pool or the client of a transaction */
interface Query {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

/**
 * The storage of the nats profile: tables in the platform's schema of the shared
 * PostgreSQL (on the ledger's handle), so every node sees one set of subscriptions. A
 * commit locks the subscription's row (`FOR UPDATE`) and checks its revision; a new
 * subscription's insert races on the primary key: of two nodes one commits.
 */
export async function openPgBilling(db: Postgres): Promise<PgBilling> {
  await migrate(db, 'billing-plans', BILLING_POSTGRES_MIGRATIONS);
  return new PgBilling(db);
}

export class PgBilling implements BillingStorage {
  private readonly s: string;

  constructor(private readonly db: Postgres) {
    this.s = db.schema;
  }

  private async all(sql: string, params: unknown[] = [], q: Query = this.db): Promise<Row[]> {
    return (await q.query(sql, params)).rows as Row[];
  }

  async versions(): Promise<PlanVersion[]> {
    return (await this.all(`SELECT * FROM ${this.s}.plan_versions ORDER BY plan, period`)).map(toVersion);
  }

  async putVersion(v: PlanVersion, mode: 'create' | 'update' | 'seed'): Promise<boolean> {
    const values = [v.plan.id, v.from, JSON.stringify(v.plan), v.at];
    if (mode === 'update') {
      await this.db.query(`INSERT INTO ${this.s}.plan_versions (plan, period, spec, at) VALUES ($1, $2, $3, $4) ON CONFLICT (plan, period) DO UPDATE SET spec = excluded.spec, at = excluded.at`, values);
      return true;
    }
    // create: none of the plan may exist, checked in the insert itself (two creates: one wins on the key)
    const none = mode === 'create' ? `WHERE NOT EXISTS (SELECT 1 FROM ${this.s}.plan_versions WHERE plan = $1)` : '';
    const res = await this.db.query(`INSERT INTO ${this.s}.plan_versions (plan, period, spec, at) SELECT $1, $2, $3, $4 ${none} ON CONFLICT (plan, period) DO NOTHING`, values);
    return (res.rowCount ?? 0) > 0;
  }

  async subscription(customer: string): Promise<SubscriptionRow | undefined> {
    const [row] = await this.all(`SELECT * FROM ${this.s}.subscriptions WHERE customer = $1`, [customer]);
    return row && toSubscription(row);
  }

  async subscriptions(o: { limit: number; after?: string; due?: string; plan?: string }): Promise<Page<SubscriptionRow>> {
    const { where, params } = subscriptionFilter(o, (i) => `$${i}`);
    const rows = await this.all(`SELECT * FROM ${this.s}.subscriptions WHERE ${where} ORDER BY customer LIMIT $${params.length + 1}`, [...params, o.limit + 1]);
    return pageOf(rows.map(toSubscription), o.limit, (s) => s.customer);
  }

  async commit(c: Commit): Promise<boolean> {
    try {
      return await this.db.transaction((client) => this.commitIn(client, c));
    } catch (err) {
      // a charge's key or a new subscription taken by another node meanwhile: rolled back
      if ((err as { code?: string }).code === '23505') return false;
      throw err;
    }
  }

  private async commitIn(q: Query, c: Commit): Promise<boolean> {
    const s = c.row;
    const [current] = await this.all(`SELECT revision FROM ${this.s}.subscriptions WHERE customer = $1 FOR UPDATE`, [s.customer], q);
    if (Number(current?.revision ?? 0) !== c.expect) return false;
    if (c.expect === 0) await q.query(`INSERT INTO ${this.s}.subscriptions (${SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, subscriptionValues(s));
    else
      await q.query(`UPDATE ${this.s}.subscriptions SET plan = $1, since = $2, period = $3, cancel_at_period_end = $4, status = $5, revision = $6, updated_at = $7 WHERE customer = $8 AND revision = $9`, [
        s.plan,
        s.since,
        s.period,
        s.cancelAtPeriodEnd ? 1 : 0,
        s.status,
        s.revision,
        s.updatedAt,
        s.customer,
        c.expect,
      ]);
    for (const x of c.seats ?? []) {
      await q.query(`INSERT INTO ${this.s}.subscription_seats (payer, period, member, since) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [x.payer, x.period, x.member, x.since]);
    }
    for (const x of c.charges ?? []) await q.query(`INSERT INTO ${this.s}.subscription_charges (${CHARGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`, chargeValues(x));
    return true;
  }

  async seats(payer: string, period: string): Promise<SeatRow[]> {
    const rows = await this.all(`SELECT * FROM ${this.s}.subscription_seats WHERE payer = $1 AND period = $2 ORDER BY since, member`, [payer, period]);
    return rows.map((r) => ({ payer: String(r.payer), period: String(r.period), member: String(r.member), since: Number(r.since) }));
  }

  async charges(payer: string, period?: string): Promise<ChargeRow[]> {
    const rows =
      period === undefined
        ? await this.all(`SELECT * FROM ${this.s}.subscription_charges WHERE payer = $1 ORDER BY id`, [payer])
        : await this.all(`SELECT * FROM ${this.s}.subscription_charges WHERE payer = $1 AND period = $2 ORDER BY id`, [payer, period]);
    return rows.map(toCharge);
  }

  async pending(limit: number): Promise<ChargeRow[]> {
    return (await this.all(`SELECT * FROM ${this.s}.subscription_charges WHERE posted_at IS NULL ORDER BY id LIMIT $1`, [limit])).map(toCharge);
  }

  async markPosted(key: string, at: number): Promise<void> {
    await this.db.query(`UPDATE ${this.s}.subscription_charges SET posted_at = $1 WHERE key = $2 AND posted_at IS NULL`, [at, key]);
  }

  /** The handle is the ledger's: the hub closes it. */
  async close(): Promise<void> {}
}
