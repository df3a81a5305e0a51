import { run } from '@micro/sdk';
import { password } from './definition.js';
import { passwordHandlers } from './handlers.js';

// `micro run ./services/password`: the password service in its own namespace (it keeps no data).
await run(password, passwordHandlers);
