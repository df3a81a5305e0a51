import { defaultEngines, run } from '@micro/sdk';
import { service } from './handlers.js';

// `micro run ./services/chat`: the chat service in its own namespace, on the process's engines
await run(service.def, service.handlers(defaultEngines()));
