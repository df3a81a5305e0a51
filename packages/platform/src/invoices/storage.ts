import { errors } from '@micro/sdk';
import { invoiceNumber, type Invoice, type InvoiceSummary } from './invoice.js';

/**
 * What an engine of the invoices keeps, in billing's database beside the ledger
 * (SQLite billing.db: sqlite.ts; PostgreSQL, the platform's schema: postgres.ts), and the
 * SQL both speak. Issued invoices and finished runs are never changed: triggers refuse
 * UPDATE and DELETE (and TRUNCATE on PostgreSQL), as the ledger's do.
 */

export interface InvoiceQuery {
  payer?: string;
  period?: string;
  /** 1..100 */
  limit: number;
  /** the `next` of the previous page */
  after?: string;
}

export interface InvoiceStorage {
  /** by number, or undefined */
  get(number: string): Promise<Invoice | undefined>;
  /** the invoice of a payer for a period, or undefined */
  find(payer: string, period: string): Promise<Invoice | undefined>;
  /** the payer's invoice of the latest period, or undefined */
  latest(payer: string): Promise<Invoice | undefined>;
  /** newest first */
  list(query: InvoiceQuery): Promise<{ items: InvoiceSummary[]; next?: string }>;
  /**
   * Numbers and records the invoice in one transaction: the next number of the period's
   * year (a counter row of the database: a refused or rolled-back issue takes no number,
   * so numbers have no gaps), unless the payer has one for the period already (returned,
   * `issued` false). A 409 when the payer's latest invoice is not `draft.previous` (it was
   * built on another state: build it again).
   */
  issue(draft: Omit<Invoice, 'number'>): Promise<{ invoice: Invoice; issued: boolean }>;
  /** the latest period the job finished for every payer */
  lastRun(): Promise<string | undefined>;
  markRun(period: string, at: number): Promise<void>;
  /** `fn` with no other process or node issuing for `payer` at the same time */
  exclusive<T>(payer: string, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Statements of both engines: `?` placeholders (numbered for PostgreSQL), tables as `{s}name` (the schema there). */
export const SQL = {
  get: 'SELECT doc FROM {s}invoices WHERE number = ?',
  find: 'SELECT doc FROM {s}invoices WHERE payer = ? AND period = ?',
  latest: 'SELECT doc FROM {s}invoices WHERE payer = ? ORDER BY period DESC LIMIT 1',
  list: `SELECT seq, number, payer, period, issued_at, buyer, total, amount_due FROM {s}invoices
         WHERE (? = '' OR payer = ?) AND (? = '' OR period = ?) AND seq < ? ORDER BY seq DESC LIMIT ?`,
  count: `INSERT INTO {s}invoice_numbers (year, last) VALUES (?, 1) ON CONFLICT (year) DO UPDATE SET last = {s}invoice_numbers.last + 1 RETURNING last`,
  insert: 'INSERT INTO {s}invoices (number, payer, period, issued_at, buyer, total, amount_due, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  lastRun: 'SELECT MAX(period) AS period FROM {s}invoice_runs',
  markRun: 'INSERT INTO {s}invoice_runs (period, at) VALUES (?, ?) ON CONFLICT (period) DO NOTHING',
} as const;

/** The statement for an engine: the schema before each table, `$1…` placeholders for PostgreSQL. */
export function statement(sql: string, schema?: string): string {
  if (schema === undefined) return sql.replaceAll('{s}', '');
  let n = 0;
  return sql.replaceAll('{s}', `${schema}.`).replace(/\?/g, () => `$${++n}`);
}

export interface ListRow {
  seq: number | string;
  number: string;
  payer: string;
  period: string;
  issued_at: number | string;
  buyer: string;
  total: number | string;
  amount_due: number | string;
}

/** The parameters of SQL.list: a cursor is the `seq` of the last row of a page. */
export function listParams(q: InvoiceQuery): unknown[] {
  if (q.after !== undefined && !/^\d{1,15}$/.test(q.after)) throw errors.BadRequest('invoices', 'after: not a cursor of this list (pass the `next` of the previous page)');
  const before = q.after === undefined ? Number.MAX_SAFE_INTEGER : Number(q.after);
  return [q.payer ?? '', q.payer ?? '', q.period ?? '', q.period ?? '', before, q.limit + 1];
}

export function listPage(rows: ListRow[], limit: number): { items: InvoiceSummary[]; next?: string } {
  const items = rows.slice(0, limit).map((r) => ({
    number: r.number,
    payer: r.payer,
    period: r.period,
    issuedAt: Number(r.issued_at),
    buyer: r.buyer,
    total: Number(r.total),
    amountDue: Number(r.amount_due),
  }));
  const last = rows[limit - 1];
  return rows.length > limit && last ? { items, next: String(last.seq) } : { items };
}

/** The previous-invoice check of `issue`, the same on both engines. */
export function checkPrevious(latest: Invoice | undefined, draft: Omit<Invoice, 'number'>): void {
  if ((latest?.number ?? undefined) !== draft.previous) {
    throw errors.Conflict('invoices', `the latest invoice of ${draft.payer} is ${latest?.number ?? 'none'}, not ${draft.previous ?? 'none'}: the invoice must be built again`);
  }
  if (latest && latest.period >= draft.period) throw errors.Conflict('invoices', `${draft.payer} has an invoice for ${latest.period} already, not before ${draft.period}`);
}

/** The invoice as numbered, and the parameters of SQL.insert. */
export function numbered(draft: Omit<Invoice, 'number'>, seq: number): { invoice: Invoice; params: unknown[] } {
  const invoice: Invoice = { number: invoiceNumber(Number(draft.period.slice(0, 4)), seq), ...draft };
  return { invoice, params: [invoice.number, invoice.payer, invoice.period, invoice.issuedAt, invoice.buyer.name, invoice.total, invoice.amountDue, JSON.stringify(invoice)] };
}

export const yearOf = (draft: Omit<Invoice, 'number'>) => Number(draft.period.slice(0, 4));

export function parseDoc(row: { doc: string } | undefined): Invoice | undefined {
  return row ? (JSON.parse(row.doc) as Invoice) : undefined;
}
