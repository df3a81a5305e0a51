import { join } from 'node:path';
import { fulltextService, type FulltextEngine, type NatsProfile } from '@micro/sdk';
import type { CoreService, CoreServiceFactory } from '../core.js';
import { fulltextServiceHandlers } from './handlers.js';
import { SqliteFulltext } from './sqlite.js';

export { SqliteFulltext, SqliteFulltextStorage, FULLTEXT_SCHEMA_VERSION } from './sqlite.js';
export type { SqliteFulltextOptions } from './sqlite.js';
export { fulltextServiceHandlers } from './handlers.js';
// the PostgreSQL engine (nats profile) is in ./postgres.ts, loaded by ../nats.ts only

/** A fulltext core service over an engine: purge deletes a namespace's indexes. */
export function fulltextCore(engine: FulltextEngine): CoreService {
  return { def: fulltextService, handlers: fulltextServiceHandlers(engine), stop: () => engine.close(), purge: (namespace) => engine.purgeNamespace(namespace) };
}

/** The fulltext core service of the local profile: SQLite FTS5 in <dataDir>/fulltext.db. */
export const fulltextFactory: CoreServiceFactory = (ctx) => fulltextCore(new SqliteFulltext({ path: join(ctx.dataDir, 'fulltext.db') }));

/** The fulltext core service of the nats profile: PostgreSQL full-text search. */
export function postgresFulltextCoreService(profile: Pick<NatsProfile, 'postgresUrl' | 'prefix'>): CoreServiceFactory {
  return async (ctx) => {
    const { PostgresFulltext } = await import('./postgres.js');
    return fulltextCore(await PostgresFulltext.open({ url: profile.postgresUrl, prefix: profile.prefix, logger: ctx.logger }));
  };
}
