export { MicroServer, DEFAULT_SERVER_ADDRESS } from './server.js';
export type { MicroServerOptions, ServerInfo } from './server.js';
export { serverPaths } from './home.js';
export type { ServerPaths } from './home.js';
export { storeFactory, storeCoreService, SqliteStore, FileBlobStore } from './store/index.js';
export { configCoreService } from './config/index.js';
export { syncCoreService } from './sync/index.js';
export { eventsCoreService, SqliteEvents } from './events/index.js';
