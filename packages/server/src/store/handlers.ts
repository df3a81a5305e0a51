import type { Handlers } from '@micro/sdk';
import { namespaceFor } from '../auth/guard.js';
import { storeHandlers, type BlobStore, type Store, type StoreService } from '@micro/sdk';

/**
 * The store service of micro server: the SDK's handlers over the engines, with the
 * namespace rule applied to every request (an account acts in its own namespace unless
 * it is an admin of micro; naming another is a 403 before the engine is touched).
 */
export function storeServiceHandlers(store: Store, blobs: BlobStore): Handlers<StoreService> {
  return storeHandlers(store, blobs, { namespace: namespaceFor });
}
