import { join } from 'node:path';
import { microHome, privateDir } from '@micro/sdk';

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
