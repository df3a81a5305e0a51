import pg from 'pg';
import { errors, LocalLockEngine, LockSync, SYNC_ERROR_ID, SYNC_LIMITS, lockInfo, storeEngine, syncService, tooManyLocks, type AcquireResult, type LockInfo, type LockRow, type Logger, type NatsProfile } from '@micro/sdk';
import type { CoreServiceFactory } from '../core.js';
import { migrate, openPostgres, type Migration, type Postgres, type PostgresOptions } from '../postgres/index.js';
import { syncHandlers } from './handlers.js';

/**
 * Locks in PostgreSQL, shared by every micro server node of a platform (schema: the
 * prefix):
 *
 * - `locks(namespace, name, holder, owner, fence, expires_at)`: one row per lock taken and
 *   not released, as in SQLite. Taking a lock is one statement: the namespace's next
 *   fencing token (`fences`, whose row lock orders the acquisitions of a namespace) and an
 *   upsert of the lock's row that only replaces a row whose lease passed. Two nodes that
 *   race for a free lock: Postgres makes one upsert wait for the other and then finds the
 *   lease live, so exactly one wins. Renew and release are single statements that check
 *   the holder.
 * - Fencing tokens come from `fences` and never go back (a token is handed out only after
 *   the commit that recorded it is flushed). A token skipped by a lost race is not reused.
 * - Waiting: a release sends NOTIFY `<prefix>_sync`; every node LISTENs on one connection
 *   of its own and wakes its waiters for that lock. A waiter also wakes when the holder's
 *   lease passes, so a lost notification (the listening connection broke) costs time,
 *   never a lock; while that connection is down, waiters look again every second.
 * - Leases are in epoch ms of the node's clock: the nodes' clocks must agree (NTP) to
 *   well within a lease.
 */

export const SYNC_POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'locks and fencing tokens',
    up: `
      CREATE TABLE locks (
        namespace  text COLLATE "C" NOT NULL,
        name       text COLLATE "C" NOT NULL,
        holder     text NOT NULL,
        owner      text,
        fence      bigint NOT NULL,
        expires_at bigint NOT NULL,
        PRIMARY KEY (namespace, name)
      );
      CREATE INDEX locks_live ON locks (namespace, expires_at);
      CREATE INDEX locks_expiry ON locks (expires_at);
      CREATE TABLE fences (namespace text COLLATE "C" PRIMARY KEY, fence bigint NOT NULL);
    `,
  },
];

/** how often passed leases are swept, at most (ms) */
const SWEEP_EVERY = 10_000;
/** while the listening connection is down: how often waiters look again (ms) */
const POLL_WHILE_DEAF = 1_000;

interface Row {
  holder: string;
  owner: string | null;
  fence: string;
  expires_at: string;
}

export interface PostgresLocksOptions extends Omit<PostgresOptions, 'errorId'> {
  logger?: Logger;
}

export class PostgresLocks extends LocalLockEngine {
  readonly name = 'postgres';
  private readonly sql: { row: string; acquire: string; count: string; extend: string; remove: string; sweep: string };
  private readonly channel: string;
  private listener: pg.Client | undefined;
  private deaf: NodeJS.Timeout | undefined;
  private reconnect: NodeJS.Timeout | undefined;
  private lastSweep = 0;
  private stopped = false;

  /** Opens the pool, brings the schema up to date and starts listening for releases. */
  static async open(options: PostgresLocksOptions): Promise<PostgresLocks> {
    const db = await openPostgres({ ...options, errorId: SYNC_ERROR_ID });
    try {
      await migrate(db, 'sync', SYNC_POSTGRES_MIGRATIONS);
      const engine = new PostgresLocks(db, options);
      await engine.listen();
      return engine;
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  private constructor(
    readonly db: Postgres,
    private readonly options: PostgresLocksOptions,
  ) {
    super();
    const s = db.schema;
    this.channel = `${db.prefix}_sync`;
    this.sql = {
      row: `SELECT holder, owner, fence, expires_at FROM ${s}.locks WHERE namespace = $1 AND name = $2`,
      acquire: `
        WITH f AS (
          INSERT INTO ${s}.fences (namespace, fence) VALUES ($1, 1)
          ON CONFLICT (namespace) DO UPDATE SET fence = ${s}.fences.fence + 1
          RETURNING fence
        )
        INSERT INTO ${s}.locks (namespace, name, holder, owner, fence, expires_at)
        SELECT $1, $2, $3, $4, f.fence, $5 FROM f
        ON CONFLICT (namespace, name) DO UPDATE
          SET holder = excluded.holder, owner = excluded.owner, fence = excluded.fence, expires_at = excluded.expires_at
          WHERE ${s}.locks.expires_at <= $6
        RETURNING fence`,
      count: `SELECT count(*)::int AS n FROM ${s}.locks WHERE namespace = $1 AND expires_at > $2`,
      extend: `UPDATE ${s}.locks SET expires_at = $1 WHERE namespace = $2 AND name = $3 AND holder = $4`,
      // the notification goes out when the delete commits, to every node
      remove: `WITH d AS (DELETE FROM ${s}.locks WHERE namespace = $1 AND name = $2 AND holder = $3 RETURNING name) SELECT pg_notify($4, $5) FROM d`,
      sweep: `DELETE FROM ${s}.locks WHERE expires_at < $1`,
    };
  }

  protected async tryAcquire(namespace: string, name: string, ttl: number, owner: string | undefined, holder: string, now: number): Promise<AcquireResult> {
    wellFormed(namespace, 'namespace');
    wellFormed(name, 'name');
    if (owner !== undefined) wellFormed(owner, 'owner');
    this.sweep(now);
    let current = await this.row(namespace, name);
    // bounded rounds: each lost round means another caller took and released the lock
    // between our insert and our read (20 workers on one hot lock lost 5 rounds in a row
    // on a loaded CI machine); each round is two short statements
    for (let round = 0; round < 50; round++) {
      if (current && current.expiresAt > now) return { held: lockInfo(namespace, name, current) };
      if (!current) {
        const { rows } = await this.db.query<{ n: number }>(this.sql.count, [namespace, now]);
        if ((rows[0]?.n ?? 0) >= SYNC_LIMITS.locksPerNamespace) throw tooManyLocks(namespace);
      }
      const expiresAt = now + ttl;
      const { rows } = await this.db.query<{ fence: string }>(this.sql.acquire, [namespace, name, holder, owner ?? null, expiresAt, now]);
      if (rows[0]) return { lease: { namespace, name, token: Number(rows[0].fence), ...(owner !== undefined ? { owner } : {}), expiresAt, holder } };
      current = await this.row(namespace, name);
    }
    if (current) return { held: lockInfo(namespace, name, current) };
    throw errors.ServiceUnavailable(SYNC_ERROR_ID, `lock ${name} changes hands too fast to take: try again`);
  }

  protected async row(namespace: string, name: string): Promise<LockRow | undefined> {
    const { rows } = await this.db.query<Row>(this.sql.row, [namespace, name]);
    return rows[0] && toLockRow(rows[0]);
  }

  protected async extend(namespace: string, name: string, holder: string, expiresAt: number): Promise<boolean> {
    return (await this.db.query(this.sql.extend, [expiresAt, namespace, name, holder])).rowCount === 1;
  }

  protected async remove(namespace: string, name: string, holder: string): Promise<boolean> {
    const payload = JSON.stringify([namespace, name]);
    return (await this.db.query(this.sql.remove, [namespace, name, holder, this.channel, payload])).rowCount === 1;
  }

  protected async live(namespace: string, prefix: string, limit: number, now: number): Promise<LockInfo[]> {
    wellFormed(prefix, 'prefix');
    const params: unknown[] = [namespace, now, prefix, limit];
    const upper = prefix ? storeEngine.prefixUpperBound(prefix) : undefined;
    if (upper !== undefined) params.push(upper);
    const { rows } = await this.db.query<Row & { name: string }>(
      `SELECT name, holder, owner, fence, expires_at FROM ${this.db.schema}.locks
       WHERE namespace = $1 AND expires_at > $2 AND name >= $3 ${upper !== undefined ? 'AND name < $5' : ''} ORDER BY name LIMIT $4`,
      params,
    );
    return rows.map((r) => lockInfo(namespace, r.name, toLockRow(r)));
  }

  protected async release_(): Promise<void> {
    this.stopped = true;
    clearInterval(this.deaf);
    clearTimeout(this.reconnect);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
    await this.db.close();
  }

  /** Deletes rows whose lease passed more than the renew grace ago, now and then, in the background. */
  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY) return;
    this.lastSweep = now;
    this.db.query(this.sql.sweep, [now - SYNC_LIMITS.renewGrace]).catch(() => undefined);
  }

  /** LISTENs on a connection of its own; reconnects (with backoff) when it breaks. */
  private async listen(delay = 250): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.options.url, connectionTimeoutMillis: 5_000, keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost) return;
      lost = true;
      client.end().catch(() => undefined);
      if (this.listener === client) this.listener = undefined;
      if (this.stopped) return;
      this.options.logger?.warn({ err: err?.message }, 'sync: lost the postgres connection that hears releases; reconnecting');
      this.deafen();
      this.reconnect = setTimeout(() => void this.listen(Math.min(delay * 2, 5_000)), delay);
      this.reconnect.unref();
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (msg) => {
      if (msg.channel !== this.channel || !msg.payload) return;
      try {
        const [namespace, name] = JSON.parse(msg.payload) as [string, string];
        this.wakeWaiters(namespace, name);
      } catch {
        // not ours: only this engine notifies on the channel
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.channel}"`);
    } catch (err) {
      onLost(err as Error);
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    clearInterval(this.deaf);
    this.deaf = undefined;
    // releases made while it was not listening were not heard: every waiter looks again
    this.wakeWaiters();
  }

  /** While no connection listens, waiters look again every second. */
  private deafen(): void {
    if (this.deaf) return;
    this.deaf = setInterval(() => this.wakeWaiters(), POLL_WHILE_DEAF);
    this.deaf.unref();
  }
}

/** Sync over PostgresLocks. */
export class PostgresSync extends LockSync {
  static async open(options: PostgresLocksOptions): Promise<PostgresSync> {
    return new PostgresSync(await PostgresLocks.open(options));
  }
}

/** The sync service of micro server on Postgres (MICRO_PROFILE=nats): `postgresSyncCoreService(profile)`. */
export function postgresSyncCoreService(profile: Pick<NatsProfile, 'postgresUrl' | 'prefix'>): CoreServiceFactory {
  return async (ctx) => {
    const engine = await PostgresLocks.open({ url: profile.postgresUrl, prefix: profile.prefix, logger: ctx.logger });
    return { def: syncService, handlers: syncHandlers(engine), stop: () => engine.close() };
  };
}

function toLockRow(row: Row): LockRow {
  return { holder: row.holder, token: Number(row.fence), expiresAt: Number(row.expires_at), ...(row.owner !== null ? { owner: row.owner } : {}) };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A lone surrogate has no UTF-8 form: two different names would become one lock. */
function wellFormed(value: string, field: string): void {
  if (LONE_SURROGATE.test(value)) throw errors.BadRequest(SYNC_ERROR_ID, `${field} must be well-formed Unicode (it has a lone surrogate)`);
}
