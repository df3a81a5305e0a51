import { run } from '@micro/sdk';
import { time } from './definition.js';
import { timeHandlers } from './handlers.js';

// `micro run ./services/time`: the time service in its own namespace (it keeps no data).
await run(time, timeHandlers());
