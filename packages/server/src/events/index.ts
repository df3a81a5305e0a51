import { join } from 'node:path';
import { errors } from '@micro/sdk';
import type { CoreServiceFactory } from '../core.js';
import { eventsHandlers } from './handlers.js';
import { EVENTS_ERROR_ID, eventsService, type RetentionPolicy } from '@micro/sdk';
import { SqliteEvents } from './sqlite.js';
import { eventsQuota } from './quota.js';

export { SqliteEvents, SqliteStorage, EVENTS_SCHEMA_VERSION } from './sqlite.js';
export type { SqliteEventsOptions } from './sqlite.js';
export { eventsHandlers } from './handlers.js';
// the nats profile: events on JetStream streams (jetstream.ts)
// the JetStream engine (nats profile) is in ../nats.ts, so that the local profile never loads nats.js
export type { EventsHandlerOptions, ServedEvents } from './handlers.js';

/**
 * The events service of micro server: durable streams in <home>/data/events.db.
 *
 * The engine-wide retention comes from the environment (a topic may set its own with
 * SetRetention / `micro events retention`):
 *
 *   MICRO_EVENTS_MAX_AGE     e.g. 7d (the default), 12h, 30m, 0 for no limit
 *   MICRO_EVENTS_MAX_EVENTS  per topic, e.g. 1000000 (default: no limit)
 *   MICRO_EVENTS_MAX_BYTES   per topic, e.g. 512MB, 10GB (default: no limit)
 *
 * With quotas, a publish past the namespace's eventsBytes is refused (403) and the sweep
 * drops its events older than its eventRetention (../quota/README.md).
 */
export const eventsCoreService: CoreServiceFactory = (ctx) => {
  const retention = retentionFromEnv(process.env);
  const events = new SqliteEvents({ path: join(ctx.dataDir, 'events.db'), retention, logger: ctx.logger.child({ component: 'events' }), quota: eventsQuota(ctx) });
  ctx.quotas?.addSource(async (namespace) => ({ eventsBytes: events.namespaceBytes(namespace) }));
  return { def: eventsService, handlers: eventsHandlers(events), stop: () => events.close(), events, purge: (namespace) => events.purgeNamespace(namespace) };
};

const DURATION = /^(\d+)(ms|s|m|h|d)?$/;
const SIZE = /^(\d+)(B|KB|MB|GB|TB)?$/i;
const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const UNITS_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

/** The engine-wide retention set in the environment; a bad value stops the server with what to fix. */
export function retentionFromEnv(env: NodeJS.ProcessEnv): RetentionPolicy {
  const policy: RetentionPolicy = {};
  const age = env.MICRO_EVENTS_MAX_AGE?.trim();
  if (age) {
    const m = DURATION.exec(age);
    if (!m) throw invalid('MICRO_EVENTS_MAX_AGE', age, 'a duration like 7d, 12h, 30m or 0');
    policy.maxAge = Number(m[1]) * (UNITS_MS[m[2] ?? 'ms'] as number);
  }
  const count = env.MICRO_EVENTS_MAX_EVENTS?.trim();
  if (count) {
    if (!/^\d+$/.test(count)) throw invalid('MICRO_EVENTS_MAX_EVENTS', count, 'a whole number (0 for no limit)');
    policy.maxEvents = Number(count);
  }
  const bytes = env.MICRO_EVENTS_MAX_BYTES?.trim();
  if (bytes) {
    const m = SIZE.exec(bytes);
    if (!m) throw invalid('MICRO_EVENTS_MAX_BYTES', bytes, 'a size like 512MB or 10GB (0 for no limit)');
    policy.maxBytes = Number(m[1]) * (UNITS_BYTES[(m[2] ?? 'b').toLowerCase()] as number);
  }
  return policy;
}

function invalid(name: string, value: string, want: string): Error {
  return errors.BadRequest(EVENTS_ERROR_ID, `${name}=${value.slice(0, 40)} is not ${want}`);
}
