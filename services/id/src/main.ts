import { defaultEngines, run } from '@micro/sdk';
import { idDef } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/id`: the id service in its own namespace, on the process's engines.
await run(idDef, service.handlers(defaultEngines()));
