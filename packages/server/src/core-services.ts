import type { CoreServiceFactory } from './core.js';
import { storeFactory } from './store/index.js';
import { configCoreService } from './config/index.js';
import { syncCoreService } from './sync/index.js';
import { eventsCoreService } from './events/index.js';

/**
 * The core services micro server hosts beside auth, registry, broker and runtime, in
 * the order they start. Each folder exports its factory (see CoreService in core.ts).
 */
export const CORE_SERVICES: readonly CoreServiceFactory[] = [storeFactory, configCoreService, syncCoreService, eventsCoreService];
