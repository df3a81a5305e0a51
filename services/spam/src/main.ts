import { defaultEngines, run } from '@micro/sdk';
import { spamDef } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/spam`: the spam service in its own namespace.
await run(spamDef, service.handlers(defaultEngines()));
