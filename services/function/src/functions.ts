import { errors, isMicroError, MicroError, type Context, type Engines, type RuntimeService } from '@micro/sdk';
import { deployedStatus, Deployments, publicUrl, regionsFrom } from '@micro/services-kit';
import type { Func } from './definition.js';
import { SERVICE, serviceOf } from './names.js';
import { packProject, type Runtime } from './project.js';

/**
 * The functions of every tenant, as this process knows them. What is kept where:
 *
 * - a record per function in the tenant's own store (database `function`, key
 *   `fn/<name>`): its source, runtime, entrypoint, env, id, times, and whether it was
 *   scaled to zero (`idle`) or failed (`error`);
 * - the running instance is the runtime's: service `fn-<name>` in the tenant's namespace,
 *   built from an upload of the generated project (project.ts), sandboxed with the
 *   namespace's limits; `status` is read from the runtime;
 * - in memory: which functions are warm here and when they were last called, so that an
 *   idle one is stopped (its record stays) and the next call starts it again (a cold
 *   start; calls that arrive meanwhile share it).
 *
 * Every operation takes the tenant from ctx.tenant: a name is only ever looked up in the
 * caller's own store and namespace.
 */
export interface FunctionOptions {
  /** ms without a call after which a function's instance is stopped (MICRO_FUNCTION_IDLE, seconds; default 600 s) */
  idleMs: number;
  /** ms a call may run (MICRO_FUNCTION_TIMEOUT, seconds; default 10 s) */
  timeoutMs: number;
  /** MiB of heap a call may use (MICRO_FUNCTION_MEMORY; default 128), within the namespace's memory per instance */
  memoryMb: number;
  /** calls a function serves at once (MICRO_FUNCTION_WORKERS; default 2) */
  workers: number;
  /** where functions run (MICRO_FUNCTION_REGIONS, comma-separated; default local) */
  regions: string[];
  /** functions and live reservations a tenant may have (MICRO_FUNCTION_MAX; default 50) */
  maxFunctions: number;
  /** default Date.now */
  now: () => number;
}

export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): FunctionOptions {
  const num = (name: string, fallback: number) => {
    const v = Number(env[name]);
    return env[name] && Number.isFinite(v) && v > 0 ? v : fallback;
  };
  return {
    idleMs: num('MICRO_FUNCTION_IDLE', 600) * 1000,
    timeoutMs: num('MICRO_FUNCTION_TIMEOUT', 10) * 1000,
    memoryMb: Math.floor(num('MICRO_FUNCTION_MEMORY', 128)),
    workers: Math.floor(num('MICRO_FUNCTION_WORKERS', 2)),
    regions: regionsFrom(env.MICRO_FUNCTION_REGIONS),
    maxFunctions: Math.floor(num('MICRO_FUNCTION_MAX', 50)),
    now: Date.now,
  };
}

export interface FuncRecord {
  id: string;
  name: string;
  runtime: Runtime;
  entrypoint: string;
  source: string;
  env_vars: Record<string, string>;
  region: string;
  created: string;
  updated: string;
  /** stopped after being idle: the next call starts it */
  idle: boolean;
  /** why the last deploy or start failed, until one succeeds */
  error?: string;
}

/** Longest a deploy or a cold start may take before its caller stops waiting. */
const START_TIMEOUT = 120_000;
// the lock service waits at most 60 s; a deploy holding it may take longer (its ttl covers that)
const LOCK = { ttl: START_TIMEOUT + 10_000, wait: 60_000 };

export class Functions extends Deployments<FuncRecord> {
  /** tenant/name → when it was last called, for functions running here */
  private readonly warm = new Map<string, number>();
  /** tenant/name → calls in progress (a function is not stopped under one) */
  private readonly inflight = new Map<string, number>();
  /** tenant/name → the cold start in progress */
  private readonly starting = new Map<string, Promise<void>>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    engines: Engines,
    readonly options: FunctionOptions,
  ) {
    super(engines, { service: SERVICE, what: 'function', prefix: 'fn', lock: LOCK, max: options.maxFunctions, now: options.now });
  }

  /** Builds and starts the function's service from its record; the runtime's error (400: build or start) when it fails. */
  async start(ctx: Pick<Context, 'tenant'>, rec: FuncRecord, how: 'create' | 'update'): Promise<void> {
    const { options } = this;
    const packed = await packProject({ service: serviceOf(rec.name), runtime: rec.runtime, source: rec.source, entrypoint: rec.entrypoint, timeoutMs: options.timeoutMs, memoryMb: options.memoryMb, workers: options.workers });
    await this.engines.blobs.put(packed.key, packed.data, { namespace: ctx.tenant });
    const source = `upload:${packed.key}`;
    const rt = this.runtime();
    const progress =
      how === 'create'
        ? rt.Create({ source, name: serviceOf(rec.name), namespace: ctx.tenant, env: rec.env_vars }, { timeout: START_TIMEOUT })
        : rt.Update({ source, name: serviceOf(rec.name), namespace: ctx.tenant }, { timeout: START_TIMEOUT });
    await this.progress(progress);
    this.warm.set(`${ctx.tenant}/${rec.name}`, this.options.now());
    this.sweep();
  }

  /** Stops the function's service, if the runtime runs it. */
  override async stop(ctx: Pick<Context, 'tenant'>, name: string): Promise<void> {
    this.warm.delete(`${ctx.tenant}/${name}`);
    await super.stop(ctx, name);
  }

  /** The function as M3O shows it, its status from the runtime's service (`svc`). */
  view(rec: FuncRecord, svc: RuntimeService | undefined): Func {
    return {
      branch: '',
      created: rec.created,
      entrypoint: rec.entrypoint,
      env_vars: rec.env_vars,
      id: rec.id,
      name: rec.name,
      region: rec.region,
      repo: '',
      runtime: rec.runtime,
      source: rec.source,
      status: statusOf(rec, svc),
      subfolder: '',
      updated: rec.updated,
      url: urlOf(rec.name),
    };
  }

  /** Calls the function, starting it first when it is not warm here. */
  async call(ctx: Context, name: string, request: Record<string, unknown>): Promise<unknown> {
    const key = `${ctx.tenant}/${name}`;
    if (!this.warm.has(key)) await this.wake(ctx, name);
    try {
      return await this.forward(ctx, name, request);
    } catch (err) {
      // stopped meanwhile (by another node, or `micro kill`): start it again, once
      if (!isMicroError(err) || !(err.code === 404 || err.code === 503) || err.id === SERVICE) throw err;
      this.warm.delete(key);
      await this.wake(ctx, name);
      return this.forward(ctx, name, request);
    }
  }

  private async forward(ctx: Context, name: string, request: Record<string, unknown>): Promise<unknown> {
    const key = `${ctx.tenant}/${name}`;
    const client = this.engines.clientIn?.(ctx.tenant);
    if (!client) throw errors.ServiceUnavailable(SERVICE, 'functions need micro server: its runtime builds and runs them');
    // the wrapper's own limit answers first (a clear 504); this one covers a wrapper that does not
    const left = ctx.deadline === undefined ? Infinity : ctx.deadline - Date.now();
    const timeout = Math.max(1, Math.min(this.options.timeoutMs + 5_000, left));
    this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
    this.warm.set(key, this.options.now());
    try {
      const out = (await client.call(serviceOf(name), 'Call', { request }, { timeout, signal: ctx.signal })) as { response?: unknown };
      return out.response;
    } catch (err) {
      // the function's own failures (threw, too long, too much memory) are this service's answer
      if (isMicroError(err) && err.id === serviceOf(name)) throw new MicroError(SERVICE, err.code, err.detail);
      throw err;
    } finally {
      const n = (this.inflight.get(key) ?? 1) - 1;
      if (n > 0) this.inflight.set(key, n);
      else this.inflight.delete(key);
      this.warm.set(key, this.options.now());
    }
  }

  /** Makes the function run: a cold start when it does not; concurrent callers share one. */
  private wake(ctx: Context, name: string): Promise<void> {
    const key = `${ctx.tenant}/${name}`;
    let p = this.starting.get(key);
    if (!p) {
      const tenant = { tenant: ctx.tenant, signal: undefined } as unknown as Context;
      p = this.locked(tenant, name, () => this.coldStart(tenant, name)).finally(() => this.starting.delete(key));
      this.starting.set(key, p);
    }
    return p;
  }

  private async coldStart(ctx: Context, name: string): Promise<void> {
    const rec = await this.mustRead(ctx, name);
    const svc = (await this.instances(ctx)).get(name);
    if (svc?.state === 'running') {
      this.warm.set(`${ctx.tenant}/${name}`, this.options.now());
      this.sweep();
    } else if (svc && svc.state !== 'stopped') {
      throw errors.BadRequest(SERVICE, `function ${name} is not running (${statusOf(rec, svc)}); Update or Deploy it again`);
    } else {
      try {
        await this.start(ctx, rec, 'create');
      } catch (err) {
        if (isMicroError(err) && err.code === 400) await this.write(ctx, { ...rec, error: err.detail });
        throw err;
      }
    }
    if (rec.idle || rec.error) await this.write(ctx, { ...rec, idle: false, error: undefined });
  }

  /** Starts the idle check while something is warm; stops it when nothing is. */
  private sweep(): void {
    if (this.sweeper || this.warm.size === 0) return;
    const every = Math.max(100, Math.min(this.options.idleMs / 2, 30_000));
    this.sweeper = setInterval(() => void this.scaleDown(), every);
    this.sweeper.unref();
  }

  /** Stops every function idle for `idleMs` that no call is using (its record stays, marked idle). */
  async scaleDown(): Promise<void> {
    const now = this.options.now();
    for (const [key, last] of this.warm) {
      if (now - last < this.options.idleMs || this.inflight.has(key) || this.starting.has(key)) continue;
      const slash = key.indexOf('/');
      const ctx = { tenant: key.slice(0, slash), signal: undefined } as unknown as Context;
      const name = key.slice(slash + 1);
      this.warm.delete(key);
      await this.locked(ctx, name, async () => {
        if (this.warm.has(key)) return; // called again meanwhile
        const rec = await this.read(ctx, name);
        await this.stop(ctx, name);
        if (rec) await this.write(ctx, { ...rec, idle: true });
      }).catch(() => this.warm.set(key, last)); // the server may be stopping: try again next time
    }
    if (this.warm.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  forget(ctx: Pick<Context, 'tenant'>, name: string): void {
    this.warm.delete(`${ctx.tenant}/${name}`);
  }

  newRecord(fields: Omit<FuncRecord, 'id' | 'created' | 'updated' | 'idle'>): FuncRecord {
    return { ...fields, ...this.stamp(this.options.now()), idle: false };
  }
}

/** `running`, `deploying`, `idle` (scaled to zero: the next call starts it) or `error: <why>`. */
export function statusOf(rec: FuncRecord, svc: RuntimeService | undefined): string {
  return deployedStatus(svc, rec.error, 'idle');
}

/** The gateway URL of the function's own service (answers while it runs; function.Call also wakes it). */
export function urlOf(name: string): string {
  return `${publicUrl()}/v1/${serviceOf(name)}/Call`;
}
