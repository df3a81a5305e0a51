import { Client } from './client.js';
import { TokenSource, bearer } from '../auth/token.js';
import type { ClientMiddleware } from './client.js';

/**
 * The connection of a process to its `micro server`, from the environment:
 *
 * - MICRO_SERVER          the server's RPC address, e.g. tcp://127.0.0.1:8081
 * - MICRO_AUTH_ID, MICRO_AUTH_SECRET   the account to act as (the runtime sets these for
 *                         the services it starts), exchanged for short-lived tokens
 * - MICRO_AUTH_TOKEN      or a token as it is
 *
 * Core services (registry, broker, runtime, auth) live in namespace `micro` on the
 * server's own address, so calls to them need no registry lookup.
 */
export function serverAddress(): string | undefined {
  return process.env.MICRO_SERVER || undefined;
}

/** Middleware that authenticates calls with the credentials in the environment, if any. */
export function authFromEnv(tokenClient: Client): ClientMiddleware[] {
  const token = process.env.MICRO_AUTH_TOKEN;
  // the token client is also where tokens for services other than the core ones are minted
  if (token) return [bearer(token, { server: tokenClient })];
  const id = process.env.MICRO_AUTH_ID;
  const secret = process.env.MICRO_AUTH_SECRET;
  if (id && secret) {
    return [bearer(new TokenSource({ id, secret, namespace: process.env.MICRO_AUTH_NAMESPACE || undefined }, tokenClient))];
  }
  return [];
}

/** A client of the server's core services, authenticated from the environment. */
export function platformClient(address: string, middleware?: ClientMiddleware[]): Client {
  const tokenClient = new Client({ address, namespace: 'micro', preferLocal: false, timeout: 10_000 });
  return new Client({
    address,
    namespace: 'micro',
    preferLocal: false,
    timeout: 10_000,
    retries: 2,
    middleware: middleware ?? authFromEnv(tokenClient),
  });
}
