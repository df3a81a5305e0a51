import { defaultEngines, run } from '@micro/sdk';
import { functionDef } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/function`: the function service in its own namespace, on the process's engines.
await run(functionDef, service.handlers(defaultEngines()));
