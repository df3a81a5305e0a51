import { defaultEngines, run } from '@micro/sdk';
import { image } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/image`: the image service on this process's engines, serving its own
// namespace (micro server hosts it for every namespace, with /image/<namespace>/<name> on its gateway)
await run(image, service.handlers(defaultEngines()));
