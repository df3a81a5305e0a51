import { ensureBillingSchema } from '../billing/engines.js';
import type { SqliteLedger } from '../ledger/sqlite.js';
import type { PlanVersion } from './plans.js';
import { billingTables, chargeValues, CHARGE_COLUMNS, pageOf, subscriptionFilter, subscriptionValues, SUBSCRIPTION_COLUMNS, toCharge, toSubscription, toVersion } from './rows.js';
import type { BillingStorage, ChargeRow, Commit, Page, SeatRow, SubscriptionRow } from './storage.js';

type Database = SqliteLedger['db'];
type Row = Record<string, unknown>;

/** The part's name in billing.db's `meta` table: `schema_version.plans` (the ledger's is `schema_version`). */
export const BILLING_SQLITE_COMPONENT = 'plans';
export const BILLING_SQLITE_VERSION = 1;

/**
 * The storage of the local profile: tables in billing.db beside the ledger, on the
 * ledger's own handle. Every method is synchronous inside (better-sqlite3), so a
 * transaction here never has an await in it: nothing else — the ledger's postings
 * included, which share the connection — can run inside it.
 */
export function openSqliteBilling(db: Database): SqliteBilling {
  ensureBillingSchema(db, BILLING_SQLITE_COMPONENT, BILLING_SQLITE_VERSION, () => db.exec(billingTables({ int: 'INTEGER', id: 'INTEGER PRIMARY KEY AUTOINCREMENT', text: 'TEXT' })));
  return new SqliteBilling(db);
}

export class SqliteBilling implements BillingStorage {
  constructor(private readonly db: Database) {}

  private all(sql: string, ...params: unknown[]): Row[] {
    return this.db.prepare<unknown[], Row>(sql).all(...params);
  }

  async versions(): Promise<PlanVersion[]> {
    return this.all('SELECT * FROM plan_versions ORDER BY plan, period').map(toVersion);
  }

  async putVersion(v: PlanVersion, mode: 'create' | 'update' | 'seed'): Promise<boolean> {
    const spec = JSON.stringify(v.plan);
    return this.db
      .transaction(() => {
        if (mode === 'create' && this.all('SELECT 1 FROM plan_versions WHERE plan = ?', v.plan.id).length > 0) return false;
        const conflict = mode === 'update' ? 'DO UPDATE SET spec = excluded.spec, at = excluded.at' : 'DO NOTHING';
        return this.db.prepare(`INSERT INTO plan_versions (plan, period, spec, at) VALUES (?, ?, ?, ?) ON CONFLICT (plan, period) ${conflict}`).run(v.plan.id, v.from, spec, v.at).changes > 0;
      })
      .immediate();
  }

  async subscription(customer: string): Promise<SubscriptionRow | undefined> {
    const [row] = this.all('SELECT * FROM subscriptions WHERE customer = ?', customer);
    return row && toSubscription(row);
  }

  async subscriptions(o: { limit: number; after?: string; due?: string; plan?: string }): Promise<Page<SubscriptionRow>> {
    const { where, params } = subscriptionFilter(o, () => '?');
    const rows = this.all(`SELECT * FROM subscriptions WHERE ${where} ORDER BY customer LIMIT ?`, ...params, o.limit + 1);
    return pageOf(rows.map(toSubscription), o.limit, (s) => s.customer);
  }

  async commit(c: Commit): Promise<boolean> {
    try {
      return this.db.transaction(() => this.commitIn(c)).immediate();
    } catch (err) {
      // a charge whose key is there already: the whole change is another's, rolled back
      if (String((err as { code?: string }).code).startsWith('SQLITE_CONSTRAINT')) return false;
      throw err;
    }
  }

  private commitIn(c: Commit): boolean {
    const s = c.row;
    const [current] = this.all('SELECT revision FROM subscriptions WHERE customer = ?', s.customer);
    if (Number(current?.revision ?? 0) !== c.expect) return false;
    if (c.expect === 0) this.db.prepare(`INSERT INTO subscriptions (${SUBSCRIPTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...subscriptionValues(s));
    else
      this.db
        .prepare('UPDATE subscriptions SET plan = ?, since = ?, period = ?, cancel_at_period_end = ?, status = ?, revision = ?, updated_at = ? WHERE customer = ? AND revision = ?')
        .run(s.plan, s.since, s.period, s.cancelAtPeriodEnd ? 1 : 0, s.status, s.revision, s.updatedAt, s.customer, c.expect);
    const seat = this.db.prepare('INSERT INTO subscription_seats (payer, period, member, since) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING');
    for (const x of c.seats ?? []) seat.run(x.payer, x.period, x.member, x.since);
    const charge = this.db.prepare(`INSERT INTO subscription_charges (${CHARGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`);
    for (const x of c.charges ?? []) charge.run(...chargeValues(x));
    return true;
  }

  async seats(payer: string, period: string): Promise<SeatRow[]> {
    return this.all('SELECT * FROM subscription_seats WHERE payer = ? AND period = ? ORDER BY since, member', payer, period).map((r) => ({
      payer: String(r.payer),
      period: String(r.period),
      member: String(r.member),
      since: Number(r.since),
    }));
  }

  async charges(payer: string, period?: string): Promise<ChargeRow[]> {
    const rows = period === undefined ? this.all('SELECT * FROM subscription_charges WHERE payer = ? ORDER BY id', payer) : this.all('SELECT * FROM subscription_charges WHERE payer = ? AND period = ? ORDER BY id', payer, period);
    return rows.map(toCharge);
  }

  async pending(limit: number): Promise<ChargeRow[]> {
    return this.all('SELECT * FROM subscription_charges WHERE posted_at IS NULL ORDER BY id LIMIT ?', limit).map(toCharge);
  }

  async markPosted(key: string, at: number): Promise<void> {
    this.db.prepare('UPDATE subscription_charges SET posted_at = ? WHERE key = ? AND posted_at IS NULL').run(at, key);
  }

  /** The handle is the ledger's: the hub closes it. */
  async close(): Promise<void> {}
}
