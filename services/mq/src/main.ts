import { defaultEngines, run } from '@micro/sdk';
import { mq } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/mq`: the mq service in its own namespace, on this process's engines
await run(mq, service.handlers(defaultEngines()));
