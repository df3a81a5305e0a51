import { defaultEngines, run } from '@micro/sdk';
import { user } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/user`: the user service in its own namespace, on the process's engines.
await run(user, service.handlers(defaultEngines()));
