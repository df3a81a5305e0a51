import { join } from 'node:path';
import type { CoreServiceFactory } from '../core.js';
import { configHandlers } from './handlers.js';
import { loadConfigKey } from './key.js';
import { configService, ConfigCipher } from '@micro/sdk';
import { SqliteConfig } from './sqlite.js';

export { SqliteConfig, CONFIG_SCHEMA_VERSION } from './sqlite.js';
export type { SqliteConfigOptions } from './sqlite.js';
export { configHandlers, SECRETS_SCOPE } from './handlers.js';
export { loadConfigKey, configKeyPath, CONFIG_KEY_ENV } from './key.js';
export type { ConfigKey } from './key.js';

/**
 * The config service of micro server: documents in <home>/data/config.db, secrets
 * encrypted with MICRO_CONFIG_SECRET_KEY or the key made in <home>/server/config-secret.key.
 * A wrong key (bad length, or not the one the stored secrets were encrypted with) stops
 * the server from starting, with a message that says which and what to do.
 */
export const configCoreService: CoreServiceFactory = (ctx) => {
  const { key, source, generated } = loadConfigKey(ctx.home);
  if (generated) ctx.logger.info(`made the key of config secrets in ${source} (keep it: the secrets cannot be read without it)`);
  const config = new SqliteConfig({ path: join(ctx.dataDir, 'config.db'), cipher: new ConfigCipher(key, source) });
  return { def: configService, handlers: configHandlers(config), stop: () => config.close(), purge: async (namespace) => config.purgeNamespace(namespace) };
};
