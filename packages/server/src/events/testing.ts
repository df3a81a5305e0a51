import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, ConnectionPool, MemoryRegistry, RpcServer, Service, bearer, createLogger, type Account } from '@micro/sdk';
import { authenticate } from '../auth/guard.js';
import { Tokens } from '../auth/tokens.js';
import { eventsHandlers, type EventsHandlerOptions, type ServedEvents } from './handlers.js';
import { eventsService } from '@micro/sdk';

/**
 * For the tests of the events service: the part of micro server it needs, over real
 * RPC: an RpcServer with the service mounted as micro server mounts it, behind the real
 * authentication (Ed25519 JWTs from auth's Tokens, checked by auth/guard.ts).
 */

export const silent = createLogger({ level: 'silent' });

export const ADMIN: Account = { id: 'admin', type: 'user', issuer: 'micro', scopes: ['admin'] };

export function accountOf(namespace: string, id = 'service:app'): Account {
  return { id, type: 'service', issuer: namespace, scopes: ['service'] };
}

export interface EventsPlatform {
  address: string;
  tokens: Tokens;
  /** a client of the events service acting as `account`, with its own connections */
  clientFor(account: Account): Promise<Client>;
  /** cuts the connections of a client made by clientFor, as the death of its process would */
  cut(client: Client): void;
  close(): Promise<void>;
}

export async function startEventsService(events: ServedEvents, options: { address?: string; home?: string; handlers?: EventsHandlerOptions } = {}): Promise<EventsPlatform> {
  const home = options.home ?? mkdtempSync(join(tmpdir(), 'micro-events-rpc-'));
  const tokens = await Tokens.load(join(home, 'jwt-keys.json'));
  const server = new RpcServer({ logger: silent });
  const address = await server.listen(options.address ?? 'tcp://127.0.0.1:0');
  const service = new Service(eventsService, eventsHandlers(events, options.handlers), {
    server,
    namespace: 'micro',
    registry: new MemoryRegistry(),
    registerTTL: 0,
    logger: silent,
    drainTimeout: 1_000,
    middleware: [authenticate(tokens, new Set(['Debug.Health']))],
  });
  await service.start();
  const pools = new Map<Client, ConnectionPool>();
  return {
    address,
    tokens,
    async clientFor(account) {
      const { token } = await tokens.issue(account);
      const pool = new ConnectionPool();
      const client = new Client({ address, namespace: 'micro', preferLocal: false, pool, timeout: 10_000, middleware: [bearer(token)] });
      pools.set(client, pool);
      return client;
    },
    cut(client) {
      pools.get(client)?.close();
    },
    async close() {
      await service.stop();
      await server.close();
      for (const p of pools.values()) p.close();
    },
  };
}
