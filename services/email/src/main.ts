import { defaultEngines, run } from '@micro/sdk';
import { email } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/email`: the email service in its own namespace, on the process's engines.
await run(email, service.handlers(defaultEngines()));
