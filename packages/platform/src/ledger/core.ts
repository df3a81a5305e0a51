import { createHash } from 'node:crypto';
import { errors } from '@micro/sdk';
import {
  ACCOUNT_KINDS,
  DEFAULT_PAGE,
  MAX_AMOUNT,
  MAX_BALANCE,
  MAX_ENTRIES,
  MAX_PAGE,
  UNIT,
  type Account,
  type AccountInput,
  type AccountKind,
  type AccountPage,
  type EntryInput,
  type HistoryEntry,
  type HistoryOptions,
  type Posting,
  type PostingInput,
  type PostOutcome,
  type PostResult,
} from './ledger.js';

/**
 * What both engines share: the checks of every input, the digest that tells a replay from
 * a conflict, the arithmetic of a posting (in bigint, so no sum can lose precision) and
 * the mapping of rows. The engines only read, lock and write.
 */

export const ID = 'micro.ledger';
/** the id of the refusal of a posting that would take an account below zero */
export const FUNDS_ID = 'micro.ledger.funds';

const ACCOUNT_ID = /^(customer|platform|external)(:[A-Za-z0-9_.-]{1,64}){1,3}$/;
const KEY = /^[\x21-\x7e]{1,200}$/;
const META_KEY = /^[A-Za-z0-9_.:-]{1,64}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_REASON = 500;
const MAX_META_KEYS = 32;
const MAX_META_VALUE = 1_000;

const bad = (msg: string) => errors.BadRequest(ID, msg);
const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v.slice(0, 80)) : typeof v === 'bigint' ? `${v}n` : (JSON.stringify(v) ?? String(v)).slice(0, 80));

export function checkAccountId(id: unknown, field = 'account'): string {
  if (typeof id !== 'string' || id.length > 200 || !ACCOUNT_ID.test(id)) {
    throw bad(`${field} ${show(id)} is not an account id (kind:name, e.g. customer:<id>:balance, platform:revenue, external:payments)`);
  }
  return id;
}

export function checkAccount(input: AccountInput): { id: string; kind: AccountKind; allowNegative: boolean } {
  if (typeof input !== 'object' || input === null) throw bad('account must be an object');
  const id = checkAccountId(input.id, 'id');
  if (input.allowNegative !== undefined && typeof input.allowNegative !== 'boolean') throw bad('allowNegative must be true or false');
  const kind = id.slice(0, id.indexOf(':')) as AccountKind;
  if (!ACCOUNT_KINDS.includes(kind)) throw bad(`id ${show(id)} has no known kind`);
  return { id, kind, allowNegative: input.allowNegative ?? false };
}

/** An amount of one entry: a safe integer, not 0, at most MAX_AMOUNT either way. */
export function checkAmount(amount: unknown, field: string): number {
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) throw bad(`${field} must be a whole number of units (1/10,000 of a cent), got ${show(amount)}`);
  if (amount === 0) throw bad(`${field} must not be 0`);
  if (Math.abs(amount) > MAX_AMOUNT) throw bad(`${field} ${amount} is beyond ±${MAX_AMOUNT} units`);
  return amount;
}

export function checkKey(key: unknown, field = 'key'): string {
  if (typeof key !== 'string' || !KEY.test(key)) throw bad(`${field} must be 1 to 200 printable ASCII characters without spaces, got ${show(key)}`);
  return key;
}

function checkReason(reason: unknown): string {
  if (typeof reason !== 'string' || reason.length === 0 || reason.length > MAX_REASON || CONTROL.test(reason)) {
    throw bad(`reason must be 1 to ${MAX_REASON} characters without control characters`);
  }
  return reason;
}

function checkMetadata(metadata: unknown): Record<string, string> {
  if (metadata === undefined) return {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata) || Object.getPrototypeOf(metadata) !== Object.prototype) {
    throw bad('metadata must be an object of strings');
  }
  const keys = Object.keys(metadata);
  if (keys.length > MAX_META_KEYS) throw bad(`metadata has ${keys.length} keys, at most ${MAX_META_KEYS}`);
  const out: Record<string, string> = {};
  for (const k of keys.sort()) {
    if (!META_KEY.test(k)) throw bad(`metadata key ${show(k)} must be 1 to 64 of A-Z a-z 0-9 _ . : -`);
    const v = (metadata as Record<string, unknown>)[k];
    if (typeof v !== 'string' || v.length > MAX_META_VALUE) throw bad(`metadata.${k} must be a string of at most ${MAX_META_VALUE} characters`);
    out[k] = v;
  }
  return out;
}

export interface CheckedPosting {
  key: string;
  reason: string;
  entries: EntryInput[];
  metadata: Record<string, string>;
  reverses?: number;
  /** sha256 of the content (reason, entries by account, metadata, reverses): equal content, equal digest */
  digest: string;
}

/** Every rule of a posting that needs no database: shape, bounds, one entry per account, a zero sum. */
export function checkPosting(input: PostingInput, reverses?: number): CheckedPosting {
  if (typeof input !== 'object' || input === null) throw bad('posting must be an object');
  const key = checkKey(input.key);
  const reason = checkReason(input.reason);
  const metadata = checkMetadata(input.metadata);
  const raw: unknown = input.entries;
  if (!Array.isArray(raw) || raw.length < 2 || raw.length > MAX_ENTRIES) throw bad(`entries must be a list of 2 to ${MAX_ENTRIES} entries`);
  const seen = new Set<string>();
  let sum = 0n;
  const entries = raw.map((e: unknown, i): EntryInput => {
    if (typeof e !== 'object' || e === null) throw bad(`entries[${i}] must be an object`);
    const account = checkAccountId((e as EntryInput).account, `entries[${i}].account`);
    if (seen.has(account)) throw bad(`entries[${i}].account ${account} appears twice: one entry per account`);
    seen.add(account);
    const amount = checkAmount((e as EntryInput).amount, `entries[${i}].amount`);
    sum += BigInt(amount);
    return { account, amount };
  });
  if (sum !== 0n) throw bad(`entries must sum to 0 (debits equal credits), they sum to ${sum}`);
  const sorted = [...entries].sort((a, b) => (a.account < b.account ? -1 : 1));
  const digest = createHash('sha256').update(JSON.stringify([reason, sorted, metadata, reverses ?? null])).digest('hex');
  return { key, reason, entries, metadata, ...(reverses === undefined ? {} : { reverses }), digest };
}

/** A page of history: its size, the cursor, the time range [from, to) (unbounded when absent). */
export function checkHistory(options: HistoryOptions = {}): Required<HistoryOptions> {
  if (typeof options !== 'object' || options === null) throw bad('history options must be an object');
  const { limit = DEFAULT_PAGE, before, from, to } = options;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) throw bad(`limit must be a whole number from 1 to ${MAX_PAGE}`);
  if (before !== undefined && (!Number.isSafeInteger(before) || before < 1)) throw bad('before must be a positive whole number (a page\'s next)');
  for (const [field, v] of [['from', from], ['to', to]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw bad(`${field} must be a time in ms since the epoch (a whole number, at least 0), got ${show(v)}`);
  }
  if (from !== undefined && to !== undefined && from > to) throw bad(`from (${from}) must not be after to (${to}): the range is [from, to)`);
  return { limit, before: before ?? Number.MAX_SAFE_INTEGER, from: from ?? 0, to: to ?? Number.MAX_SAFE_INTEGER };
}

const ACCOUNT_CHARS = /^[A-Za-z0-9_.:-]{0,200}$/;

/** The options of `accounts`: a prefix and a cursor of account-id characters, a page size. */
export function checkAccountPage(options: { prefix?: string; after?: string; limit?: number } = {}): { prefix: string; after: string; limit: number } {
  const { prefix = '', after = '', limit = DEFAULT_PAGE } = options;
  if (typeof prefix !== 'string' || !ACCOUNT_CHARS.test(prefix)) throw bad(`prefix ${show(prefix)} must be at most 200 of A-Za-z0-9_.:-, e.g. customer:`);
  if (typeof after !== 'string' || !ACCOUNT_CHARS.test(after)) throw bad(`after ${show(after)} must be a page's next (an account id)`);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) throw bad(`limit must be a whole number from 1 to ${MAX_PAGE}`);
  return { prefix, after, limit };
}

/** A page of `accounts` from up to limit + 1 rows. */
export function accountPageOf(rows: AccountRow[], limit: number): AccountPage {
  const items = rows.slice(0, limit).map(accountOf);
  const last = items[items.length - 1];
  return rows.length > limit && last ? { items, next: last.id } : { items };
}

/** The state of an account a posting reads, locked by the engine. */
export interface Held {
  allowNegative: boolean;
  balance: number;
}

export interface Planned {
  account: string;
  amount: number;
  balanceAfter: number;
}

/**
 * The new balances of a checked posting over the accounts it holds: a 404 for an account
 * that does not exist, a 409 (FUNDS_ID) for one that may not go below zero and would, a
 * 409 for a balance beyond ±MAX_BALANCE.
 */
export function plan(entries: EntryInput[], held: Map<string, Held>): Planned[] {
  return entries.map(({ account, amount }) => {
    const h = held.get(account);
    if (!h) throw errors.NotFound(ID, `account ${account} does not exist`);
    const after = BigInt(h.balance) + BigInt(amount);
    if (after < 0n && !h.allowNegative) {
      throw errors.Conflict(FUNDS_ID, `account ${account} may not go below zero: its balance is ${h.balance} units, the posting takes ${-amount}`);
    }
    if (after > BigInt(MAX_BALANCE) || after < -BigInt(MAX_BALANCE)) throw errors.Conflict(ID, `account ${account} would hold ${after} units, beyond ±${MAX_BALANCE}`);
    return { account, amount, balanceAfter: Number(after) };
  });
}

/** A replay of the key: the first result when the content is the same, else a 409. */
export function replay(first: Posting & { digest: string }, checked: CheckedPosting): { posting: Posting; replayed: true } {
  if (first.digest !== checked.digest) throw errors.Conflict(ID, `key ${checked.key} was posted before with other content`);
  const { digest: _, ...posting } = first;
  return { posting, replayed: true };
}

/** A posting of a batch that will be written: its row and its entries with the balances after them. */
export interface Accepted {
  checked: CheckedPosting;
  at: number;
  /** the metadata as stored (JSON) */
  metadata: string;
  planned: Planned[];
}

/** What an engine read, under its locks, for a batch: the accounts, the keys posted before, the postings reversed before. */
export interface BatchState {
  /** every existing account of the batch's entries, locked (a missing one is a 404 for its posting) */
  held: Map<string, Held>;
  /** the postings already recorded under the batch's keys */
  known: Map<string, Posting & { digest: string }>;
  /** the ids, among those the batch reverses, of postings already reversed */
  reversed: Set<number>;
}

export interface BatchPlan {
  /** the postings to write, in order: their ids must increase in this order */
  accepted: Accepted[];
  /** the final balance of every account an accepted posting moves */
  balances: Map<string, number>;
  /** the outcome of every posting of the batch, once the engine has the ids of the accepted ones (in their order) */
  finish(ids: number[]): PostOutcome[];
}

/**
 * The arithmetic of a batch, the same on both engines: the postings are taken in order, as
 * if each ran alone after the ones before it — a replay of a key (posted before, or earlier
 * in the batch) returns the first result or a 409, a refusal (unknown account, funds,
 * bounds, reversed before) takes only its own posting, and an accepted posting moves the
 * running balances the next ones are checked against. Nothing is written here: the
 * engine writes `accepted` and `balances` in one transaction, under the locks it read
 * `state` with.
 */
export function planBatch(batch: CheckedPosting[], state: BatchState, clock: () => number): BatchPlan {
  const { held, known, reversed } = state;
  const accepted: Accepted[] = [];
  const balances = new Map<string, number>();
  /** per posting: its error, a replay of a posting read before, or the index of an accepted one it records or replays */
  const slots: Array<{ error: Error } | { result: PostResult } | { index: number; replayed: boolean }> = [];
  const pending = new Map<string, number>();
  for (const checked of batch) {
    try {
      const index = pending.get(checked.key);
      if (index !== undefined) {
        const first = accepted[index] as Accepted;
        if (first.checked.digest !== checked.digest) throw errors.Conflict(ID, `key ${checked.key} was posted before with other content`);
        slots.push({ index, replayed: true });
        continue;
      }
      const first = known.get(checked.key);
      if (first) {
        slots.push({ result: replay(first, checked) });
        continue;
      }
      // every check before anything moves: a refusal leaves the running state as it was
      const planned = plan(checked.entries, held);
      if (checked.reverses !== undefined && reversed.has(checked.reverses)) throw errors.Conflict(ID, `posting ${checked.reverses} was reversed before`);
      const at = now(clock);
      if (checked.reverses !== undefined) reversed.add(checked.reverses);
      for (const p of planned) {
        (held.get(p.account) as Held).balance = p.balanceAfter;
        balances.set(p.account, p.balanceAfter);
      }
      pending.set(checked.key, accepted.length);
      slots.push({ index: accepted.length, replayed: false });
      accepted.push({ checked, at, metadata: JSON.stringify(checked.metadata), planned });
    } catch (error) {
      slots.push({ error: error as Error });
    }
  }
  return {
    accepted,
    balances,
    finish(ids) {
      const postings = accepted.map((a, i) => {
        const { digest: _, ...posting } = postingOf(
          { id: ids[i] as number, key: a.checked.key, reason: a.checked.reason, at: a.at, metadata: a.metadata, digest: a.checked.digest, reverses: a.checked.reverses ?? null },
          a.checked.entries,
        );
        return posting;
      });
      return slots.map((slot): PostOutcome => {
        if ('error' in slot) return { ok: false, error: slot.error };
        if ('result' in slot) return { ok: true, ...structuredClone(slot.result) };
        const posting = postings[slot.index] as Posting;
        // a replay within the batch gets a copy: two callers never share one object
        return { ok: true, posting: slot.replayed ? structuredClone(posting) : posting, replayed: slot.replayed };
      });
    },
  };
}

export function accountConflict(existing: Account, wanted: { kind: AccountKind; allowNegative: boolean }): Account {
  if (existing.kind !== wanted.kind || existing.allowNegative !== wanted.allowNegative) {
    throw errors.Conflict(ID, `account ${existing.id} exists with allowNegative ${existing.allowNegative}`);
  }
  return existing;
}

export interface PostingRow {
  id: number | string;
  key: string;
  reason: string;
  at: number | string;
  metadata: string;
  digest: string;
  reverses: number | string | null;
}

export interface EntryRow {
  account: string;
  amount: number | string;
}

/** Rows to a posting; Postgres hands bigint columns over as strings. */
export function postingOf(row: PostingRow, entries: EntryRow[]): Posting & { digest: string } {
  return {
    id: Number(row.id),
    key: row.key,
    reason: row.reason,
    at: Number(row.at),
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    entries: entries.map((e) => ({ account: e.account, amount: Number(e.amount) })),
    ...(row.reverses === null ? {} : { reverses: Number(row.reverses) }),
    digest: row.digest,
  };
}

export interface AccountRow {
  id: string;
  kind: string;
  allow_negative: number | boolean;
  created_at: number | string;
}

export function accountOf(row: AccountRow): Account {
  return { id: row.id, kind: row.kind as AccountKind, unit: UNIT, allowNegative: Boolean(row.allow_negative), createdAt: Number(row.created_at) };
}

export interface HistoryRow {
  id: number | string;
  posting: number | string;
  key: string;
  reason: string;
  at: number | string;
  amount: number | string;
  balance_after: number | string;
  metadata: string;
}

export function historyOf(rows: HistoryRow[], limit: number): { items: HistoryEntry[]; next?: number } {
  const items = rows.slice(0, limit).map((r) => ({
    id: Number(r.id),
    posting: Number(r.posting),
    key: r.key,
    reason: r.reason,
    at: Number(r.at),
    amount: Number(r.amount),
    balanceAfter: Number(r.balance_after),
    metadata: JSON.parse(r.metadata) as Record<string, string>,
  }));
  const last = items[items.length - 1];
  return rows.length > limit && last ? { items, next: last.id } : { items };
}

export function notFound(id: string): never {
  throw errors.NotFound(ID, `account ${id} does not exist`);
}

/** The reversal of `original`: each entry negated, naming the original. */
export function reversalOf(original: Posting, input: { key: string; reason: string; metadata?: Record<string, string> }): CheckedPosting {
  return checkPosting({ ...input, entries: original.entries.map((e) => ({ account: e.account, amount: -e.amount })) }, original.id);
}

export function now(clock: () => number): number {
  const t = clock();
  if (!Number.isSafeInteger(t) || t < 0) throw new Error(`the ledger's clock gave ${t}, not ms since the epoch`);
  return t;
}
