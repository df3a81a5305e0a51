import { defaultEngines, run } from '@micro/sdk';
import { event } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/event`: the event service in its own namespace, on this process's engines
await run(event, service.handlers(defaultEngines()));
