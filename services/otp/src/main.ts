import { defaultEngines, run } from '@micro/sdk';
import { otp } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/otp`: the otp service in its own namespace, on the process's engines.
await run(otp, service.handlers(defaultEngines()));
