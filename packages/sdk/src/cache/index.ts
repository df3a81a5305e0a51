/**
 * The cache: short-lived key-value data with TTLs and atomic counters, after M3O's Cache
 * API. The interface, the in-memory engine, the remote engine that talks to the cache
 * service of `micro server`, the service's contract, and the checks engines share.
 */
export type { Cache, CacheItem, CacheOptions, CacheSetOptions, CacheListOptions } from './cache.js';
export { CACHE_ERROR_ID, CACHE_LIMITS } from './cache.js';
export { MemoryCache, MEMORY_CACHE_DEFAULTS } from './memory.js';
export type { MemoryCacheOptions, MemoryCacheQuota } from './memory.js';
export { cacheService } from './definition.js';
export type { CacheService } from './definition.js';
export { cacheHandlers } from './handlers.js';
export type { CacheHandlerOptions } from './handlers.js';
export { RemoteCache } from './remote.js';
export type { RemoteCacheOptions } from './remote.js';
// for engines and their tests
export * as cacheEngine from './util.js';
