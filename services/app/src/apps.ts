import { isMicroError, type Context, type Engines, type MicroError, type RuntimeService } from '@micro/sdk';
import { checkEnvVars, checkLabel, deployedStatus, Deployments, publicUrl, regionsFrom } from '@micro/services-kit';
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

/** PORT is the platform's to set (from `port`); the rest as for every deployed thing. */
export function checkEnv(env: Record<string, string> | undefined): Record<string, string> {
  return checkEnvVars(SERVICE, env, ['PORT']);
}

/** The runtime's failures of the app itself (its build, its start, not answering on $PORT), as opposed to the platform's. */
export function appFailure(err: unknown): err is MicroError {
  return isMicroError(err) && err.id === SERVICE && (err.code === 400 || err.code === 504);
}

export class Apps extends Deployments<AppRecord> {
  constructor(
    engines: Engines,
    readonly options: AppOptions,
  ) {
    super(engines, { service: SERVICE, what: 'app', prefix: 'app', lock: LOCK, max: options.maxApps, now: options.now });
  }

  /** Fetches, builds and starts the app (`create`), or rebuilds it and rolls it (`update`); the runtime's error, as this service's, when that fails. */
  async deploy(ctx: Pick<Context, 'tenant'>, rec: AppRecord, how: 'create' | 'update'): Promise<void> {
    const rt = this.runtime();
    const name = this.serviceOf(rec.name);
    const source = rec.branch ? `${rec.repo}@${rec.branch}` : rec.repo;
    await this.progress(
      how === 'create'
        ? rt.Create({ source, name, namespace: ctx.tenant, env: rec.env_vars, app: { port: rec.port }, asTenant: true }, { timeout: START_TIMEOUT })
        : rt.Update({ name, namespace: ctx.tenant, env: rec.env_vars, asTenant: true }, { timeout: START_TIMEOUT }),
    );
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
    return { ...fields, ...this.stamp(this.options.now()) };
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
