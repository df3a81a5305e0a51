import { fulltextHandlers, type Fulltext, type FulltextService, type Handlers } from '@micro/sdk';
import { namespaceFor } from '../auth/guard.js';

/**
 * The fulltext service of micro server: the SDK's handlers over an engine, with the
 * namespace rule applied to every request (an account acts in its own namespace unless
 * it is an admin of micro; naming another is a 403 before the engine is touched).
 */
export function fulltextServiceHandlers(engine: Fulltext): Handlers<FulltextService> {
  return fulltextHandlers(engine, { namespace: namespaceFor });
}
