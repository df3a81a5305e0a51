import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Client,
  ConnectionPool,
  MemoryRegistry,
  RpcServer,
  Service,
  bearer,
  createLogger,
  type Account,
  type Handlers,
  type HandlerMiddleware,
  type ServiceDef,
} from '@micro/sdk';
import { authenticate } from '../auth/guard.js';
import { Tokens } from '../auth/tokens.js';

/**
 * For the tests of the config and sync services: the part of micro server they need,
 * over real RPC — an RpcServer, the services mounted as micro server mounts them, and the
 * real authentication of micro server in front (Ed25519 JWTs signed by auth's Tokens,
 * checked by auth/guard.ts), so every call carries an account the way production calls do.
 */

export const silent = createLogger({ level: 'silent' });

export const ADMIN: Account = { id: 'admin', type: 'admin', issuer: 'micro', scopes: ['admin'] };

/** A service account of a namespace, as the runtime gives each service. */
export function serviceAccount(namespace: string, id = 'service:app', scopes = ['service']): Account {
  return { id, type: 'service', issuer: namespace, scopes };
}

export interface TestPlatform {
  home: string;
  address: string;
  tokens: Tokens;
  /** a client of the core services that acts as `account` (its own pool: `close` ends it) */
  clientFor(account: Account, options?: { timeout?: number }): Promise<Client>;
  /** stops the server and the clients (the engines are the caller's to close) */
  close(): Promise<void>;
  /** cuts every connection at once, as a crash of the server would */
  crash(): Promise<void>;
}

export interface Mounted<D extends ServiceDef = ServiceDef> {
  def: D;
  handlers: Handlers<D>;
}

export async function startPlatform(services: Mounted[], options: { home?: string; address?: string } = {}): Promise<TestPlatform> {
  const home = options.home ?? mkdtempSync(join(tmpdir(), 'micro-core-test-'));
  const tokens = await Tokens.load(join(home, 'jwt-keys.json'));
  const server = new RpcServer({ logger: silent });
  const address = await server.listen(options.address ?? 'tcp://127.0.0.1:0');
  const guard: HandlerMiddleware = authenticate(tokens, new Set(['Debug.Health']));
  const mounted: Service[] = [];
  for (const s of services) {
    mounted.push(await new Service(s.def, s.handlers, { server, namespace: 'micro', registry: new MemoryRegistry(), logger: silent, registerTTL: 0, middleware: [guard] }).start());
  }
  const pools: ConnectionPool[] = [];
  let closed = false;
  return {
    home,
    address,
    tokens,
    async clientFor(account, clientOptions = {}) {
      const { token } = await tokens.issue(account);
      const pool = new ConnectionPool();
      pools.push(pool);
      return new Client({ address, namespace: 'micro', preferLocal: false, pool, timeout: clientOptions.timeout ?? 10_000, retries: 0, middleware: [bearer(token)] });
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const svc of mounted) await svc.stop().catch(() => undefined);
      await server.drain(1_000);
      for (const pool of pools) pool.close();
      if (!options.home) rmSync(home, { recursive: true, force: true });
    },
    async crash() {
      await server.close();
    },
  };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
