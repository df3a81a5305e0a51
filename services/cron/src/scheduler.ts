import { errors, isMicroError, RemoteRegistry, type Engines, type Logger, type Registry } from '@micro/sdk';
import { rfc3339 } from '@micro/services-kit';
import { findEndpoint, parseCallback } from './callback.js';
import { parseInterval, type Interval } from './interval.js';
import type { JobStore, RunRecord, StoredJob } from './jobs.js';

export interface SchedulerOptions {
  /** the clock ticks are read from (default Date.now) */
  now?: () => number;
  /** ms between looks at the clock (default 1,000) */
  resolution?: number;
  /** ms between reads of every tenant's jobs, which is how a node learns of jobs scheduled on another (default 10,000) */
  refresh?: number;
  /** ms a callback may take (default 30,000: shorter than the shortest interval, so runs of one job do not overlap) */
  timeout?: number;
  /** where tenants' services are found (default the server's registry, through the engines' client) */
  registry?: Registry;
  logger?: Logger;
}

/** What a node knows of one job. */
interface Entry {
  tenant: string;
  job: StoredJob;
  interval: Interval;
  /** the next tick to claim, epoch ms; undefined: never again */
  next: number | undefined;
}


/**
 * Runs every tenant's jobs, on every node of the service. Each node looks at the clock
 * every `resolution` ms and, for each job whose next tick has come, claims that tick in
 * the job's store (JobStore.claim, holding the job's lock of the shared sync engine):
 * one node wins the tick and calls the callback, the others see it claimed and skip it.
 * A claim is a record, not a lease, so a node that is late by any time still cannot run a
 * tick another ran. A tick is claimed before it is called: a node that dies in between
 * loses that run rather than risk calling twice (callbacks need not be idempotent). Ticks
 * that passed while no node ran are not made up; the next one after now is.
 *
 * The callback is called as the platform acting in the job's namespace, through the
 * engines' `clientIn(tenant)`: the service's own account (an admin of micro when micro
 * server hosts it) with a token scoped to the one service called, on a client whose
 * namespace is the job's tenant — so a job reaches nothing but a service of its own
 * namespace, whatever it names.
 */
export class Scheduler {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private readonly now: () => number;
  private readonly resolution: number;
  private readonly refreshEvery: number;
  private readonly timeout: number;
  private readonly registry: Registry | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshedAt = -Infinity;
  private running = false;

  constructor(
    private readonly engines: Pick<Engines, 'client' | 'clientIn'>,
    private readonly jobs: JobStore,
    private readonly options: SchedulerOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.resolution = options.resolution ?? 1_000;
    this.refreshEvery = options.refresh ?? 10_000;
    this.timeout = options.timeout ?? 30_000;
    this.registry = options.registry ?? (engines.client ? new RemoteRegistry(engines.client) : undefined);
  }

  /** The registry the service and its handlers look tenants' services up in. */
  get services(): Registry | undefined {
    return this.registry;
  }

  start(): void {
    if (this.running || this.abort.signal.aborted) return;
    this.running = true;
    this.wakeIn(0);
  }

  /** Stops looking at the clock and cancels the calls in flight; resolves once they ended. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.abort.abort(new Error('the cron scheduler stopped'));
    await Promise.allSettled([...this.inflight]);
  }

  /** The tick after now of a job (for Jobs), undefined when it never fires again. */
  nextTick(interval: string): number | undefined {
    return parseInterval(interval).next(this.now());
  }

  /** This node learns of a job at once (Schedule); other nodes at their next refresh. */
  upsert(tenant: string, job: StoredJob): void {
    const key = `${tenant}\n${job.id}`;
    const known = this.entries.get(key);
    if (known && known.job.updated === job.updated) return;
    const interval = parseInterval(job.interval);
    this.entries.set(key, { tenant, job, interval, next: interval.next(this.now()) });
  }

  remove(tenant: string, id: string): void {
    this.entries.delete(`${tenant}\n${id}`);
  }

  private wakeIn(ms: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => void this.wake(), ms);
  }

  private async wake(): Promise<void> {
    try {
      if (this.now() - this.refreshedAt >= this.refreshEvery) await this.refresh();
      this.fireDue();
    } catch (err) {
      if (this.running) this.options.logger?.warn({ err }, 'cron: reading the jobs failed; trying again');
    }
    this.wakeIn(this.resolution);
  }

  /** Reads every tenant's jobs: new and changed ones join, deleted ones leave. */
  private async refresh(): Promise<void> {
    const seen = new Set<string>();
    for (const tenant of await this.jobs.tenants()) {
      const ctx = { tenant, signal: this.abort.signal } as Parameters<JobStore['records']['list']>[0];
      for (const job of await this.jobs.records.list(ctx)) {
        seen.add(`${tenant}\n${job.id}`);
        try {
          this.upsert(tenant, job);
        } catch (err) {
          // an interval this version no longer takes: the job stays listed, and does not run
          this.options.logger?.warn({ err, tenant, job: job.id }, 'cron: a job has an interval that does not parse');
        }
      }
    }
    for (const key of this.entries.keys()) if (!seen.has(key)) this.entries.delete(key);
    this.refreshedAt = this.now();
  }

  private fireDue(): void {
    const now = this.now();
    for (const entry of this.entries.values()) {
      if (entry.next === undefined || entry.next > now) continue;
      const tick = entry.next;
      entry.next = entry.interval.next(now);
      const done = this.fire(entry.tenant, entry.job.id, tick).finally(() => this.inflight.delete(done));
      this.inflight.add(done);
    }
  }

  /** Claims the tick; when this node won it, calls the callback and keeps how it went. */
  private async fire(tenant: string, id: string, tick: number): Promise<void> {
    const ctx = { tenant, signal: this.abort.signal };
    try {
      const job = await this.jobs.claim(ctx, id, tick);
      if (!job) return;
      const started = this.now();
      const wall = Date.now();
      const outcome = await this.call(tenant, job, tick).then(
        () => ({ code: 200, error: '' }),
        (err: unknown) => (isMicroError(err) ? { code: err.code, error: err.detail } : { code: 500, error: err instanceof Error ? err.message : String(err) }),
      );
      const run: RunRecord = { tick, started, duration: Date.now() - wall, ...outcome };
      await this.jobs.record(ctx, id, run);
    } catch (err) {
      if (this.running) this.options.logger?.warn({ err, tenant, job: id }, 'cron: a tick could not be claimed or recorded');
    }
  }

  /** Calls the job's callback in its tenant's namespace, as the platform (see the class comment). */
  private async call(tenant: string, job: StoredJob, tick: number): Promise<void> {
    const callback = parseCallback(job.callback);
    const endpoint = await this.endpointOf(tenant, callback.service, callback.endpoint);
    const client = this.engines.clientIn?.(tenant);
    if (!client) throw errors.ServiceUnavailable('cron', 'no micro server to call the callback through');
    // no retries: a call that may have reached the service is not made twice
    await client.call(callback.service, endpoint, job.request, {
      timeout: this.timeout,
      signal: this.abort.signal,
      retries: 0,
      metadata: { 'micro-cron-job': job.id, 'micro-cron-tick': rfc3339(tick) },
    });
  }

  /** The endpoint `endpoint` of `service` in the tenant's namespace, or a 404 saying which is missing. */
  async endpointOf(tenant: string, service: string, endpoint: string): Promise<string> {
    if (!this.registry) throw errors.ServiceUnavailable('cron', 'no registry to find the callback in');
    const records = await this.registry.getService(service, { namespace: tenant });
    if (records.length === 0) throw errors.NotFound('cron', `service ${service} is not running in your namespace`);
    const found = findEndpoint(records.flatMap((r) => r.endpoints.filter((e) => e.kind === 'unary').map((e) => e.name)), endpoint);
    if (!found) throw errors.NotFound('cron', `service ${service} has no endpoint ${endpoint} (one that takes a request and answers once)`);
    return found;
  }

}
