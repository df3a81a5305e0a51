import { ensureBillingSchema } from '../billing/engines.js';
import type { Logger } from '@micro/sdk';
import { DeferredSyncDatabase } from '@micro/server/engine';
import { balanceAccount, openPayerAccounts } from '../billing/accounts.js';
import type { Ledger } from '../ledger/index.js';
import type { SqliteLedger } from '../ledger/sqlite.js';
import { GroupCommit } from './commit.js';
import { chargeOf, decide, insufficientCredit, recordOf, type Pending } from './core.js';
import { CALL_COLUMNS, callOf, callsQuery, callsTable, callValues, quotaRowOf, quotasQuery, usageQuery, usageRowOf, type CallRowRaw, type QuotaRowRaw, type UsageRowRaw } from './queries.js';
import type { Admission, CallRecord, Charge, Hold, MeterEngine, Outcome, PostCharges, Posted, QuotaRow, UsageFilter, UsageRow } from './storage.js';

/**
 * The meter of the local profile: one process owns billing.db, so the holds and counters
 * live in memory (no write, no await on the path of a call the meter already knows the
 * payer of), rebuilt at start from the records and the ledger. Records go to
 * `usage_calls` beside the ledger's tables in group commits, with an outbox row for each
 * charge until its posting is in the ledger.
 *
 * The records have a connection of their own to billing.db whose commits are flushed in
 * libuv's thread pool (`DeferredSyncDatabase`): a call's settle resolves — and the gateway
 * answers — only once its record is on disk, as with synchronous = FULL, but the event loop
 * serves other calls during the fsync. The records settled meanwhile wait in memory and go
 * in one transaction when it is done, then share the next fsync: one commit a flush, not
 * one a tick (a commit's fixed cost, BEGIN to COMMIT writing its pages to the WAL, was a
 * third of what recording cost). (An fsync a tick on the event loop, before, was most of
 * what metering cost.)
 */

type Database = SqliteLedger['db'];

export const METERING_SQLITE_VERSION = 2;

const SCHEMA = `
${callsTable({ text: 'TEXT', int: 'INTEGER', flag: 'INTEGER' }, ' WITHOUT ROWID', '')}
CREATE INDEX usage_calls_payer ON usage_calls (payer, period, service, endpoint, free);
CREATE TRIGGER usage_calls_no_update BEFORE UPDATE ON usage_calls BEGIN SELECT RAISE(ABORT, 'usage records are immutable'); END;
CREATE TRIGGER usage_calls_no_delete BEFORE DELETE ON usage_calls BEGIN SELECT RAISE(ABORT, 'usage records are immutable'); END;
CREATE TABLE usage_outbox (request_id TEXT PRIMARY KEY REFERENCES usage_calls (request_id), payer TEXT NOT NULL, amount INTEGER, calls INTEGER) WITHOUT ROWID;
`;

/**
 * From version 1, where every charged call had a posting of its own (posting UNIQUE) and
 * an outbox row of its own: the records copied into the table of version 2 (the triggers
 * that keep them immutable dropped for the copy only), the outbox's rows kept as rows of
 * one call (amount and calls NULL: the record's charge, one call).
 */
const FROM_V1 = `
DROP TRIGGER usage_calls_no_update;
DROP TRIGGER usage_calls_no_delete;
DROP INDEX usage_calls_namespace;
DROP INDEX usage_calls_idem;
DROP INDEX usage_calls_payer;
ALTER TABLE usage_calls RENAME TO usage_calls_v1;
ALTER TABLE usage_outbox RENAME TO usage_outbox_v1;
${SCHEMA}
INSERT INTO usage_calls SELECT * FROM usage_calls_v1;
INSERT INTO usage_outbox (request_id, payer) SELECT request_id, payer FROM usage_outbox_v1;
DROP TABLE usage_outbox_v1;
DROP TABLE usage_calls_v1;
`;

interface Counter {
  /** free calls recorded this period */
  used: number;
  /** free slots held by calls in flight */
  inflight: number;
}

/** What the meter knows of a payer (kept exact by this process alone, see README). */
interface PayerState {
  payer: string;
  /** the ledger balance of customer:<payer>:balance as of the last read, less the usage postings since */
  ledger: number;
  /** credit held by calls in flight */
  held: number;
  /** charges recorded and not yet in the ledger */
  unposted: number;
  /** the period of `spent` and `counters` */
  period: string;
  /** units charged in `period` */
  spent: number;
  /** free quota use per `service\nendpoint` in `period` */
  counters: Map<string, Counter>;
  /** ms (Date.now) `ledger` was read from the ledger */
  readAt: number;
  /** a balance read under way (a shortfall asks the ledger again, once, for top-ups) */
  refreshing?: Promise<void>;
}

interface LocalHold extends Hold {
  state: PayerState;
  counter: Counter;
  released?: boolean;
}

/** the outbox's own columns beside a record's (NULL in a row of version 1: one call) */
interface OutboxRaw {
  outbox_amount: number | null;
  outbox_calls: number | null;
}

/**
 * The charges of a tick's records: one per payer, period, endpoint and price, keyed by
 * its first call (whose posting key every record of it takes), one per idempotent call.
 */
function chargesOf(records: CallRecord[], batch: Pending<never>[]): Charge[] {
  const groups = new Map<string, Charge>();
  records.forEach((r, i) => {
    if (r.charged <= 0) return;
    const idem = (batch[i] as Pending<never>).hold.admission.idem !== undefined;
    const group = idem ? `k\n${r.requestId}` : `r\n${r.payer}\n${r.period}\n${r.service}\n${r.endpoint}\n${r.price}`;
    const c = groups.get(group);
    if (!c) {
      groups.set(group, chargeOf(r));
      return;
    }
    c.amount += r.charged;
    c.calls++;
    r.posting = c.posting;
  });
  return [...groups.values()];
}

export interface SqliteMeterOptions {
  logger?: Logger;
  /**
   * ms a payer's ledger balance is trusted before a charge reads it again (default 5,000):
   * postings of others than the meter (a top-up, a chargeback) are seen within it; a
   * shortfall reads it at once
   */
  balanceTtl?: number;
}

export class SqliteMeterEngine implements MeterEngine {
  readonly kind = 'sqlite';
  private readonly payers = new Map<string, PayerState>();
  private readonly loading = new Map<string, Promise<PayerState>>();
  private readonly locks = new Map<string, Promise<void>>();
  /** the outbox in memory, oldest first: every charge recorded and not yet posted */
  private readonly queue = new Map<string, Charge>();
  private readonly commits: GroupCommit<Pending<never>>;
  private st!: ReturnType<SqliteMeterEngine['prepare']>;
  /** the records' connection (opened by start) */
  private records: DeferredSyncDatabase | undefined;
  private readonly balanceTtl: number;

  constructor(
    private readonly db: Database,
    private readonly ledger: Ledger,
    private readonly path: string,
    private readonly options: SqliteMeterOptions = {},
  ) {
    this.commits = new GroupCommit((batch) => this.write(batch));
    this.balanceTtl = options.balanceTtl ?? 5_000;
  }

  private prepare(db: Database) {
    return {
      insert: db.prepare(`INSERT INTO usage_calls (${CALL_COLUMNS}) VALUES (${CALL_COLUMNS.split(',').map(() => '?').join(', ')})`),
      outbox: db.prepare('INSERT INTO usage_outbox (request_id, payer, amount, calls) VALUES (?, ?, ?, ?)'),
      unbox: db.prepare('DELETE FROM usage_outbox WHERE request_id = ?'),
      done: db.prepare<[string], { one: number }>("SELECT 1 AS one FROM usage_calls WHERE idem = ? AND outcome = 'ok' LIMIT 1"),
      used: db.prepare<[string, string, string, string], { n: number }>('SELECT COUNT(*) AS n FROM usage_calls WHERE payer = ? AND period = ? AND service = ? AND endpoint = ? AND free = 1'),
      spent: db.prepare<[string, string], { n: number }>('SELECT COALESCE(SUM(charged), 0) AS n FROM usage_calls WHERE payer = ? AND period = ?'),
      pending: db.prepare<[], CallRowRaw & OutboxRaw>('SELECT c.*, o.amount AS outbox_amount, o.calls AS outbox_calls FROM usage_outbox o JOIN usage_calls c ON c.request_id = o.request_id ORDER BY c.at, c.request_id'),
    };
  }

  async start(): Promise<void> {
    ensureBillingSchema(this.db, 'metering', METERING_SQLITE_VERSION, () => {
      const v1 = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_calls'").get() !== undefined;
      this.db.exec(v1 ? FROM_V1 : SCHEMA);
    });
    this.records = new DeferredSyncDatabase(this.path);
    this.st = this.prepare(this.records.db);
    // the outbox left by the last run (a crash): posted by the meter's first round
    for (const row of this.st.pending.all()) {
      const r = callOf(row);
      const c = chargeOf(r);
      if (row.outbox_amount !== null) c.amount = Number(row.outbox_amount);
      if (row.outbox_calls !== null) c.calls = Number(row.outbox_calls);
      this.queue.set(r.requestId, c);
    }
  }

  // ---- admission ---------------------------------------------------------------------

  admit(a: Admission): Hold | Promise<Hold> {
    const s = this.payers.get(a.payer);
    if (s) return this.decide(s, a, false);
    return this.load(a.payer).then((loaded) => this.decide(loaded, a, false));
  }

  /** Synchronous unless the credit falls short or its balance is old: then the ledger is read once more and the call decided again. */
  private decide(s: PayerState, a: Admission, refreshed: boolean): LocalHold | Promise<LocalHold> {
    this.roll(s, a.period);
    const counter = this.counter(s, a);
    const kind = decide(a, {
      done: a.idem !== undefined && this.st.done.get(a.idem) !== undefined,
      used: counter.used,
      inflight: counter.inflight,
      spent: s.spent,
      held: s.held,
      balance: s.ledger,
      unposted: s.unposted,
    });
    // a charge against a balance read long ago (others post too: top-ups, chargebacks) or one that falls short reads it again, once
    const stale = kind === 'charge' && a.price > 0 && Date.now() - s.readAt > this.balanceTtl;
    if ((kind === 'short' || stale) && !refreshed) return this.refresh(s).then(() => this.decide(s, a, true));
    if (kind === 'short') throw insufficientCredit();
    // one literal of every field: a hold built by spreading another and then given more fields is a slow object on the hot path
    const hold: LocalHold = { admission: a, kind, amount: kind === 'charge' ? a.price : 0, state: s, counter, released: false };
    if (kind === 'free') counter.inflight++;
    s.held += hold.amount;
    return hold;
  }

  /** A new period starts with its own counts (read from the records: a restart mid-period). */
  private roll(s: PayerState, period: string): void {
    if (s.period === period) return;
    s.period = period;
    s.counters = new Map();
    s.spent = (this.st.spent.get(s.payer, period) as { n: number }).n;
  }

  private counter(s: PayerState, a: Admission): Counter {
    const key = `${a.service}\n${a.endpoint}`;
    let c = s.counters.get(key);
    if (!c) {
      c = { used: (this.st.used.get(s.payer, s.period, a.service, a.endpoint) as { n: number }).n, inflight: 0 };
      s.counters.set(key, c);
    }
    return c;
  }

  /** The payer's state, read once under its lock (no posting of its charges runs meanwhile). */
  private load(payer: string): Promise<PayerState> {
    let p = this.loading.get(payer);
    if (p) return p;
    p = this.locked(payer, async () => {
      await openPayerAccounts(this.ledger, payer);
      const balance = await this.ledger.balance(balanceAccount(payer));
      let unposted = 0;
      for (const c of this.queue.values()) if (c.payer === payer) unposted += c.amount;
      const s: PayerState = { payer, ledger: balance, readAt: Date.now(), held: 0, unposted, period: '', spent: 0, counters: new Map() };
      this.payers.set(payer, s);
      return s;
    }).finally(() => this.loading.delete(payer));
    this.loading.set(payer, p);
    return p;
  }

  /** The ledger balance read again under the payer's lock: exact against this process's postings, and sees top-ups. */
  private refresh(s: PayerState): Promise<void> {
    return (s.refreshing ??= this.locked(s.payer, async () => {
      const readAt = Date.now();
      s.ledger = await this.ledger.balance(balanceAccount(s.payer));
      s.readAt = readAt;
    }).finally(() => (s.refreshing = undefined)));
  }

  /** `fn` after every earlier holder of the payer's lock (loads, refreshes and postings of its charges). */
  private locked<T>(payer: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(payer) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(payer, tail);
    void tail.then(() => {
      if (this.locks.get(payer) === tail) this.locks.delete(payer);
    });
    return run;
  }

  // ---- settling ----------------------------------------------------------------------

  settle(hold: Hold, outcome: Outcome): Promise<CallRecord> {
    // a failure gives back what it held at once; its record follows with the tick's others
    if (!outcome.ok) this.release(hold as LocalHold);
    return new Promise((resolve, reject) => this.commits.add({ hold, outcome, resolve, reject }));
  }

  private release(h: LocalHold): void {
    if (h.released) return;
    h.released = true;
    h.state.held -= h.amount;
    if (h.kind === 'free') h.counter.inflight--;
  }

  /**
   * One transaction for the records of the tick: a success turns its hold into a charge, a
   * free call or a replay. The charged calls of one payer, endpoint and price in the tick
   * make one outbox row and so one ledger posting (`calls: N`), keyed by the first one's
   * request id; every record names that posting. An idempotent call keeps a posting of
   * its own (its key is what charges a retry once).
   */
  private write(batch: Pending<never>[]): Promise<void> | undefined {
    const done = new Set<string>();
    const records = batch.map((e) => {
      const a = e.hold.admission;
      let kind: Hold['kind'] | 'failed' = e.outcome.ok ? e.hold.kind : 'failed';
      // the first success of an Idempotency-Key is the one charged; later ones (in this batch too) are replays
      if (kind !== 'failed' && a.idem !== undefined) {
        if (kind !== 'replay' && (done.has(a.idem) || this.st.done.get(a.idem) !== undefined)) kind = 'replay';
        done.add(a.idem);
      }
      return recordOf(a, e.outcome, kind);
    });
    const charges = chargesOf(records, batch);
    const conn = this.records as DeferredSyncDatabase;
    try {
      conn.db
        .transaction(() => {
          records.forEach((r, i) => this.st.insert.run(...callValues(r, (batch[i] as Pending<never>).hold.admission.idem)));
          for (const c of charges) this.st.outbox.run(c.requestId, c.payer, c.amount, c.calls);
        })
        .immediate();
    } catch (err) {
      this.failed(batch, err);
      return undefined;
    }
    // committed: what the records leave in memory is this process's at once (later admissions and batches count them) …
    for (const c of charges) this.queue.set(c.requestId, c);
    batch.forEach((e, i) => this.apply(e.hold as LocalHold, records[i] as CallRecord));
    // … and their callers are answered once the records are on disk
    return conn.durable().then(
      () => batch.forEach((e, i) => e.resolve(records[i] as CallRecord)),
      (err: unknown) => {
        // the disk refused the flush: the records may not survive a power cut, so no call of the batch is answered as a success
        this.options.logger?.error({ err }, 'metering: flushing call records failed; their calls are answered with an error');
        for (const e of batch) e.reject(err);
      },
    );
  }

  private failed(batch: Pending<never>[], err: unknown): void {
    this.options.logger?.error({ err }, 'metering: recording calls failed; they are not charged');
    for (const e of batch) {
      this.release(e.hold as LocalHold);
      e.reject(err);
    }
  }

  /** What a recorded call leaves in memory: its hold released, a free slot used, a charge to post (queued by write). */
  private apply(h: LocalHold, r: CallRecord): void {
    this.release(h);
    if (r.free) h.counter.used++;
    if (r.charged > 0) {
      if (h.state.period === r.period) h.state.spent += r.charged;
      h.state.unposted += r.charged;
    }
  }

  // ---- the outbox --------------------------------------------------------------------

  async unposted(limit: number): Promise<Charge[]> {
    const out: Charge[] = [];
    for (const c of this.queue.values()) {
      if (out.length >= limit) break;
      out.push(c);
    }
    return out;
  }

  post(payer: string, charges: Charge[], post: PostCharges): Promise<{ posted: Posted; balance: number }> {
    return this.locked(payer, async () => {
      const pending = charges.filter((c) => this.queue.has(c.requestId));
      const posted = pending.length > 0 ? await post(pending) : { done: [], fromBalance: 0, toDue: 0 };
      // the ledger has them: out of the outbox (a crash before this posts them again, as replays)
      (this.records as DeferredSyncDatabase).db.transaction(() => {
        for (const id of posted.done) this.st.unbox.run(id);
      })();
      let landed = 0;
      for (const id of posted.done) {
        landed += this.queue.get(id)?.amount ?? 0;
        this.queue.delete(id);
      }
      const s = this.payers.get(payer);
      if (!s) return { posted, balance: await this.ledger.balance(balanceAccount(payer)) };
      s.unposted -= landed;
      // charges put on the due account left the balance as it was: read it (it was lower than known)
      if (posted.toDue > 0) {
        s.readAt = Date.now();
        s.ledger = await this.ledger.balance(balanceAccount(payer));
      } else s.ledger -= posted.fromBalance;
      return { posted, balance: s.ledger };
    });
  }

  // ---- reads -------------------------------------------------------------------------

  async usage(filter: UsageFilter, by: 'endpoint' | 'day' | 'key'): Promise<UsageRow[]> {
    const q = usageQuery('usage_calls', filter, by);
    return this.reader().prepare<unknown[], UsageRowRaw>(q.sql).all(...q.params).map(usageRowOf);
  }

  async quotas(payer: string, period: string): Promise<QuotaRow[]> {
    const q = quotasQuery('usage_calls', payer, period);
    return this.reader().prepare<unknown[], QuotaRowRaw>(q.sql).all(...q.params).map(quotaRowOf);
  }

  async calls(filter: UsageFilter, limit: number): Promise<CallRecord[]> {
    const q = callsQuery('usage_calls', filter, limit);
    return this.reader().prepare<unknown[], CallRowRaw>(q.sql).all(...q.params).map(callOf);
  }

  /** the records' connection once started (it sees its own commits before they are flushed), the ledger's before */
  private reader(): Database {
    return this.records?.db ?? this.db;
  }

  /** Writes the records still waiting for their tick and closes the records' connection (billing.db itself is the ledger's, closed by the hub). */
  async close(): Promise<void> {
    await this.commits.drain();
    await this.records?.close();
    this.records = undefined;
  }
}
