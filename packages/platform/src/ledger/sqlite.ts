import { ensureSchema, openDatabase } from '@micro/server/engine';
import * as core from './core.js';
import { BaseLedger } from './base.js';
import { UNIT, type Account, type AccountInput, type AccountPage, type HistoryOptions, type HistoryPage, type LedgerOptions, type Posting, type PostOutcome, type TrialBalance } from './ledger.js';

/**
 * The ledger of the local profile: one SQLite file (0600, WAL, synchronous FULL: see
 * openDatabase). Each batch of postings (group commit, see BaseLedger) is one synchronous
 * better-sqlite3 transaction begun IMMEDIATE (the write lock taken before the balances are
 * read), so nothing, not even another process on the same file, runs between the check
 * of a balance and its update.
 * Triggers refuse any UPDATE or DELETE of postings and entries.
 */

export const LEDGER_SQLITE_VERSION = 1;

const SCHEMA = `
CREATE TABLE accounts (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, unit TEXT NOT NULL, allow_negative INTEGER NOT NULL,
  balance INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE postings (
  id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, reason TEXT NOT NULL, at INTEGER NOT NULL,
  metadata TEXT NOT NULL, digest TEXT NOT NULL, reverses INTEGER UNIQUE REFERENCES postings (id)
);
CREATE TABLE entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT, posting INTEGER NOT NULL REFERENCES postings (id),
  account TEXT NOT NULL REFERENCES accounts (id), amount INTEGER NOT NULL, balance_after INTEGER NOT NULL
);
CREATE INDEX entries_account ON entries (account, id);
CREATE INDEX entries_posting ON entries (posting, id);
CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings BEGIN SELECT RAISE(ABORT, 'ledger postings are immutable'); END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings BEGIN SELECT RAISE(ABORT, 'ledger postings are immutable'); END;
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;
`;

type Database = ReturnType<typeof openDatabase>;

export function openSqliteLedger(path: string, options: LedgerOptions = {}): SqliteLedger {
  const db = openDatabase(path);
  try {
    ensureSchema(db, path, 'ledger', LEDGER_SQLITE_VERSION, () => db.exec(SCHEMA));
    return new SqliteLedger(db, options);
  } catch (err) {
    db.close();
    throw err;
  }
}

function statements(db: Database) {
  return {
    account: db.prepare<[string], { allow_negative: number; balance: number }>('SELECT allow_negative, balance FROM accounts WHERE id = ?'),
    posting: db.prepare<[string], core.PostingRow>('SELECT * FROM postings WHERE key = ?'),
    entries: db.prepare<[number], core.EntryRow>('SELECT account, amount FROM entries WHERE posting = ? ORDER BY id'),
    reversed: db.prepare<[number], { one: number }>('SELECT 1 AS one FROM postings WHERE reverses = ?'),
    insertPosting: db.prepare<[string, string, number, string, string, number | null]>('INSERT INTO postings (key, reason, at, metadata, digest, reverses) VALUES (?, ?, ?, ?, ?, ?)'),
    insertEntry: db.prepare<[number, string, number, number]>('INSERT INTO entries (posting, account, amount, balance_after) VALUES (?, ?, ?, ?)'),
    setBalance: db.prepare<[number, string]>('UPDATE accounts SET balance = ? WHERE id = ?'),
  };
}

export class SqliteLedger extends BaseLedger {
  private readonly clock: () => number;
  private readonly s: ReturnType<typeof statements>;

  constructor(
    /** the file's handle, for the engine's own tests (immutability) */
    readonly db: Database,
    options: LedgerOptions = {},
  ) {
    super(options);
    this.clock = options.clock ?? Date.now;
    this.s = statements(db);
  }

  private one<R>(sql: string, ...params: unknown[]): R | undefined {
    return this.db.prepare<unknown[], R>(sql).get(...params);
  }

  async openAccount(input: AccountInput): Promise<Account> {
    const a = core.checkAccount(input);
    return this.db
      .transaction(() => {
        const row = this.one<core.AccountRow>('SELECT * FROM accounts WHERE id = ?', a.id);
        if (row) return core.accountConflict(core.accountOf(row), a);
        const at = core.now(this.clock);
        this.db.prepare('INSERT INTO accounts (id, kind, unit, allow_negative, created_at) VALUES (?, ?, ?, ?, ?)').run(a.id, a.kind, UNIT, a.allowNegative ? 1 : 0, at);
        return { id: a.id, kind: a.kind, unit: UNIT, allowNegative: a.allowNegative, createdAt: at };
      })
      .immediate();
  }

  async account(id: string): Promise<Account> {
    const row = this.one<core.AccountRow>('SELECT * FROM accounts WHERE id = ?', core.checkAccountId(id));
    return row ? core.accountOf(row) : core.notFound(id);
  }

  async accounts(options?: { prefix?: string; after?: string; limit?: number }): Promise<AccountPage> {
    const { prefix, after, limit } = core.checkAccountPage(options);
    const rows = this.db
      .prepare<[string, number, string, number], core.AccountRow>('SELECT * FROM accounts WHERE id > ? AND substr(id, 1, ?) = ? ORDER BY id LIMIT ?')
      .all(after, prefix.length, prefix, limit + 1);
    return core.accountPageOf(rows, limit);
  }

  async balance(id: string): Promise<number> {
    const row = this.s.account.get(core.checkAccountId(id));
    return row ? row.balance : core.notFound(id);
  }

  private find(key: string): (Posting & { digest: string }) | undefined {
    const row = this.s.posting.get(key);
    return row && core.postingOf(row, this.s.entries.all(Number(row.id)));
  }

  protected async findByKey(key: string): Promise<(Posting & { digest: string }) | undefined> {
    return this.find(key);
  }

  /**
   * The batch in one synchronous transaction begun IMMEDIATE: the write lock is taken
   * before anything is read, so no other process (and, being synchronous, nothing else of
   * this one) runs between the reads of the balances and the writes. One fsync at COMMIT.
   */
  protected async writeBatch(batch: core.CheckedPosting[]): Promise<PostOutcome[]> {
    return this.db
      .transaction((): PostOutcome[] => {
        const state: core.BatchState = { held: new Map(), known: new Map(), reversed: new Set() };
        const read = new Set<string>();
        for (const checked of batch) {
          for (const { account } of checked.entries) {
            if (read.has(account)) continue;
            read.add(account);
            const row = this.s.account.get(account);
            if (row) state.held.set(account, { allowNegative: row.allow_negative === 1, balance: row.balance });
          }
          const first = state.known.has(checked.key) ? undefined : this.find(checked.key);
          if (first) state.known.set(checked.key, first);
          if (checked.reverses !== undefined && this.s.reversed.get(checked.reverses)) state.reversed.add(checked.reverses);
        }
        const plan = core.planBatch(batch, state, this.clock);
        const ids = plan.accepted.map(({ checked, at, metadata, planned }) => {
          const id = Number(this.s.insertPosting.run(checked.key, checked.reason, at, metadata, checked.digest, checked.reverses ?? null).lastInsertRowid);
          for (const p of planned) this.s.insertEntry.run(id, p.account, p.amount, p.balanceAfter);
          return id;
        });
        for (const [account, balance] of plan.balances) this.s.setBalance.run(balance, account);
        return plan.finish(ids);
      })
      .immediate();
  }

  async history(account: string, options?: HistoryOptions): Promise<HistoryPage> {
    const { limit, before, from, to } = core.checkHistory(options);
    await this.account(account);
    const rows = this.db
      .prepare<[string, number, number, number, number], core.HistoryRow>(
        `SELECT e.id, e.posting, p.key, p.reason, p.at, e.amount, e.balance_after, p.metadata FROM entries e JOIN postings p ON p.id = e.posting
         WHERE e.account = ? AND e.id < ? AND p.at >= ? AND p.at < ? ORDER BY e.id DESC LIMIT ?`,
      )
      .all(account, before, from, to, limit + 1);
    return core.historyOf(rows, limit);
  }

  async trialBalance(): Promise<TrialBalance> {
    // per account (each sum is bounded like a balance), added up in bigint: one SUM over
    // all entries could overflow SQLite's 64-bit integers midway
    let total = 0n;
    const mismatched: string[] = [];
    const rows = this.db
      .prepare<[], { id: string; balance: number; sum: number }>('SELECT a.id, a.balance, COALESCE((SELECT SUM(amount) FROM entries e WHERE e.account = a.id), 0) AS sum FROM accounts a')
      .iterate();
    for (const r of rows) {
      total += BigInt(r.sum);
      if (r.sum !== r.balance && mismatched.length < 100) mismatched.push(r.id);
    }
    const counts = this.one<{ postings: number; entries: number }>('SELECT (SELECT COUNT(*) FROM postings) AS postings, (SELECT COUNT(*) FROM entries) AS entries');
    return { ok: total === 0n && mismatched.length === 0, total: String(total), postings: counts?.postings ?? 0, entries: counts?.entries ?? 0, mismatched };
  }

  protected async release(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
