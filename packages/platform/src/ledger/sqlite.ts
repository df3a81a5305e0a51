import { errors } from '@micro/sdk';
import { ensureSchema, openDatabase } from '@micro/server/engine';
import * as core from './core.js';
import { BaseLedger } from './base.js';
import { UNIT, type Account, type AccountInput, type AccountPage, type HistoryPage, type LedgerOptions, type Posting, type PostResult, type TrialBalance } from './ledger.js';

/**
 * The ledger of the local profile: one SQLite file (0600, WAL, synchronous FULL: see
 * openDatabase). Each posting is one synchronous better-sqlite3 transaction begun
 * IMMEDIATE (the write lock taken before the balances are read), so nothing, not even
 * another process on the same file, runs between the check of a balance and its update.
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
  } catch (err) {
    db.close();
    throw err;
  }
  return new SqliteLedger(db, options.clock ?? Date.now);
}

export class SqliteLedger extends BaseLedger {
  constructor(
    /** the file's handle, for the engine's own tests (immutability) */
    readonly db: Database,
    private readonly clock: () => number,
  ) {
    super();
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
    const row = this.one<{ balance: number }>('SELECT balance FROM accounts WHERE id = ?', core.checkAccountId(id));
    return row ? row.balance : core.notFound(id);
  }

  private find(key: string): (Posting & { digest: string }) | undefined {
    const row = this.one<core.PostingRow>('SELECT * FROM postings WHERE key = ?', key);
    if (!row) return undefined;
    return core.postingOf(row, this.db.prepare<[number], core.EntryRow>('SELECT account, amount FROM entries WHERE posting = ? ORDER BY id').all(Number(row.id)));
  }


  protected async findByKey(key: string): Promise<(Posting & { digest: string }) | undefined> {
    return this.find(key);
  }

  protected async record(checked: core.CheckedPosting): Promise<PostResult> {
    return this.db
      .transaction((): PostResult => {
        const first = this.find(checked.key);
        if (first) return core.replay(first, checked);
        const held = new Map<string, core.Held>();
        for (const { account } of checked.entries) {
          const row = this.one<{ allow_negative: number; balance: number }>('SELECT allow_negative, balance FROM accounts WHERE id = ?', account);
          if (row) held.set(account, { allowNegative: row.allow_negative === 1, balance: row.balance });
        }
        const planned = core.plan(checked.entries, held);
        if (checked.reverses !== undefined && this.one('SELECT 1 FROM postings WHERE reverses = ?', checked.reverses)) {
          throw errors.Conflict(core.ID, `posting ${checked.reverses} was reversed before`);
        }
        const at = core.now(this.clock);
        const metadata = JSON.stringify(checked.metadata);
        const id = Number(
          this.db
            .prepare('INSERT INTO postings (key, reason, at, metadata, digest, reverses) VALUES (?, ?, ?, ?, ?, ?)')
            .run(checked.key, checked.reason, at, metadata, checked.digest, checked.reverses ?? null).lastInsertRowid,
        );
        const update = this.db.prepare('UPDATE accounts SET balance = ? WHERE id = ?');
        const insert = this.db.prepare('INSERT INTO entries (posting, account, amount, balance_after) VALUES (?, ?, ?, ?)');
        for (const p of planned) {
          update.run(p.balanceAfter, p.account);
          insert.run(id, p.account, p.amount, p.balanceAfter);
        }
        const { digest: _, ...posting } = core.postingOf({ id, key: checked.key, reason: checked.reason, at, metadata, digest: checked.digest, reverses: checked.reverses ?? null }, checked.entries);
        return { posting, replayed: false };
      })
      .immediate();
  }



  async history(account: string, options?: { limit?: number; before?: number }): Promise<HistoryPage> {
    const { limit, before } = core.checkPage(options);
    await this.account(account);
    const rows = this.db
      .prepare<[string, number, number], core.HistoryRow>(
        `SELECT e.id, e.posting, p.key, p.reason, p.at, e.amount, e.balance_after FROM entries e JOIN postings p ON p.id = e.posting
         WHERE e.account = ? AND e.id < ? ORDER BY e.id DESC LIMIT ?`,
      )
      .all(account, before, limit + 1);
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

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
