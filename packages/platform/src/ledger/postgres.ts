import { errors } from '@micro/sdk';
import { migrate, openPostgres, type Migration, type Postgres } from '@micro/server/engine';
import * as core from './core.js';
import { BaseLedger } from './base.js';
import { UNIT, type Account, type AccountInput, type AccountPage, type HistoryPage, type LedgerOptions, type Posting, type PostResult, type TrialBalance } from './ledger.js';

/**
 * The ledger of the nats profile: tables in the platform's schema of the shared
 * PostgreSQL, so every node posts to one ledger. Each posting is one READ COMMITTED
 * transaction that first claims its key (INSERT … ON CONFLICT DO NOTHING: a racing
 * replay waits for the first and then reads it), then locks the rows of its accounts with
 * SELECT … FOR UPDATE in the order of their ids (no two postings deadlock) and only then
 * reads the balances it checks and writes. A spend from another connection or node waits
 * for the lock and reads the balance the first one left: the below-zero rule is exact
 * without SERIALIZABLE and its retries. Triggers refuse UPDATE, DELETE and TRUNCATE of
 * postings and entries.
 */

const SCHEMA = `
CREATE TABLE accounts (
  id text PRIMARY KEY, kind text NOT NULL, unit text NOT NULL, allow_negative boolean NOT NULL,
  balance bigint NOT NULL DEFAULT 0, created_at bigint NOT NULL
);
CREATE TABLE postings (
  id bigserial PRIMARY KEY, key text NOT NULL UNIQUE, reason text NOT NULL, at bigint NOT NULL,
  metadata text NOT NULL, digest text NOT NULL, reverses bigint UNIQUE REFERENCES postings (id)
);
CREATE TABLE entries (
  id bigserial PRIMARY KEY, posting bigint NOT NULL REFERENCES postings (id),
  account text NOT NULL REFERENCES accounts (id), amount bigint NOT NULL, balance_after bigint NOT NULL
);
CREATE INDEX entries_account ON entries (account, id);
CREATE INDEX entries_posting ON entries (posting, id);
CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'ledger % are immutable', TG_TABLE_NAME; END $$;
CREATE TRIGGER postings_immutable BEFORE UPDATE OR DELETE ON postings FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER entries_immutable BEFORE UPDATE OR DELETE ON entries FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
`;

/** a pooled handle or a transaction's client, as both take plain text and params */
interface Queryable {
  query<R extends object>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

/** ms PostgreSQL waits on a posting's transaction that sends nothing before it ends the session (README: Decisions) */
export const IDLE_IN_TRANSACTION_MS = 5_000;

export const LEDGER_POSTGRES_MIGRATIONS: readonly Migration[] = [{ version: 1, description: 'ledger: accounts, postings, entries (immutable)', up: SCHEMA }];

export async function openPgLedger(options: { url: string; prefix: string } & LedgerOptions): Promise<PgLedger> {
  const db = await openPostgres({ url: options.url, prefix: options.prefix, errorId: core.ID });
  try {
    await migrate(db, 'ledger', LEDGER_POSTGRES_MIGRATIONS);
  } catch (err) {
    await db.close();
    throw err;
  }
  return new PgLedger(db, options.clock ?? Date.now);
}

export class PgLedger extends BaseLedger {
  private readonly s: string;

  constructor(
    /** the handle, for the engine's own tests (immutability) */
    readonly db: Postgres,
    private readonly clock: () => number,
  ) {
    super();
    this.s = db.schema;
  }

  async openAccount(input: AccountInput): Promise<Account> {
    const a = core.checkAccount(input);
    const at = core.now(this.clock);
    const inserted = await this.db.query<core.AccountRow>(
      `INSERT INTO ${this.s}.accounts (id, kind, unit, allow_negative, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING *`,
      [a.id, a.kind, UNIT, a.allowNegative, at],
    );
    const row = inserted.rows[0];
    return row ? core.accountOf(row) : core.accountConflict(await this.account(a.id), a);
  }

  async account(id: string): Promise<Account> {
    const { rows } = await this.db.query<core.AccountRow>(`SELECT * FROM ${this.s}.accounts WHERE id = $1`, [core.checkAccountId(id)]);
    return rows[0] ? core.accountOf(rows[0]) : core.notFound(id);
  }

  async accounts(options?: { prefix?: string; after?: string; limit?: number }): Promise<AccountPage> {
    const { prefix, after, limit } = core.checkAccountPage(options);
    // COLLATE "C": pages in byte order of the ids whatever the database's collation
    const { rows } = await this.db.query<core.AccountRow>(
      `SELECT * FROM ${this.s}.accounts WHERE id COLLATE "C" > $1 AND substr(id, 1, $2) = $3 ORDER BY id COLLATE "C" LIMIT $4`,
      [after, prefix.length, prefix, limit + 1],
    );
    return core.accountPageOf(rows, limit);
  }

  async balance(id: string): Promise<number> {
    const { rows } = await this.db.query<{ balance: string }>(`SELECT balance FROM ${this.s}.accounts WHERE id = $1`, [core.checkAccountId(id)]);
    return rows[0] ? Number(rows[0].balance) : core.notFound(id);
  }

  private async find(q: Queryable, key: string): Promise<(Posting & { digest: string }) | undefined> {
    const { rows } = await q.query<core.PostingRow>(`SELECT * FROM ${this.s}.postings WHERE key = $1`, [key]);
    const row = rows[0];
    if (!row) return undefined;
    const entries = await q.query<core.EntryRow>(`SELECT account, amount FROM ${this.s}.entries WHERE posting = $1 ORDER BY id`, [row.id]);
    return core.postingOf(row, entries.rows);
  }


  protected findByKey(key: string): Promise<(Posting & { digest: string }) | undefined> {
    return this.find(this.db, key);
  }

  protected async record(checked: core.CheckedPosting): Promise<PostResult> {
    try {
      // the posting locks its accounts' rows (platform:revenue: every node's postings wait
      // for it). A node whose host or network is lost mid-transaction closes nothing, and
      // PostgreSQL would keep the locks until TCP keepalive gives up (hours): it ends a
      // session silent this long inside the transaction instead, rolling the posting back
      return await this.db.transaction((client) => this.recordIn(client, checked), { idleTimeout: IDLE_IN_TRANSACTION_MS });
    } catch (err) {
      if ((err as { code?: string; constraint?: string }).code === '23505' && (err as { constraint?: string }).constraint === 'postings_reverses_key') {
        throw errors.Conflict(core.ID, `posting ${checked.reverses} was reversed before`);
      }
      throw err;
    }
  }

  private async recordIn(client: Queryable, checked: core.CheckedPosting): Promise<PostResult> {
    const at = core.now(this.clock);
    const metadata = JSON.stringify(checked.metadata);
    const claimed = await client.query<{ id: string }>(
      `INSERT INTO ${this.s}.postings (key, reason, at, metadata, digest, reverses) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO NOTHING RETURNING id`,
      [checked.key, checked.reason, at, metadata, checked.digest, checked.reverses ?? null],
    );
    const id = claimed.rows[0]?.id;
    if (id === undefined) {
      const first = await this.find(client, checked.key);
      if (!first) throw errors.Conflict(core.ID, `key ${checked.key} is being posted: try again`);
      return core.replay(first, checked);
    }
    const accounts = [...new Set(checked.entries.map((e) => e.account))].sort();
    const locked = await client.query<{ id: string; allow_negative: boolean; balance: string }>(
      `SELECT id, allow_negative, balance FROM ${this.s}.accounts WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
      [accounts],
    );
    const held = new Map<string, core.Held>(locked.rows.map((r) => [r.id, { allowNegative: r.allow_negative, balance: Number(r.balance) }]));
    const planned = core.plan(checked.entries, held);
    const ids = planned.map((p) => p.account);
    const afters = planned.map((p) => String(p.balanceAfter));
    await client.query(`UPDATE ${this.s}.accounts a SET balance = v.b FROM unnest($1::text[], $2::bigint[]) AS v (id, b) WHERE a.id = v.id`, [ids, afters]);
    await client.query(
      `INSERT INTO ${this.s}.entries (posting, account, amount, balance_after)
       SELECT $1, v.account, v.amount, v.after FROM unnest($2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS v (account, amount, after, n) ORDER BY v.n`,
      [id, ids, planned.map((p) => String(p.amount)), afters],
    );
    const { digest: _, ...posting } = core.postingOf({ id, key: checked.key, reason: checked.reason, at, metadata, digest: checked.digest, reverses: checked.reverses ?? null }, checked.entries);
    return { posting, replayed: false };
  }



  async history(account: string, options?: { limit?: number; before?: number }): Promise<HistoryPage> {
    const { limit, before } = core.checkPage(options);
    await this.account(account);
    const { rows } = await this.db.query<core.HistoryRow>(
      `SELECT e.id, e.posting, p.key, p.reason, p.at, e.amount, e.balance_after FROM ${this.s}.entries e JOIN ${this.s}.postings p ON p.id = e.posting
       WHERE e.account = $1 AND e.id < $2 ORDER BY e.id DESC LIMIT $3`,
      [account, before, limit + 1],
    );
    return core.historyOf(rows, limit);
  }

  async trialBalance(): Promise<TrialBalance> {
    // sum(bigint) is numeric in Postgres: no overflow, handed over as a decimal string
    const { rows } = await this.db.query<{ total: string; postings: string; entries: string }>(
      `SELECT COALESCE(SUM(amount), 0)::text AS total, (SELECT COUNT(*) FROM ${this.s}.postings) AS postings, COUNT(*) AS entries FROM ${this.s}.entries`,
    );
    const mismatched = await this.db.query<{ id: string }>(
      `SELECT a.id FROM ${this.s}.accounts a WHERE a.balance <> COALESCE((SELECT SUM(amount) FROM ${this.s}.entries e WHERE e.account = a.id), 0) ORDER BY a.id LIMIT 100`,
    );
    const r = rows[0] ?? { total: '0', postings: '0', entries: '0' };
    const ids = mismatched.rows.map((m) => m.id);
    return { ok: r.total === '0' && ids.length === 0, total: r.total, postings: Number(r.postings), entries: Number(r.entries), mismatched: ids };
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
