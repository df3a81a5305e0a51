import type { CoreServiceFactory } from '@micro/server/engine';
import type { BillingEngines } from '../billing/index.js';
import type { PlatformHub } from '../hub.js';
import { invoicesService } from './definition.js';
import { invoicesHandlers } from './handlers.js';
import type { Party } from './invoice.js';
import { Invoicer } from './issue.js';
import { PgInvoiceStorage } from './postgres.js';
import { SqliteInvoiceStorage } from './sqlite.js';
import type { InvoiceStorage } from './storage.js';

export { invoicesService, INVOICES_LIMITS } from './definition.js';
export { invoicesHandlers } from './handlers.js';
export type { PayerRule } from './handlers.js';
export { Invoicer } from './issue.js';
export type { InvoicerOptions, IssueOutcome } from './issue.js';
export type { Invoice, InvoiceLine, InvoiceSummary, LineKind, Party } from './invoice.js';
export { invoiceHtml } from './html.js';
export { invoicePdf } from './pdf-invoice.js';

export interface InvoicesServiceOptions {
  /** the platform's shared engines (ledger, billing.db or PostgreSQL, signup, clock) */
  hub: PlatformHub;
  /** basis points 0..10,000 (default MICRO_BILLING_TAX_RATE, else 0) */
  taxRate?: number;
  /** who issues the invoices (default MICRO_BILLING_SELLER: "Name | address line | …", else "Micro") */
  seller?: Party;
  /** ms between runs of the job (default 60,000); 0: no job (Issue only) */
  interval?: number;
}

/** MICRO_BILLING_TAX_RATE: whole basis points 0..10000 (2000 = 20 %); anything else stops micro server saying what to write. */
export function taxRateFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = (env.MICRO_BILLING_TAX_RATE ?? '').trim();
  if (raw === '') return 0;
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 10_000) throw new Error(`MICRO_BILLING_TAX_RATE must be whole basis points from 0 to 10000 (2000 = 20 %), not "${raw.slice(0, 32)}"`);
  return Number(raw);
}

/** MICRO_BILLING_SELLER: `Name | address line | …` (at most 7 parts of 200 characters). */
export function sellerFromEnv(env: NodeJS.ProcessEnv = process.env): Party {
  const parts = (env.MICRO_BILLING_SELLER ?? '').split('|').map((p) => p.trim()).filter(Boolean);
  if (parts.length > 7 || parts.some((p) => p.length > 200)) throw new Error('MICRO_BILLING_SELLER is "Name | address line | …": at most 7 parts of 200 characters');
  return { name: parts[0] ?? 'Micro', lines: parts.slice(1) };
}

function storageOf(billing: BillingEngines): Promise<InvoiceStorage> | InvoiceStorage {
  if (billing.pg) return PgInvoiceStorage.open(billing.pg);
  if (billing.sqlite) return new SqliteInvoiceStorage(billing.sqlite);
  throw new Error('the billing engines have neither SQLite nor PostgreSQL');
}

/**
 * The invoices core service (namespace micro): its tables in billing's database (the
 * hub's), the job that issues each ended month's invoices (at start, then every minute),
 * and the endpoints. See README.md.
 */
export function invoicesCoreService(options: InvoicesServiceOptions): CoreServiceFactory {
  return async (ctx) => {
    const { hub } = options;
    const taxRate = options.taxRate ?? taxRateFromEnv();
    const seller = options.seller ?? sellerFromEnv();
    hub.acquire();
    try {
      const billing = await hub.billing(ctx);
      const storage = await storageOf(billing);
      const signup = () => hub.signup(ctx).then((s) => s.storage);
      const invoicer = new Invoicer({
        ledger: billing.ledger,
        storage,
        clock: billing.clock,
        taxRate,
        seller,
        logger: ctx.logger.child({ component: 'invoices' }),
        ...(options.interval ? { interval: options.interval } : {}),
        buyerOf: async (payer) => buyerOf(await signup(), payer),
      });
      const rule = {
        payerOf: (namespace: string) => hub.payerOf(ctx, namespace),
        customerOf: async (namespace: string, account: string) => (await (await signup()).memberByAccount(namespace, account))?.customer,
      };
      return {
        def: invoicesService,
        handlers: invoicesHandlers({ storage, invoicer, rule }),
        start: async () => {
          if (options.interval !== 0) invoicer.start();
        },
        stop: async () => {
          await invoicer.stop();
          await hub.release();
        },
      };
    } catch (err) {
      await hub.release();
      throw err;
    }
  };
}

type Signup = Awaited<ReturnType<PlatformHub['signup']>>['storage'];

/** The buyer as signup knows it when the invoice is issued (kept in the invoice: a later deletion changes nothing). */
async function buyerOf(signup: Signup, payer: string): Promise<Party> {
  if (payer.startsWith('ns.')) return { name: `Namespace ${payer.slice(3)}`, lines: [`payer ${payer}`] };
  const customer = await signup.getCustomer({ id: payer });
  if (!customer) return { name: payer, lines: [] };
  if (!customer.email) return { name: `${payer} (deleted customer)`, lines: [`customer ${payer}`] };
  const owned = (await signup.memberships(payer)).filter((m) => m.role === 'owner').map((m) => m.namespace);
  return { name: customer.email, email: customer.email, lines: [`customer ${payer}`, ...(owned.length ? [`namespaces: ${owned.slice(0, 20).join(', ')}`] : [])] };
}
