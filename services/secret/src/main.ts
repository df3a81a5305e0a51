import { defaultEngines, run } from '@micro/sdk';
import { secret } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/secret`: the secret service in its own namespace, on this process's engines
await run(secret, service.handlers(defaultEngines()));
