import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testPostgres } from '@micro/server/testing';
import { balanceAccount, dueAccount, EXTERNAL_PAYMENTS, openPayerAccounts, openPlatformAccounts, PLATFORM_PROMO, PLATFORM_REVENUE } from '../billing/index.js';
import { openPgLedger, openSqliteLedger, type Ledger, type PostingInput } from '../ledger/index.js';
import type { Invoice, LineKind } from './invoice.js';
import { PgInvoiceStorage } from './postgres.js';
import { SqliteInvoiceStorage } from './sqlite.js';
import type { InvoiceStorage } from './storage.js';

/**
 * For the tests of invoices: a ledger and an invoice storage on one engine, on a clock of
 * the test's, and the postings the other parts of billing make, with their conventions
 * (billing/accounts.ts): what metering, subscriptions and balance post.
 */

export const DOLLAR = 1_000_000;
/** ms since the epoch of a UTC day and hour */
export const at = (y: number, m: number, d = 1, h = 0) => Date.UTC(y, m - 1, d, h);

export interface Engines {
  ledger: Ledger;
  storage: InvoiceStorage;
  clock: { now: number };
  /** another handle on the same database: a second process or node */
  another(): Promise<{ ledger: Ledger; storage: InvoiceStorage }>;
  /** raw SQL on the engine's database, for the immutability tests */
  sql(statement: string): Promise<unknown>;
}

type T = { skip(message?: string): void; after(fn: () => unknown): void };
export type MakeEngines = (t: T) => Promise<Engines | undefined>;

export const sqliteEngines: MakeEngines = async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-invoices-'));
  const clock = { now: at(2027, 1, 1) };
  const opened: Ledger[] = [];
  const open = async () => {
    const ledger = openSqliteLedger(join(dir, 'billing.db'), { clock: () => clock.now });
    opened.push(ledger);
    await openPlatformAccounts(ledger);
    return { ledger, storage: new SqliteInvoiceStorage(ledger.db) };
  };
  t.after(async () => {
    for (const l of opened) await l.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const first = await open();
  return { ...first, clock, another: open, sql: async (s) => first.ledger.db.prepare(s).run() };
};

export const pgEngines: MakeEngines = async (t) => {
  const db = await testPostgres(t, 'invoices');
  if (!db) return undefined;
  const clock = { now: at(2027, 1, 1) };
  const opened: Ledger[] = [];
  let n = 0;
  const open = async () => {
    // another URL spelling: a pool of its own, as another node has
    const url = n++ === 0 ? db.url : `${db.url}${db.url.includes('?') ? '&' : '?'}application_name=node-${n}`;
    const ledger = await openPgLedger({ url, prefix: db.prefix, clock: () => clock.now });
    opened.push(ledger);
    await openPlatformAccounts(ledger);
    return { ledger, storage: await PgInvoiceStorage.open(ledger.db) };
  };
  t.after(async () => {
    for (const l of opened) await l.close();
  });
  const first = await open();
  return { ...first, clock, another: open, sql: (s) => db.query(s.replace(/\b(invoices|invoice_runs)\b/, `${db.schema}.$1`)) };
};

/** The postings of the other parts of billing, by their conventions. */
export class Bill {
  private n = 0;
  constructor(private readonly ledger: Ledger) {}

  private async post(p: Omit<PostingInput, 'key'> & { key?: string }): Promise<void> {
    await this.ledger.post({ ...p, key: p.key ?? `test-${++this.n}` });
  }

  async open(payer: string): Promise<void> {
    await openPayerAccounts(this.ledger, payer);
  }

  /** balance: a top-up of prepaid credit */
  topup(payer: string, amount: number, key?: string): Promise<void> {
    return this.post({ key, reason: 'card top-up', entries: [{ account: balanceAccount(payer), amount }, { account: EXTERNAL_PAYMENTS, amount: -amount }], metadata: { kind: 'topup' } });
  }

  /** metering: one charged call */
  usage(payer: string, period: string, service: string, endpoint: string, amount: number, key?: string): Promise<void> {
    return this.post({
      key,
      reason: `${service}.${endpoint}`,
      entries: [{ account: balanceAccount(payer), amount: -amount }, { account: PLATFORM_REVENUE, amount }],
      metadata: { kind: 'usage', service, endpoint, calls: '1', period },
    });
  }

  /** subscriptions: a period's seat fees */
  seats(payer: string, period: string, plan: string, seats: number, price: number, key?: string): Promise<void> {
    return this.post({
      key,
      reason: `${plan}: ${seats} seats`,
      entries: [{ account: dueAccount(payer), amount: -seats * price }, { account: PLATFORM_REVENUE, amount: seats * price }],
      metadata: { kind: 'seats', plan, seats: String(seats), period },
    });
  }

  /** subscriptions: the difference of an upgrade (positive: charged) or a downgrade (negative: credited) */
  proration(payer: string, period: string, amount: number, reason: string): Promise<void> {
    return this.post({ reason, entries: [{ account: dueAccount(payer), amount: -amount }, { account: PLATFORM_REVENUE, amount }], metadata: { kind: 'proration', period } });
  }

  /** balance: a promo credit by an admin */
  credit(payer: string, amount: number, reason: string): Promise<void> {
    return this.post({ reason, entries: [{ account: PLATFORM_PROMO, amount: -amount }, { account: balanceAccount(payer), amount }], metadata: { kind: 'credit' } });
  }

  /** balance: a refund by an admin */
  refund(payer: string, amount: number, reason: string): Promise<void> {
    return this.post({ reason, entries: [{ account: PLATFORM_REVENUE, amount: -amount }, { account: balanceAccount(payer), amount }], metadata: { kind: 'refund' } });
  }

  /** payments: the due amount paid */
  payment(payer: string, amount: number): Promise<void> {
    return this.post({ reason: 'invoice paid', entries: [{ account: dueAccount(payer), amount }, { account: EXTERNAL_PAYMENTS, amount: -amount }], metadata: { kind: 'payment' } });
  }
}

export interface LedgerEntry {
  id: number;
  account: 'balance' | 'due';
  key: string;
  amount: number;
  kind: string;
  period: string;
}

/** All entries of a payer's two accounts, with their postings' kind and period (read independently of build.ts). */
export async function ledgerEntries(ledger: Ledger, payer: string): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = [];
  for (const account of ['balance', 'due'] as const) {
    let before: number | undefined;
    do {
      const page = await ledger.history(account === 'balance' ? balanceAccount(payer) : dueAccount(payer), { limit: 200, ...(before ? { before } : {}) });
      for (const e of page.items) {
        const p = await ledger.posting(e.key);
        out.push({ id: e.id, account, key: e.key, amount: e.amount, kind: p?.metadata.kind ?? 'adjustment', period: p?.metadata.period ?? new Date(e.at).toISOString().slice(0, 7) });
      }
      before = page.next;
    } while (before);
  }
  return out;
}

/** Sums by kind, as the payer sees them: positive charged, negative credited or paid. */
export function byKind(items: { kind: string; amount: number }[], sign = 1): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[i.kind] = (out[i.kind] ?? 0) + sign * i.amount;
  for (const k of Object.keys(out)) if (out[k] === 0) delete out[k];
  return out;
}

/** The invoice's lines by kind, with its own tax as kind `tax`. */
export function invoiceByKind(i: Invoice): Record<string, number> {
  return byKind([...i.lines, ...(i.tax ? [{ kind: 'tax' as LineKind, amount: i.tax }] : [])]);
}

/**
 * The invoices of a payer (in order) agree with the ledger to the unit: their lines and
 * taxes, by kind, are the movements of the payer's accounts up to the last one's entry
 * ids (less what it left for later periods), by kind.
 */
export async function assertReconciles(ledger: Ledger, payer: string, invoices: Invoice[]): Promise<void> {
  const last = invoices[invoices.length - 1];
  assert.ok(last, 'an invoice');
  const deferred = new Set(last.deferred.map((d) => d.id));
  const invoiced = (await ledgerEntries(ledger, payer)).filter((e) => (e.id <= last.through[e.account] && !deferred.has(e.id)) || e.key === last.taxKey);
  const fromInvoices = byKind(invoices.flatMap((i) => Object.entries(invoiceByKind(i)).map(([kind, amount]) => ({ kind, amount }))));
  assert.deepEqual(fromInvoices, byKind(invoiced, -1));
}
