/** Config: a JSON document per namespace at dotted paths, with encrypted secrets. */
export type { Config, ConfigValue, ConfigOptions, ConfigGetOptions, ConfigSetOptions, ConfigChange, ConfigWatcher } from './config.js';
export { CONFIG_ERROR_ID, CONFIG_LIMITS, SECRET_MASK } from './config.js';
export { parsePath as parseConfigPath, checkValue as checkConfigValue } from './path.js';
export { ConfigCipher, parseConfigKey, isSecretMarker, CONFIG_KEY_BYTES } from './cipher.js';
export type { SecretMarker } from './cipher.js';
export { DocumentConfig } from './document.js';
export type { StoredDocument, DocumentUpdate, DocumentConfigOptions, ConfigObject, ChangeIntent, TransactResult } from './document.js';
export { MemoryConfig } from './memory.js';
export type { MemoryConfigOptions } from './memory.js';
export { configService } from './definition.js';
export { RemoteConfig } from './remote.js';
