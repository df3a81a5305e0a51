import { randomBytes } from 'node:crypto';
import { errors, isMicroError, type RuntimeService } from '@micro/sdk';
import { missing } from './wire.js';
import type { TenantStore } from './tenant.js';

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
