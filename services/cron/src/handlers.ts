import { errors, isMicroError, type Context, type Engines, type Handlers } from '@micro/sdk';
import { checkJson, missing, publicService, rfc3339 } from '@micro/services-kit';
import { parseCallback } from './callback.js';
import { cronDef } from './definition.js';
import { parseInterval } from './interval.js';
import { JobStore, type StoredJob } from './jobs.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';

export { Scheduler } from './scheduler.js';
export type { SchedulerOptions } from './scheduler.js';
export { JobStore, MAX_JOBS, RUNS_KEPT } from './jobs.js';

export interface CronOptions extends SchedulerOptions {
  /** the namespace the service runs in, where it keeps its index of tenants with jobs (default micro) */
  home?: string;
}

/** The bounds of a job's request body. */
const REQUEST_BOUNDS = { maxBytes: 16 * 1024, maxDepth: 16 };

/** One node of the service: its jobs and the scheduler that runs them, shared by the handlers and the background work. */
export interface CronNode {
  jobs: JobStore;
  scheduler: Scheduler;
}

export function cronNode(engines: Engines, options: CronOptions = {}): CronNode {
  const jobs = new JobStore(engines, options.home ?? 'micro', options.now);
  return { jobs, scheduler: new Scheduler(engines, jobs, options) };
}

function wire(job: StoredJob) {
  return { callback: job.callback, description: job.description, id: job.id, interval: job.interval, name: job.name };
}

/** The next tick of a job, RFC 3339; "" when it never fires again. */
function nextOf(job: StoredJob, scheduler: Scheduler): string {
  try {
    const next = scheduler.nextTick(job.interval);
    return next === undefined ? '' : rfc3339(next);
  } catch {
    return '';
  }
}

/** A 400 naming the callback when it names no endpoint of a service running in the caller's namespace. */
async function checkCallback(node: CronNode, ctx: Context, text: string): Promise<void> {
  const callback = parseCallback(text);
  try {
    await node.scheduler.endpointOf(ctx.tenant, callback.service, callback.endpoint);
  } catch (err) {
    if (isMicroError(err) && err.code === 404) throw errors.BadRequest('cron', `callback: ${err.detail}; run it first (micro run), then schedule its endpoint`);
    throw err;
  }
}

/** The cron service's handlers on one node. */
export function cronHandlers(node: CronNode): Handlers<typeof cronDef> {
  const { jobs, scheduler } = node;
  return {
    async Schedule(req, ctx) {
      parseInterval(req.interval);
      await checkCallback(node, ctx, req.callback);
      const request = req.request ?? {};
      checkJson('cron', 'request', request, REQUEST_BOUNDS);
      const fields = { name: req.name, description: req.description, callback: req.callback.trim(), interval: req.interval.trim(), request };
      const job = req.id ? await jobs.records.update(ctx, req.id, (old) => ({ ...old, ...fields })) : await jobs.records.create(ctx, fields);
      await jobs.remember(ctx.tenant);
      scheduler.upsert(ctx.tenant, job);
      return { job: wire(job) };
    },
    async Jobs(_req, ctx) {
      return { jobs: (await jobs.records.list(ctx)).map(wire) };
    },
    async Delete({ id }, ctx) {
      if (!id) throw missing('cron', 'id');
      await jobs.delete(ctx, id);
      scheduler.remove(ctx.tenant, id);
      await jobs.forget(ctx);
      return {};
    },
    async Runs({ id }, ctx) {
      if (!id) throw missing('cron', 'id');
      const job = await jobs.records.read(ctx, id);
      const runs = await jobs.runs(ctx, id);
      return {
        job: wire(job),
        request: job.request,
        next: nextOf(job, scheduler),
        created: rfc3339(job.created),
        updated: rfc3339(job.updated),
        runs: runs.map((r) => ({ tick: rfc3339(r.tick), started: rfc3339(r.started), duration: r.duration, status: r.code === 200 ? ('ok' as const) : ('error' as const), code: r.code, error: r.error })),
      };
    },
  };
}

/**
 * The cron service as micro server hosts it: the handlers and the scheduler of a node
 * share one CronNode (the same engines object is given to both), so a job scheduled on
 * this node is known to its scheduler at once.
 */
export function cronService(options: CronOptions = {}) {
  const nodes = new WeakMap<Engines, CronNode>();
  const nodeOf = (engines: Engines): CronNode => {
    let node = nodes.get(engines);
    if (!node) nodes.set(engines, (node = cronNode(engines, options)));
    return node;
  };
  return publicService(cronDef, (engines) => cronHandlers(nodeOf(engines)), {
    background(engines) {
      const { scheduler } = nodeOf(engines);
      scheduler.start();
      return scheduler;
    },
  });
}

export const service = cronService();
