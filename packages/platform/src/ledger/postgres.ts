import { createHash } from 'node:crypto';
import { errors } from '@micro/sdk';
import { migrate, openPostgres, type Migration, type Postgres } from '@micro/server/engine';
import * as core from './core.js';
import { BaseLedger } from './base.js';
import { UNIT, type Account, type AccountInput, type AccountPage, type HistoryOptions, type HistoryPage, type LedgerOptions, type Posting, type PostOutcome, type TrialBalance } from './ledger.js';

/**
 * The ledger of the nats profile: tables in the platform's schema of the shared
 * PostgreSQL, so every node posts to one ledger. Each batch of postings (group commit,
 * see BaseLedger) is one READ COMMITTED transaction that first locks the rows of its
 * accounts with SELECT … FOR UPDATE in the order of their ids (no two batches deadlock)
 * and only then reads the balances it checks and writes (see writeBatch). A spend from
 * another connection or node waits for the lock and reads the balance the first one
 * left: the below-zero rule is exact without SERIALIZABLE and its retries. Triggers
 * refuse UPDATE, DELETE and TRUNCATE of postings and entries, DELETE and TRUNCATE of accounts.
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

/** runs one statement and gives its rows: on the pool, or on a transaction's client (`named`: see on) */
type Run = <R extends object>(text: string, values: unknown[], named?: boolean) => Promise<R[]>;

/** ms PostgreSQL waits on a posting's transaction that sends nothing before it ends the session (README: Decisions) */
export const IDLE_IN_TRANSACTION_MS = 5_000;

/** SQLSTATE of a batch whose write found one of its keys recorded by another writer (see writeBatch) */
const LOST_RACE = 'ML001';

/**
 * The write of a batch ends with this check, so that a lost race is an error of the
 * statement itself: the COMMIT sent behind it in the same round trip then rolls back.
 */
const WRITTEN_CHECK = `
CREATE FUNCTION ledger_written(written bigint, wanted bigint) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF written <> wanted THEN
    RAISE EXCEPTION 'ledger: % of % postings written, another writer recorded the others first', written, wanted USING ERRCODE = '${LOST_RACE}';
  END IF;
  RETURN written;
END $$;
`;

/**
 * The foreign keys of entries cost a third of a batch's write (a lookup and a row lock per
 * entry, measured 1.3 of 3.5 ms for 64 postings) and checked what holds by construction:
 * a batch inserts entries only joined to the postings the same statement inserted, for
 * accounts it read in the same transaction. What they also guarded — that an account or
 * a posting with entries never goes away — the triggers do: postings were never deleted,
 * and now accounts are not either. The trial balance reports entries of no account or of
 * no posting (written by hand).
 */
const KEPT_BY_TRIGGERS = `
ALTER TABLE entries DROP CONSTRAINT entries_posting_fkey, DROP CONSTRAINT entries_account_fkey;
CREATE FUNCTION ledger_accounts_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'ledger accounts are never deleted'; END $$;
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION ledger_accounts_kept();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts FOR EACH STATEMENT EXECUTE FUNCTION ledger_accounts_kept();
`;

export const LEDGER_POSTGRES_MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'ledger: accounts, postings, entries (immutable)', up: SCHEMA },
  { version: 2, description: 'ledger: a batch checks in SQL that it wrote all its postings', up: WRITTEN_CHECK },
  { version: 3, description: 'ledger: accounts are never deleted (triggers) instead of the foreign keys of entries', up: KEPT_BY_TRIGGERS },
];

/** how often a batch is written again after another node recorded one of its keys meanwhile */
const RACE_RETRIES = 5;

export async function openPgLedger(options: { url: string; prefix: string } & LedgerOptions): Promise<PgLedger> {
  const db = await openPostgres({ url: options.url, prefix: options.prefix, errorId: core.ID });
  try {
    await migrate(db, 'ledger', LEDGER_POSTGRES_MIGRATIONS);
    return new PgLedger(db, options);
  } catch (err) {
    await db.close();
    throw err;
  }
}

/** one row: the locked accounts, the postings of the keys (with their entries), the postings already reversed, as JSON */
interface StateRow {
  /** id, allowNegative, balance, ctid (where the locked row is: it stays there until this transaction updates it) */
  held: Array<[string, boolean, string, string]> | null;
  known: Array<[string, string, string, string, string, string, string | null, Array<[string, string]>]> | null;
  reversed: string[] | null;
}

/** a transaction's connection, as Postgres.transaction hands it over */
type Client = Parameters<Parameters<Postgres['transaction']>[0]>[0];

const names = new Map<string, string>();

/**
 * Statements on a transaction's client. Unnamed by default: PostgreSQL plans each for its
 * own arrays and the tables as they are now. A named statement is planned a few times,
 * then kept per connection as a generic plan — one made while the tables were small (a
 * new ledger) scans them whole, and its cost grows with every posting until autovacuum
 * happens to invalidate it (measured: the batch's read went from 1 ms to 40 ms in 15 s).
 * Only a statement whose every plan reaches rows through unique indexes or ctids may be
 * `named` (the batch's write: planning it cost more than running it).
 */
function on(client: Client): Run {
  return async <R extends object>(text: string, values: unknown[], named = false) => {
    if (!named) return (await client.query<R & object>(text, values)).rows;
    let name = names.get(text);
    if (name === undefined) {
      name = `ledger_${createHash('sha256').update(text).digest('hex').slice(0, 40)}`;
      names.set(text, name);
    }
    return (await client.query<R & object>({ name, text, values })).rows;
  };
}

export class PgLedger extends BaseLedger {
  private readonly s: string;
  private readonly clock: () => number;
  private readonly pooled: Run;

  constructor(
    /** the handle, for the engine's own tests (immutability) */
    readonly db: Postgres,
    options: LedgerOptions = {},
  ) {
    super(options);
    this.s = db.schema;
    this.clock = options.clock ?? Date.now;
    // unnamed, as on(client): see there (db.query names its statements); for the reads
    // whose plan depends on how big the tables are (batches, postings by key, history)
    this.pooled = async <R extends object>(text: string, values: unknown[]) => {
      try {
        return (await db.pool.query<R & object>(text, values)).rows;
      } catch (err) {
        throw db.fail(err);
      }
    };
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

  /**
   * One round trip: locks the rows of `accounts` (sorted by id, FOR UPDATE) and reads
   * them, the postings of `keys` and which of `reverses` were reversed before. The
   * postings are read in the statement's snapshot, taken before the locks were granted: a
   * key committed meanwhile by a node that held them is missed here and caught by the
   * write (see writeBatch).
   */
  private async read(run: Run, accounts: string[], keys: string[], reverses: number[]): Promise<core.BatchState & { ctids: Map<string, string> }> {
    const s = this.s;
    const rows = await run<StateRow>(
      `WITH l AS MATERIALIZED (SELECT id, allow_negative, balance, ctid FROM ${s}.accounts WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE)
         SELECT (SELECT json_agg(json_build_array(l.id, l.allow_negative, l.balance::text, l.ctid::text)) FROM l) AS held,
           (SELECT json_agg(json_build_array(p.id::text, p.key, p.reason, p.at::text, p.metadata, p.digest, p.reverses::text,
              (SELECT json_agg(json_build_array(e.account, e.amount::text) ORDER BY e.id) FROM ${s}.entries e WHERE e.posting = p.id)))
            FROM ${s}.postings p WHERE p.key = ANY($2::text[])) AS known,
           (SELECT json_agg(r.reverses::text) FROM ${s}.postings r WHERE r.reverses = ANY($3::bigint[])) AS reversed`,
      [accounts, keys, reverses],
    );
    const row = rows[0] as StateRow;
    return {
      held: new Map((row.held ?? []).map(([id, allowNegative, balance]) => [id, { allowNegative, balance: Number(balance) }])),
      ctids: new Map((row.held ?? []).map(([id, , , ctid]) => [id, ctid])),
      known: new Map(
        (row.known ?? []).map(([id, key, reason, at, metadata, digest, reverses, entries]) => [
          key,
          core.postingOf({ id, key, reason, at, metadata, digest, reverses }, (entries ?? []).map(([account, amount]) => ({ account, amount }))),
        ]),
      ),
      reversed: new Set((row.reversed ?? []).map(Number)),
    };
  }

  protected async findByKey(key: string): Promise<(Posting & { digest: string }) | undefined> {
    return (await this.read(this.pooled, [], [key], [])).known.get(key);
  }

  /**
   * The batch in one READ COMMITTED transaction of two statements: lock the rows of every
   * account it moves, sorted by id (SELECT … FOR UPDATE: two batches never deadlock, and
   * a spend from another node waits and then reads the balance the first left), read the
   * keys posted before and the reversals; plan in order (core.planBatch); write postings,
   * entries and balances. A key (or a reversal) that another node records between the
   * read and the write makes the INSERT … ON CONFLICT DO NOTHING skip it (after waiting
   * for that node's commit): the transaction is rolled back and the batch written again,
   * and then it finds the key.
   *
   * The batch locks its accounts' rows (platform:revenue: every node's postings wait for
   * it). A node whose host or network is lost mid-transaction closes nothing, and
   * PostgreSQL would keep the locks until TCP keepalive gives up (hours): it ends a session
   * silent IDLE_IN_TRANSACTION_MS inside the transaction instead, rolling the batch back.
   */
  protected async writeBatch(batch: core.CheckedPosting[]): Promise<PostOutcome[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction((client, commit) => this.tryBatch(on(client), commit, batch), { idleTimeout: IDLE_IN_TRANSACTION_MS, noJit: true, pipeline: true });
      } catch (err) {
        if ((err as { code?: unknown }).code !== LOST_RACE) throw err;
        if (attempt === RACE_RETRIES) throw errors.Conflict(core.ID, `other nodes kept recording the same keys: try again`);
      }
    }
  }

  /**
   * Two round trips: BEGIN goes out with the read (pipelined), the COMMIT with the write.
   * The write checks in SQL that it recorded every accepted posting (ledger_written): if
   * not, it fails, the COMMIT behind it rolls back, and writeBatch tries again.
   */
  private async tryBatch(run: Run, commit: () => Promise<void>, batch: core.CheckedPosting[]): Promise<PostOutcome[]> {
    // No JIT for this transaction's statements (noJit, set with its BEGIN): their estimated
    // cost grows with tables that have no statistics yet (a new ledger, or autovacuum off),
    // and past jit_above_cost PostgreSQL compiled the read with LLVM on every batch — 10-15
    // ms of CPU for a statement that runs in 0.5 ms (measured: 8,500 postings/s fell to 2,600).
    const accounts = [...new Set(batch.flatMap((c) => c.entries.map((e) => e.account)))].sort();
    const keys = [...new Set(batch.map((c) => c.key))];
    const state = await this.read(run, accounts, keys, batch.flatMap((c) => (c.reverses === undefined ? [] : [c.reverses])));
    const plan = core.planBatch(batch, state, this.clock);
    if (plan.accepted.length === 0) {
      await commit();
      return plan.finish([]);
    }
    const a = plan.accepted;
    const entries = a.flatMap((x, i) => x.planned.map((p) => ({ posting: i + 1, ...p })));
    const written = run<{ ids: string[] }>(
      // ids from the sequence in the batch's order (v), rows inserted in the keys' order (p):
      // two batches waiting on each other's keys wait in one order, never in a cycle. The
      // balances are set where the read found the locked rows (ctid): no plan of this
      // statement scans a table, so it is named and planned once per connection.
      `WITH v AS (
         SELECT nextval('${this.s}.postings_id_seq'::regclass) AS id, v.* FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
           WITH ORDINALITY AS v (key, reason, at, metadata, digest, reverses, n) ORDER BY v.n
       ), p AS (
         INSERT INTO ${this.s}.postings (id, key, reason, at, metadata, digest, reverses)
         SELECT id, key, reason, at, metadata, digest, reverses FROM v ORDER BY key COLLATE "C" ON CONFLICT DO NOTHING RETURNING id
       ), e AS (
         INSERT INTO ${this.s}.entries (posting, account, amount, balance_after)
         SELECT p.id, x.account, x.amount, x.after FROM unnest($7::int[], $8::text[], $9::bigint[], $10::bigint[]) WITH ORDINALITY AS x (i, account, amount, after, n)
           JOIN v ON v.n = x.i JOIN p ON p.id = v.id ORDER BY x.n
       ), b AS (
         UPDATE ${this.s}.accounts a SET balance = b.balance FROM unnest($11::tid[], $12::bigint[]) AS b (t, balance) WHERE a.ctid = ANY($11::tid[]) AND a.ctid = b.t
       )
       SELECT ${this.s}.ledger_written(count(*), $13) AS written, array_agg(p.id::text ORDER BY v.n) AS ids FROM p JOIN v ON v.id = p.id`,
      [
        a.map((x) => x.checked.key),
        a.map((x) => x.checked.reason),
        a.map((x) => x.at),
        a.map((x) => x.metadata),
        a.map((x) => x.checked.digest),
        a.map((x) => x.checked.reverses ?? null),
        entries.map((x) => x.posting),
        entries.map((x) => x.account),
        entries.map((x) => String(x.amount)),
        entries.map((x) => String(x.balanceAfter)),
        [...plan.balances.keys()].map((account) => state.ctids.get(account)),
        [...plan.balances.values()].map(String),
        a.length,
      ],
      true,
    );
    // sent behind the write without waiting for it: rolls back if the write failed
    const [[row]] = await Promise.all([written, commit()]);
    return plan.finish((row?.ids ?? []).map(Number));
  }

  async history(account: string, options?: HistoryOptions): Promise<HistoryPage> {
    const { limit, before, from, to } = core.checkHistory(options);
    await this.account(account);
    const rows = await this.pooled<core.HistoryRow>(
      `SELECT e.id, e.posting, p.key, p.reason, p.at, e.amount, e.balance_after, p.metadata FROM ${this.s}.entries e JOIN ${this.s}.postings p ON p.id = e.posting
       WHERE e.account = $1 AND e.id < $2 AND p.at >= $3 AND p.at < $4 ORDER BY e.id DESC LIMIT $5`,
      [account, before, from, to, limit + 1],
    );
    return core.historyOf(rows, limit);
  }

  async trialBalance(): Promise<TrialBalance> {
    // sum(bigint) is numeric in Postgres: no overflow, handed over as a decimal string
    const { rows } = await this.db.query<{ total: string; postings: string; entries: string }>(
      `SELECT COALESCE(SUM(amount), 0)::text AS total, (SELECT COUNT(*) FROM ${this.s}.postings) AS postings, COUNT(*) AS entries FROM ${this.s}.entries`,
    );
    // and, without foreign keys (migration 3), the accounts of entries that belong to no
    // account or no posting: entries only a hand could write
    const mismatched = await this.db.query<{ id: string }>(
      `SELECT id FROM (
         SELECT a.id FROM ${this.s}.accounts a WHERE a.balance <> COALESCE((SELECT SUM(amount) FROM ${this.s}.entries e WHERE e.account = a.id), 0)
         UNION SELECT e.account FROM ${this.s}.entries e WHERE NOT EXISTS (SELECT 1 FROM ${this.s}.accounts a WHERE a.id = e.account)
           OR NOT EXISTS (SELECT 1 FROM ${this.s}.postings p WHERE p.id = e.posting)
       ) m ORDER BY id LIMIT 100`,
    );
    const r = rows[0] ?? { total: '0', postings: '0', entries: '0' };
    const ids = mismatched.rows.map((m) => m.id);
    return { ok: r.total === '0' && ids.length === 0, total: r.total, postings: Number(r.postings), entries: Number(r.entries), mismatched: ids };
  }

  protected async release(): Promise<void> {
    await this.db.close();
  }
}
