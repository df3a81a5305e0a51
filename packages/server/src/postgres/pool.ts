import { createHash } from 'node:crypto';
import pg from 'pg';
import { connectWithBackoff, errors, redactUrl, type BackoffOptions, type Logger } from '@micro/sdk';

/**
 * One pg.Pool per Postgres URL, shared by every engine of micro server that uses that URL
 * (store, sync, auth...): each opens a `Postgres` handle with `openPostgres`, and the pool
 * ends when the last handle closes. See README.md in this folder.
 */

export interface PostgresOptions {
  /** postgres://user:password@host:port/database (MICRO_POSTGRES_URL) */
  url: string;
  /** the schema every table of this platform lives in: the profile's prefix (MICRO_PREFIX) */
  prefix: string;
  /** the `id` of the typed errors this handle throws, e.g. `micro.store` (default `micro.postgres`) */
  errorId?: string;
  /** how long and how often to try at start (connectWithBackoff; default 30 s in all) */
  backoff?: BackoffOptions;
  /** connections of the pool (default 10); taken from the first handle that makes the pool */
  max?: number;
  /**
   * ms a statement may take before the call fails with a 503 and its connection is dropped
   * (default 30,000): a Postgres that stops answering (a network cut without a reset)
   * fails calls rather than hanging them. From the first handle, as `max`.
   */
  queryTimeout?: number;
  /** told when an idle connection breaks (default: nothing) */
  logger?: Logger;
}

/** What a Postgres handle can be asked: a pool, or a client in a transaction. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

export interface Postgres {
  /** the URL, password hidden (for messages) */
  readonly url: string;
  /** the prefix, unquoted */
  readonly prefix: string;
  /** the schema as a quoted SQL identifier, ready to write `${pg.schema}.records` */
  readonly schema: string;
  /** the shared pool (prefer `query` and `transaction`, which type lost connections) */
  readonly pool: pg.Pool;
  /**
   * One statement on a pooled connection, prepared once per connection (named by a hash
   * of its text: keep values in `params`, never in the text); a lost connection is a 503
   * ServiceUnavailable.
   */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  /**
   * `fn` inside BEGIN … COMMIT on one connection (ROLLBACK when it throws); resolves once
   * the commit is durable. A lost connection is a 503 ServiceUnavailable.
   * `idleTimeout` (whole ms): Postgres ends the session when the client sends nothing for
   * that long inside the transaction (`idle_in_transaction_session_timeout`, set with the
   * BEGIN: no extra round trip), so the locks of a client whose host or network was lost
   * are not kept until TCP keepalive gives up (hours). Only for transactions that send
   * their statements back to back.
   * `noJit`: `SET LOCAL jit = off` with the BEGIN (no extra round trip), for short
   * transactions whose plans PostgreSQL might otherwise compile on every run.
   * `pipeline`: statements go out without waiting for the answer of the one before (the
   * connection in pg's pipeline mode for the transaction): the BEGIN travels with `fn`'s
   * first statement, and `fn` may call `commit()` right after sending its last one, so
   * that the COMMIT travels with it. A statement that fails aborts the transaction and
   * the COMMIT sent behind it then rolls back: `fn` must make every condition it would
   * roll back for an error of a statement (nothing is decided in JavaScript between its
   * last statement and the COMMIT). Once `commit()` is called, what `fn` throws undoes
   * nothing the COMMIT kept. No cursors or `rows` queries in `fn`.
   */
  transaction<T>(fn: (client: pg.PoolClient, commit: () => Promise<void>) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Turns a pg error into the typed one this handle throws (lost connection → 503); others pass. */
  fail(err: unknown): unknown;
  /** Releases this handle; the pool ends with the last handle of its URL. */
  close(): Promise<void>;
}

export interface TransactionOptions {
  /** ms without a statement inside the transaction before Postgres ends the session (default: the server's) */
  idleTimeout?: number;
  /** `SET LOCAL jit = off` (default false) */
  noJit?: boolean;
  /** send statements without waiting for the answers of the ones before (default false) */
  pipeline?: boolean;
}

interface Shared {
  pool: pg.Pool;
  refs: number;
  ready: Promise<void>;
  logger?: Logger;
}

const pools = new Map<string, Shared>();

// at most 48 characters: room for suffixes such as `_sync` in the 63 bytes of a Postgres name
const PREFIX = /^[a-z][a-z0-9_]{0,47}$/;

/** The prefix as a quoted identifier (checked: it becomes part of SQL text). */
export function quoteSchema(prefix: string): string {
  if (!PREFIX.test(prefix)) throw new Error(`a Postgres schema (the prefix) must be lower-case letters, digits or _ and start with a letter, not "${prefix}"`);
  return `"${prefix}"`;
}

/**
 * A handle on the pool of `url`, connected: the first handle of a URL makes the pool and
 * waits for Postgres with backoff (an error naming the URL in the end; at once for wrong
 * credentials or a missing database, which waiting does not mend).
 */
export async function openPostgres(options: PostgresOptions): Promise<Postgres> {
  const schema = quoteSchema(options.prefix);
  const id = options.errorId ?? 'micro.postgres';
  let shared = pools.get(options.url);
  if (!shared) {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.max ?? 10,
      // a call fails fast (503) rather than waiting long for a Postgres that is away
      connectionTimeoutMillis: 5_000,
      query_timeout: options.queryTimeout ?? 30_000,
      idleTimeoutMillis: 30_000,
      // a connection whose peer vanished is noticed within a minute, not the OS's two hours
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // acknowledged means durable: a commit returns once it is flushed, whatever the server default
      options: '-c synchronous_commit=on',
    });
    const s: Shared = { pool, refs: 0, ready: Promise.resolve(), logger: options.logger };
    // an idle connection that breaks (Postgres restarted, a network cut) is dropped by the
    // pool; without a listener the 'error' event would end the process
    pool.on('error', (err) => s.logger?.warn({ err: err.message, url: redactUrl(options.url) }, 'postgres connection lost'));
    s.ready = connect(pool, options).catch(async (err: unknown) => {
      if (pools.get(options.url) === s) pools.delete(options.url);
      await pool.end().catch(() => undefined);
      throw err;
    });
    pools.set(options.url, s);
    shared = s;
  }
  shared.refs++;
  try {
    await shared.ready;
  } catch (err) {
    shared.refs--;
    throw err;
  }
  return handle(shared, options, schema, id);
}

async function connect(pool: pg.Pool, options: PostgresOptions): Promise<void> {
  // a permanent refusal (wrong password, unknown role or database) stops the retries
  const permanent = new AbortController();
  const outer = options.backoff?.signal;
  if (outer) outer.addEventListener('abort', () => permanent.abort(), { once: true });
  await connectWithBackoff(
    'postgres',
    options.url,
    async () => {
      try {
        const client = await pool.connect();
        try {
          await client.query('SELECT 1');
        } finally {
          client.release();
        }
      } catch (err) {
        if (isPermanent(err)) permanent.abort();
        throw err;
      }
    },
    { ...options.backoff, signal: permanent.signal },
  );
}

function handle(shared: Shared, options: PostgresOptions, schema: string, id: string): Postgres {
  let closed = false;
  const fail = (err: unknown): unknown => (isConnectionError(err) ? errors.ServiceUnavailable(id, `postgres at ${redactUrl(options.url)} is unavailable: ${(err as Error).message}`) : err);
  const checkOpen = () => {
    if (closed) throw errors.ServiceUnavailable(id, 'postgres handle is closed');
  };
  return {
    url: redactUrl(options.url),
    prefix: options.prefix,
    schema,
    pool: shared.pool,
    async query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]) {
      checkOpen();
      try {
        return await shared.pool.query<R>(statement(sql, params));
      } catch (err) {
        throw fail(err);
      }
    },
    async transaction<T>(fn: (client: pg.PoolClient, commit: () => Promise<void>) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
      checkOpen();
      const idle = options.idleTimeout;
      // it goes into the text of the statement: a whole number only
      if (idle !== undefined && (!Number.isSafeInteger(idle) || idle < 1)) throw new TypeError(`idleTimeout is a whole number of ms from 1, not ${String(idle)}`);
      let client: pg.PoolClient;
      try {
        client = await shared.pool.connect();
      } catch (err) {
        throw fail(err);
      }
      let broken: unknown;
      // a connection that breaks between the transaction's statements emits 'error' on the
      // checked-out client, which the pool does not listen to then: unheard, it would end the
      // process. The next statement fails with it, and the client is destroyed on release
      const onError = (err: Error) => (broken = err);
      client.on('error', onError);
      const piped = client as pg.PoolClient & { pipeline: boolean };
      if (options.pipeline) piped.pipeline = true;
      let committed: Promise<unknown> | undefined;
      const commit = async () => {
        if (!committed) {
          committed = client.query('COMMIT');
          // answered through this function, or awaited by the rollback on failure
          committed.catch(() => undefined);
        }
        await committed;
      };
      try {
        let begin = 'BEGIN';
        if (idle !== undefined) begin += `; SET LOCAL idle_in_transaction_session_timeout = ${idle}`;
        if (options.noJit) begin += '; SET LOCAL jit = off';
        const begun = client.query(begin);
        // pipelined: awaited after fn. Its texts are fixed, so the BEGIN fails only with the
        // connection (then so does everything behind it); a SET LOCAL that failed leaves the
        // transaction open and aborted, and fn's statements fail in it
        begun.catch(() => undefined);
        if (!options.pipeline) await begun;
        const result = await fn(client, commit);
        await begun;
        await commit();
        return result;
      } catch (err) {
        if (isConnectionError(err)) broken = err;
        // after a COMMIT sent (it rolled back, or failed): a warning, no error; it also waits for
        // every statement still in the pipeline, so the connection goes back to the pool idle
        else await client.query('ROLLBACK').catch((e: unknown) => (broken = e));
        throw fail(err);
      } finally {
        piped.pipeline = false;
        client.off('error', onError);
        // a connection that broke is destroyed, not handed to the next caller
        client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);
      }
    },
    fail,
    async close() {
      if (closed) return;
      closed = true;
      if (--shared.refs === 0 && pools.get(options.url) === shared) {
        pools.delete(options.url);
        await shared.pool.end();
      }
    },
  };
}

const names = new Map<string, string>();

/** A named statement: Postgres parses and plans it once per connection, not per call. */
export function statement(text: string, values: unknown[] = []): pg.QueryConfig {
  let name = names.get(text);
  if (name === undefined) {
    // bounded: texts come from the code, but a cache must not grow without end regardless
    if (names.size >= 10_000) names.clear();
    name = `micro_${createHash('sha256').update(text).digest('hex').slice(0, 40)}`;
    names.set(text, name);
  }
  return { name, text, values };
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * Whether an error means Postgres is out of reach (down, restarting, the network cut, the
 * connection killed, no connection left) rather than a fault of the statement.
 */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (CONNECTION_CODES.has(code)) return true;
    // SQLSTATE class 08: connection exception; 57P01-03: shut down, crashed, starting;
    // 53300: too many connections; 28xxx: credentials refused (changed while running);
    // 25P03: the server ended a session that sat idle in a transaction (the network was lost)
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300' || code === '25P03' || code.startsWith('28')) return true;
  }
  return /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Client was closed|Query read timeout/i.test(err.message);
}

/** Refusals that retrying does not mend: credentials, an unknown database. */
function isPermanent(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('28') || code === '3D000');
}
