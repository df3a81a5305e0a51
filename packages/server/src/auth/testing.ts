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
  type Credentials,
  type TypedClient,
} from '@micro/sdk';
import { guardedRegistry } from '../core.js';
import { Accounts } from './accounts.js';
import { authenticate } from './guard.js';
import { authHandlers } from './service.js';
import { Tokens, type TokensOptions } from './tokens.js';

/**
 * The part of micro server that auth's tests need, in this process: the auth and
 * registry services on one RPC address, over a fresh database in a temporary home.
 */
export interface AuthHarness {
  address: string;
  home: string;
  accounts: Accounts;
  tokens: Tokens;
  registry: MemoryRegistry;
  admin: Credentials;
  /** a client of the core services (namespace micro) authenticated as these credentials */
  platformAs(creds: Credentials | { token: string }): Client;
  /** the auth service, as these credentials (anonymous without) */
  authAs(creds?: Credentials | { token: string }): TypedClient<typeof authApi>;
  close(): Promise<void>;
}

export const silent = createLogger({ level: 'silent' });

export async function startAuthHarness(options: { tokens?: TokensOptions } = {}): Promise<AuthHarness> {
  const home = mkdtempSync(join(tmpdir(), 'micro-auth-'));
  const accounts = new Accounts(join(home, 'auth.db'), { scrypt: { N: 1024 } });
  const tokens = await Tokens.load(join(home, 'jwt-keys.json'), options.tokens);
  const admin = { ...accounts.createAdmin(), namespace: 'micro' };
  const registry = new MemoryRegistry();
  const rpc = new RpcServer({ logger: silent });
  const address = await rpc.listen('tcp://127.0.0.1:0');
  const common = { server: rpc, namespace: 'micro', registry: new MemoryRegistry(), logger: silent, registerTTL: 0, auth: false as const };
  const services = [
    new Service(authApi, authHandlers(accounts, tokens), { ...common, middleware: [authenticate(tokens, new Set(['Debug.Health', ...AUTH_PUBLIC_ENDPOINTS]))] }),
    new Service(registryService, guardedRegistry(registry), { ...common, middleware: [authenticate(tokens, new Set(['Debug.Health']))] }),
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
      accounts.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
