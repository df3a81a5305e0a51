import { defaultEngines, run } from '@micro/sdk';
import { sms } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/sms`: the sms service in its own namespace, on the process's engines.
await run(sms, service.handlers(defaultEngines()));
