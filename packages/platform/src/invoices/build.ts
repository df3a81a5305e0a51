import { MicroError } from '@micro/sdk';
import { applyRate, balanceAccount, dueAccount, periodOf, type Period } from '../billing/index.js';
import type { HistoryEntry, Ledger } from '../ledger/index.js';
import { CHARGE_KINDS, CREDIT_KINDS, LINE_KINDS, PAYMENT_KINDS, TAXED_KINDS, taxKeyOf, type DeferredEntry, type Invoice, type InvoiceLine, type LineKind, type Through } from './invoice.js';

/**
 * An invoice's figures from the ledger alone: the entries of the payer's two accounts
 * (`customer:<payer>:balance`, `customer:<payer>:due`) that no earlier invoice took, read
 * up to fixed entry ids (`through`), grouped into lines by the `metadata.kind` of their
 * postings. See README.md ("Which entries an invoice takes").
 */

/** lines of one invoice at most: beyond, per-posting lines fold into one per kind and period */
export const MAX_LINES = 500;
/** entries left for later periods that one invoice may carry (postings billed far in advance) */
export const MAX_DEFERRED = 10_000;
const PAGE = 200;
const DESCRIPTION = 200;
const PERIOD = /^\d{4}-(0[1-9]|1[0-2])$/;

/** What the invoice before this one of the payer fixed: where reading starts. */
export interface Previous {
  number: string;
  period: string;
  through: Through;
  deferred: DeferredEntry[];
  /** the balances of the two accounts at `through` */
  closing: { balance: number; due: number };
}

/** The figures of an invoice, before it is numbered and headed (invoice.ts says what each is). */
export interface Draft
  extends Pick<Invoice, 'lines' | 'subtotal' | 'taxRate' | 'taxBase' | 'tax' | 'total' | 'credits' | 'payments' | 'balance' | 'amountDue' | 'through' | 'closing' | 'deferred'> {
  payer: string;
  period: Period;
  previous?: string;
}

type Which = 'balance' | 'due';
const accountOf = (payer: string, which: Which) => (which === 'balance' ? balanceAccount(payer) : dueAccount(payer));

function missing(err: unknown): boolean {
  return err instanceof MicroError && err.code === 404;
}

/** The newest entry of an account: its id and the balance after it (0, 0: no entry, or no account). */
export async function newest(ledger: Ledger, account: string): Promise<{ id: number; balanceAfter: number }> {
  try {
    const e = (await ledger.history(account, { limit: 1 })).items[0];
    return e ? { id: e.id, balanceAfter: e.balanceAfter } : { id: 0, balanceAfter: 0 };
  } catch (err) {
    if (missing(err)) return { id: 0, balanceAfter: 0 };
    throw err;
  }
}

/** Where an invoice built now would read up to: the newest entry of each account. */
export async function newestThrough(ledger: Ledger, payer: string): Promise<Through> {
  const [b, d] = await Promise.all([newest(ledger, balanceAccount(payer)), newest(ledger, dueAccount(payer))]);
  return { balance: b.id, due: d.id };
}

/**
 * The entries of `account` with `after < id <= through`, page by page, newest first.
 * The ledger's history has no time filter yet: it is paged from `through` back and
 * stops at the first entry an earlier invoice read, so a payer's first invoice reads its
 * whole history once and each later one only what came since (ids of one account
 * increase in commit order: see the ledger's README).
 */
async function* entriesOf(ledger: Ledger, account: string, after: number, through: number): AsyncGenerator<HistoryEntry[]> {
  let before = through + 1;
  while (before > after + 1) {
    let page;
    try {
      page = await ledger.history(account, { limit: PAGE, before });
    } catch (err) {
      if (missing(err)) return;
      throw err;
    }
    const items = page.items.filter((e) => e.id > after);
    if (items.length) yield items;
    if (items.length < page.items.length || page.next === undefined) return;
    before = page.next;
  }
}

/** An entry with what its posting says: the kind and period it counts under. */
interface Read extends DeferredEntry {
  reason: string;
  metadata: Record<string, string>;
}

function periodIdOf(e: { at: number; metadata: Record<string, string> }): string {
  const p = e.metadata.period;
  return p && PERIOD.test(p) ? p : periodOf(e.at).id;
}

function kindOf(metadata: Record<string, string>): LineKind {
  const k = metadata.kind as LineKind | undefined;
  return k && (LINE_KINDS as readonly string[]).includes(k) && k !== 'adjustment' ? k : 'adjustment';
}

/** Reads the metadata of each entry's posting (several at once: one lookup per posting). */
async function withPostings(ledger: Ledger, which: Which, items: (HistoryEntry | DeferredEntry)[]): Promise<Read[]> {
  const keys = [...new Set(items.map((e) => e.key))];
  const found = await Promise.all(keys.map((k) => ledger.posting(k)));
  const meta = new Map(keys.map((k, i) => [k, found[i]]));
  return items.map((e) => {
    const p = meta.get(e.key);
    if (!p) throw new Error(`ledger posting ${e.key} of entry ${e.id} not found`);
    return { id: e.id, account: which, key: e.key, amount: e.amount, at: e.at, balanceAfter: e.balanceAfter, reason: p.reason, metadata: p.metadata };
  });
}

const clip = (s: string) => (s.length > DESCRIPTION ? `${s.slice(0, DESCRIPTION - 1)}…` : s);

function safeCount(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,12}$/.test(value)) return undefined;
  return Number(value);
}

/** The line an entry adds to, by kind: usage per endpoint, seats per plan and count, the rest per posting. */
function lineOf(e: Read, kind: LineKind, period: string): { group: string; line: InvoiceLine } {
  const charge = -e.amount;
  const base = { kind, period, amount: 0, postings: 0 };
  const m = e.metadata;
  if (kind === 'usage') {
    const service = m.service ?? 'unknown';
    const endpoint = m.endpoint ?? 'unknown';
    return { group: JSON.stringify([kind, period, service, endpoint]), line: { ...base, description: clip(`${service}.${endpoint}`), service, endpoint, calls: 0 } };
  }
  if (kind === 'seats') {
    const plan = m.plan ?? 'unknown';
    const seats = safeCount(m.seats);
    const unitPrice = safeCount(m.price) ?? (seats && charge % seats === 0 ? charge / seats : undefined);
    const line: InvoiceLine = { ...base, description: clip(`${plan} plan`), plan };
    if (seats !== undefined) line.seats = seats;
    if (unitPrice !== undefined) line.unitPrice = unitPrice;
    return { group: JSON.stringify([kind, period, plan, seats, unitPrice]), line };
  }
  return { group: JSON.stringify([kind, period, e.key]), line: { ...base, description: clip(e.reason) } };
}

class Lines {
  private readonly groups = new Map<string, InvoiceLine>();
  private readonly postingsSeen = new Map<string, Set<string>>();

  add(e: Read, kind: LineKind, period: string): void {
    const { group, line } = lineOf(e, kind, period);
    const l = this.groups.get(group) ?? line;
    this.groups.set(group, l);
    l.amount = sum([l.amount, -e.amount]);
    const seen = this.postingsSeen.get(group) ?? new Set<string>();
    this.postingsSeen.set(group, seen);
    if (!seen.has(e.key)) {
      seen.add(e.key);
      l.postings++;
      if (kind === 'usage') l.calls = (l.calls ?? 0) + (safeCount(e.metadata.calls) ?? 1) * (e.amount > 0 ? -1 : 1);
    }
  }

  list(): InvoiceLine[] {
    const lines = [...this.groups.values()].sort(order);
    return lines.length > MAX_LINES ? fold(lines) : lines;
  }
}

function order(a: InvoiceLine, b: InvoiceLine): number {
  return LINE_KINDS.indexOf(a.kind) - LINE_KINDS.indexOf(b.kind) || a.period.localeCompare(b.period) || a.description.localeCompare(b.description);
}

/**
 * Too many lines: the per-posting ones (prorations, credits, payments…) become one line per
 * kind and period; if that is not enough, usage becomes one line per service and period.
 * Amounts and posting counts are kept, so the invoice still sums to the unit.
 */
function fold(lines: InvoiceLine[]): InvoiceLine[] {
  const perPosting = (l: InvoiceLine) => l.kind !== 'usage' && l.kind !== 'seats';
  let out = merge(lines, (l) => (perPosting(l) ? JSON.stringify([l.kind, l.period]) : undefined), (l) => `${l.postings} ${l.kind} postings`);
  if (out.length > MAX_LINES) {
    out = merge(out, (l) => (l.kind === 'usage' ? JSON.stringify([l.period, l.service]) : undefined), (l) => clip(`${l.service ?? 'unknown'} (all endpoints)`));
  }
  return out.sort(order);
}

function merge(lines: InvoiceLine[], keyOf: (l: InvoiceLine) => string | undefined, describe: (l: InvoiceLine) => string): InvoiceLine[] {
  const out: InvoiceLine[] = [];
  const merged = new Map<string, InvoiceLine>();
  for (const l of lines) {
    const key = keyOf(l);
    const into = key === undefined ? undefined : merged.get(key);
    if (key === undefined) out.push(l);
    else if (!into) {
      const first: InvoiceLine = { kind: l.kind, period: l.period, description: l.description, amount: l.amount, postings: l.postings };
      if (l.service !== undefined) first.service = l.service;
      if (l.calls !== undefined) first.calls = l.calls;
      merged.set(key, first);
      out.push(first);
    } else {
      into.amount = sum([into.amount, l.amount]);
      into.postings += l.postings;
      if (l.calls !== undefined) into.calls = (into.calls ?? 0) + l.calls;
      into.description = describe(into);
    }
  }
  return out;
}

/** A sum of units in bigint, checked to be a safe number. */
function sum(values: number[]): number {
  const s = values.reduce((acc, v) => acc + BigInt(v), 0n);
  if (s > BigInt(Number.MAX_SAFE_INTEGER) || s < BigInt(-Number.MAX_SAFE_INTEGER)) throw new Error('an invoice total beyond 2^53 units');
  return Number(s);
}

const total = (lines: InvoiceLine[], kinds: ReadonlySet<LineKind>) => sum(lines.filter((l) => kinds.has(l.kind)).map((l) => l.amount));

export interface BuildInput {
  payer: string;
  period: Period;
  previous?: Previous;
  /** read up to these entry ids (a new invoice: `newestThrough`; after a crash: those of its tax posting) */
  through: Through;
  /** basis points */
  taxRate: number;
}

/**
 * The figures of the payer's invoice of `period`: the entries after the previous invoice's
 * `through` and up to `through`, plus what the previous one deferred; those of later periods
 * are deferred again; the payer's own invoice tax postings are not lines (the tax is
 * computed here). The same input gives the same draft, whenever it is built.
 */
export async function buildDraft(ledger: Ledger, input: BuildInput): Promise<Draft> {
  const { payer, period, previous } = input;
  const lines = new Lines();
  const deferred: DeferredEntry[] = [];
  const closing = { ...(previous?.closing ?? { balance: 0, due: 0 }) };
  const ownTax = taxKeyOf(payer, '');
  const take = (entries: Read[]) => {
    for (const e of entries) {
      const kind = kindOf(e.metadata);
      // the tax of this payer's invoices: computed by each invoice, not a line of the next
      if (kind === 'tax' && e.key.startsWith(ownTax) && PERIOD.test(e.key.slice(ownTax.length))) continue;
      const p = periodIdOf(e);
      if (p > period.id) deferred.push({ id: e.id, account: e.account, key: e.key, amount: e.amount, at: e.at, balanceAfter: e.balanceAfter });
      else lines.add(e, kind, p);
    }
  };
  for (const which of ['balance', 'due'] as const) {
    const carried = (previous?.deferred ?? []).filter((d) => d.account === which);
    if (carried.length) take(await withPostings(ledger, which, carried));
    const after = previous?.through[which] ?? 0;
    const through = input.through[which];
    if (through < after) throw new Error(`invoice of ${payer} for ${period.id}: ${which} read up to ${through}, before the previous invoice's ${after}`);
    let first = true;
    for await (const page of entriesOf(ledger, accountOf(payer, which), after, through)) {
      if (first && page[0]?.id === through) closing[which] = page[0].balanceAfter;
      first = false;
      take(await withPostings(ledger, which, page));
    }
  }
  if (deferred.length > MAX_DEFERRED) throw new Error(`invoice of ${payer} for ${period.id}: more than ${MAX_DEFERRED} entries billed for later periods`);
  return figures(input, lines.list(), deferred, closing);
}

function figures(input: BuildInput, lines: InvoiceLine[], deferred: DeferredEntry[], closing: Draft['closing']): Draft {
  const subtotal = total(lines, CHARGE_KINDS);
  const taxBase = Math.max(0, total(lines, TAXED_KINDS));
  const tax = applyRate(taxBase, input.taxRate);
  return {
    payer: input.payer,
    period: input.period,
    ...(input.previous ? { previous: input.previous.number } : {}),
    lines,
    subtotal,
    taxRate: input.taxRate,
    taxBase,
    tax,
    total: sum([subtotal, tax]),
    credits: total(lines, CREDIT_KINDS),
    payments: total(lines, PAYMENT_KINDS),
    balance: closing.balance,
    amountDue: Math.max(0, sum([tax, -closing.due])),
    through: input.through,
    closing,
    deferred: deferred.sort((a, b) => a.id - b.id),
  };
}

/** What the next invoice of the payer starts from. */
export function previousOf(i: Pick<Invoice, 'number' | 'period' | 'through' | 'deferred'> & { closing: Previous['closing'] }): Previous {
  return { number: i.number, period: i.period, through: i.through, deferred: i.deferred, closing: i.closing };
}

