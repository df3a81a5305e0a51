import type { Profile } from '@micro/sdk';
import type { CoreServiceFactory } from './core.js';
import { storeFactory } from './store/index.js';
import { configCoreService } from './config/index.js';
import { syncCoreService } from './sync/index.js';
import { eventsCoreService } from './events/index.js';
import { cacheFactory } from './cache/index.js';
import { traceFactory } from './trace/index.js';
import { fulltextFactory } from './fulltext/index.js';

/**
 * The core services micro server hosts beside auth, registry, broker and runtime, in
 * the order they start, with the embedded engines (MICRO_PROFILE=local). Each folder
 * exports its factory (see CoreService in core.ts).
 */
export const CORE_SERVICES: readonly CoreServiceFactory[] = [traceFactory, storeFactory, configCoreService, syncCoreService, eventsCoreService, cacheFactory, fulltextFactory];

/**
 * The same services on the engines of a profile: embedded (SQLite files in MICRO_HOME),
 * or with MICRO_PROFILE=nats the engines several nodes share — the store and sync on
 * PostgreSQL, config on a JetStream KV bucket, events on JetStream streams, the cache in
 * Redis, full-text search on PostgreSQL.
 */
export async function coreServicesFor(profile: Profile): Promise<readonly CoreServiceFactory[]> {
  if (profile.name !== 'nats') return CORE_SERVICES;
  // loaded only for this profile: pg, ioredis and nats.js cost the embedded one start time
  return (await import('./nats.js')).natsCoreServices(profile);
}
