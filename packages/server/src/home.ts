import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { microHome, privateDir, writeJsonDurable } from '@micro/sdk';

/** Where micro server keeps its files inside MICRO_HOME. */
export interface ServerPaths {
  home: string;
  /** <home>/server: keys, accounts, the lock and server.json (0700) */
  dir: string;
  lock: string;
  info: string;
  admin: string;
  accounts: string;
  keys: string;
}

export function serverPaths(home = microHome()): ServerPaths {
  const dir = join(home, 'server');
  return {
    home,
    dir,
    lock: join(dir, 'lock'),
    info: join(dir, 'server.json'),
    admin: join(dir, 'admin.json'),
    accounts: join(dir, 'accounts.json'),
    keys: join(dir, 'jwt-keys.json'),
  };
}

export function ensureServerDirs(paths: ServerPaths): void {
  privateDir(paths.home);
  privateDir(paths.dir);
}

/**
 * This node's id, kept in `<dir>/node.json` (made on first use): what marks the instance
 * and admin secrets it hands out (so that its restart drops its own and no other node's)
 * and the services its runtime runs, among the nodes that share engines (nats profile).
 */
export function nodeId(dir: string): string {
  const path = join(dir, 'node.json');
  if (existsSync(path)) {
    try {
      const { id } = JSON.parse(readFileSync(path, 'utf8')) as { id?: unknown };
      if (typeof id === 'string' && /^[A-Za-z0-9-]{1,64}$/.test(id)) return id;
    } catch {
      // unreadable: a new id (the secrets of the old one stay until they are trimmed)
    }
  }
  const id = randomUUID();
  writeJsonDurable(path, { id });
  return id;
}
