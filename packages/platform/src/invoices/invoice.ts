/**
 * An invoice of M3O billing: what a payer was charged and credited in a period, built
 * from the ledger alone and immutable once issued. Money is integer units of 10^-6 USD.
 * See README.md for what each figure means and how it reconciles with the ledger.
 */

/**
 * What a line is made of, from `metadata.kind` of the postings (billing/accounts.ts), and
 * `adjustment` for a posting on the payer's accounts without a billing kind (a reversal
 * made by hand): it is on the invoice all the same, so no unit is left out.
 */
export const LINE_KINDS = ['seats', 'proration', 'usage', 'adjustment', 'tax', 'credit', 'refund', 'topup', 'payment'] as const;
export type LineKind = (typeof LINE_KINDS)[number];

/** the kinds that make the subtotal (what was sold); `taxed` ones make the base of the tax */
export const CHARGE_KINDS: ReadonlySet<LineKind> = new Set(['seats', 'proration', 'usage', 'adjustment', 'tax']);
export const TAXED_KINDS: ReadonlySet<LineKind> = new Set(['seats', 'proration', 'usage']);
export const CREDIT_KINDS: ReadonlySet<LineKind> = new Set(['credit', 'refund']);
export const PAYMENT_KINDS: ReadonlySet<LineKind> = new Set(['topup', 'payment']);

export interface InvoiceLine {
  kind: LineKind;
  /** the period the movements belong to: an earlier one than the invoice's when they reached the ledger after its invoice */
  period: string;
  /** for people: `search.Query`, `Developer: 3 seats`, the reason of a credit… (at most 200 characters) */
  description: string;
  /** units: positive is charged to the payer, negative credited to it or paid by it */
  amount: number;
  /** how many ledger postings make the line */
  postings: number;
  /** usage: the service and endpoint, and the calls charged (a call reversed counts -1) */
  service?: string;
  endpoint?: string;
  calls?: number;
  /** seats: the plan, the seats and the price of one seat (when the posting says it, or it divides evenly) */
  plan?: string;
  seats?: number;
  unitPrice?: number;
}

export interface Party {
  name: string;
  /** the seller's postal address, or the buyer's namespaces: lines under the name */
  lines: string[];
  email?: string;
}

/** Ledger entry ids an invoice has read up to, per account of the payer (see README: watermarks). */
export interface Through {
  balance: number;
  due: number;
}

/** An entry read but left for a later invoice: it belongs to a later period (billed in advance). */
export interface DeferredEntry {
  id: number;
  account: 'balance' | 'due';
  key: string;
  amount: number;
  at: number;
  balanceAfter: number;
}

export interface Invoice {
  /** `INV-<year of the period>-<6+ digits>`: gap-free within a year, unique across nodes */
  number: string;
  payer: string;
  /** `YYYY-MM` */
  period: string;
  /** ms since the epoch: the period's first instant and the next period's */
  periodStart: number;
  periodEnd: number;
  issuedAt: number;
  seller: Party;
  buyer: Party;
  currency: 'USD';
  lines: InvoiceLine[];
  /** the sum of the charge lines (seats, prorations, usage, adjustments) */
  subtotal: number;
  /** basis points: 2000 = 20 % */
  taxRate: number;
  /** what the tax is on: seats, prorations and usage of this invoice (never below 0) */
  taxBase: number;
  tax: number;
  /** subtotal + tax */
  total: number;
  /** credits and refunds (≤ 0 as a rule): they raise the prepaid balance */
  credits: number;
  /** top-ups and payments received (≤ 0 as a rule) */
  payments: number;
  /** the prepaid balance (customer:<payer>:balance) once the invoice's movements are in */
  balance: number;
  /** what the payer owes on its due account once this invoice's tax is in (0 when nothing) */
  amountDue: number;
  /** the invoice before this one of the same payer */
  previous?: string;
  /** the ledger posting of the tax (absent when the tax is 0) */
  taxKey?: string;
  through: Through;
  /** the balances of the two accounts at `through` (before this invoice's own tax) */
  closing: { balance: number; due: number };
  /** entries read, up to `through`, that belong to later periods: the next invoice takes them */
  deferred: DeferredEntry[];
}

/** What lists show of an invoice. */
export interface InvoiceSummary {
  number: string;
  payer: string;
  period: string;
  issuedAt: number;
  buyer: string;
  total: number;
  amountDue: number;
}

export function summaryOf(i: Invoice): InvoiceSummary {
  return { number: i.number, payer: i.payer, period: i.period, issuedAt: i.issuedAt, buyer: i.buyer.name, total: i.total, amountDue: i.amountDue };
}

export const INVOICE_NUMBER = /^INV-\d{4}-\d{6,12}$/;

export function invoiceNumber(year: number, seq: number): string {
  return `INV-${String(year).padStart(4, '0')}-${String(seq).padStart(6, '0')}`;
}

/** the key of the tax posting of a payer's invoice of a period (one per pair, whatever happens) */
export function taxKeyOf(payer: string, period: string): string {
  return `tax:${payer}:${period}`;
}
