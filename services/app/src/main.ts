import { defaultEngines, run } from '@micro/sdk';
import { appDef } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/app`: the app service in its own namespace, on the process's engines.
await run(appDef, service.handlers(defaultEngines()));
