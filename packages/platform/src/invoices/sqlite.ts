import { ensureBillingSchema } from '../billing/engines.js';
import type { SqliteLedger } from '../ledger/sqlite.js';
import type { Invoice, InvoiceSummary } from './invoice.js';
import { checkPrevious, listPage, listParams, numbered, parseDoc, SQL, statement, yearOf, type InvoiceQuery, type InvoiceStorage, type ListRow } from './storage.js';

type Database = SqliteLedger['db'];

export const INVOICES_SQLITE_VERSION = 1;

const SCHEMA = `
CREATE TABLE invoices (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT NOT NULL UNIQUE, payer TEXT NOT NULL, period TEXT NOT NULL,
  issued_at INTEGER NOT NULL, buyer TEXT NOT NULL, total INTEGER NOT NULL, amount_due INTEGER NOT NULL, doc TEXT NOT NULL,
  UNIQUE (payer, period)
);
CREATE INDEX invoices_payer ON invoices (payer, seq);
CREATE TABLE invoice_numbers (year INTEGER PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE invoice_runs (period TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices BEGIN SELECT RAISE(ABORT, 'issued invoices are immutable'); END;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices BEGIN SELECT RAISE(ABORT, 'issued invoices are immutable'); END;
CREATE TRIGGER invoice_runs_no_update BEFORE UPDATE ON invoice_runs BEGIN SELECT RAISE(ABORT, 'invoice runs are immutable'); END;
CREATE TRIGGER invoice_runs_no_delete BEFORE DELETE ON invoice_runs BEGIN SELECT RAISE(ABORT, 'invoice runs are immutable'); END;
`;

const Q = Object.fromEntries(Object.entries(SQL).map(([k, v]) => [k, statement(v)])) as Record<keyof typeof SQL, string>;

/**
 * The invoices of the local profile, in billing.db beside the ledger, on the ledger's own
 * handle. Issuing is one synchronous better-sqlite3 transaction begun IMMEDIATE: nothing
 * else on the handle (a ledger posting of another request) can run inside it, which an
 * await between its statements would allow. One micro server uses a home at a time, so
 * `exclusive` has no other process to keep out (the issuer runs one issue at a time).
 */
export class SqliteInvoiceStorage implements InvoiceStorage {
  constructor(readonly db: Database) {
    ensureBillingSchema(db, 'invoices', INVOICES_SQLITE_VERSION, () => db.exec(SCHEMA));
  }

  private doc(sql: string, ...params: unknown[]): Invoice | undefined {
    return parseDoc(this.db.prepare<unknown[], { doc: string }>(sql).get(...params));
  }

  async get(number: string): Promise<Invoice | undefined> {
    return this.doc(Q.get, number);
  }

  async find(payer: string, period: string): Promise<Invoice | undefined> {
    return this.doc(Q.find, payer, period);
  }

  async latest(payer: string): Promise<Invoice | undefined> {
    return this.doc(Q.latest, payer);
  }

  async list(query: InvoiceQuery): Promise<{ items: InvoiceSummary[]; next?: string }> {
    return listPage(this.db.prepare<unknown[], ListRow>(Q.list).all(...listParams(query)), query.limit);
  }

  async issue(draft: Omit<Invoice, 'number'>): Promise<{ invoice: Invoice; issued: boolean }> {
    return this.db
      .transaction(() => {
        const existing = this.doc(Q.find, draft.payer, draft.period);
        if (existing) return { invoice: existing, issued: false };
        checkPrevious(this.doc(Q.latest, draft.payer), draft);
        const seq = (this.db.prepare<unknown[], { last: number }>(Q.count).get(yearOf(draft)) as { last: number }).last;
        const { invoice, params } = numbered(draft, seq);
        this.db.prepare(Q.insert).run(...params);
        return { invoice, issued: true };
      })
      .immediate();
  }

  async lastRun(): Promise<string | undefined> {
    return this.db.prepare<[], { period: string | null }>(Q.lastRun).get()?.period ?? undefined;
  }

  async markRun(period: string, at: number): Promise<void> {
    this.db.prepare(Q.markRun).run(period, at);
  }

  async exclusive<T>(_payer: string, fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  async close(): Promise<void> {
    // the handle is the ledger's: the hub closes it
  }
}
