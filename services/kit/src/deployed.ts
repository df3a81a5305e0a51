import { randomBytes } from 'node:crypto';
import { createClient, endpoint, errors, isMicroError, MicroError, runtime, z, type Context, type Engines, type RuntimeService, type TypedClient } from '@micro/sdk';
import { m3oRequest, missing } from './wire.js';
import { tenantStore, type TenantStore } from './tenant.js';
import { withTenantLock, type TenantLockOptions } from './lock.js';

/**
 * What the services that run a tenant's code through the runtime share (function, app):
 * the rules of their names, environment variables and regions, and reserved names.
 */

/**
 * A deployed thing's name: lower-case letters, digits and single inner dashes, at most 63
 * (a DNS label, so that it can name a host). The runtime runs it under a prefix of the
 * service's (`fn-<name>`, `app-<name>`) that keeps it apart from the tenant's own services.
 */
const LABEL = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkLabel(service: string, name: string | undefined, what: string): string {
  if (!name) throw missing(service, 'name');
  if (!LABEL.test(name) || name.includes('--')) {
    throw errors.BadRequest(service, `name ${JSON.stringify(name.slice(0, 80))} is not ${what} name: use 1 to 63 lower-case letters, digits and single dashes, starting with a letter and not ending with a dash`);
  }
  return name;
}

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** at most this many environment variables a deployed thing */
export const MAX_ENV = 100;

/** env_vars as given, checked: at most MAX_ENV names of letters, digits and _, none of the platform's (MICRO_…, and `reserved`). */
export function checkEnvVars(service: string, env: Record<string, string> | undefined, reserved: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Object.entries(env ?? {});
  if (entries.length > MAX_ENV) throw errors.BadRequest(service, `env_vars: at most ${MAX_ENV} variables`);
  for (const [k, v] of entries) {
    if (!ENV_KEY.test(k)) throw errors.BadRequest(service, `env_vars: ${JSON.stringify(k.slice(0, 80))} is not an environment variable name (letters, digits and _, not starting with a digit)`);
    if (k.toUpperCase().startsWith('MICRO_') || reserved.includes(k)) throw errors.BadRequest(service, `env_vars: ${k} is set by the platform (so are names starting with MICRO_)`);
    out[k] = v;
  }
  return out;
}

/** The region asked for, one of `regions` (the first when none is asked for). */
export function checkRegion(service: string, region: string | undefined, regions: readonly string[]): string {
  if (!region) return regions[0] as string;
  if (!regions.includes(region)) throw errors.BadRequest(service, `region ${JSON.stringify(region.slice(0, 64))} is not one of ${regions.join(', ')}`);
  return region;
}

/** Regions from a comma-separated variable (default `local`). */
export function regionsFrom(value: string | undefined): string[] {
  return (value || 'local').split(',').map((r) => r.trim()).filter(Boolean);
}

export interface Reservation {
  created: string;
  expires: string;
  name: string;
  owner: string;
  token: string;
}

const RESERVATION_MS = 60 * 60 * 1000;

/**
 * Names a tenant holds for an hour before it deploys under them (M3O's Reserve), kept in
 * the tenant's own store of the service (`reservation/<name>`) beside its records
 * (`<prefix><name>`). Everything is by the TenantStore given: a tenant sees only its own.
 */
export class Reservations {
  constructor(
    /** where the service keeps its records: their keys start with it (`fn/`) */
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** The live reservation of `name`, if any. */
  async live(store: TenantStore, name: string): Promise<Reservation | undefined> {
    const [r] = await store.read(`reservation/${name}`);
    const res = r?.value as Reservation | undefined;
    return res && Date.parse(res.expires) > this.now() ? res : undefined;
  }

  /** How many records and live reservations the tenant has, but `name`'s. */
  async held(store: TenantStore, name: string): Promise<number> {
    const names = new Set((await store.list({ prefix: this.prefix, limit: 1_000 })).map((k) => k.slice(this.prefix.length)));
    for (const key of await store.list({ prefix: 'reservation/', limit: 1_000 })) {
      const n = key.slice('reservation/'.length);
      if (!names.has(n) && (await this.live(store, n))) names.add(n);
    }
    names.delete(name);
    return names.size;
  }

  /** Holds `name` for an hour from now (again: the same token, an hour from now). */
  async reserve(store: TenantStore, name: string, owner: string): Promise<Reservation> {
    const live = await this.live(store, name);
    const now = this.now();
    const reservation: Reservation = { created: new Date(now).toISOString(), expires: new Date(now + RESERVATION_MS).toISOString(), name, owner, token: live?.token ?? randomBytes(16).toString('hex') };
    await store.write({ key: `reservation/${name}`, value: reservation as unknown as Record<string, unknown> });
    return reservation;
  }

  /** The name is taken by a record now: its reservation goes. */
  async release(store: TenantStore, name: string): Promise<void> {
    await store.delete(`reservation/${name}`);
  }
}

/** Which lines Logs answers: `run` (or empty) every line, `build` the runtime's own (build, start, stop). */
export type LogsType = '' | 'run' | 'build';

export function checkLogsType(service: string, type: string | undefined): LogsType {
  const t = type ?? '';
  if (t !== '' && t !== 'run' && t !== 'build') throw errors.BadRequest(service, `logs_type ${JSON.stringify(t.slice(0, 32))} is not one of run (every line, the default) or build (the runtime's lines only)`);
  return t;
}

/** The runtime's log lines of a deployed thing as M3O's `logs` text; a thing that never ran has none yet (the runtime's 404). */
export async function logText(lines: AsyncIterable<{ time: string; stream: string; line: string }>, type: LogsType): Promise<string> {
  const out: string[] = [];
  try {
    for await (const l of lines) if (type !== 'build' || l.stream === 'runtime') out.push(`${l.time} ${l.stream} ${l.line}`);
  } catch (err) {
    if (!isMicroError(err) || err.code !== 404) throw err;
  }
  return out.join('\n');
}

/**
 * A deployed thing's status from the runtime's service `svc`: `running`, `deploying`,
 * `error: <why>` (its last failure `error`, else the runtime's), or `otherwise` when the
 * runtime does not run it (a function scaled to zero is `idle`, an app `stopped`).
 */
export function deployedStatus(svc: RuntimeService | undefined, error: string | undefined, otherwise: string): string {
  if (svc?.state === 'running') return 'running';
  if (svc && ['pending', 'building', 'starting'].includes(svc.state)) return 'deploying';
  if (error) return `error: ${error}`;
  if (svc && svc.state !== 'stopped') return `error: ${svc.build?.error ?? svc.instances.find((i) => i.lastError)?.lastError ?? svc.state}`;
  return otherwise;
}

export interface DeploymentsOptions {
  /** the service's name: its error id and the database of its records */
  service: string;
  /** what one deployed thing is called in messages (`function`, `app`) */
  what: string;
  /** the prefix of its records' keys (`<prefix>/<name>`) and of its runtime service (`<prefix>-<name>`) */
  prefix: string;
  /** the lock held while one is deployed or removed (its ttl covers the longest deploy) */
  lock: TenantLockOptions;
  /** how many deployed things and live reservations a tenant may have */
  max: number;
  /** default Date.now */
  now?: () => number;
}

/**
 * The deployed things of every tenant, as a service that runs tenants' code keeps them: a
 * record per thing in the tenant's own store of the service (`<prefix>/<name>`), the
 * running thing the runtime's service `<prefix>-<name>` in the tenant's namespace (the
 * prefix keeps them apart from the tenant's own services). Every operation takes the
 * tenant from ctx.tenant: a name is only ever looked up in the caller's own store and
 * namespace.
 */
export class Deployments<R extends { name: string; error?: string | undefined }> {
  private readonly rt: TypedClient<typeof runtime> | undefined;
  readonly reservations: Reservations;

  constructor(
    protected readonly engines: Engines,
    protected readonly deployment: DeploymentsOptions,
  ) {
    this.rt = engines.client ? createClient(runtime, engines.client) : undefined;
    this.reservations = new Reservations(`${deployment.prefix}/`, deployment.now);
  }

  /** A 403 when the tenant holds as many things and reservations as it may, `name` aside. */
  async admit(ctx: Pick<Context, 'tenant'>, name: string): Promise<void> {
    const { max, service, what } = this.deployment;
    if ((await this.reservations.held(this.store(ctx), name)) >= max) throw errors.Forbidden(service, `you have ${max} ${what}s and reservations, the most a namespace may have: delete one first`);
  }

  /**
   * Run (Deploy): a new thing under a free name, or again under one whose last run failed;
   * its reservation is spent. `make` gives its record (from the failed one, if any), `start`
   * runs it. When `start` fails with the thing's own failure (`own`: its build, its start)
   * the record stays with that `error` as its status; when the platform refused (no
   * sandbox, a quota) the answer is that refusal and a new record goes again.
   */
  run(ctx: Pick<Context, 'tenant' | 'signal'>, name: string, taken: string, make: (was: R | undefined) => R, start: (rec: R) => Promise<void>, own: (err: unknown) => err is MicroError): Promise<R> {
    return this.locked(ctx, name, async () => {
      const was = await this.read(ctx, name);
      if (was && !was.error) throw errors.Conflict(this.deployment.service, `${this.deployment.what} ${name} exists: ${taken}`);
      await this.admit(ctx, name);
      const rec = make(was);
      await this.write(ctx, rec);
      await this.reservations.release(this.store(ctx), name);
      try {
        await start(rec);
        rec.error = undefined;
      } catch (err) {
        if (!own(err)) {
          if (!was) await this.remove(ctx, name);
          throw err;
        }
        rec.error = err.detail;
      }
      await this.write(ctx, rec);
      return rec;
    });
  }

  /** Reserve: holds a free name for an hour (again: an hour from now, the same token). */
  reserve(ctx: Pick<Context, 'tenant' | 'signal' | 'account'>, name: string): Promise<Reservation> {
    return this.locked(ctx, name, async () => {
      if (await this.read(ctx, name)) throw errors.Conflict(this.deployment.service, `${this.deployment.what} ${name} exists already`);
      if (!(await this.reservations.live(this.store(ctx), name))) await this.admit(ctx, name);
      return this.reservations.reserve(this.store(ctx), name, ctx.account?.id ?? '');
    });
  }

  /** Logs: the text of its last lines (logs_type checked), once it is known to be the tenant's. */
  async logText(ctx: Pick<Context, 'tenant'>, name: string, logsType: string | undefined): Promise<string> {
    const type = checkLogsType(this.deployment.service, logsType);
    await this.mustRead(ctx, name);
    return logText(this.logs(ctx, name), type);
  }

  store(ctx: Pick<Context, 'tenant'>): TenantStore {
    return tenantStore(this.engines.store, ctx, this.deployment.service);
  }

  protected runtime(): TypedClient<typeof runtime> {
    if (!this.rt) throw errors.ServiceUnavailable(this.deployment.service, `${this.deployment.what}s need micro server: its runtime builds and runs them`);
    return this.rt;
  }

  /** The runtime's name of a deployed thing's service. */
  serviceOf(name: string): string {
    return `${this.deployment.prefix}-${name}`;
  }

  async read(ctx: Pick<Context, 'tenant'>, name: string): Promise<R | undefined> {
    const [rec] = await this.store(ctx).read(`${this.deployment.prefix}/${name}`);
    return rec?.value as R | undefined;
  }

  async mustRead(ctx: Pick<Context, 'tenant'>, name: string): Promise<R> {
    const rec = await this.read(ctx, name);
    if (!rec) throw errors.NotFound(this.deployment.service, `you have no ${this.deployment.what} named ${name}`);
    return rec;
  }

  write(ctx: Pick<Context, 'tenant'>, rec: R): Promise<void> {
    return this.store(ctx).write({ key: `${this.deployment.prefix}/${rec.name}`, value: rec as unknown as Record<string, unknown> });
  }

  remove(ctx: Pick<Context, 'tenant'>, name: string): Promise<void> {
    return this.store(ctx).delete(`${this.deployment.prefix}/${name}`);
  }

  async records(ctx: Pick<Context, 'tenant'>): Promise<R[]> {
    const prefix = `${this.deployment.prefix}/`;
    const keys = await this.store(ctx).list({ prefix, limit: 1_000 });
    const recs = await Promise.all(keys.map((k) => this.read(ctx, k.slice(prefix.length))));
    return recs.filter((r): r is Awaited<R> => r !== undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The runtime's view of the tenant's deployed things, by their names. */
  async instances(ctx: Pick<Context, 'tenant'>): Promise<Map<string, RuntimeService>> {
    const { services } = await this.runtime().Read({ namespace: ctx.tenant });
    const prefix = `${this.deployment.prefix}-`;
    return new Map(services.filter((s) => s.name.startsWith(prefix)).map((s) => [s.name.slice(prefix.length), s]));
  }

  locked<T>(ctx: Pick<Context, 'tenant' | 'signal'>, name: string, fn: () => Promise<T>): Promise<T> {
    return withTenantLock(this.engines, ctx, this.deployment.service, name, fn, this.deployment.lock);
  }

  /** Runs the runtime's Create or Update to its end; the runtime's refusal (a build or a start that failed, a quota) as this service's error. */
  protected async progress(steps: AsyncIterable<unknown>): Promise<void> {
    try {
      for await (const step of steps) void step;
    } catch (err) {
      throw isMicroError(err) && err.id === 'runtime' ? new MicroError(this.deployment.service, err.code, err.detail) : err;
    }
  }

  /** Stops the thing's service, if the runtime runs it. */
  async stop(ctx: Pick<Context, 'tenant'>, name: string): Promise<void> {
    try {
      await this.runtime().Delete({ name: this.serviceOf(name), namespace: ctx.tenant });
    } catch (err) {
      if (!isMicroError(err) || err.code !== 404) throw err;
    }
  }

  /** The last 100 lines of its log (the runtime's log of its service). */
  logs(ctx: Pick<Context, 'tenant'>, name: string) {
    return this.runtime().Logs({ name: this.serviceOf(name), namespace: ctx.tenant, lines: 100 }, { timeout: 30_000 });
  }

  /** A new record's id and times. */
  protected stamp(now: number): { id: string; created: string; updated: string } {
    const at = new Date(now).toISOString();
    return { id: randomBytes(8).toString('hex'), created: at, updated: at };
  }
}

/** The endpoints the services of deployed things have alike (M3O's function and app APIs): Logs, Reserve, Regions. */
export function deployedEndpoints(what: string) {
  // a name as the caller sent it: the handlers check it (checkLabel) so that the error says what a name may be
  const name = z.string().max(1024).optional();
  const reservation = z.object({ created: z.string(), expires: z.string(), name: z.string(), owner: z.string(), token: z.string() });
  return {
    Logs: endpoint({
      request: m3oRequest({ name, logs_type: z.string().max(32).optional() }),
      response: z.object({ logs: z.string() }),
      price: 10,
      freeQuota: 10_000,
      idempotent: true,
      readonly: true,
      description: `The last 100 lines the ${what} printed (logs_type "build": only the runtime's lines: build, start, stop)`,
    }),
    Reserve: endpoint({ request: m3oRequest({ name }), response: z.object({ reservation }), price: 10, freeQuota: 1_000, description: `Holds a ${what} name in your namespace for an hour (again: an hour from now)` }),
    Regions: endpoint({ request: m3oRequest({}), response: z.object({ regions: z.array(z.string()) }), price: 0, freeQuota: 1_000_000, idempotent: true, readonly: true, description: `Where ${what}s can run` }),
  };
}
