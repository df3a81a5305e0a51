import { errors, type Context, type Handlers } from '@micro/sdk';
import { isAdmin, isNamespaceAdmin, requireAdmin } from '@micro/server/engine';
import { checkPayer, parsePeriod } from '../billing/index.js';
import type { invoicesService } from './definition.js';
import { INVOICES_LIMITS } from './definition.js';
import { invoiceHtml } from './html.js';
import { INVOICE_NUMBER, summaryOf, type Invoice } from './invoice.js';
import type { Invoicer } from './issue.js';
import { invoicePdf } from './pdf-invoice.js';
import type { InvoiceStorage } from './storage.js';

/**
 * Who pays for the caller's namespace, and whether the caller is that payer: the tenant
 * rule of invoices. A customer's invoices cover all its namespaces, so only the customer
 * itself sees them (its account in a namespace it owns), not the other members of its
 * teams; a namespace no customer owns (`ns.<namespace>`) is seen by its admins.
 */
export interface PayerRule {
  /** the payer of a namespace (hub.payerOf) */
  payerOf(namespace: string): Promise<string>;
  /** the customer an account of a namespace belongs to (signup's members), or undefined */
  customerOf(namespace: string, account: string): Promise<string | undefined>;
}

export interface InvoiceHandlerDeps {
  storage: InvoiceStorage;
  invoicer: Invoicer;
  rule: PayerRule;
}

const ID = 'invoices';

function checkNumber(number: string): string {
  if (!INVOICE_NUMBER.test(number)) throw errors.BadRequest(ID, `number: ${JSON.stringify(number.slice(0, 40))} is not an invoice number (INV-<year>-<6 digits>, e.g. INV-2027-000001)`);
  return number;
}

function checkedPayer(payer: string): string {
  try {
    return checkPayer(payer);
  } catch (err) {
    throw errors.BadRequest(ID, `payer: ${(err as Error).message}`);
  }
}

function period(id: string) {
  try {
    return parsePeriod(id);
  } catch (err) {
    throw errors.BadRequest(ID, `period: ${(err as Error).message}`);
  }
}

export function invoicesHandlers(deps: InvoiceHandlerDeps): Handlers<typeof invoicesService> {
  const { storage, invoicer, rule } = deps;

  /** The caller's payer (undefined: an admin of micro, who may read any). */
  async function ownPayer(ctx: Context): Promise<string | undefined> {
    const account = ctx.account;
    if (!account) throw errors.Unauthorized(ID, 'credentials required');
    if (isAdmin(account)) return undefined;
    const namespace = account.issuer;
    const payer = await rule.payerOf(namespace);
    if (payer.startsWith('ns.') ? isNamespaceAdmin(account, namespace) : (await rule.customerOf(namespace, account.id)) === payer) return payer;
    throw errors.Forbidden(ID, `the invoices of namespace ${namespace} are its owner's: account ${account.id} does not pay for it (log in as the customer who owns it)`);
  }

  /** The invoice if the caller may see it; a stranger gets the 404 of a number that does not exist. */
  async function readable(number: string, ctx: Context): Promise<Invoice> {
    const own = await ownPayer(ctx);
    const invoice = await storage.get(checkNumber(number));
    if (!invoice || (own !== undefined && invoice.payer !== own)) throw errors.NotFound(ID, `number: no invoice ${number} of yours`);
    return invoice;
  }

  return {
    List: async ({ payer, period: p, limit, after }, ctx) => {
      const own = await ownPayer(ctx);
      if (own !== undefined && payer !== undefined && payer !== own) throw errors.Forbidden(ID, `payer: you may list only your own invoices (${own})`);
      const whose = own ?? (payer === undefined ? undefined : checkedPayer(payer));
      const page = await storage.list({ limit: limit ?? INVOICES_LIMITS.page, ...(whose ? { payer: whose } : {}), ...(p ? { period: period(p).id } : {}), ...(after ? { after } : {}) });
      return { ...(whose ? { payer: whose } : {}), invoices: page.items, ...(page.next ? { next: page.next } : {}) };
    },
    Read: async ({ number }, ctx) => {
      const { through: _t, closing: _c, deferred: _d, ...invoice } = await readable(number, ctx);
      return { invoice };
    },
    Render: async ({ number, format }, ctx) => {
      if (format !== 'html' && format !== 'pdf') throw errors.BadRequest(ID, `format: ${JSON.stringify(format)} is not html or pdf`);
      const invoice = await readable(number, ctx);
      if (format === 'html') return { filename: `${invoice.number}.html`, contentType: 'text/html; charset=utf-8', encoding: 'utf8' as const, content: invoiceHtml(invoice) };
      return { filename: `${invoice.number}.pdf`, contentType: 'application/pdf', encoding: 'base64' as const, content: invoicePdf(invoice).toString('base64') };
    },
    Issue: async ({ period: p, payer }, ctx) => {
      requireAdmin(ctx);
      const when = period(p);
      if (payer !== undefined) {
        const r = await invoicer.issue(checkedPayer(payer), when);
        if (r.status === 'later') throw errors.Conflict(ID, `payer: ${payer} has an invoice of ${r.period}, which took what ${when.id} would have had`);
        const issued = r.status === 'issued' ? [summaryOf(r.invoice)] : [];
        return { issued, count: issued.length, existing: r.status === 'exists' ? [summaryOf(r.invoice)] : [], failed: 0 };
      }
      invoicer.ensureEnded(when);
      const { issued, failed } = await invoicer.runPeriod(when);
      return { issued: issued.slice(0, 100).map(summaryOf), count: issued.length, existing: [], failed };
    },
  };
}
