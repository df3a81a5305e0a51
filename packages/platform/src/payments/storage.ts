import type { BillingEngines } from '../billing/engines.js';
import { billingSql, type BillingMigration, type BillingSql } from '../billing/sql.js';

/**
 * What payments keep beside the ledger: the provider's customer of each payer, the
 * Checkout sessions we opened (whose payer is decided here, never by what an event says),
 * and the provider's events we received. Money is never here: it moves in the ledger only,
 * under keys derived from these ids.
 */

export type Purpose = 'topup' | 'due';
export type SessionStatus = 'open' | 'paid' | 'expired' | 'failed';

export interface StoredSession {
  /** the provider's id (Stripe: `cs_…`) */
  id: string;
  provider: string;
  payer: string;
  purpose: Purpose;
  /** units asked for (whole cents) */
  amount: number;
  status: SessionStatus;
  url: string;
  /** the provider's payment (Stripe: `pi_…`), once known */
  paymentIntent?: string;
  /** the ledger key of the posting the payment made, once paid */
  posting?: string;
  createdAt: number;
  updatedAt: number;
}

export interface PaymentsStorage {
  /** the provider's customer id of a payer, if made */
  customer(provider: string, payer: string): Promise<string | undefined>;
  /** records it; the one recorded first wins and is returned (two nodes racing keep one) */
  putCustomer(provider: string, payer: string, external: string, now: number): Promise<string>;
  putSession(s: StoredSession): Promise<void>;
  session(provider: string, id: string): Promise<StoredSession | undefined>;
  sessionByPayment(provider: string, paymentIntent: string): Promise<StoredSession | undefined>;
  /** the payer's sessions, newest first */
  sessions(payer: string, limit: number): Promise<StoredSession[]>;
  /**
   * Moves a session to `status` when it is in one of `from`; whether it moved. `paid`
   * records the payment and the posting (a conditional UPDATE: one statement decides).
   */
  setStatus(provider: string, id: string, status: SessionStatus, from: readonly SessionStatus[], now: number, paid?: { paymentIntent?: string; posting: string }): Promise<boolean>;
  /** what became of a provider's event (the last outcome recorded), if it came before */
  event(provider: string, id: string): Promise<{ type: string; outcome: string; receivedAt: number } | undefined>;
  recordEvent(provider: string, id: string, type: string, outcome: string, now: number): Promise<void>;
}

export const PAYMENTS_MIGRATIONS: readonly BillingMigration[] = [
  {
    version: 1,
    description: 'payments: provider customers, checkout sessions, provider events',
    sql: `
      CREATE TABLE pay_customers (provider TEXT NOT NULL, payer TEXT NOT NULL, external TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (provider, payer));
      CREATE TABLE pay_sessions (
        provider TEXT NOT NULL, id TEXT NOT NULL, payer TEXT NOT NULL, purpose TEXT NOT NULL, amount BIGINT NOT NULL, status TEXT NOT NULL,
        url TEXT NOT NULL, payment_intent TEXT, posting TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (provider, id));
      CREATE INDEX pay_sessions_payer ON pay_sessions (payer, created_at);
      CREATE INDEX pay_sessions_payment ON pay_sessions (provider, payment_intent);
      CREATE TABLE pay_events (provider TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, outcome TEXT NOT NULL, received_at BIGINT NOT NULL, PRIMARY KEY (provider, id));
    `,
  },
];

type Row = Record<string, unknown>;
const COLUMNS = 'provider, id, payer, purpose, amount, status, url, payment_intent, posting, created_at, updated_at';

function sessionOf(r: Row): StoredSession {
  return {
    id: String(r.id),
    provider: String(r.provider),
    payer: String(r.payer),
    purpose: r.purpose as Purpose,
    amount: Number(r.amount),
    status: r.status as SessionStatus,
    url: String(r.url),
    ...(r.payment_intent ? { paymentIntent: String(r.payment_intent) } : {}),
    ...(r.posting ? { posting: String(r.posting) } : {}),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

export class SqlPaymentsStorage implements PaymentsStorage {
  constructor(private readonly db: BillingSql) {}

  async customer(provider: string, payer: string): Promise<string | undefined> {
    const [row] = await this.db.all<Row>('SELECT external FROM @pay_customers WHERE provider = ? AND payer = ?', [provider, payer]);
    return row ? String(row.external) : undefined;
  }

  async putCustomer(provider: string, payer: string, external: string, now: number): Promise<string> {
    await this.db.run('INSERT INTO @pay_customers (provider, payer, external, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (provider, payer) DO NOTHING', [provider, payer, external, now]);
    return (await this.customer(provider, payer)) as string;
  }

  async putSession(s: StoredSession): Promise<void> {
    await this.db.run(`INSERT INTO @pay_sessions (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
      s.provider,
      s.id,
      s.payer,
      s.purpose,
      s.amount,
      s.status,
      s.url,
      s.paymentIntent ?? null,
      s.posting ?? null,
      s.createdAt,
      s.updatedAt,
    ]);
  }

  async session(provider: string, id: string): Promise<StoredSession | undefined> {
    const [row] = await this.db.all<Row>(`SELECT ${COLUMNS} FROM @pay_sessions WHERE provider = ? AND id = ?`, [provider, id]);
    return row && sessionOf(row);
  }

  async sessionByPayment(provider: string, paymentIntent: string): Promise<StoredSession | undefined> {
    const [row] = await this.db.all<Row>(`SELECT ${COLUMNS} FROM @pay_sessions WHERE provider = ? AND payment_intent = ?`, [provider, paymentIntent]);
    return row && sessionOf(row);
  }

  async sessions(payer: string, limit: number): Promise<StoredSession[]> {
    return (await this.db.all<Row>(`SELECT ${COLUMNS} FROM @pay_sessions WHERE payer = ? ORDER BY created_at DESC, id DESC LIMIT ?`, [payer, limit])).map(sessionOf);
  }

  async setStatus(provider: string, id: string, status: SessionStatus, from: readonly SessionStatus[], now: number, paid?: { paymentIntent?: string; posting: string }): Promise<boolean> {
    if (from.length === 0) return false;
    const marks = from.map(() => '?').join(', ');
    const sql = paid
      ? `UPDATE @pay_sessions SET status = ?, updated_at = ?, payment_intent = COALESCE(?, payment_intent), posting = ? WHERE provider = ? AND id = ? AND status IN (${marks})`
      : `UPDATE @pay_sessions SET status = ?, updated_at = ? WHERE provider = ? AND id = ? AND status IN (${marks})`;
    const params = paid ? [status, now, paid.paymentIntent ?? null, paid.posting, provider, id, ...from] : [status, now, provider, id, ...from];
    return (await this.db.run(sql, params)) > 0;
  }

  async event(provider: string, id: string): Promise<{ type: string; outcome: string; receivedAt: number } | undefined> {
    const [row] = await this.db.all<Row>('SELECT type, outcome, received_at FROM @pay_events WHERE provider = ? AND id = ?', [provider, id]);
    return row && { type: String(row.type), outcome: String(row.outcome), receivedAt: Number(row.received_at) };
  }

  async recordEvent(provider: string, id: string, type: string, outcome: string, now: number): Promise<void> {
    await this.db.run('INSERT INTO @pay_events (provider, id, type, outcome, received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider, id) DO UPDATE SET outcome = excluded.outcome', [provider, id, type, outcome, now]);
  }
}

export async function openPaymentsStorage(engines: Pick<BillingEngines, 'sqlite' | 'pg'>): Promise<SqlPaymentsStorage> {
  return new SqlPaymentsStorage(await billingSql(engines, 'payments', PAYMENTS_MIGRATIONS));
}
