import { errors, type Lock, type Sync } from '@micro/sdk';

/**
 * A worker id leased for this process: one of `slots` locks `<name>/<n>` of the sync
 * engine, which every node of the service shares. The holder renews its lease every
 * ttl/3 and stops using the id when the lease could have passed without a renewal (its
 * deadline is counted on its own clock from when it *sent* the lock or renew that granted
 * the lease, less a margin), so two nodes never use one worker id at the same time.
 * Without a slot it refuses (503) rather than guess an id.
 *
 * A slot taken over from a node that died is used at least one lease later than that
 * node's last id, so with clocks that agree within a lease its ids come after the dead
 * node's.
 */
export interface WorkerSlotOptions {
  /** how many worker ids there are (default 1024, snowflake's 10 bits) */
  slots?: number;
  /** the lock names' prefix (default `id-worker`) */
  name?: string;
  /** the lease, ms (default 30,000) */
  ttl?: number;
  /** the clock (default Date.now) */
  now?: () => number;
}

/** the part of the lease not trusted (late timers, drifting clocks): a tenth, at most 1 s */
const MARGIN = 1_000;

export class WorkerSlot {
  private lock: Lock | undefined;
  private deadline = 0;
  private acquiring: Promise<number> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly slots: number;
  private readonly name: string;
  private readonly ttl: number;
  private readonly now: () => number;

  constructor(
    private readonly sync: () => Sync,
    options: WorkerSlotOptions = {},
  ) {
    this.slots = options.slots ?? 1024;
    this.name = options.name ?? 'id-worker';
    this.ttl = options.ttl ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** The worker id while the lease is sure to be ours; undefined otherwise. */
  get current(): number | undefined {
    if (this.lock === undefined || this.now() >= this.deadline) return undefined;
    return Number(this.lock.name.slice(this.name.length + 1));
  }

  /** The worker id, leasing one first when none is held. */
  async id(): Promise<number> {
    const held = this.current;
    if (held !== undefined) return held;
    this.acquiring ??= this.acquire().finally(() => (this.acquiring = undefined));
    return this.acquiring;
  }

  private margin(): number {
    return Math.min(MARGIN, this.ttl / 10);
  }

  private async acquire(): Promise<number> {
    this.stopRenewing();
    const sync = this.sync();
    const held = new Set((await sync.locks({ prefix: `${this.name}/`, limit: 1000 })).map((l) => l.name));
    const start = Math.floor(Math.random() * this.slots);
    for (let i = 0; i < this.slots; i++) {
      const name = `${this.name}/${(start + i) % this.slots}`;
      if (held.has(name)) continue;
      const sent = this.now();
      try {
        this.lock = await sync.lock(name, { ttl: this.ttl, wait: 0, owner: `id:${process.pid}` });
      } catch (err) {
        if (errors.isMicroError(err) && err.code === 409) continue;
        throw err;
      }
      this.deadline = sent + this.ttl - this.margin();
      this.renewEvery(this.ttl / 3);
      return Number(name.slice(this.name.length + 1));
    }
    throw errors.ServiceUnavailable('id', `every one of the ${this.slots} worker ids of snowflake and bigflake is leased by another node; try again when one is free`);
  }

  private renewEvery(ms: number): void {
    this.timer = setInterval(() => void this.renew(), ms);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    const lock = this.lock;
    if (!lock) return;
    const sent = this.now();
    try {
      await lock.renew(this.ttl);
      if (this.lock === lock) this.deadline = Math.max(this.deadline, sent + this.ttl - this.margin());
    } catch {
      // another node took it (409) or the engine is away: stop at the deadline, lease anew then
      if (this.now() >= this.deadline && this.lock === lock) this.drop();
    }
  }

  private stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private drop(): void {
    this.stopRenewing();
    this.lock = undefined;
  }

  /** Gives the worker id back. */
  async close(): Promise<void> {
    const lock = this.lock;
    this.drop();
    await lock?.release().catch(() => undefined);
  }
}
