import type { Context, Engines } from '@micro/sdk';
import { Records, tenantStore, withTenantLock, type Stamped } from '@micro/services-kit';

/** A job as the store keeps it (in database `cron` of its tenant's namespace). */
export interface StoredJob extends Stamped {
  name: string;
  description: string;
  callback: string;
  interval: string;
  request: Record<string, unknown>;
}

/** One run of a job, as kept. */
export interface RunRecord {
  /** epoch ms of the tick */
  tick: number;
  /** epoch ms */
  started: number;
  /** ms */
  duration: number;
  code: number;
  error: string;
}

/** The most jobs a namespace keeps. */
export const MAX_JOBS = 100;
/** The runs kept of each job, newest first. */
export const RUNS_KEPT = 10;

type Tenant = Pick<Context, 'tenant' | 'signal'>;

/**
 * The jobs of every tenant, each in its tenant's own namespace (so that purging a
 * namespace deletes them), and the service's index of which tenants have jobs, in the
 * service's own namespace, which is how a node finds every job without listing
 * namespaces. Per job, the last tick claimed (`ticks`) and the last runs (`runs`) are kept
 * beside it, all changed holding the job's lock.
 */
export class JobStore {
  readonly records: Records<StoredJob>;

  constructor(
    private readonly engines: Pick<Engines, 'store' | 'sync' | 'broker'>,
    /** the namespace the service runs in (micro when micro server hosts it) */
    private readonly home: string,
    now?: () => number,
  ) {
    this.records = new Records<StoredJob>(engines, { service: 'cron', noun: 'job', table: 'jobs', maxRecords: MAX_JOBS, ...(now ? { now } : {}) });
  }

  /** Runs `fn` holding the lock of job `id` of the tenant: what claims, records and deletes serialise on. */
  locked<T>(ctx: Tenant, id: string, fn: () => Promise<T>): Promise<T> {
    return withTenantLock(this.engines, ctx, 'cron', `job/${id}`, fn);
  }

  /** Notes that the tenant has jobs (after making one: see forget for why this order keeps it). */
  async remember(tenant: string): Promise<void> {
    await this.engines.store.write({ key: tenant, value: { tenant } }, this.index());
  }

  /**
   * Drops the tenant from the index when it has no job left. Checked holding the
   * tenant's jobs lock, and remember runs after a job is made (outside that lock): a job
   * made meanwhile either is counted here or writes the index again afterwards.
   */
  async forget(ctx: Context): Promise<void> {
    await this.records.locked(ctx, async (store) => {
      if ((await store.list({ table: 'jobs', limit: 1 })).length === 0) await this.engines.store.delete(ctx.tenant, this.index());
    });
  }

  /** Every tenant with jobs. */
  async tenants(): Promise<string[]> {
    const all: string[] = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await this.engines.store.list({ ...this.index(), limit: 1000, offset });
      all.push(...page);
      if (page.length < 1000 || offset >= 99_000) return all;
    }
  }

  /** Claims tick `tick` of job `id` for this node: the job when it still exists and no node claimed this tick or a later one. */
  async claim(ctx: Tenant, id: string, tick: number): Promise<StoredJob | undefined> {
    const store = tenantStore(this.engines.store, ctx, 'cron');
    return this.locked(ctx, id, async () => {
      const [job] = await store.read(id, { table: 'jobs' });
      if (!job) return undefined;
      const [last] = await store.read(id, { table: 'ticks' });
      if (last && (last.value as { tick: number }).tick >= tick) return undefined;
      await store.write({ key: id, value: { tick } }, { table: 'ticks' });
      return job.value as StoredJob;
    });
  }

  /** Keeps `run` as the newest of job `id`'s last runs (nothing when the job was deleted meanwhile). */
  async record(ctx: Tenant, id: string, run: RunRecord): Promise<void> {
    const store = tenantStore(this.engines.store, ctx, 'cron');
    await this.locked(ctx, id, async () => {
      if ((await store.read(id, { table: 'jobs' })).length === 0) return;
      const [kept] = await store.read(id, { table: 'runs' });
      const runs = [run, ...((kept?.value as RunRecord[] | undefined) ?? [])].slice(0, RUNS_KEPT);
      await store.write({ key: id, value: runs }, { table: 'runs' });
    });
  }

  /** The last runs of job `id`, newest first. */
  async runs(ctx: Tenant, id: string): Promise<RunRecord[]> {
    const [kept] = await tenantStore(this.engines.store, ctx, 'cron').read(id, { table: 'runs' });
    return (kept?.value as RunRecord[] | undefined) ?? [];
  }

  /** Deletes job `id` and what is kept of its runs, holding its lock: once this returns no node claims a tick of it. A 404 when there is no such job. */
  async delete(ctx: Context, id: string): Promise<void> {
    const store = tenantStore(this.engines.store, ctx, 'cron');
    await this.locked(ctx, id, async () => {
      await this.records.delete(ctx, id);
      await store.delete(id, { table: 'ticks' });
      await store.delete(id, { table: 'runs' });
    });
  }

  private index() {
    return { namespace: this.home, database: 'cron', table: 'tenants' };
  }
}
