import { defaultEngines, run } from '@micro/sdk';
import { space } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/space`: the space service on this process's engines, serving its own
// namespace (micro server hosts it for every namespace, with /space/<namespace>/<name> on its gateway)
await run(space, service.handlers(defaultEngines()));
