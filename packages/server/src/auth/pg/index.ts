import { randomBytes } from 'node:crypto';
import { RevocationList, type BackoffOptions, type Logger } from '@micro/sdk';
import { migrate, openPostgres, type Postgres } from '../../postgres/index.js';
import { Sealer, SecretHasher } from '../crypto.js';
import type { TokensOptions } from '../tokens.js';
import { PgAccounts, tables, type Change, type PgContext } from './accounts.js';
import { AuthCache } from './cache.js';
import { Notifier } from './notifier.js';
import { AUTH_MIGRATIONS } from './schema.js';
import { PgTokens } from './tokens.js';
import { PgRevocations } from './revocations.js';

export { PgAccounts, PgApiKeys, PgRules, PgSessions } from './accounts.js';
export { PgTokens } from './tokens.js';
export { AUTH_MIGRATIONS } from './schema.js';

export interface PgAuthOptions {
  /** MICRO_POSTGRES_URL */
  url: string;
  /** MICRO_PREFIX: the schema of the platform */
  prefix: string;
  /** MICRO_AUTH_KEY: seals the private signing keys and the HMAC key; the same on every node */
  authKey: string;
  /** this node's id (see `nodeId`): the instance and admin secrets it hands out are its own */
  node: string;
  logger?: Logger;
  /** scrypt cost (default N = 16384); tests make it cheap */
  scrypt?: { N: number };
  tokens?: TokensOptions;
  /** ms a cached rule set or API key lives at most, even without a change notified (default 30,000) */
  cacheTtl?: number;
  /** how long to wait for Postgres at start */
  backoff?: BackoffOptions;
}

/** auth on Postgres: its accounts (with keys, sessions, rules) and its tokens. `accounts.close()` closes both. */
export interface PgAuth {
  accounts: PgAccounts;
  tokens: PgTokens;
  /** whether the caches are live (the LISTEN connection is up) */
  readonly listening: boolean;
  /** how many times the LISTEN connection was lost (each time the caches were dropped) */
  readonly listenLosses: number;
  close(): Promise<void>;
}

const CHECK = 'micro-auth-key-check';

/**
 * Opens auth on Postgres: migrates its tables (safe with several nodes starting at once),
 * checks that MICRO_AUTH_KEY is the one the platform's data was sealed with, reads (or
 * makes) the HMAC key and the signing keys, and LISTENs for the changes of other nodes.
 */
export async function openPgAuth(options: PgAuthOptions): Promise<PgAuth> {
  const sealer = new Sealer(options.authKey);
  const db = await openPostgres({ url: options.url, prefix: options.prefix, errorId: 'auth', backoff: options.backoff, logger: options.logger });
  let notifier: Notifier | undefined;
  let tokens: PgTokens | undefined;
  try {
    await migrate(db, 'auth', AUTH_MIGRATIONS);
    const t = tables(db.schema);
    await sealedMeta(db, t.meta, sealer, 'key_check', () => Buffer.from(CHECK), (v) => {
      if (v.toString() !== CHECK) throw new Error('bad check value');
    });
    const hmacKey = await sealedMeta(db, t.meta, sealer, 'hmac_key', () => randomBytes(32));
    const channel = `${options.prefix}_auth`;
    let onChange: (c: Change) => void = () => undefined;
    const revoked = new RevocationList();
    let syncRevocations: () => Promise<void> = async () => undefined;
    const cache = new AuthCache(() => notifier?.listening ?? false, options.cacheTtl ?? 30_000);
    notifier = new Notifier(
      options.url,
      channel,
      {
        message: (payload) => {
          try {
            onChange(JSON.parse(payload) as Change);
          } catch {
            cache.clear();
          }
        },
        // what was read while nobody listened may be stale: drop it, and reread the keys
        up: () => {
          cache.clear();
          tokens?.reload().catch(() => undefined);
          syncRevocations().catch(() => undefined);
        },
        down: () => cache.clear(),
      },
      options.logger,
    );
    await notifier.start();
    const ctx: PgContext = { db, t, hasher: new SecretHasher(hmacKey, options.scrypt?.N), cache, node: options.node, channel, revoked };
    tokens = await PgTokens.open(ctx, sealer, { ...options.tokens, revocations: revoked }, options.logger);
    const tk = tokens;
    const revocations = new PgRevocations(ctx);
    syncRevocations = () => revocations.sync();
    await revocations.sync();
    revocations.watch(() => notifier?.listening ?? false);
    // a revocation made elsewhere while this node does not LISTEN is read within a second
    const poll = setInterval(() => {
      if (!notifier?.listening) revocations.sync().catch(() => undefined);
    }, 1_000);
    poll.unref();
    onChange = (c) => {
      if (c.t === 'rules') cache.dropRules(c.ns);
      else if (c.t === 'key') cache.dropKey(c.id);
      else if (c.t === 'account') cache.dropAccount();
      else if (c.t === 'signing') tk.reload().catch(() => undefined);
      else if (c.t === 'revoke') revoked.add(c.r);
      else cache.clear();
    };
    const n = notifier;
    let closed: Promise<void> | undefined;
    const close = () =>
      (closed ??= (async () => {
        clearInterval(poll);
        tk.stop();
        await n.close();
        await db.close();
      })());
    const accounts = new PgAccounts(ctx, close);
    return {
      accounts,
      tokens,
      get listening() {
        return n.listening;
      },
      get listenLosses() {
        return n.losses;
      },
      // through accounts: the last uses of API keys are written first
      close: () => accounts.close(),
    };
  } catch (err) {
    tokens?.stop();
    await notifier?.close();
    await db.close();
    throw err;
  }
}

/**
 * A value of auth_meta sealed under MICRO_AUTH_KEY: read, or made by the first node (the
 * insert of a node that lost the race is ignored, and the winner's value read back).
 * A value that does not open means another MICRO_AUTH_KEY: refused with what to do.
 */
async function sealedMeta(db: Postgres, table: string, sealer: Sealer, key: string, make: () => Buffer, check?: (v: Buffer) => void): Promise<Buffer> {
  await db.query(`INSERT INTO ${table} (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [key, sealer.seal(make(), `meta:${key}`)]);
  const { rows } = await db.query<{ value: string }>(`SELECT value FROM ${table} WHERE key = $1`, [key]);
  try {
    const value = sealer.open(rows[0]?.value ?? '', `meta:${key}`);
    check?.(value);
    return value;
  } catch {
    throw new Error(
      `MICRO_AUTH_KEY is not the key the auth data of schema "${db.prefix}" at ${db.url} was sealed with: give this node the MICRO_AUTH_KEY of the other nodes`,
    );
  }
}

export { nodeId } from '../../home.js';
