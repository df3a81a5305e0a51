import type { Logger, RuntimeService } from '@micro/sdk';
import { migrate, openPostgres, type Migration, type Postgres } from '../postgres/index.js';
import { Sealer } from '../auth/crypto.js';
import { LEASE_MIGRATION, NodeLease, type NodeLeaseOptions } from './lease.js';
import { PLACEMENT_MIGRATION, PostgresPlacement } from './placement.js';

/**
 * The runtime state of every node, in PostgreSQL (nats profile): each node's runtime
 * publishes what it runs — the same views `micro status` shows — so that any node can
 * answer for the whole platform, and says which node runs what.
 *
 * Each node stays the authority on its own processes: it keeps its own state in
 * `<home>/runtime/state.json` (what it needs to restart them after a crash, readable with
 * PostgreSQL away) and starts, updates and kills only its own services. Publishing is
 * write-behind: the views are written at most every `flushInterval` ms after a change
 * (and at least every `heartbeat` ms, which tells other nodes this one lives); a failed
 * write is logged and tried again at the next one.
 *
 * Whether a node lives is its lease (lease.ts), not how recent its rows are: what a node
 * without a lease published — or published before its restart, until it publishes again
 * — is read back marked `lost` (markLost), never as running.
 */

export const RUNTIME_MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'runtime_services: what each node runs',
    up: `CREATE TABLE runtime_services (
      node text NOT NULL,
      namespace text NOT NULL,
      name text NOT NULL,
      view jsonb NOT NULL,
      seen_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (node, namespace, name)
    )`,
  },
  LEASE_MIGRATION,
  PLACEMENT_MIGRATION,
];

/** A service another node runs, as that node last published it. */
export interface RemoteRuntimeService {
  node: string;
  /** epoch ms of the node's last write: a node not seen for a few heart-beats may be gone */
  seenAt: number;
  /** whether the node holds its lease and published since it started: else its services show as lost */
  live: boolean;
  service: RuntimeService;
}

export interface RuntimeDirectory {
  /** Replaces this node's published services (write-behind). */
  publish(services: RuntimeService[]): void;
  /** The services other nodes run, optionally of one namespace and name. */
  others(filter: { namespace?: string; name?: string }): Promise<RemoteRuntimeService[]>;
  close(): Promise<void>;
}

export interface PostgresRuntimeDirectoryOptions {
  url: string;
  prefix: string;
  /** this node's id (home.ts nodeId) */
  node: string;
  logger?: Logger;
  /** ms between a change and its write (default 200) */
  flushInterval?: number;
  /** ms between writes without changes (default 15,000) */
  heartbeat?: number;
  /** this node's lease (default: 10 s, renewed every third of it); its address for the table */
  lease?: Omit<NodeLeaseOptions, 'node' | 'logger'>;
  /** MICRO_AUTH_KEY: seals the env of each service in the desired state (placement.ts) */
  authKey: string;
}

export class PostgresRuntimeDirectory implements RuntimeDirectory {
  /** undefined until the runtime first publishes: a heart-beat before that must not erase the node's rows */
  private latest: RuntimeService[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly beat: NodeJS.Timeout;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly flushInterval: number;

  private constructor(
    private readonly db: Postgres,
    private readonly options: PostgresRuntimeDirectoryOptions,
    /** this node's lease, taken before anything is published */
    readonly lease: NodeLease,
    /** what should run on the platform, and where */
    readonly placement: PostgresPlacement,
  ) {
    this.flushInterval = options.flushInterval ?? 200;
    this.beat = setInterval(() => {
      if (this.latest) this.schedule(0);
    }, options.heartbeat ?? 15_000);
    this.beat.unref();
  }

  static async open(options: PostgresRuntimeDirectoryOptions): Promise<PostgresRuntimeDirectory> {
    const db = await openPostgres({ url: options.url, prefix: options.prefix, errorId: 'runtime', logger: options.logger });
    let lease: NodeLease;
    const placement = new PostgresPlacement(db, new Sealer(options.authKey), options.logger ? { logger: options.logger } : {});
    try {
      await migrate(db, 'runtime', RUNTIME_MIGRATIONS);
      lease = await NodeLease.acquire(db, { address: '', ...options.lease, node: options.node, ...(options.logger ? { logger: options.logger } : {}) });
    } catch (err) {
      await db.close();
      throw err;
    }
    return new PostgresRuntimeDirectory(db, options, lease, placement);
  }

  publish(services: RuntimeService[]): void {
    this.latest = services;
    this.schedule(this.flushInterval);
  }

  private schedule(delay: number): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.writing = this.writing.then(() => this.flush());
    }, delay);
    this.timer.unref();
  }

  /** Writes this node's services in one transaction: upserts what runs, deletes what went. */
  private async flush(): Promise<void> {
    const services = this.latest;
    if (!services) return;
    const { node } = this.options;
    try {
      await this.db.transaction(async (client) => {
        const keys = services.map((s) => `${s.namespace}/${s.name}`);
        await client.query(`DELETE FROM ${this.db.schema}.runtime_services WHERE node = $1 AND NOT (namespace || '/' || name = ANY($2::text[]))`, [node, keys]);
        for (const s of services) {
          await client.query(
            `INSERT INTO ${this.db.schema}.runtime_services (node, namespace, name, view, seen_at) VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (node, namespace, name) DO UPDATE SET view = EXCLUDED.view, seen_at = now()`,
            [node, s.namespace, s.name, JSON.stringify(s)],
          );
        }
        // the heart-beat: rows that did not change are still this live node's
        await client.query(`UPDATE ${this.db.schema}.runtime_services SET seen_at = now() WHERE node = $1`, [node]);
      });
    } catch (err) {
      this.options.logger?.warn({ err }, 'could not publish the runtime state to PostgreSQL; trying again at the next change or heart-beat');
    }
  }

  async others(filter: { namespace?: string; name?: string }): Promise<RemoteRuntimeService[]> {
    // judged by the database's clock: node clocks that disagree do not matter
    const res = await this.db.query<{ node: string; view: RuntimeService; seen_at: Date; live: boolean }>(
      `SELECT s.node, s.view, s.seen_at, coalesce(n.lease_until > now() AND s.seen_at >= n.started_at, false) AS live
       FROM ${this.db.schema}.runtime_services s LEFT JOIN ${this.db.schema}.runtime_nodes n ON n.node = s.node
       WHERE s.node <> $1 AND ($2::text IS NULL OR s.namespace = $2) AND ($3::text IS NULL OR s.name = $3)
       ORDER BY s.namespace, s.name, s.node LIMIT 1000`,
      [this.options.node, filter.namespace ?? null, filter.name ?? null],
    );
    return res.rows.map((r) => ({ node: r.node, seenAt: r.seen_at.getTime(), live: r.live, service: r.live ? r.view : markLost(r.view) }));
  }

  /**
   * Writes what is pending, ends the lease, then lets go of the pool. The node's rows stay
   * (they show as lost until it starts again and publishes).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.beat);
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.writing = this.writing.then(() => this.flush());
    }
    await this.writing;
    await this.lease.close();
    await this.db.close();
  }
}

/**
 * A service as a node without a lease last published it: nothing of it is known to run.
 * Every instance is `lost`, without pid or start time (no uptime counts); why it last
 * stopped and its build stay.
 */
export function markLost(service: RuntimeService): RuntimeService {
  return {
    ...service,
    state: 'lost',
    instances: service.instances.map((i) => ({ id: i.id, state: 'lost', restarts: i.restarts, ...(i.lastError ? { lastError: i.lastError } : {}) })),
  };
}
