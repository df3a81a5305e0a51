import { Client, type ClientMiddleware } from '../client/client.js';
import { TokenSource } from './token.js';
import { AUTH_PUBLIC_ENDPOINTS } from './definition.js';
import { ScopedTokens, scopedBearer } from './scoped.js';

/**
 * The identity of this process towards its `micro server`, from the environment the
 * runtime gives every service it starts (MICRO_SERVER with MICRO_AUTH_ID,
 * MICRO_AUTH_SECRET, MICRO_AUTH_NAMESPACE, or MICRO_AUTH_TOKEN). One token source per
 * process: every default client and every service of the process share its token.
 */

/** `server`: a client of the server that issued it, where tokens scoped to a service are minted */
export type Identity = { kind: 'token'; token: string; server?: Client } | { kind: 'source'; source: TokenSource };

let cached: { key: string; identity: Identity | undefined } | undefined;

function envKey(): string {
  const e = process.env;
  return [e.MICRO_SERVER, e.MICRO_AUTH_TOKEN, e.MICRO_AUTH_ID, e.MICRO_AUTH_SECRET, e.MICRO_AUTH_NAMESPACE].join('\n');
}

/** The process's identity, or undefined when it runs without a server or without credentials. */
export function processIdentity(): Identity | undefined {
  const key = envKey();
  if (cached?.key === key) return cached.identity;
  const e = process.env;
  let identity: Identity | undefined;
  if (e.MICRO_SERVER) {
    if (e.MICRO_AUTH_TOKEN) {
      const server = new Client({ address: e.MICRO_SERVER, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: [] });
      identity = { kind: 'token', token: e.MICRO_AUTH_TOKEN, server };
    } else if (e.MICRO_AUTH_ID && e.MICRO_AUTH_SECRET) {
      // the token client itself must not authenticate: auth.Token is public
      const tokenClient = new Client({ address: e.MICRO_SERVER, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: [] });
      identity = { kind: 'source', source: new TokenSource({ id: e.MICRO_AUTH_ID, secret: e.MICRO_AUTH_SECRET, namespace: e.MICRO_AUTH_NAMESPACE || undefined }, tokenClient) };
    }
  }
  cached = { key, identity };
  return identity;
}

/** The current access token of an identity. */
export function identityToken(identity: Identity): Promise<string> {
  return identity.kind === 'token' ? Promise.resolve(identity.token) : identity.source.get();
}

const scoped = new WeakMap<Identity, ScopedTokens>();

/** The tokens of an identity for each service it calls (one cache per identity; see scoped.ts). */
export function identityTokens(identity: Identity): ScopedTokens {
  let tokens = scoped.get(identity);
  if (!tokens) {
    tokens = new ScopedTokens(() => identityToken(identity), identity.kind === 'source' ? identity.source.server : identity.server);
    scoped.set(identity, tokens);
  }
  return tokens;
}

/**
 * The middleware of a client made without middleware of its own: in a process started
 * against a server with credentials, every call carries the process's token (except the
 * public endpoints of auth, which exchange credentials for it), scoped to the callee
 * unless it is a core service (see scoped.ts). Elsewhere: none.
 */
export function defaultClientMiddleware(): ClientMiddleware[] {
  const identity = processIdentity();
  if (!identity) return [];
  const attach = scopedBearer(identityTokens(identity));
  return [(req, next) => (req.service === 'auth' && AUTH_PUBLIC_ENDPOINTS.includes(req.endpoint) ? next(req) : attach(req, next))];
}
