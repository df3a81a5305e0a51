import { defaultEngines, run } from '@micro/sdk';
import { sentimentDef } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/sentiment`: the sentiment service in its own namespace.
await run(sentimentDef, service.handlers(defaultEngines()));
