import { defaultEngines, run } from '@micro/sdk';
import { url } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/url`: the url service on this process's engines, serving its own
// namespace (micro server hosts it for every namespace, with GET /u/<id> on its gateway)
await run(url, service.handlers(defaultEngines()));
