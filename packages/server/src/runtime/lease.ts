import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from '@micro/sdk';
import type { Postgres } from '../postgres/index.js';

/**
 * Node leases (nats profile): each `micro server` node holds a row of
 * `<prefix>.runtime_nodes` (node, session, address, started_at, lease_until) and renews it
 * every `renewEvery` ms; a node whose lease_until has passed is gone for the others: its
 * published services show as `lost` in `micro status`, its core services leave `micro
 * services` (see README.md, "Several nodes").
 *
 * Clocks: lease_until is written with the database's now() and judged with it (in SQL),
 * or locally only by elapsed monotonic time since a reading of the database: node clocks
 * that disagree do not matter. The holder reckons its own lease conservatively from the
 * moment it sent the renewal (its lease ends for it no later than for the others), and
 * says so at once with the `lost` event: a node that cannot reach PostgreSQL knows it is
 * no longer believed alive. What to do then (stop its instances) belongs to the failover.
 *
 * `session` tells this run of a node from an earlier one with the same id: rows a node
 * published before its restart are stale until it publishes again (seen_at < started_at),
 * and a second server with a copy of the same home takes the lease from the first, which
 * logs it and stops renewing.
 */

/** MICRO_NODE_LEASE's default, in seconds. */
export const DEFAULT_NODE_LEASE = 10;

export interface NodeLeaseOptions {
  /** this node's id (home.ts nodeId) */
  node: string;
  /** where this node's RPC listens, for people reading the table */
  address: string;
  /** ms a lease lasts without renewal (default 10,000: MICRO_NODE_LEASE) */
  leaseMs?: number;
  /** ms between renewals (default a third of the lease) */
  renewEvery?: number;
  logger?: Logger;
  /** monotonic ms (default performance.now): only differences of it are used */
  clock?: () => number;
}

/** A node's lease as the database has it. */
export interface NodeLeaseRecord {
  node: string;
  address: string;
  startedAt: string;
  leaseUntil: string;
  /** lease_until > now(), by the database's clock */
  live: boolean;
}

interface Snapshot {
  /** local monotonic time the reading arrived */
  at: number;
  /** node → ms its lease had left when the database read it */
  remaining: Map<string, number>;
}

export const LEASE_MIGRATION = {
  version: 2,
  description: 'runtime_nodes: the lease each node holds',
  up: `CREATE TABLE runtime_nodes (
    node text PRIMARY KEY,
    session text NOT NULL,
    address text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL
  )`,
};

export interface NodeLeaseEvents {
  /** the lease ran out (renewals failed) or another server took this node's id */
  lost: [reason: string];
  /** renewed again after it was lost */
  held: [];
}

export class NodeLease extends EventEmitter<NodeLeaseEvents> {
  readonly node: string;
  readonly leaseMs: number;
  readonly session = randomUUID();
  private readonly renewEvery: number;
  private readonly clock: () => number;
  /** local monotonic time this node's lease ends, by its own conservative reckoning */
  private deadline = -Infinity;
  private held = false;
  /** whether it held the lease once: holding it again is news */
  private acquired = false;
  private taken = false;
  private snapshot: Snapshot | undefined;
  private timer: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private failing = false;
  private closed = false;

  private constructor(
    private readonly db: Postgres,
    private readonly options: NodeLeaseOptions,
  ) {
    super();
    this.node = options.node;
    this.leaseMs = options.leaseMs ?? DEFAULT_NODE_LEASE * 1000;
    if (!Number.isFinite(this.leaseMs) || this.leaseMs < 100) throw new Error(`a node lease must last at least 100 ms, not ${this.leaseMs}`);
    this.renewEvery = options.renewEvery ?? Math.floor(this.leaseMs / 3);
    this.clock = options.clock ?? (() => performance.now());
  }

  /** Takes this node's lease (a new session: what it published before is stale) and keeps renewing it. */
  static async acquire(db: Postgres, options: NodeLeaseOptions): Promise<NodeLease> {
    const lease = new NodeLease(db, options);
    const sent = lease.clock();
    await db.query(
      `INSERT INTO ${db.schema}.runtime_nodes (node, session, address, started_at, lease_until) VALUES ($1, $2, $3, now(), now() + $4 * interval '1 millisecond')
       ON CONFLICT (node) DO UPDATE SET session = EXCLUDED.session, address = EXCLUDED.address, started_at = EXCLUDED.started_at, lease_until = EXCLUDED.lease_until`,
      [options.node, lease.session, options.address, lease.leaseMs],
    );
    lease.renewed(sent);
    await lease.read();
    lease.schedule();
    return lease;
  }

  /** Whether this node holds its lease now (the other nodes believe it alive). */
  holdsLease(): boolean {
    return !this.closed && !this.taken && this.clock() < this.deadline;
  }

  /**
   * Whether `node`'s lease has ended, by the last reading of the table (at most a renewal
   * old) and the time elapsed since; undefined when unknown: a node without a lease row,
   * or no reading for a whole lease (PostgreSQL away from this node). This node's own
   * lease never counts as ended here: it is alive to itself.
   */
  ended(node: string): boolean | undefined {
    if (node === this.node) return false;
    const snap = this.snapshot;
    if (!snap) return undefined;
    const elapsed = this.clock() - snap.at;
    if (elapsed > this.leaseMs) return undefined;
    const remaining = snap.remaining.get(node);
    if (remaining === undefined) return undefined;
    return remaining - elapsed <= 0;
  }

  /** Every node's lease, read now. */
  async nodes(): Promise<NodeLeaseRecord[]> {
    const res = await this.db.query<{ node: string; address: string; started_at: Date; lease_until: Date; live: boolean }>(
      `SELECT node, address, started_at, lease_until, lease_until > now() AS live FROM ${this.db.schema}.runtime_nodes ORDER BY node LIMIT 1000`,
    );
    return res.rows.map((r) => ({ node: r.node, address: r.address, startedAt: r.started_at.toISOString(), leaseUntil: r.lease_until.toISOString(), live: r.live }));
  }

  /** Stops renewing and ends the lease at once (a node that stops is gone for the others). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.expiry);
    await this.running;
    if (this.taken) return;
    await this.db
      .query(`UPDATE ${this.db.schema}.runtime_nodes SET lease_until = now() WHERE node = $1 AND session = $2`, [this.node, this.session])
      .catch((err: unknown) => this.options.logger?.warn({ err }, 'could not end this node\'s lease; it ends by itself'));
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => this.schedule());
    }, this.renewEvery);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      if (!this.taken) await this.renew();
      await this.read();
      if (this.failing) this.options.logger?.info('PostgreSQL answers again: node lease renewed');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.options.logger?.warn({ err }, `could not renew this node's lease; it ends in ${Math.max(0, Math.round(this.deadline - this.clock()))} ms unless PostgreSQL answers`);
      this.failing = true;
    }
  }

  private async renew(): Promise<void> {
    const sent = this.clock();
    const res = await this.db.query(
      `UPDATE ${this.db.schema}.runtime_nodes SET lease_until = now() + $3 * interval '1 millisecond' WHERE node = $1 AND session = $2`,
      [this.node, this.session, this.leaseMs],
    );
    if (this.closed) return;
    if (res.rowCount === 1) {
      this.renewed(sent);
      return;
    }
    // the row was removed by hand: taken again; another session holds it: a second server with this node's id
    const taken = await this.db.query(
      `INSERT INTO ${this.db.schema}.runtime_nodes (node, session, address, started_at, lease_until) VALUES ($1, $2, $3, now(), now() + $4 * interval '1 millisecond')
       ON CONFLICT (node) DO NOTHING`,
      [this.node, this.session, this.options.address, this.leaseMs],
    );
    if (taken.rowCount === 1) {
      this.renewed(sent);
      return;
    }
    this.taken = true;
    this.options.logger?.error({ node: this.node }, 'another micro server took this node\'s lease: it runs with the same node id (a copy of this home?); this node holds no lease any more');
    this.lose('another server took this node\'s id');
  }

  private renewed(sent: number): void {
    this.deadline = sent + this.leaseMs;
    this.watchDeadline();
    if (!this.held) {
      const regained = this.acquired;
      this.held = true;
      this.acquired = true;
      if (regained) this.emit('held');
    }
  }

  /**
   * Node's timers count whole milliseconds of the event loop's clock, so one may fire a
   * fraction of a millisecond before the deadline by performance.now(): it then waits again
   * for the rest instead of giving up on the deadline.
   */
  private watchDeadline(): void {
    clearTimeout(this.expiry);
    this.expiry = setTimeout(() => this.expire(), Math.max(0, Math.ceil(this.deadline - this.clock())) + 1);
    this.expiry.unref();
  }

  private expire(): void {
    if (this.closed) return;
    if (this.clock() < this.deadline) {
      this.watchDeadline();
      return;
    }
    this.options.logger?.warn({ node: this.node }, 'this node\'s lease ran out: the other nodes now count it as gone');
    this.lose('the lease ran out: PostgreSQL did not answer in time');
  }

  private lose(reason: string): void {
    clearTimeout(this.expiry);
    if (!this.held) return;
    this.held = false;
    this.emit('lost', reason);
  }

  private async read(): Promise<void> {
    const res = await this.db.query<{ node: string; remaining: number }>(
      `SELECT node, (extract(epoch from (lease_until - now())) * 1000)::float8 AS remaining FROM ${this.db.schema}.runtime_nodes LIMIT 10000`,
    );
    this.snapshot = { at: this.clock(), remaining: new Map(res.rows.map((r) => [r.node, Number(r.remaining)])) };
  }
}
