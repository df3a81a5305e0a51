import { chmodSync, closeSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { hkdfSync, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { privateDir } from '@micro/sdk';
import { serverPaths } from '../home.js';
import { CONFIG_KEY_BYTES, parseConfigKey } from '@micro/sdk';

export const CONFIG_KEY_ENV = 'MICRO_CONFIG_SECRET_KEY';

/** Where the generated key lives when MICRO_CONFIG_SECRET_KEY is not set. */
export function configKeyPath(home: string): string {
  return join(serverPaths(home).dir, 'config-secret.key');
}

export interface ConfigKey {
  key: Buffer;
  /** where it came from, for messages: the variable or the file */
  source: string;
  /** the key was made just now (a new home) */
  generated: boolean;
}

/**
 * The key that encrypts config secrets: MICRO_CONFIG_SECRET_KEY (64 hex characters or
 * base64 of 32 bytes) when set, else `<home>/server/config-secret.key`, made on first
 * use from 32 random bytes (0600). A key of the wrong length is refused with an error
 * that says where it came from: micro server does not start with it.
 */
export function loadConfigKey(home: string, env: NodeJS.ProcessEnv = process.env): ConfigKey {
  const fromEnv = env[CONFIG_KEY_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== '') return { key: parseConfigKey(fromEnv, CONFIG_KEY_ENV), source: CONFIG_KEY_ENV, generated: false };
  const path = configKeyPath(home);
  if (existsSync(path)) {
    // a key file others can read is tightened: it opens every secret
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    return { key: parseConfigKey(readFileSync(path, 'utf8'), path), source: path, generated: false };
  }
  privateDir(serverPaths(home).dir);
  const key = randomBytes(CONFIG_KEY_BYTES);
  createOnce(path, `${key.toString('hex')}\n`);
  // whoever created it first wins: read back what is there
  return { key: parseConfigKey(readFileSync(path, 'utf8'), path), source: path, generated: true };
}

/**
 * Writes a new file durably (data flushed before it appears under its name) and never
 * over an existing one: a key must not be replaced, or the secrets it sealed are lost.
 */
function createOnce(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } catch {
    // some file systems cannot fsync a directory
  } finally {
    closeSync(dir);
  }
}

/**
 * The key of config secrets for nodes that share engines (nats profile): MICRO_CONFIG_SECRET_KEY
 * when set; else derived (HKDF-SHA256) from MICRO_AUTH_KEY, the secret every node of the
 * nats profile has already, so one shared secret is enough; else the node's own key file
 * (`generated` then tells the caller to warn: other nodes will not share it).
 */
export function loadSharedConfigKey(home: string, env: NodeJS.ProcessEnv = process.env): ConfigKey {
  const fromEnv = env[CONFIG_KEY_ENV];
  const authKey = env.MICRO_AUTH_KEY;
  if ((fromEnv === undefined || fromEnv.trim() === '') && authKey) {
    const key = Buffer.from(hkdfSync('sha256', authKey, 'micro', 'config secrets', CONFIG_KEY_BYTES));
    return { key, source: 'MICRO_AUTH_KEY (a key derived from it)', generated: false };
  }
  return loadConfigKey(home, env);
}
