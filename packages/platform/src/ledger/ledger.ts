/**
 * The ledger's contract: accounts, postings of balanced entries, balances, history and the
 * trial balance. Money is an integer count of units of 1/10,000 of a US cent (one
 * millionth of a dollar: $35 = 35,000,000 units), never a float. See README.md.
 */

/** the one unit: 1/10,000 of a US cent, i.e. 10^-6 USD */
export const UNIT = 'usd-micro' as const;
/** units in one US dollar */
export const UNITS_PER_DOLLAR = 1_000_000;
/** the largest amount of one entry: 10^15 units, one billion dollars */
export const MAX_AMOUNT = 1_000_000_000_000_000;
/**
 * the largest balance, either sign: 2^53-1 units (about nine billion dollars), so that a
 * balance is always a safe JavaScript integer; a posting that would take an account
 * further is refused
 */
export const MAX_BALANCE = Number.MAX_SAFE_INTEGER;
/** entries of one posting: at least 2, at most this */
export const MAX_ENTRIES = 100;
/** page size of history: default and most */
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;
/**
 * postings written in one transaction at most (group commit): concurrent posts and the
 * inputs of postMany are gathered into transactions of up to this many
 */
export const MAX_BATCH = 500;
/** entries written in one transaction at most (a batch stops before it would hold more; one posting always fits) */
export const MAX_BATCH_ENTRIES = 10_000;
/** inputs of one postMany call at most */
export const MAX_POST_MANY = 10_000;

export type AccountKind = 'customer' | 'platform' | 'external';
export const ACCOUNT_KINDS: readonly AccountKind[] = ['customer', 'platform', 'external'];

export interface AccountInput {
  /** `customer:<id>:balance`, `platform:revenue`, `external:payments`…: the first segment is the kind */
  id: string;
  /** whether the balance may go below zero (default false: refused inside the posting's transaction) */
  allowNegative?: boolean;
}

export interface Account {
  id: string;
  kind: AccountKind;
  unit: typeof UNIT;
  allowNegative: boolean;
  /** ms since the epoch (the ledger's clock) */
  createdAt: number;
}

export interface EntryInput {
  account: string;
  /** signed units, never 0: positive raises the account's balance, negative lowers it */
  amount: number;
}

export interface PostingInput {
  /** the idempotency key: unique in the ledger; 1..200 printable ASCII characters */
  key: string;
  /** why the money moves, for people: 1..500 characters */
  reason: string;
  /** 2..100 entries, one per account, summing to exactly zero */
  entries: EntryInput[];
  /** up to 32 string values under keys of 1..64 characters, each value at most 1,000 characters */
  metadata?: Record<string, string>;
}

export interface Posting {
  /** 1, 2, 3…: the order postings were committed in */
  id: number;
  key: string;
  reason: string;
  /** ms since the epoch */
  at: number;
  metadata: Record<string, string>;
  entries: EntryInput[];
  /** the id of the posting this one reverses */
  reverses?: number;
}

export interface PostResult {
  posting: Posting;
  /** true when the key was posted before with the same content: nothing moved this time */
  replayed: boolean;
}

export interface HistoryEntry {
  /** the entry's id: increasing, the cursor of the pages */
  id: number;
  posting: number;
  key: string;
  reason: string;
  at: number;
  amount: number;
  /** the account's balance just after this entry */
  balanceAfter: number;
  /** the posting's metadata (billing's `kind`, `period`…) */
  metadata: Record<string, string>;
}

export interface HistoryPage {
  items: HistoryEntry[];
  /** pass as `before` for the next (older) page; absent on the last page */
  next?: number;
}

export interface AccountPage {
  items: Account[];
  /** pass as `after` for the next page; absent on the last page */
  next?: string;
}

/** What postMany answers for each input, in the order of the inputs. */
export type PostOutcome = ({ ok: true } & PostResult) | { ok: false; error: Error };

export interface HistoryOptions {
  /** entries a page: 1..200, default 50 */
  limit?: number;
  /** only entries older than this entry id (a page's `next`) */
  before?: number;
  /** only entries of postings recorded at or after this time (ms since the epoch, inclusive) */
  from?: number;
  /** only entries of postings recorded before this time (ms since the epoch, exclusive): [from, to) like a billing period */
  to?: number;
}

export interface TrialBalance {
  /** true when all entries sum to zero and each account's balance is the sum of its entries */
  ok: boolean;
  /** the sum of all entries, as a decimal string (it is "0" when ok) */
  total: string;
  postings: number;
  entries: number;
  /** accounts whose kept balance differs from the sum of their entries (at most 100) */
  mismatched: string[];
}

export interface Ledger {
  /** creates the account, or returns it when it exists alike; another kind or rule is a 409 */
  openAccount(input: AccountInput): Promise<Account>;
  /** the account, or a 404 */
  account(id: string): Promise<Account>;
  /**
   * The accounts whose id starts with `prefix` (default all), by id, `limit` (default 50, at
   * most 200) a page after the id `after`: how billing finds every payer (`customer:`).
   */
  accounts(options?: { prefix?: string; after?: string; limit?: number }): Promise<AccountPage>;
  /** the sum of the account's entries (a 404 for an unknown account) */
  balance(id: string): Promise<number>;
  /**
   * Records the posting in one transaction: all entries or none. Refused: a bad input
   * (400), an unknown account (404), an account that may not go below zero and would
   * (409, id `micro.ledger.funds`), the key posted before with other content (409).
   */
  post(input: PostingInput): Promise<PostResult>;
  /**
   * Posts many at once (at most MAX_POST_MANY): each input is a posting of its own, all or
   * nothing on its own and refused alone (as by `post`), written in order in as few
   * transactions as the batch bound allows. One outcome per input, in their order; a
   * list that is not an array or too long is a 400 for the whole call.
   */
  postMany(inputs: PostingInput[]): Promise<PostOutcome[]>;
  /** the posting of a key, or undefined */
  posting(key: string): Promise<Posting | undefined>;
  /**
   * A new posting with every entry of `original` (a key) negated, under `key`; a posting
   * is reversed at most once (a second reversal under another key is a 409); the
   * below-zero rule applies as to any posting.
   */
  reverse(original: string, input: { key: string; reason: string; metadata?: Record<string, string> }): Promise<PostResult>;
  /** the account's entries, newest first, `limit` (default 50, at most 200) a page; `from`/`to` keep those of postings recorded in [from, to) */
  history(account: string, options?: HistoryOptions): Promise<HistoryPage>;
  trialBalance(): Promise<TrialBalance>;
  close(): Promise<void>;
}

export interface LedgerOptions {
  /** ms since the epoch (default Date.now) */
  clock?: () => number;
  /**
   * postings written in one transaction at most (1..MAX_BATCH, default MAX_BATCH); 1 writes
   * one transaction per posting, one after another (the old path, the benchmark's baseline)
   */
  batch?: number;
}
