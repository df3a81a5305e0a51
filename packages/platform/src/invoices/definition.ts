import { defineService, endpoint, z } from '@micro/sdk';

/**
 * The invoices service of the platform (namespace micro): a payer's invoices, read by the
 * customer who pays (List, Read, Render) and by the platform's staff (any payer; Issue).
 * Money is integer units of 10^-6 USD.
 */

export const INVOICES_LIMITS = { page: 100 };

const Units = z.number().int().describe('units of 10^-6 USD');
const Period = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'a period is YYYY-MM, e.g. 2027-01').describe('a billing period (UTC month) YYYY-MM');
const Number_ = z.string().min(1).max(32).describe('an invoice number, e.g. INV-2027-000001');
const Payer = z.string().min(1).max(104).describe('a payer: a customer id (cus_…) or ns.<namespace>');
const Time = z.number().int().describe('epoch milliseconds');

const Summary = z.object({ number: z.string(), payer: z.string(), period: z.string(), issuedAt: Time, buyer: z.string(), total: Units, amountDue: Units });

const Line = z.object({
  kind: z.enum(['seats', 'proration', 'usage', 'adjustment', 'tax', 'credit', 'refund', 'topup', 'payment']),
  period: z.string().describe('the period of the movements (an earlier one: they reached the ledger after its invoice)'),
  description: z.string(),
  amount: Units.describe('positive: charged; negative: credited or paid'),
  postings: z.number().int().describe('ledger postings the line sums'),
  service: z.string().optional(),
  endpoint: z.string().optional(),
  calls: z.number().int().optional(),
  plan: z.string().optional(),
  seats: z.number().int().optional(),
  unitPrice: Units.optional(),
});

const Party = z.object({ name: z.string(), lines: z.array(z.string()), email: z.string().optional() });

const InvoiceSchema = z.object({
  number: z.string(),
  payer: z.string(),
  period: z.string(),
  periodStart: Time,
  periodEnd: Time,
  issuedAt: Time,
  seller: Party,
  buyer: Party,
  currency: z.literal('USD'),
  lines: z.array(Line),
  subtotal: Units,
  taxRate: z.number().int().describe('basis points: 2000 = 20 %'),
  taxBase: Units,
  tax: Units,
  total: Units,
  credits: Units,
  payments: Units,
  balance: Units.describe('the prepaid balance once the invoice’s movements are in'),
  amountDue: Units.describe('what is owed on the due account once the invoice’s tax is in'),
  previous: z.string().optional(),
  taxKey: z.string().optional().describe('the ledger posting of the tax'),
});

export const invoicesService = defineService({
  name: 'invoices',
  version: '1.0.0',
  description: 'Invoices of the platform: one per payer and ended month, built from the ledger, numbered, never changed',
  endpoints: {
    List: endpoint({
      description: 'Invoices, newest first: your own (the payer of your namespace); admins of micro any payer, or all',
      idempotent: true,
      readonly: true,
      request: z
        .object({
          payer: Payer.optional().describe('admins of micro: whose (default all); others: their own only'),
          period: Period.optional(),
          limit: z.number().int().min(1).max(INVOICES_LIMITS.page).optional().describe(`default and most ${INVOICES_LIMITS.page}`),
          after: z.string().max(20).optional().describe('the `next` of the previous page'),
        })
        .strict(),
      response: z.object({ payer: z.string().optional().describe('whose (absent: all payers, for admins)'), invoices: z.array(Summary), next: z.string().optional() }),
    }),
    Read: endpoint({
      description: 'One invoice by number (yours; admins of micro any)',
      idempotent: true,
      readonly: true,
      request: z.object({ number: Number_ }).strict(),
      response: z.object({ invoice: InvoiceSchema }),
    }),
    Render: endpoint({
      description: 'An invoice as a printable HTML page (text) or a PDF (base64): yours; admins of micro any',
      idempotent: true,
      readonly: true,
      request: z.object({ number: Number_, format: z.string().min(1).max(8).describe('html or pdf') }).strict(),
      response: z.object({
        filename: z.string().describe('<number>.html or <number>.pdf'),
        contentType: z.string(),
        encoding: z.enum(['utf8', 'base64']),
        content: z.string(),
      }),
    }),
    Issue: endpoint({
      description: 'Issues now the invoices of an ended period, of one payer or of all (admins of micro; what exists is returned, nothing is issued twice)',
      idempotent: true,
      request: z.object({ period: Period, payer: Payer.optional() }).strict(),
      response: z.object({
        issued: z.array(Summary).describe('issued by this call (at most 100 shown)'),
        count: z.number().int().describe('how many this call issued'),
        existing: z.array(Summary).describe('with payer: its invoice issued before'),
        failed: z.number().int().describe('payers whose invoice could not be issued now (logged; the job tries again)'),
      }),
    }),
  },
});
