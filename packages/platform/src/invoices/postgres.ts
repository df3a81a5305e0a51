import { migrate, type Migration, type Postgres } from '@micro/server/engine';
import type { Invoice, InvoiceSummary } from './invoice.js';
import { checkPrevious, listPage, listParams, numbered, parseDoc, SQL, statement, yearOf, type InvoiceQuery, type InvoiceStorage, type ListRow } from './storage.js';

const SCHEMA = `
CREATE TABLE invoices (
  seq bigserial PRIMARY KEY, number text NOT NULL UNIQUE, payer text NOT NULL, period text NOT NULL,
  issued_at bigint NOT NULL, buyer text NOT NULL, total bigint NOT NULL, amount_due bigint NOT NULL, doc text NOT NULL,
  UNIQUE (payer, period)
);
CREATE INDEX invoices_payer ON invoices (payer, seq);
CREATE TABLE invoice_numbers (year integer PRIMARY KEY, last bigint NOT NULL);
CREATE TABLE invoice_runs (period text PRIMARY KEY, at bigint NOT NULL);
CREATE FUNCTION invoices_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% are immutable once written', TG_TABLE_NAME; END $$;
CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices FOR EACH ROW EXECUTE FUNCTION invoices_immutable();
CREATE TRIGGER invoices_no_truncate BEFORE TRUNCATE ON invoices FOR EACH STATEMENT EXECUTE FUNCTION invoices_immutable();
CREATE TRIGGER invoice_runs_immutable BEFORE UPDATE OR DELETE ON invoice_runs FOR EACH ROW EXECUTE FUNCTION invoices_immutable();
CREATE TRIGGER invoice_runs_no_truncate BEFORE TRUNCATE ON invoice_runs FOR EACH STATEMENT EXECUTE FUNCTION invoices_immutable();
`;

export const INVOICES_POSTGRES_MIGRATIONS: readonly Migration[] = [{ version: 1, description: 'invoices: invoices (immutable), numbers per year, runs of the job', up: SCHEMA }];

/** the first keys of the advisory locks: issuing ("invo", second key the schema), a payer's invoices ("invp", the schema and payer) */
const ISSUE_LOCK = 0x696e766f;
const PAYER_LOCK = 0x696e7670;

/**
 * The invoices of the nats profile: tables in the platform's schema beside the ledger, so
 * every node issues into one sequence of numbers. Issuing is one READ COMMITTED
 * transaction under an advisory lock of the schema (issues queue for the counter row
 * anyway); a node that issues a payer's invoice holds an advisory lock of that payer for
 * the whole of it (reading the ledger, posting the tax, recording), so two nodes never
 * build one payer's invoices from two states. A lost node's locks go with its connection.
 */
export class PgInvoiceStorage implements InvoiceStorage {
  private readonly q: Record<keyof typeof SQL, string>;

  constructor(readonly db: Postgres) {
    this.q = Object.fromEntries(Object.entries(SQL).map(([k, v]) => [k, statement(v, db.schema)])) as Record<keyof typeof SQL, string>;
  }

  static async open(db: Postgres): Promise<PgInvoiceStorage> {
    await migrate(db, 'invoices', INVOICES_POSTGRES_MIGRATIONS);
    return new PgInvoiceStorage(db);
  }

  private async doc(sql: string, params: unknown[], q: Pick<Postgres, 'query'> = this.db): Promise<Invoice | undefined> {
    return parseDoc((await q.query<{ doc: string }>(sql, params)).rows[0]);
  }

  get(number: string): Promise<Invoice | undefined> {
    return this.doc(this.q.get, [number]);
  }

  find(payer: string, period: string): Promise<Invoice | undefined> {
    return this.doc(this.q.find, [payer, period]);
  }

  latest(payer: string): Promise<Invoice | undefined> {
    return this.doc(this.q.latest, [payer]);
  }

  async list(query: InvoiceQuery): Promise<{ items: InvoiceSummary[]; next?: string }> {
    return listPage((await this.db.query<ListRow>(this.q.list, listParams(query))).rows, query.limit);
  }

  issue(draft: Omit<Invoice, 'number'>): Promise<{ invoice: Invoice; issued: boolean }> {
    return this.db.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [ISSUE_LOCK, this.db.prefix]);
      const existing = await this.doc(this.q.find, [draft.payer, draft.period], client);
      if (existing) return { invoice: existing, issued: false };
      checkPrevious(await this.doc(this.q.latest, [draft.payer], client), draft);
      const seq = Number((await client.query<{ last: string }>(this.q.count, [yearOf(draft)])).rows[0]?.last);
      const { invoice, params } = numbered(draft, seq);
      await client.query(this.q.insert, params);
      return { invoice, issued: true };
    });
  }

  async lastRun(): Promise<string | undefined> {
    return (await this.db.query<{ period: string | null }>(this.q.lastRun)).rows[0]?.period ?? undefined;
  }

  async markRun(period: string, at: number): Promise<void> {
    await this.db.query(this.q.markRun, [period, at]);
  }

  exclusive<T>(payer: string, fn: () => Promise<T>): Promise<T> {
    // held by this transaction until fn is done; fn's own statements use other connections
    return this.db.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PAYER_LOCK, `${this.db.prefix}:${payer}`]);
      return fn();
    });
  }

  async close(): Promise<void> {
    // the handle is the ledger's: the hub closes it
  }
}
