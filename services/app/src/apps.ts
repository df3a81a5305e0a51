import { randomBytes } from 'node:crypto';
import { createClient, errors, isMicroError, MicroError, runtime, type Context, type Engines, type RuntimeService, type TypedClient } from '@micro/sdk';
import { checkEnvVars, checkLabel, deployedStatus, publicUrl, regionsFrom, tenantStore, withTenantLock, type TenantStore } from '@micro/services-kit';
import type { App } from './definition.js';

export const SERVICE = 'app';

/**
 * The apps of every tenant. What is kept where:
 *
 * - a record per app in the tenant's own store (database `app`, key `app/<name>`): its
 *   repository, branch, port, env, id, times, and why its last run failed (`error`);
 * - the running app is the runtime's: service `app-<name>` in the tenant's namespace, run
 *   with `app: {port}` (the SDK's app bridge, packages/sdk/src/runtime/app-bridge.ts),
 *   fetched as the tenant's own source (`asTenant`: public git under the runtime's rules for
 *   strangers, however the platform calls), sandboxed with the namespace's limits;
 * - how it is reached: the gateway's app proxy (packages/server/src/gateway/apps.ts) at
 *   `/app/<namespace>/<name>/`, which finds the bridge's registry node in that namespace.
 *
 * Every operation takes the tenant from ctx.tenant.
 */
export interface AppOptions {
  /** where apps run (MICRO_APP_REGIONS, comma-separated; default local) */
  regions: string[];
  /** apps and live reservations a tenant may have (MICRO_APP_MAX; default 20) */
  maxApps: number;
  /** default Date.now */
  now: () => number;
}

export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): AppOptions {
  const max = Number(env.MICRO_APP_MAX);
  return { regions: regionsFrom(env.MICRO_APP_REGIONS), maxApps: env.MICRO_APP_MAX && Number.isInteger(max) && max > 0 ? max : 20, now: Date.now };
}

export interface AppRecord {
  id: string;
  name: string;
  repo: string;
  branch: string;
  port: number;
  env_vars: Record<string, string>;
  region: string;
  created: string;
  updated: string;
  /** why the last run or update failed, until one succeeds */
  error?: string;
}

/** Longest a run or an update may take before its caller stops waiting (the runtime goes on). */
const START_TIMEOUT = 300_000;
const LOCK = { ttl: START_TIMEOUT + 10_000, wait: 60_000 };

export function checkName(name: string | undefined): string {
  return checkLabel(SERVICE, name, 'an app');
}

/** The runtime's name of an app's service. */
export function serviceOf(name: string): string {
  return `app-${name}`;
}

/** PORT is the platform's to set (from `port`); the rest as for every deployed thing. */
export function checkEnv(env: Record<string, string> | undefined): Record<string, string> {
  return checkEnvVars(SERVICE, env, ['PORT']);
}

/** The runtime's failures of the app itself (its build, its start, not answering on $PORT), as opposed to the platform's. */
export function appFailure(err: unknown): err is MicroError {
  return isMicroError(err) && err.id === SERVICE && (err.code === 400 || err.code === 504);
}

export class Apps {
  private readonly rt: TypedClient<typeof runtime> | undefined;

  constructor(
    private readonly engines: Engines,
    readonly options: AppOptions,
  ) {
    this.rt = engines.client ? createClient(runtime, engines.client) : undefined;
  }

  store(ctx: Pick<Context, 'tenant'>): TenantStore {
    return tenantStore(this.engines.store, ctx, SERVICE);
  }

  private runtime(): TypedClient<typeof runtime> {
    if (!this.rt) throw errors.ServiceUnavailable(SERVICE, 'apps need micro server: its runtime builds and runs them');
    return this.rt;
  }

  async read(ctx: Pick<Context, 'tenant'>, name: string): Promise<AppRecord | undefined> {
    const [rec] = await this.store(ctx).read(`app/${name}`);
    return rec?.value as AppRecord | undefined;
  }

  async mustRead(ctx: Pick<Context, 'tenant'>, name: string): Promise<AppRecord> {
    const rec = await this.read(ctx, name);
    if (!rec) throw errors.NotFound(SERVICE, `you have no app named ${name}`);
    return rec;
  }

  write(ctx: Pick<Context, 'tenant'>, rec: AppRecord): Promise<void> {
    return this.store(ctx).write({ key: `app/${rec.name}`, value: rec as unknown as Record<string, unknown> });
  }

  async records(ctx: Pick<Context, 'tenant'>): Promise<AppRecord[]> {
    const keys = await this.store(ctx).list({ prefix: 'app/', limit: 1_000 });
    const recs = await Promise.all(keys.map((k) => this.read(ctx, k.slice('app/'.length))));
    return recs.filter((r): r is AppRecord => r !== undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The runtime's view of the tenant's apps, by app name. */
  async instances(ctx: Pick<Context, 'tenant'>): Promise<Map<string, RuntimeService>> {
    const { services } = await this.runtime().Read({ namespace: ctx.tenant });
    return new Map(services.filter((s) => s.name.startsWith('app-') && s.app).map((s) => [s.name.slice('app-'.length), s]));
  }

  locked<T>(ctx: Pick<Context, 'tenant' | 'signal'>, name: string, fn: () => Promise<T>): Promise<T> {
    return withTenantLock(this.engines, ctx, SERVICE, name, fn, LOCK);
  }

  /** Fetches, builds and starts the app (`create`), or rebuilds it and rolls it (`update`); the runtime's error, as this service's, when that fails. */
  async deploy(ctx: Pick<Context, 'tenant'>, rec: AppRecord, how: 'create' | 'update'): Promise<void> {
    const rt = this.runtime();
    const name = serviceOf(rec.name);
    const progress =
      how === 'create'
        ? rt.Create({ source: rec.branch ? `${rec.repo}@${rec.branch}` : rec.repo, name, namespace: ctx.tenant, env: rec.env_vars, app: { port: rec.port }, asTenant: true }, { timeout: START_TIMEOUT })
        : rt.Update({ name, namespace: ctx.tenant, env: rec.env_vars, asTenant: true }, { timeout: START_TIMEOUT });
    try {
      for await (const step of progress) void step;
    } catch (err) {
      // the runtime's refusal (a fetch or build that failed, an app that did not answer, a quota) is this service's answer
      throw isMicroError(err) && err.id === 'runtime' ? new MicroError(SERVICE, err.code, err.detail.replace(`${name} `, `app ${rec.name} `)) : err;
    }
  }

  /** Stops the app's service, if the runtime runs it. */
  async stop(ctx: Pick<Context, 'tenant'>, name: string): Promise<void> {
    try {
      await this.runtime().Delete({ name: serviceOf(name), namespace: ctx.tenant });
    } catch (err) {
      if (!isMicroError(err) || err.code !== 404) throw err;
    }
  }

  logs(ctx: Pick<Context, 'tenant'>, name: string) {
    return this.runtime().Logs({ name: serviceOf(name), namespace: ctx.tenant, lines: 100 }, { timeout: 30_000 });
  }

  /** The app as M3O shows it, its status from the runtime's service (`svc`). */
  view(ctx: Pick<Context, 'tenant'>, rec: AppRecord, svc: RuntimeService | undefined): App {
    return {
      backend: 'local',
      branch: rec.branch,
      created: rec.created,
      custom_domains: [],
      env_vars: rec.env_vars,
      id: rec.id,
      name: rec.name,
      path: '',
      port: rec.port,
      region: rec.region,
      repo: rec.repo,
      status: statusOf(rec, svc),
      updated: rec.updated,
      url: urlOf(ctx.tenant, rec.name),
    };
  }

  newRecord(fields: Omit<AppRecord, 'id' | 'created' | 'updated'>): AppRecord {
    const now = new Date(this.options.now()).toISOString();
    return { ...fields, id: randomBytes(8).toString('hex'), created: now, updated: now };
  }
}

/** `running`, `deploying`, `stopped` (the runtime does not run it) or `error: <why>`. */
export function statusOf(rec: AppRecord, svc: RuntimeService | undefined): string {
  return deployedStatus(svc, rec.error, 'stopped');
}

/** Where the gateway serves the app. */
export function urlOf(namespace: string, name: string): string {
  return `${publicUrl()}/app/${encodeURIComponent(namespace)}/${name}/`;
}
