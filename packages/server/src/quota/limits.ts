import { MicroError, QUOTA_LIMIT_KEYS } from '@micro/sdk';

/** The error id of every quota refusal and of bad input to the quota service. */
export const QUOTA_ERROR_ID = 'quota';

/** What a namespace is limited in (integers; bytes, millicores, counts, requests a second). */
export const LIMIT_KEYS = QUOTA_LIMIT_KEYS;
export type LimitKey = (typeof LIMIT_KEYS)[number];

/** The limits in force: a number, or null for unlimited (namespace micro). */
export type Limits = Record<LimitKey, number | null>;
/** A namespace's own settings: a key absent uses the platform default. */
export type LimitSettings = Partial<Record<LimitKey, number>>;
/** What a namespace uses of each limit that is counted (the per-instance and rate limits have none). */
export type Usage = Partial<Record<LimitKey, number>>;

/** The namespace of the platform itself: never limited. */
export const UNLIMITED_NAMESPACE = 'micro';

/**
 * The largest limit accepted: 2^50 (a petabyte of bytes), far beyond any plan and well
 * inside both JavaScript's safe integers and PostgreSQL's bigint, so that usage + a
 * request can never overflow either.
 */
export const MAX_LIMIT = 2 ** 50;

/** Generous defaults: a tenant meets them only by abuse or by a growing product. */
export const BUILT_IN_DEFAULTS: Readonly<Record<LimitKey, number>> = Object.freeze({
  services: 20,
  instancesPerService: 4,
  memoryPerInstance: 512 * 1024 * 1024,
  cpuPerInstance: 1000,
  storeBytes: 1024 * 1024 * 1024,
  storeRecords: 1_000_000,
  blobBytes: 10 * 1024 * 1024 * 1024,
  apiKeys: 100,
  requestsPerSecond: 100,
  // the local profile's memory cache evicts past 64 MiB a namespace anyway
  cacheBytes: 64 * 1024 * 1024,
  // members + live invites of a team (signup's maxMembers is the platform's hard bound)
  members: 100,
  // 100 a second would allow 259M a month: this default bounds a tenant's month well below
  requestsPerMonth: 10_000_000,
  // payload and metadata bytes of a namespace's stored events (on JetStream: of each topic's stream)
  eventsBytes: 1024 * 1024 * 1024,
  // seconds an event is kept: 7 days, the engines' own default (MICRO_EVENTS_MAX_AGE)
  eventRetention: 7 * 24 * 3600,
});

/** How a tenant brings its usage down, said in each refusal. */
const REMEDY: Record<LimitKey, string> = {
  services: 'kill a service',
  instancesPerService: 'run fewer instances',
  memoryPerInstance: 'ask for less memory',
  cpuPerInstance: 'ask for less CPU',
  storeBytes: 'delete records',
  storeRecords: 'delete records',
  blobBytes: 'delete blobs',
  apiKeys: 'revoke API keys',
  requestsPerSecond: 'slow down',
  cacheBytes: 'delete cache keys',
  members: 'remove members or revoke invites',
  requestsPerMonth: 'wait for the next month',
  eventsBytes: 'let retention remove events (micro events retention)',
  eventRetention: 'keep events for less time',
};

/**
 * The one refusal of every enforcement point: 403 naming the limit, the usage, the
 * namespace and what to do. `used` is what the namespace uses (or asked for, for the
 * per-instance limits), `max` the limit.
 */
export function quotaExceeded(limit: LimitKey, used: number, max: number, namespace: string): MicroError {
  return new MicroError(QUOTA_ERROR_ID, 403, `quota exceeded: ${limit} ${used} of ${max} used in namespace ${namespace}; ${REMEDY[limit]} or ask for a larger quota (micro quota)`);
}

function bad(detail: string): MicroError {
  return new MicroError(QUOTA_ERROR_ID, 400, detail);
}

/**
 * Checks settings from a stranger: an object of known keys, each a whole number from 0
 * to MAX_LIMIT. Anything else is a 400 naming the key; nothing is half-applied.
 */
export function checkSettings(value: unknown, what = 'limits'): LimitSettings {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`${what} must be an object of ${LIMIT_KEYS.join(', ')}`);
  const out: LimitSettings = {};
  for (const [key, n] of Object.entries(value)) {
    if (!(LIMIT_KEYS as readonly string[]).includes(key)) throw bad(`${what}.${key.slice(0, 64)} is not a limit; the limits are ${LIMIT_KEYS.join(', ')}`);
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > MAX_LIMIT) throw bad(`${what}.${key} must be a whole number from 0 to ${MAX_LIMIT}`);
    out[key as LimitKey] = n;
  }
  return out;
}

/**
 * The platform defaults: MICRO_QUOTA_DEFAULTS (JSON settings, e.g. `{"storeBytes":1048576}`)
 * over the built-in ones. A malformed value stops the server with what is wrong.
 */
export function defaultsFromEnv(raw = process.env.MICRO_QUOTA_DEFAULTS): Record<LimitKey, number> {
  if (raw === undefined || raw.trim() === '') return { ...BUILT_IN_DEFAULTS };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error(`MICRO_QUOTA_DEFAULTS must be JSON, e.g. {"storeBytes":1048576}, not ${JSON.stringify(raw.slice(0, 100))}`);
  }
  return { ...BUILT_IN_DEFAULTS, ...checkSettings(parsed, 'MICRO_QUOTA_DEFAULTS') };
}

/** The limits in force for a namespace: its settings over the defaults; micro is unlimited. */
export function resolveLimits(namespace: string, settings: LimitSettings, defaults: Readonly<Record<LimitKey, number>>): Limits {
  const out = {} as Limits;
  for (const key of LIMIT_KEYS) out[key] = namespace === UNLIMITED_NAMESPACE ? null : (settings[key] ?? defaults[key]);
  return out;
}

/** Refuses when `used + amount` would pass `max` (null: unlimited). Shrinking is always allowed. */
export function admit(limit: LimitKey, used: number, amount: number, max: number | null, namespace: string): void {
  if (max === null || amount <= 0) return;
  if (used + amount > max) throw quotaExceeded(limit, used, max, namespace);
}
