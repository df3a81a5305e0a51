/**
 * Which engines micro server and the services use (ARCHITECTURE.md, "Profiles"):
 *
 * - `MICRO_PROFILE=local` (the default): embedded engines (SQLite, memory, local processes).
 * - `MICRO_PROFILE=nats`: the distributed engines that several server nodes share:
 *   NATS with JetStream (`MICRO_NATS_URL`, default nats://127.0.0.1:4222) for RPC, pub/sub,
 *   events, the registry and config; PostgreSQL (`MICRO_POSTGRES_URL`, default
 *   postgres://127.0.0.1:5432/micro) for the store, auth and runtime state; Redis
 *   (`MICRO_REDIS_URL`, default redis://127.0.0.1:6379) for caches and rate limits.
 *
 * `MICRO_PREFIX` (default `micro`) names every NATS subject and bucket, Postgres schema
 * and Redis key of one platform, so that two platforms (or two tests) can share engines.
 */

export type ProfileName = 'local' | 'nats';

export interface LocalProfile {
  name: 'local';
}

export interface NatsProfile {
  name: 'nats';
  natsUrl: string;
  postgresUrl: string;
  redisUrl: string;
  /** what every subject, bucket, schema and key of this platform starts with */
  prefix: string;
}

export type Profile = LocalProfile | NatsProfile;

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
export const DEFAULT_POSTGRES_URL = 'postgres://127.0.0.1:5432/micro';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_PREFIX = 'micro';

// a prefix becomes part of NATS subjects, bucket and stream names, SQL identifiers and Redis keys
const PREFIX = /^[a-z][a-z0-9_]{0,31}$/;

export function checkPrefix(prefix: string): string {
  if (!PREFIX.test(prefix)) {
    throw new Error(`MICRO_PREFIX must be 1 to 32 lower-case letters, digits or _ and start with a letter, not "${prefix}"`);
  }
  return prefix;
}

/** The profile the environment asks for; a clear error for an unknown one. */
export function profileFromEnv(env: NodeJS.ProcessEnv = process.env): Profile {
  const name = (env.MICRO_PROFILE ?? 'local').trim() || 'local';
  if (name === 'local') return { name: 'local' };
  if (name !== 'nats') throw new Error(`MICRO_PROFILE must be "local" or "nats", not "${name}"`);
  return {
    name: 'nats',
    natsUrl: env.MICRO_NATS_URL || DEFAULT_NATS_URL,
    postgresUrl: env.MICRO_POSTGRES_URL || DEFAULT_POSTGRES_URL,
    redisUrl: env.MICRO_REDIS_URL || DEFAULT_REDIS_URL,
    prefix: checkPrefix(env.MICRO_PREFIX || DEFAULT_PREFIX),
  };
}

/** A URL fit for messages: the password (if any) replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  }
}
