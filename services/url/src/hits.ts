import type { Engines, Logger } from '@micro/sdk';

/**
 * Hit counts. A redirect is the hot path (two store reads), so a hit is not a store write
 * of its own: each node adds its hits up in memory and flushes them every `interval` ms,
 * each link under a lock (the nodes share the record), adding to the stored count. What a
 * node shows is the stored count plus its own hits not flushed yet; another node's show
 * within `interval`. A node that dies loses at most its last `interval` of hits.
 */
export class Hits {
  /** by `<tenant>\n<id>` */
  private readonly pending = new Map<string, number>();
  private flushing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly engines: Engines,
    /** where the locks are taken: the service's own namespace */
    private readonly home: () => string | undefined,
    private readonly logger?: Logger,
    interval = 1_000,
  ) {
    this.timer = setInterval(() => void this.flush(), interval);
    this.timer.unref();
  }

  add(tenant: string, id: string): void {
    const k = `${tenant}\n${id}`;
    this.pending.set(k, (this.pending.get(k) ?? 0) + 1);
  }

  /** hits of this node not flushed yet */
  unflushed(tenant: string, id: string): number {
    return this.pending.get(`${tenant}\n${id}`) ?? 0;
  }

  /** a deleted link's hits go with it */
  forget(tenant: string, id: string): void {
    this.pending.delete(`${tenant}\n${id}`);
  }

  /** Adds the pending hits to the stored counts (one flush at a time). */
  flush(): Promise<void> {
    this.flushing ??= this.flushAll().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async flushAll(): Promise<void> {
    const home = this.home();
    if (home === undefined) return;
    for (const [k, n] of [...this.pending]) {
      const [tenant, id] = k.split('\n') as [string, string];
      try {
        await this.flushOne(home, tenant, id, n);
        const left = (this.pending.get(k) ?? 0) - n;
        if (left > 0) this.pending.set(k, left);
        else this.pending.delete(k);
      } catch (err) {
        // kept for the next flush
        this.logger?.warn({ err, tenant, id }, 'url: hit counts not flushed');
      }
    }
  }

  private async flushOne(home: string, tenant: string, id: string, n: number): Promise<void> {
    const lock = await this.engines.sync.lock(hitLock(tenant, id), { namespace: home, ttl: 10_000, wait: 10_000 });
    try {
      const scope = { namespace: tenant, database: 'url' };
      const [rec] = await this.engines.store.read(id, scope);
      if (!rec) return;
      const value = rec.value as StoredLink;
      await this.engines.store.write({ key: id, value: { ...value, hits: value.hits + n } }, scope);
    } finally {
      await lock.release().catch(() => undefined);
    }
  }
}

/** A short link as kept in its tenant's namespace (database url, key: its id). */
export interface StoredLink {
  destinationURL: string;
  /** epoch ms */
  created: number;
  hits: number;
}

/** the lock of a link's record, taken by every read-modify-write of it */
export function hitLock(tenant: string, id: string): string {
  return `url-link/${tenant}/${id}`;
}
