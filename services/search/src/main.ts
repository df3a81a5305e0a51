import { defaultEngines, run } from '@micro/sdk';
import { searchDef } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/search`: the search service in its own namespace, on the process's engines.
await run(searchDef, service.handlers(defaultEngines()));
