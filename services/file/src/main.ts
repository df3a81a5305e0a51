import { defaultEngines, run } from '@micro/sdk';
import { file } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/file`: the file service on this process's engines, serving its own
// namespace (micro server hosts it for every namespace, with /file/<namespace>/<project>/<path> on its gateway)
await run(file, service.handlers(defaultEngines()));
