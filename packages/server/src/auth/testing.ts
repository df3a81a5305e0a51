import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AUTH_PUBLIC_ENDPOINTS,
  authApi,
  bearer,
  Client,
  createClient,
  createLogger,
  MemoryRegistry,
  registryService,
  RpcServer,
  Service,
  TokenSource,
  type Account,
  type Credentials,
  type HandlerMiddleware,
  type TypedClient,
} from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { guardedRegistry } from '../core.js';
import { openPostgres } from '../postgres/index.js';
import { Accounts } from './accounts.js';
import { authenticate } from './guard.js';
import { tables } from './pg/accounts.js';
import { openPgAuth, type PgAccounts, type PgTokens } from './pg/index.js';
import { authHandlers } from './service.js';
import type { AuthAccounts, AuthTokens } from './storage.js';
import { Tokens, type TokensOptions } from './tokens.js';

/**
 * The part of micro server that auth's tests need, in this process: the auth and
 * registry services on one RPC address, over a fresh database in a temporary home.
 */
export interface AuthHarness<A extends AuthAccounts = Accounts, T extends AuthTokens = Tokens> {
  address: string;
  home: string;
  accounts: A;
  tokens: T;
  registry: MemoryRegistry;
  admin: Credentials;
  /** a client of the core services (namespace micro) authenticated as these credentials */
  platformAs(creds: Credentials | { token: string }): Client;
  /** the auth service, as these credentials (anonymous without) */
  authAs(creds?: Credentials | { token: string }): TypedClient<typeof authApi>;
  close(): Promise<void>;
}

export const silent = createLogger({ level: 'silent' });

/**
 * Handler middleware that makes every call come from `account`, as the server's guard does
 * once auth has run: for tests of what a handler does for a caller, not of auth itself.
 */
export function actingAs(account: Account): HandlerMiddleware {
  return (ctx, req, next) => {
    (ctx as { account: Account | undefined }).account = account;
    return next(req);
  };
}

export async function startAuthHarness(options: { tokens?: TokensOptions } = {}): Promise<AuthHarness> {
  const home = mkdtempSync(join(tmpdir(), 'micro-auth-'));
  const accounts = new Accounts(join(home, 'auth.db'), { scrypt: { N: 1024 } });
  const tokens = await Tokens.load(join(home, 'jwt-keys.json'), { ...options.tokens, revocations: accounts.revocations.list });
  accounts.revocations.load();
  return harness(home, accounts, tokens, async () => {
    accounts.close();
    rmSync(home, { recursive: true, force: true });
  });
}

/** A test's own MICRO_AUTH_KEY (any 32+ characters; random here). */
export const TEST_AUTH_KEY = 'test-auth-key-0123456789abcdef-0123456789';

/**
 * The same over auth on Postgres, in a schema of its own (dropped on close); undefined
 * when Postgres is away (the reason printed). `prefix` shares a schema between two
 * harnesses (two nodes of one platform): the first one opened drops it.
 */
export async function startPgAuthHarness(
  t: { skip(message?: string): void },
  options: { tokens?: TokensOptions; prefix?: string; node?: string; authKey?: string } = {},
): Promise<(AuthHarness<PgAccounts, PgTokens> & { prefix: string; url: string; dump(): Promise<string[]> }) | undefined> {
  const url = await engineUrl(t, 'postgres');
  if (!url) return undefined;
  const prefix = options.prefix ?? testPrefix('auth');
  const owner = options.prefix === undefined;
  const home = mkdtempSync(join(tmpdir(), 'micro-auth-pg-'));
  const auth = await openPgAuth({ url, prefix, authKey: options.authKey ?? TEST_AUTH_KEY, node: options.node ?? 'node-a', scrypt: { N: 1024 }, tokens: options.tokens });
  const h = await harness(home, auth.accounts, auth.tokens, async () => {
    await auth.close();
    rmSync(home, { recursive: true, force: true });
    if (owner) await dropSchema(url, prefix);
  });
  // every row of every table of auth, as JSON text (to look for secrets in clear)
  const dump = async () => {
    const db = await openPostgres({ url, prefix });
    try {
      const out: string[] = [];
      for (const table of Object.values(tables(db.schema))) out.push(...(await db.query<{ t: string }>(`SELECT row_to_json(x)::text AS t FROM ${table} x`)).rows.map((r) => r.t));
      return out;
    } finally {
      await db.close();
    }
  };
  return Object.assign(h, { prefix, url, dump });
}

/** Drops a test's schema (with everything in it). */
export async function dropSchema(url: string, prefix: string): Promise<void> {
  const db = await openPostgres({ url, prefix });
  try {
    await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
  } finally {
    await db.close();
  }
}

async function harness<A extends AuthAccounts, T extends AuthTokens>(home: string, accounts: A, tokens: T, cleanup: () => Promise<void>): Promise<AuthHarness<A, T>> {
  const admin = { ...(await accounts.createAdmin()), namespace: 'micro' };
  const registry = new MemoryRegistry();
  const rpc = new RpcServer({ logger: silent });
  const address = await rpc.listen('tcp://127.0.0.1:0');
  const common = { server: rpc, namespace: 'micro', registry: new MemoryRegistry(), logger: silent, registerTTL: 0, auth: false as const };
  const services = [
    new Service(authApi, authHandlers(accounts, tokens), { ...common, middleware: [authenticate(tokens, new Set(['Debug.Health', ...AUTH_PUBLIC_ENDPOINTS]), authApi)] }),
    new Service(registryService, guardedRegistry(registry), { ...common, middleware: [authenticate(tokens, new Set(['Debug.Health']), registryService)] }),
  ];
  for (const s of services) await s.start();
  const platformAs = (creds: Credentials | { token: string }) => {
    const source = 'token' in creds ? creds.token : new TokenSource(creds, new Client({ address, namespace: 'micro', preferLocal: false, middleware: [] }));
    return new Client({ address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: [bearer(source)] });
  };
  return {
    address,
    home,
    accounts,
    tokens,
    registry,
    admin,
    platformAs,
    authAs: (creds) => createClient(authApi, creds ? platformAs(creds) : new Client({ address, namespace: 'micro', preferLocal: false, middleware: [] })),
    async close() {
      for (const s of services) await s.stop();
      await rpc.close();
      await registry.close();
      await cleanup();
    },
  };
}
