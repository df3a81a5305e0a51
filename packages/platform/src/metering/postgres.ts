import { randomUUID } from 'node:crypto';
import { errors, type Logger } from '@micro/sdk';
import { migrate, type Migration, type Postgres, type Queryable } from '@micro/server/engine';
import { balanceAccount } from '../billing/accounts.js';
import { GroupCommit } from './commit.js';
import { BLOCKED_ID, decide, holdOf, insufficientCredit, recordOf, type Pending, type Standing } from './core.js';
import { CALL_COLUMNS, callOf, callsQuery, callsTable, callValues, numbered, quotaRowOf, quotasQuery, usageQuery, usageRowOf, type CallRowRaw, type QuotaRowRaw, type UsageRowRaw } from './queries.js';
import type { Admission, CallRecord, Charge, Hold, MeterEngine, Outcome, PostCharges, Posted, QuotaRow, UsageFilter, UsageRow } from './storage.js';

/**
 * The meter of the nats profile: every node of the platform meters against the same rows
 * of the shared PostgreSQL. An admission locks the payer's row (`usage_payers … FOR
 * UPDATE`), reads the payer's standing in one statement (so the ledger balance and the
 * outbox are seen at one instant) and inserts its hold with this node's id; a settle
 * locks the payers of its batch in order, and turns holds into records, counters and
 * outbox rows in one transaction. Nodes heart-beat; the holds of a node silent for
 * `holdTtl` are released by the others. See README.md, "Nodes".
 */

export const METERING_POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'metering: usage records, outbox, holds, free quota and spend counters, nodes',
    up: `
${callsTable({ text: 'text', int: 'bigint', flag: 'smallint' })}
CREATE INDEX usage_calls_payer ON usage_calls (payer, period, service, endpoint);
CREATE FUNCTION usage_calls_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'usage records are immutable'; END $$;
CREATE TRIGGER usage_calls_immutable BEFORE UPDATE OR DELETE ON usage_calls FOR EACH ROW EXECUTE FUNCTION usage_calls_immutable();
CREATE TRIGGER usage_calls_no_truncate BEFORE TRUNCATE ON usage_calls FOR EACH STATEMENT EXECUTE FUNCTION usage_calls_immutable();
CREATE TABLE usage_outbox (request_id text PRIMARY KEY, payer text NOT NULL, amount bigint NOT NULL, posting text NOT NULL, node text NOT NULL);
CREATE INDEX usage_outbox_payer ON usage_outbox (payer);
CREATE TABLE usage_payers (payer text PRIMARY KEY);
CREATE TABLE usage_holds (
  request_id text PRIMARY KEY, node text NOT NULL, payer text NOT NULL, period text NOT NULL,
  service text NOT NULL, endpoint text NOT NULL, free boolean NOT NULL, amount bigint NOT NULL
);
CREATE INDEX usage_holds_payer ON usage_holds (payer);
CREATE INDEX usage_holds_node ON usage_holds (node);
CREATE TABLE usage_free (payer text NOT NULL, period text NOT NULL, service text NOT NULL, endpoint text NOT NULL, used bigint NOT NULL, PRIMARY KEY (payer, period, service, endpoint));
CREATE TABLE usage_spend (payer text NOT NULL, period text NOT NULL, charged bigint NOT NULL, PRIMARY KEY (payer, period));
CREATE TABLE usage_nodes (node text PRIMARY KEY, beat bigint NOT NULL);
`,
  },
];

/** the database's clock, ms: every node's heart-beats and sweeps are measured by one clock */
const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

export interface PgMeterOptions {
  /** this node's id in the holds (default a new UUID per process) */
  node?: string;
  /** ms between heart-beats (and sweeps of the holds of silent nodes) (default 5,000) */
  heartbeat?: number;
  /** ms of silence after which a node's holds are released by the others (default 30,000) */
  holdTtl?: number;
  /**
   * ms PostgreSQL waits on a transaction of this node that holds payers' rows and sends
   * nothing before it ends the session (`idle_in_transaction_session_timeout`, default
   * 5,000): a node that goes silent mid-transaction holds its payers on the other nodes no
   * longer than this (README.md, "Nodes")
   */
  idleInTransaction?: number;
  logger?: Logger;
}

type Num = string | number;

export class PgMeterEngine implements MeterEngine {
  readonly kind = 'postgres';
  readonly node: string;
  private readonly s: string;
  private readonly heartbeat: number;
  private readonly holdTtl: number;
  private readonly idleInTransaction: number;
  private readonly commits: GroupCommit<Pending<never>>;
  private timer: NodeJS.Timeout | undefined;
  /** the first rounds after start take every row of the outbox, whichever node left it */
  private everything = true;
  /** request ids of this node's calls that hold (or are being given) a hold row */
  private readonly inflight = new Set<string>();
  /** a settle failed and its holds may be left: the next heart-beat removes this node's holds of no call in flight */
  private orphans = false;

  /**
   * `db` is a handle on the schema the ledger lives in: an admission reads the ledger's
   * `accounts` and `postings` in the statement that reads the outbox (see standing).
   */
  constructor(
    private readonly db: Postgres,
    private readonly options: PgMeterOptions = {},
  ) {
    this.s = db.schema;
    this.node = options.node ?? randomUUID();
    this.heartbeat = options.heartbeat ?? 5_000;
    this.holdTtl = options.holdTtl ?? 30_000;
    this.idleInTransaction = options.idleInTransaction ?? 5_000;
    if (!Number.isSafeInteger(this.idleInTransaction) || this.idleInTransaction < 1) throw new Error(`idleInTransaction is a whole number of ms from 1, not ${String(this.idleInTransaction)}`);
    this.commits = new GroupCommit((batch) => this.write(batch));
  }

  async start(): Promise<void> {
    await migrate(this.db, 'metering', METERING_POSTGRES_MIGRATIONS);
    await this.beat();
    this.timer = setInterval(() => {
      this.beat().catch((err: unknown) => this.options.logger?.warn({ err }, 'metering: heart-beat failed'));
    }, this.heartbeat);
    this.timer.unref();
  }

  /** This node is alive; the holds of nodes silent for holdTtl are released. */
  private async beat(): Promise<void> {
    const s = this.s;
    await this.db.query(`INSERT INTO ${s}.usage_nodes (node, beat) VALUES ($1, ${NOW_MS}) ON CONFLICT (node) DO UPDATE SET beat = EXCLUDED.beat`, [this.node]);
    await this.db.query(`DELETE FROM ${s}.usage_holds WHERE node <> $1 AND node NOT IN (SELECT node FROM ${s}.usage_nodes WHERE beat >= ${NOW_MS} - $2)`, [this.node, this.holdTtl]);
    await this.db.query(`DELETE FROM ${s}.usage_nodes WHERE node <> $1 AND beat < ${NOW_MS} - $2`, [this.node, this.holdTtl]);
    if (this.orphans) {
      this.orphans = false;
      await this.db.query(`DELETE FROM ${s}.usage_holds WHERE node = $1 AND NOT (request_id = ANY($2::text[]))`, [this.node, [...this.inflight]]);
    }
  }

  // ---- admission ---------------------------------------------------------------------

  async admit(a: Admission): Promise<Hold> {
    // in flight from before its hold exists: a sweep of orphans never takes a hold being made
    this.inflight.add(a.requestId);
    const kind = await this.transaction(async (c) => {
      await this.lockPayers(c, [a.payer]);
      const kind = decide(a, await this.standing(c, a));
      if (kind === 'short') throw insufficientCredit();
      if (kind !== 'replay') {
        await c.query(`INSERT INTO ${this.s}.usage_holds (request_id, node, payer, period, service, endpoint, free, amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
          a.requestId,
          this.node,
          a.payer,
          a.period,
          a.service,
          a.endpoint,
          kind === 'free',
          kind === 'charge' ? a.price : 0,
        ]);
      }
      return kind;
    }).catch((err: unknown) => {
      this.inflight.delete(a.requestId);
      throw err;
    });
    if (kind === 'replay') this.inflight.delete(a.requestId);
    return holdOf(a, kind);
  }

  /**
   * A transaction of the meter: it locks payers' rows, which every node's calls of those
   * payers wait for. A node whose host or network is lost in the middle leaves PostgreSQL
   * waiting on a connection nobody closes (for as long as TCP keepalive takes: hours by
   * default), so the session is told first to end itself after idleInTransaction ms of
   * silence (set with its BEGIN): its locks go with it, its uncommitted holds and records too.
   */
  private transaction<T>(fn: (c: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction(fn, { idleTimeout: this.idleInTransaction });
  }

  /** The payers' rows, made if new and locked in the order of their ids (two transactions never deadlock). */
  private async lockPayers(c: Queryable, payers: string[]): Promise<void> {
    const sorted = [...new Set(payers)].sort();
    await c.query(`INSERT INTO ${this.s}.usage_payers (payer) SELECT p FROM unnest($1::text[]) AS p ORDER BY p ON CONFLICT (payer) DO NOTHING`, [sorted]);
    await c.query(`SELECT payer FROM ${this.s}.usage_payers WHERE payer = ANY($1::text[]) ORDER BY payer FOR UPDATE`, [sorted]);
  }

  /**
   * The payer's standing, in one statement (one snapshot): the ledger balance and which of
   * the outbox's charges the ledger already holds are read at the same instant, so a
   * posting that lands meanwhile is counted once, on one side or the other.
   */
  private async standing(c: Queryable, a: Admission): Promise<Standing> {
    const s = this.s;
    const { rows } = await c.query(
      `SELECT
        COALESCE((SELECT used FROM ${s}.usage_free WHERE payer = $1 AND period = $2 AND service = $3 AND endpoint = $4), 0) AS used,
        (SELECT COUNT(*) FROM ${s}.usage_holds WHERE payer = $1 AND free AND period = $2 AND service = $3 AND endpoint = $4) AS inflight,
        COALESCE((SELECT charged FROM ${s}.usage_spend WHERE payer = $1 AND period = $2), 0) AS spent,
        (SELECT COALESCE(SUM(amount), 0) FROM ${s}.usage_holds WHERE payer = $1) AS held,
        COALESCE((SELECT balance FROM ${s}.accounts WHERE id = $5), 0) AS balance,
        (SELECT COALESCE(SUM(o.amount), 0) FROM ${s}.usage_outbox o WHERE o.payer = $1 AND NOT EXISTS (SELECT 1 FROM ${s}.postings p WHERE p.key = o.posting)) AS unposted,
        EXISTS (SELECT 1 FROM ${s}.usage_calls WHERE idem = $6 AND outcome = 'ok') AS done`,
      [a.payer, a.period, a.service, a.endpoint, balanceAccount(a.payer), a.idem ?? null],
    );
    const r = rows[0] as Record<'used' | 'inflight' | 'spent' | 'held' | 'balance' | 'unposted', Num> & { done: boolean };
    return { done: r.done, used: Number(r.used), inflight: Number(r.inflight), spent: Number(r.spent), held: Number(r.held), balance: Number(r.balance), unposted: Number(r.unposted) };
  }

  // ---- settling ----------------------------------------------------------------------

  settle(hold: Hold, outcome: Outcome): Promise<CallRecord> {
    return new Promise((resolve, reject) => this.commits.add({ hold, outcome, resolve, reject }));
  }

  /** The records of a tick in one transaction, under the locks of their payers. */
  private async write(batch: Pending<never>[]): Promise<void> {
    let results: Array<{ record: CallRecord; error?: unknown }> = [];
    try {
      await this.transaction(async (c) => {
        results = [];
        await this.lockPayers(
          c,
          batch.map((e) => e.hold.admission.payer),
        );
        const done = new Set<string>();
        for (const e of batch) results.push(await this.settleOne(c, e, done));
      });
    } catch (err) {
      this.options.logger?.error({ err }, 'metering: recording calls failed; they are not charged');
      for (const e of batch) {
        this.inflight.delete(e.hold.admission.requestId);
        e.reject(err);
      }
      // their holds are released now if the database answers, else by the next heart-beat that reaches it
      this.orphans = true;
      await this.db.query(`DELETE FROM ${this.s}.usage_holds WHERE request_id = ANY($1::text[])`, [batch.map((e) => e.hold.admission.requestId)]).catch(() => undefined);
      return;
    }
    for (const e of batch) this.inflight.delete(e.hold.admission.requestId);
    batch.forEach((e, i) => {
      const r = results[i] as { record: CallRecord; error?: unknown };
      if (r.error !== undefined) e.reject(r.error);
      else e.resolve(r.record);
    });
  }

  private async settleOne(c: Queryable, e: Pending<never>, done: Set<string>): Promise<{ record: CallRecord; error?: unknown }> {
    const a = e.hold.admission;
    const s = this.s;
    const released = await c.query(`DELETE FROM ${s}.usage_holds WHERE request_id = $1`, [a.requestId]);
    let kind: Hold['kind'] | 'failed' = e.outcome.ok ? e.hold.kind : 'failed';
    let outcome = e.outcome;
    let error: unknown;
    if (kind !== 'failed' && a.idem !== undefined) {
      if (kind !== 'replay' && (done.has(a.idem) || (await this.idemDone(c, a.idem)))) kind = 'replay';
    }
    if ((kind === 'free' || kind === 'charge') && released.rowCount === 0) {
      // another node released the hold (this one was silent past holdTtl): decided again, now
      const again = await this.again(c, a);
      if (again === 'short') {
        kind = 'failed';
        outcome = { ok: false, code: 503 };
        error = errors.ServiceUnavailable(BLOCKED_ID, 'the credit this call held was released while it ran (this node was out of touch) and is spent now: the call is not charged; retry it');
      } else kind = again;
    }
    if (kind !== 'failed' && a.idem !== undefined) done.add(a.idem);
    const record = recordOf(a, outcome, kind);
    if (record.free) {
      await c.query(`INSERT INTO ${s}.usage_free (payer, period, service, endpoint, used) VALUES ($1, $2, $3, $4, 1) ON CONFLICT (payer, period, service, endpoint) DO UPDATE SET used = ${s}.usage_free.used + 1`, [a.payer, a.period, a.service, a.endpoint]);
    }
    if (record.charged > 0) {
      await c.query(`INSERT INTO ${s}.usage_spend (payer, period, charged) VALUES ($1, $2, $3) ON CONFLICT (payer, period) DO UPDATE SET charged = ${s}.usage_spend.charged + EXCLUDED.charged`, [a.payer, a.period, record.charged]);
      await c.query(`INSERT INTO ${s}.usage_outbox (request_id, payer, amount, posting, node) VALUES ($1, $2, $3, $4, $5)`, [record.requestId, record.payer, record.charged, record.posting, this.node]);
    }
    await c.query(`INSERT INTO ${s}.usage_calls (${CALL_COLUMNS}) VALUES (${CALL_COLUMNS.split(',').map((_, i) => `$${i + 1}`).join(', ')})`, callValues(record, a.idem));
    return error === undefined ? { record } : { record, error };
  }

  /** A call whose hold was released: free, charged or short against the standing now (the cap's refusal counts as short). */
  private async again(c: Queryable, a: Admission): Promise<'free' | 'charge' | 'short'> {
    try {
      const kind = decide(a, { ...(await this.standing(c, a)), done: false });
      return kind === 'replay' ? 'short' : kind;
    } catch {
      return 'short';
    }
  }

  private async idemDone(c: Queryable, idem: string): Promise<boolean> {
    const { rows } = await c.query(`SELECT 1 FROM ${this.s}.usage_calls WHERE idem = $1 AND outcome = 'ok' LIMIT 1`, [idem]);
    return rows.length > 0;
  }

  // ---- the outbox --------------------------------------------------------------------

  async unposted(limit: number): Promise<Charge[]> {
    const s = this.s;
    const { rows } = await this.db.query<CallRowRaw>(
      `SELECT c.* FROM ${s}.usage_outbox o JOIN ${s}.usage_calls c ON c.request_id = o.request_id
       WHERE $1 OR o.node = $2 OR o.node NOT IN (SELECT node FROM ${s}.usage_nodes WHERE beat >= ${NOW_MS} - $3)
       ORDER BY c.at, c.request_id LIMIT $4`,
      [this.everything, this.node, this.holdTtl, limit],
    );
    if (rows.length < limit) this.everything = false;
    return rows.map((row) => {
      const r = callOf(row);
      return { requestId: r.requestId, payer: r.payer, amount: r.charged, calls: 1, posting: r.posting as string, period: r.period, service: r.service, endpoint: r.endpoint };
    });
  }

  async post(payer: string, charges: Charge[], post: PostCharges): Promise<{ posted: Posted; balance: number }> {
    const s = this.s;
    const { rows } = await this.db.query<{ request_id: string }>(`SELECT request_id FROM ${s}.usage_outbox WHERE request_id = ANY($1::text[])`, [charges.map((c) => c.requestId)]);
    const left = new Set(rows.map((r) => r.request_id));
    const pending = charges.filter((c) => left.has(c.requestId));
    const posted = pending.length > 0 ? await post(pending) : { done: [], fromBalance: 0, toDue: 0 };
    if (posted.done.length > 0) await this.db.query(`DELETE FROM ${s}.usage_outbox WHERE request_id = ANY($1::text[])`, [posted.done]);
    const balance = await this.db.query<{ balance: Num }>(`SELECT balance FROM ${s}.accounts WHERE id = $1`, [balanceAccount(payer)]);
    return { posted, balance: Number(balance.rows[0]?.balance ?? 0) };
  }

  // ---- reads -------------------------------------------------------------------------

  async usage(filter: UsageFilter, by: 'endpoint' | 'day' | 'key'): Promise<UsageRow[]> {
    const q = usageQuery(`${this.s}.usage_calls`, filter, by);
    return (await this.db.query<UsageRowRaw & Record<string, unknown>>(numbered(q.sql), q.params)).rows.map(usageRowOf);
  }

  async quotas(payer: string, period: string): Promise<QuotaRow[]> {
    const q = quotasQuery(`${this.s}.usage_calls`, payer, period);
    return (await this.db.query<QuotaRowRaw & Record<string, unknown>>(numbered(q.sql), q.params)).rows.map(quotaRowOf);
  }

  async calls(filter: UsageFilter, limit: number): Promise<CallRecord[]> {
    const q = callsQuery(`${this.s}.usage_calls`, filter, limit);
    return (await this.db.query<CallRowRaw & Record<string, unknown>>(numbered(q.sql), q.params)).rows.map(callOf);
  }

  /** Writes what waits for its tick, gives back this node's holds (none once the gateway is closed) and leaves the nodes. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.commits.drain();
    await this.db.query(`DELETE FROM ${this.s}.usage_holds WHERE node = $1`, [this.node]).catch(() => undefined);
    await this.db.query(`DELETE FROM ${this.s}.usage_nodes WHERE node = $1`, [this.node]).catch(() => undefined);
    await this.db.close();
  }
}
