import { join } from 'node:path';
import { maxTokenTtlFromEnv, privateDir, type Logger, type Profile } from '@micro/sdk';
import { Accounts } from './accounts.js';
import { MIN_AUTH_KEY_LENGTH } from './crypto.js';
import { nodeId } from '../home.js';
import type { AuthAccounts, AuthTokens } from './storage.js';
import { ACCESS_TTL, Tokens } from './tokens.js';

/**
 * auth's storage for a profile: SQLite in `<home>/data/auth.db` and the key ring in
 * `<home>/server/jwt-keys.json` (local), or PostgreSQL shared by the nodes (nats), with
 * MICRO_AUTH_KEY sealing the signing keys. `accounts.close()` closes either.
 */
export async function openAuthStorage(
  profile: Profile,
  where: { home: string; serverDir: string; keysPath: string },
  options: { logger?: Logger; env?: NodeJS.ProcessEnv } = {},
): Promise<{ accounts: AuthAccounts; tokens: AuthTokens }> {
  // a token claiming a longer life than this is refused everywhere (default: the tokens' own 15 minutes)
  const maxTtl = maxTokenTtlFromEnv(ACCESS_TTL, options.env);
  if (profile.name === 'local') {
    const accounts = new Accounts(join(privateDir(join(where.home, 'data')), 'auth.db'));
    try {
      const tokens = await Tokens.load(where.keysPath, { maxTtl, revocations: accounts.revocations.list });
      accounts.revocations.load();
      return { accounts, tokens };
    } catch (err) {
      accounts.close();
      throw err;
    }
  }
  // loaded only for this profile: the local one never loads pg
  const { openPgAuth } = await import('./pg/index.js');
  const auth = await openPgAuth({
    url: profile.postgresUrl,
    prefix: profile.prefix,
    authKey: authKeyFromEnv(options.env),
    node: nodeId(where.serverDir),
    logger: options.logger?.child({ component: 'auth' }),
    tokens: { maxTtl },
  });
  return { accounts: auth.accounts, tokens: auth.tokens };
}

/** MICRO_AUTH_KEY, which the nats profile needs: a clear error when it is missing or short. */
export function authKeyFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const key = env.MICRO_AUTH_KEY ?? '';
  if (key.length < MIN_AUTH_KEY_LENGTH) {
    throw new Error(
      `MICRO_PROFILE=nats needs MICRO_AUTH_KEY: at least ${MIN_AUTH_KEY_LENGTH} random characters, the same on every node ` +
        '(it seals the signing keys in Postgres; make one with `openssl rand -base64 32`)',
    );
  }
  return key;
}
