import { join } from 'node:path';
import { privateDir } from '@micro/sdk';
import { positiveFromEnv, type CoreServiceFactory } from '../core.js';
import { FileBlobStore } from './blobs.js';
import { storeServiceHandlers } from './handlers.js';
import { storeService } from '@micro/sdk';
import { SqliteStore } from './sqlite.js';
import { storeLimits } from '../quota/index.js';

export { SqliteStore, STORE_SCHEMA_VERSION } from './sqlite.js';
export type { SqliteStoreOptions } from './sqlite.js';
export { FileBlobStore } from './blobs.js';
export type { FileBlobStoreOptions } from './blobs.js';
export { storeServiceHandlers } from './handlers.js';

export interface StoreServiceOptions {
  /** the largest blob in bytes (default MICRO_STORE_BLOB_MAX_SIZE, else 64 MiB) */
  blobMaxSize?: number;
  /** ms between purges of expired records (default 60,000) */
  purgeInterval?: number;
}

/**
 * The store core service: records in <dataDir>/store.db (SQLite), blobs as files under
 * <dataDir>/blobs indexed in the same database.
 */
export function storeCoreService(options: StoreServiceOptions = {}): CoreServiceFactory {
  return (ctx) => {
    const blobMaxSize = options.blobMaxSize ?? positiveFromEnv('MICRO_STORE_BLOB_MAX_SIZE', 'number of bytes');
    const limits = storeLimits(ctx);
    const store = new SqliteStore({ path: join(ctx.dataDir, 'store.db'), purgeInterval: options.purgeInterval, limits });
    // what the store counts shows in quota.Read
    ctx.quotas?.addSource((namespace) => store.usage(namespace));
    let blobs: FileBlobStore;
    try {
      blobs = new FileBlobStore({ db: store.db, dir: privateDir(join(ctx.dataDir, 'blobs')), maxSize: blobMaxSize, limits });
    } catch (err) {
      void store.close();
      throw err;
    }
    return {
      def: storeService,
      handlers: storeServiceHandlers(store, blobs),
      blobs,
      // the blobs first: the records' purge drops the usage row once both are at zero
      purge: async (namespace) => {
        await blobs.purgeNamespace(namespace);
        store.purgeNamespace(namespace);
      },
      stop: async () => {
        await blobs.close();
        await store.close();
      },
    };
  };
}

/** The factory micro server hosts (see CORE_SERVICES). */
export const storeFactory: CoreServiceFactory = storeCoreService();
