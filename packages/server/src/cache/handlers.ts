import { cacheHandlers, type Cache, type CacheService, type Handlers } from '@micro/sdk';
import { namespaceFor } from '../auth/guard.js';

/**
 * The cache service of micro server: the SDK's handlers over an engine, with the
 * namespace rule applied to every request (an account acts in its own namespace unless
 * it is an admin of micro; naming another is a 403 before the engine is touched).
 */
export function cacheServiceHandlers(cache: Cache): Handlers<CacheService> {
  return cacheHandlers(cache, { namespace: namespaceFor });
}
