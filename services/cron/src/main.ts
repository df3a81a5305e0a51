import { defaultEngines, defaultNamespace, run } from '@micro/sdk';
import { cronDef } from './definition.js';
import { cronHandlers, cronNode } from './handlers.js';

// `micro run ./services/cron`: the cron service in its own namespace, on the process's
// engines; its jobs call the services of that namespace.
const node = cronNode(defaultEngines(), { home: defaultNamespace() });
node.scheduler.start();
await run(cronDef, cronHandlers(node));
