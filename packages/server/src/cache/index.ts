import { cacheService, MemoryCache, type MemoryCacheOptions } from '@micro/sdk';
import { positiveFromEnv, type CoreServiceFactory } from '../core.js';
import { cacheServiceHandlers } from './handlers.js';
import { cacheQuota } from './quota.js';

export { cacheServiceHandlers } from './handlers.js';
// the Redis engine (nats profile) is in ../nats.ts, so that the local profile never loads ioredis

export type CacheServiceOptions = Pick<MemoryCacheOptions, 'maxKeys' | 'maxBytes'>;

/**
 * The cache core service of the local profile: in this process's memory (a restart
 * empties it), bounded per namespace — MICRO_CACHE_MAX_KEYS keys (default 100,000) and
 * MICRO_CACHE_MAX_BYTES bytes of keys and values (default 64 MiB) — past which the least
 * recently used keys of that namespace are evicted.
 */
export function cacheCoreService(options: CacheServiceOptions = {}): CoreServiceFactory {
  return (ctx) => {
    const cache = new MemoryCache({
      maxKeys: options.maxKeys ?? positiveFromEnv('MICRO_CACHE_MAX_KEYS'),
      maxBytes: options.maxBytes ?? positiveFromEnv('MICRO_CACHE_MAX_BYTES'),
      quota: cacheQuota(ctx),
    });
    ctx.quotas?.addSource(async (namespace) => ({ cacheBytes: cache.usage(namespace).bytes }));
    return { def: cacheService, handlers: cacheServiceHandlers(cache), stop: () => cache.close(), purge: async (namespace) => cache.purgeNamespace(namespace) };
  };
}

/** The factory micro server hosts (see CORE_SERVICES). */
export const cacheFactory: CoreServiceFactory = cacheCoreService();
