/**
 * `@micro/server/nats`: the engines of the distributed profile (MICRO_PROFILE=nats) —
 * PostgreSQL, JetStream, KV buckets and Redis. A module of their own, loaded by micro
 * server only when the profile asks for them, so that the embedded profile never loads
 * pg, ioredis or nats.js (about 300 ms of start time).
 */
import type { NatsProfile } from '@micro/sdk';
import type { CoreServiceFactory } from './core.js';
import { postgresStoreCoreService } from './store/postgres.js';
import { configCoreServiceFor } from './config/kv.js';
import { postgresSyncCoreService } from './sync/postgres.js';
import { eventsCoreServiceFor } from './events/jetstream.js';
import { redisCacheCoreService } from './cache/redis.js';
import { natsTraceCoreService } from './trace/nats.js';
import { postgresFulltextCoreService } from './fulltext/index.js';

export { openRegistry, KvRegistry } from '@micro/sdk/nats';
export { openPostgres, migrate, SchemaVersionError } from './postgres/index.js';
export type { Postgres, PostgresOptions, Migration } from './postgres/index.js';
export { PostgresStore, postgresStoreCoreService } from './store/postgres.js';
export { PostgresLocks, PostgresSync, postgresSyncCoreService } from './sync/postgres.js';
export { KvConfig, configCoreServiceFor, kvConfigCoreService } from './config/kv.js';
export { JetStreamEvents, connectJetStreamEvents, eventsCoreServiceFor, jetstreamEventsCoreService } from './events/jetstream.js';
export type { JetStreamEventsOptions } from './events/jetstream.js';
export { RedisCache, redisCacheCoreService } from './cache/redis.js';
export type { RedisCacheOptions, RedisCacheServiceOptions } from './cache/redis.js';
export { RedisRateLimiter, openRateLimiter } from './gateway/ratelimit-redis.js';
export type { RedisRateLimitOptions } from './gateway/ratelimit-redis.js';
export { openPgAuth, PgAccounts, PgTokens } from './auth/pg/index.js';
export type { PgAuth, PgAuthOptions } from './auth/pg/index.js';
export { PostgresRuntimeDirectory } from './runtime/directory.js';
export { natsTraceShare, natsTraceCoreService } from './trace/nats.js';
export { PostgresFulltext, PostgresFulltextStorage, FULLTEXT_POSTGRES_MIGRATIONS } from './fulltext/postgres.js';
export type { PostgresFulltextOptions } from './fulltext/postgres.js';

/** The core services on the shared engines, in the order micro server starts them (see core-services.ts). */
export function natsCoreServices(profile: NatsProfile): CoreServiceFactory[] {
  return [natsTraceCoreService(profile), postgresStoreCoreService(profile), configCoreServiceFor(profile), postgresSyncCoreService(profile), eventsCoreServiceFor(profile), redisCacheCoreService(profile), postgresFulltextCoreService(profile)];
}
