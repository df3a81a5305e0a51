/**
 * The store: key-value records (Store), large values (BlobStore) and typed models on top.
 * Interfaces, the in-memory engines for tests, the remote engines that talk to the store
 * service of `micro server`, and the service's contract.
 */
export type {
  Store,
  StoreRecord,
  StoreDefaults,
  MetadataValue as StoreMetadataValue,
  ScopeOptions as StoreScopeOptions,
  ScanOptions as StoreScanOptions,
  ReadOptions as StoreReadOptions,
  WriteOptions as StoreWriteOptions,
  DeleteOptions as StoreDeleteOptions,
  ListOptions as StoreListOptions,
  NamesOptions as StoreNamesOptions,
  TablesOptions as StoreTablesOptions,
  Order as StoreOrder,
  QueryOptions as StoreQueryOptions,
  CountOptions as StoreCountOptions,
  StoreWhere,
  StoreQueryOp,
  StoreQueryValue,
} from './store.js';
export { QUERY_LIMITS, checkPath as checkQueryPath } from './query.js';
export type { BlobStore, BlobInfo, BlobOptions, BlobListOptions, BlobData } from './blob.js';
export { DEFAULT_BLOB_MAX_SIZE, BLOB_CHUNK_SIZE, readBlob } from './blob.js';
export { MemoryStore } from './memory.js';
export type { MemoryStoreOptions } from './memory.js';
export { MemoryBlobStore } from './memory-blob.js';
export type { MemoryBlobStoreOptions } from './memory-blob.js';
export { storeService, StoreRecordSchema } from './definition.js';
export type { StoreService } from './definition.js';
export { storeHandlers } from './handlers.js';
export type { StoreHandlerOptions } from './handlers.js';
export { RemoteStore, RemoteBlobStore } from './remote.js';
export type { RemoteStoreOptions } from './remote.js';
export { model } from './model.js';
export type { Model, ModelOptions, ModelCallOptions, Query as ModelQuery, Where as ModelWhere, Range as ModelRange } from './model.js';
export { STORE_LIMITS, STORE_ERROR_ID } from './util.js';
// for engines and their tests
export * as storeEngine from './engine.js';
