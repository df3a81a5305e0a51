import { defaultEngines, run } from '@micro/sdk';
import { avatar } from './definition.js';
import { service } from './handlers.js';

// `micro run ./services/avatar`: the avatar service on this process's engines, serving its own namespace
// (stored avatars are served by the image service's /image/<namespace>/<name> where micro server hosts it)
await run(avatar, service.handlers(defaultEngines()));
