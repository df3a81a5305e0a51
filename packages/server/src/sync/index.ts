import { join } from 'node:path';
import type { CoreServiceFactory } from '../core.js';
import { syncHandlers } from './handlers.js';
import { syncService } from '@micro/sdk';
import { SqliteLocks } from './sqlite.js';

export { SqliteLocks, SqliteSync, SYNC_SCHEMA_VERSION } from './sqlite.js';
export { syncHandlers } from './handlers.js';

/** The sync service of micro server: locks and fencing tokens in <home>/data/sync.db. */
export const syncCoreService: CoreServiceFactory = (ctx) => {
  const engine = new SqliteLocks({ path: join(ctx.dataDir, 'sync.db') });
  return { def: syncService, handlers: syncHandlers(engine), stop: () => engine.close() };
};
