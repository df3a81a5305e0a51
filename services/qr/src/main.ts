import { defaultEngines, run } from '@micro/sdk';
import { qr } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/qr`: the qr service in its own namespace, on the process's engines.
await run(qr, service.handlers(defaultEngines()));
