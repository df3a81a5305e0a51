import { defaultEngines, run } from '@micro/sdk';
import { stream } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/stream`: the stream service in its own namespace, on this process's engines
await run(stream, service.handlers(defaultEngines()));
