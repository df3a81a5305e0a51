import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { InternalServerError } from '../errors/errors.js';
import { CONFIG_ERROR_ID, type ConfigValue } from './config.js';
import { SECRET_KEY, isPlainObject, showPath } from './path.js';

/**
 * Secrets at rest: each secret value is encrypted on its own with AES-256-GCM under a
 * random 12-byte IV, and kept in the stored document as `{"$secret": "<base64 of
 * iv | ciphertext | tag>"}`. The namespace and the path are bound in as additional
 * data, so a ciphertext copied to another place (or another namespace) in the database
 * does not decrypt. GCM authenticates: a wrong key or a changed byte is an error, never
 * garbage.
 */

// a type, not an interface: so that it is a ConfigValue (an object of strings)
export type SecretMarker = { $secret: string };

const IV_BYTES = 12;
const TAG_BYTES = 16;
export const CONFIG_KEY_BYTES = 32;

export function isSecretMarker(value: unknown): value is SecretMarker {
  if (!isPlainObject(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === SECRET_KEY && typeof value[SECRET_KEY] === 'string';
}

/**
 * A 32-byte key from its text: 64 hex characters, or base64 / base64url. Anything else
 * is refused with a message that names where the key came from and what is wrong.
 */
export function parseConfigKey(text: string, source: string): Buffer {
  const t = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]+$/.test(t) && t.length % 2 === 0) key = Buffer.from(t, 'hex');
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (!key) throw new Error(`${source} must be a 32-byte key as 64 hex characters or base64 (e.g. \`openssl rand -hex 32\`); it is neither`);
  if (key.length !== CONFIG_KEY_BYTES) {
    throw new Error(`${source} must be a 32-byte key as 64 hex characters or base64 (e.g. \`openssl rand -hex 32\`); it is ${key.length} bytes`);
  }
  return key;
}

export class ConfigCipher {
  private readonly key: Buffer;
  /** where the key comes from, for error messages (e.g. MICRO_CONFIG_SECRET_KEY) */
  readonly source: string;

  constructor(key: Uint8Array, source = 'the config secret key') {
    if (key.length !== CONFIG_KEY_BYTES) throw new Error(`a config secret key must be ${CONFIG_KEY_BYTES} bytes, not ${key.length}`);
    this.key = Buffer.from(key);
    this.source = source;
  }

  /** A cipher with a new random key (the in-memory config uses one). */
  static random(): ConfigCipher {
    return new ConfigCipher(randomBytes(CONFIG_KEY_BYTES), 'a random key');
  }

  /**
   * Tells keys apart without revealing them: an HMAC of a fixed text under the key.
   * A store keeps it to notice, on open, that it was given another key than its secrets'.
   */
  get fingerprint(): string {
    return createHmac('sha256', this.key).update('micro config key fingerprint v1').digest('hex').slice(0, 32);
  }

  seal(value: ConfigValue, namespace: string, path: string): SecretMarker {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(aad(namespace, path));
    const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return { [SECRET_KEY]: Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64') } as SecretMarker;
  }

  open(marker: SecretMarker, namespace: string, path: string): ConfigValue {
    const data = Buffer.from(marker.$secret, 'base64');
    try {
      if (data.length < IV_BYTES + TAG_BYTES) throw new Error('too short');
      const decipher = createDecipheriv('aes-256-gcm', this.key, data.subarray(0, IV_BYTES));
      decipher.setAAD(aad(namespace, path));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const text = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      return JSON.parse(text) as ConfigValue;
    } catch {
      throw InternalServerError(
        CONFIG_ERROR_ID,
        `the secret at ${showPath(path)} of namespace ${namespace} cannot be decrypted: it was encrypted with another key than ${this.source}, or changed on disk`,
      );
    }
  }
}

function aad(namespace: string, path: string): Buffer {
  return Buffer.from(`micro-config\0${namespace}\0${path}`, 'utf8');
}
