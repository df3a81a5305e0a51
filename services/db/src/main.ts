import { defaultEngines, run } from '@micro/sdk';
import { db } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/db`: the db service on the process's engines, serving its own namespace.
await run(db, service.handlers(defaultEngines()));
