import { formatDollars } from '../billing/index.js';
import type { Invoice, InvoiceLine, LineKind } from './invoice.js';

/**
 * What the printable renderings (html.ts, pdf-invoice.ts) show of an invoice, as text:
 * one place decides the sections, labels and amounts in dollars, so the HTML and the PDF
 * say the same.
 */

export interface ViewRow {
  description: string;
  period: string;
  quantity: string;
  unitPrice: string;
  amount: string;
}

export interface ViewSection {
  title: string;
  rows: ViewRow[];
}

export interface InvoiceView {
  title: string;
  number: string;
  issued: string;
  period: string;
  seller: { name: string; lines: string[] };
  buyer: { name: string; lines: string[] };
  sections: ViewSection[];
  /** label, amount; `strong` for the total and the amount due */
  totals: { label: string; amount: string; strong?: boolean }[];
  notes: string[];
}

const LABEL: Record<LineKind, string> = {
  seats: 'Seats',
  proration: 'Plan change',
  usage: 'API calls',
  adjustment: 'Adjustment',
  tax: 'Tax adjustment',
  credit: 'Credit',
  refund: 'Refund',
  topup: 'Prepaid credit bought',
  payment: 'Payment',
};

const SECTIONS: { title: string; kinds: LineKind[] }[] = [
  { title: 'Charges', kinds: ['seats', 'proration', 'usage', 'adjustment', 'tax'] },
  { title: 'Credits and refunds', kinds: ['credit', 'refund'] },
  { title: 'Payments received', kinds: ['topup', 'payment'] },
];

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const count = (n: number) => n.toLocaleString('en-US');
const plural = (n: number, what: string) => `${count(n)} ${what}${n === 1 ? '' : 's'}`;

function rowOf(l: InvoiceLine): ViewRow {
  const quantity = l.kind === 'usage' ? plural(l.calls ?? 0, 'call') : l.seats !== undefined ? plural(l.seats, 'seat') : '';
  return {
    description: `${LABEL[l.kind]}: ${l.description}`,
    period: l.period,
    quantity,
    unitPrice: l.unitPrice !== undefined ? formatDollars(l.unitPrice) : '',
    amount: formatDollars(l.amount),
  };
}

export function viewOf(i: Invoice): InvoiceView {
  const sections = SECTIONS.map((s) => ({ title: s.title, rows: i.lines.filter((l) => s.kinds.includes(l.kind)).map(rowOf) })).filter((s) => s.rows.length);
  const percent = `${(i.taxRate / 100).toLocaleString('en-US', { maximumFractionDigits: 2 })} %`;
  const earlier = i.lines.some((l) => l.period < i.period);
  return {
    title: `Invoice ${i.number}`,
    number: i.number,
    issued: day(i.issuedAt),
    period: `${day(i.periodStart)} to ${day(i.periodEnd - 1)}`,
    seller: i.seller,
    buyer: { name: i.buyer.name, lines: [...i.buyer.lines, ...(i.buyer.email && i.buyer.email !== i.buyer.name ? [i.buyer.email] : [])] },
    sections,
    totals: [
      { label: 'Subtotal', amount: formatDollars(i.subtotal) },
      { label: `Tax ${percent} of ${formatDollars(i.taxBase)}`, amount: formatDollars(i.tax) },
      { label: 'Total', amount: formatDollars(i.total), strong: true },
      { label: 'Credits and refunds', amount: formatDollars(i.credits) },
      { label: 'Payments received', amount: formatDollars(i.payments) },
      { label: 'Prepaid balance', amount: formatDollars(i.balance) },
      { label: 'Amount due', amount: formatDollars(i.amountDue), strong: true },
    ],
    notes: [
      'Amounts in US dollars. API calls are paid from the prepaid balance when made; seats, plan changes and tax are due.',
      ...(earlier ? ['Lines of an earlier period reached the ledger after that period was invoiced.'] : []),
      ...(i.previous ? [`Previous invoice: ${i.previous}.`] : []),
      'Issued invoices are never changed: a correction is a credit on a later invoice.',
    ],
  };
}
