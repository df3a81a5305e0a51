import { defaultEngines, run } from '@micro/sdk';
import { walletDef } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/wallet`: the wallet service in its own namespace, on the process's engines.
await run(walletDef, service.handlers(defaultEngines()));
