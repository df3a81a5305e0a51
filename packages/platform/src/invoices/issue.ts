import { errors, type Logger } from '@micro/sdk';
import { dueAccount, nextPeriod, openPayerAccounts, parsePeriod, periodOf, PLATFORM_TAX, previousPeriod, type Period } from '../billing/index.js';
import type { Ledger, Posting } from '../ledger/index.js';
import { buildDraft, newestThrough, previousOf, type Draft } from './build.js';
import { taxKeyOf, type Invoice, type Party, type Through } from './invoice.js';
import type { InvoiceStorage } from './storage.js';

/**
 * Issues invoices: one per payer and ended period with something on it, exactly once,
 * whatever crashes or how many nodes run the job. See README.md ("Issuing, exactly once").
 */

export interface InvoicerOptions {
  ledger: Ledger;
  storage: InvoiceStorage;
  /** the billing clock (ms since the epoch) */
  clock: () => number;
  /** basis points, 0..10,000 (MICRO_BILLING_TAX_RATE) */
  taxRate: number;
  seller: Party;
  /** who the payer is, for the invoice's heading (a snapshot: a customer deleted later keeps it) */
  buyerOf(payer: string): Promise<Party>;
  logger?: Logger;
  /** ms between two runs of the job (default 60,000) */
  interval?: number;
}

export type IssueOutcome =
  | { status: 'issued' | 'exists'; invoice: Invoice }
  /** nothing on it: no invoice */
  | { status: 'empty' }
  /** the payer has an invoice of a later period, which took what this one would have had */
  | { status: 'later'; period: string };

const PAYER_ACCOUNT = /^customer:([A-Za-z0-9_.-]{1,100}):(balance|due)$/;

export class Invoicer {
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly o: InvoicerOptions) {
    if (!Number.isSafeInteger(o.taxRate) || o.taxRate < 0 || o.taxRate > 10_000) throw new Error(`the tax rate is 0..10000 basis points, not ${o.taxRate}`);
  }

  /**
   * The payer's invoice of an ended period: issued now, or the one issued before. One issue
   * at a time in this process (and, through the storage, per payer across nodes).
   */
  issue(payer: string, period: Period): Promise<IssueOutcome> {
    this.ensureEnded(period);
    const run = this.queue.then(() => this.o.storage.exclusive(payer, () => this.issueAlone(payer, period)));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** A 400 unless the period has ended by the clock. */
  ensureEnded(period: Period): void {
    if (period.end > this.o.clock()) {
      throw errors.BadRequest('invoices', `period: ${period.id} ends at ${new Date(period.end).toISOString()}; invoices are issued for periods that have ended`);
    }
  }

  private async issueAlone(payer: string, period: Period): Promise<IssueOutcome> {
    const { storage, ledger } = this.o;
    const existing = await storage.find(payer, period.id);
    if (existing) return { status: 'exists', invoice: existing };
    const latest = await storage.latest(payer);
    if (latest && latest.period > period.id) return { status: 'later', period: latest.period };
    const previous = latest && previousOf(latest);
    // a tax posted by an issue that crashed before recording its invoice fixes what that
    // invoice read (its entry ids and rate): built from them again, it is the same invoice
    const posted = await ledger.posting(taxKeyOf(payer, period.id));
    const through = posted ? throughOf(posted) : await newestThrough(ledger, payer);
    if (!posted && previous && through.balance === previous.through.balance && through.due === previous.through.due && !previous.deferred.length) return { status: 'empty' };
    const taxRate = posted ? Number(posted.metadata.rate) : this.o.taxRate;
    const draft = await buildDraft(ledger, { payer, period, ...(previous ? { previous } : {}), through, taxRate });
    if (!draft.lines.length) return { status: 'empty' };
    if (draft.tax > 0) await this.postTax(draft);
    const { invoice, issued } = await storage.issue(await this.invoiceOf(draft));
    if (issued) this.o.logger?.info({ number: invoice.number, payer, period: period.id, total: invoice.total }, 'invoice issued');
    return { status: issued ? 'issued' : 'exists', invoice };
  }

  private async postTax(d: Draft): Promise<void> {
    await openPayerAccounts(this.o.ledger, d.payer);
    await this.o.ledger.post({
      key: taxKeyOf(d.payer, d.period.id),
      reason: `tax at ${d.taxRate / 100} % on the invoice of ${d.period.id}`,
      entries: [
        { account: dueAccount(d.payer), amount: -d.tax },
        { account: PLATFORM_TAX, amount: d.tax },
      ],
      metadata: {
        kind: 'tax',
        period: d.period.id,
        payer: d.payer,
        rate: String(d.taxRate),
        base: String(d.taxBase),
        throughBalance: String(d.through.balance),
        throughDue: String(d.through.due),
      },
    });
  }

  private async invoiceOf(d: Draft): Promise<Omit<Invoice, 'number'>> {
    return {
      payer: d.payer,
      period: d.period.id,
      periodStart: d.period.start,
      periodEnd: d.period.end,
      issuedAt: this.o.clock(),
      seller: this.o.seller,
      buyer: await this.o.buyerOf(d.payer),
      currency: 'USD',
      lines: d.lines,
      subtotal: d.subtotal,
      taxRate: d.taxRate,
      taxBase: d.taxBase,
      tax: d.tax,
      total: d.total,
      credits: d.credits,
      payments: d.payments,
      balance: d.balance,
      amountDue: d.amountDue,
      ...(d.previous ? { previous: d.previous } : {}),
      ...(d.tax > 0 ? { taxKey: taxKeyOf(d.payer, d.period.id) } : {}),
      through: d.through,
      closing: d.closing,
      deferred: d.deferred,
    };
  }

  /**
   * Every payer's invoice of `period`: each payer the ledger has accounts of (deleted
   * customers too: their accounts stay), one at a time. A payer that fails is logged and
   * counted; the others go on.
   */
  async runPeriod(period: Period): Promise<{ issued: Invoice[]; failed: number }> {
    const issued: Invoice[] = [];
    let failed = 0;
    let after: string | undefined;
    let last: string | undefined;
    do {
      const page = await this.o.ledger.accounts({ prefix: 'customer:', limit: 200, ...(after ? { after } : {}) });
      for (const account of page.items) {
        const payer = PAYER_ACCOUNT.exec(account.id)?.[1];
        if (!payer || payer === last) continue;
        last = payer;
        if (this.stopping) return { issued, failed: failed + 1 };
        try {
          const r = await this.issue(payer, period);
          if (r.status === 'issued') issued.push(r.invoice);
        } catch (err) {
          failed++;
          this.o.logger?.error({ err, payer, period: period.id }, 'invoice not issued: tried again at the next run');
        }
      }
      after = page.next;
    } while (after);
    return { issued, failed };
  }

  /**
   * The job: every period that has ended by the clock and was not run yet, oldest first,
   * each marked done once every payer has its invoice. The first run ever starts at the
   * period before the current one (a payer's first invoice takes everything before it);
   * a clock set back finds its periods done; one set forward runs each skipped period once.
   */
  tick(): Promise<void> {
    this.running ??= this.runDue().finally(() => (this.running = undefined));
    return this.running;
  }

  private async runDue(): Promise<void> {
    const now = this.o.clock();
    const done = await this.o.storage.lastRun();
    for (let p = done ? nextPeriod(parsePeriod(done)) : previousPeriod(periodOf(now)); p.end <= now && !this.stopping; p = nextPeriod(p)) {
      const { failed } = await this.runPeriod(p);
      if (failed) return;
      await this.o.storage.markRun(p.id, now);
    }
  }

  /** Runs the job now and then every `interval`. */
  start(): void {
    const run = () => void this.tick().catch((err: unknown) => this.o.logger?.error({ err }, 'the invoices job failed: tried again at the next run'));
    run();
    this.timer = setInterval(run, this.o.interval ?? 60_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
    await this.queue;
  }
}

/** The entry ids an issued tax posting says its invoice read up to. */
function throughOf(p: Posting): Through {
  const balance = Number(p.metadata.throughBalance);
  const due = Number(p.metadata.throughDue);
  const rate = Number(p.metadata.rate);
  if (![balance, due, rate].every((n) => Number.isSafeInteger(n) && n >= 0)) throw new Error(`tax posting ${p.key} lacks its invoice's entry ids or rate`);
  return { balance, due };
}
