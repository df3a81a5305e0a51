import type { CoreServiceFactory } from '@micro/server/engine';
import { signupCoreService } from './signup/index.js';

/**
 * The services of the platform layer, hosted by `micro server` in namespace `micro` beside
 * the core services (MicroServerOptions.coreServices; `micro server` passes these).
 * Each folder of src/ adds its factory here.
 */
export function platformCoreServices(): CoreServiceFactory[] {
  return [signupCoreService()];
}
