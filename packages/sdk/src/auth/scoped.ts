import type { Client, ClientMiddleware } from '../client/client.js';
import { createClient, type TypedClient } from '../client/typed.js';
import type { Context } from '../context/context.js';
import { isMicroError } from '../errors/errors.js';
import { authApi, NAMESPACE_NAME } from './definition.js';

/**
 * Service-scoped tokens: what a caller sends to a node it does not trust with its
 * general access token.
 *
 * A general token (no `aud`) is accepted only by micro server itself: its core services
 * (namespace `micro`, on the server's own address) and its gateway. Any other service
 * is a node that some account registered, so it gets a token with `aud =
 * <namespace>/<service>`: the same claims (account, scopes, session, expiry), accepted
 * by that service only (KeySet.verify), so a node that keeps what it receives can
 * replay it nowhere else. The server mints them (auth.Scope; the gateway in process);
 * callers cache them per target until 80 % of their life has passed.
 */

/**
 * The core services of micro server: the only services a general token is sent to.
 * Kept equal to what the server hosts by a test (packages/server/src/server.test.ts).
 */
export const CORE_SERVICES: ReadonlySet<string> = new Set(['auth', 'balance', 'billing', 'broker', 'cache', 'config', 'events', 'fulltext', 'invoices', 'mail', 'pricing', 'registry', 'quota', 'runtime', 'signup', 'stats', 'store', 'sync', 'trace', 'usage']);

/** Whether a call goes to one of the server's core services (which take general tokens). */
export function isCoreService(namespace: string, service: string): boolean {
  return namespace === 'micro' && CORE_SERVICES.has(service);
}

/** The `aud` of a token for a service. */
export function audienceOf(namespace: string, service: string): string {
  return `${namespace}/${service}`;
}

/** Why an audience is not `<namespace>/<service>`, or undefined when it is one. */
export function audienceProblem(audience: string): string | undefined {
  const slash = audience.indexOf('/');
  if (slash < 0) return 'it must be <namespace>/<service>';
  const namespace = audience.slice(0, slash);
  const service = audience.slice(slash + 1);
  if (namespace.length > 63 || !NAMESPACE_NAME.test(namespace)) return `namespace ${JSON.stringify(namespace.slice(0, 64))} is not a namespace name`;
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (service.length === 0 || service.length > 255 || /[\s/\u0000-\u001f\u007f]/.test(service)) return 'the service name must be 1 to 255 characters without spaces, control characters or "/"';
  if (isCoreService(namespace, service)) return `${service} is a core service: it takes the general token`;
  return undefined;
}

const RENEW_AT = 0.8;
const CACHE_LIMIT = 1_000;

/**
 * The token to send to each service, for one identity: its general token to the core
 * services, a token scoped to the service otherwise (minted by `server`'s auth.Scope,
 * cached per target). Without a server to mint at, other services get no token at all:
 * a general token never leaves for a node.
 */
export class ScopedTokens {
  private readonly cache = new Map<string, { parent: string; token: string; renewAt: number }>();
  private readonly pending = new Map<string, Promise<string | undefined>>();
  private readonly api: TypedClient<typeof authApi> | undefined;
  /** the server answered that it mints none (a stand-in without auth.Scope): no token for other services */
  private unsupported = false;

  constructor(
    private readonly general: () => Promise<string>,
    server: Client | undefined,
  ) {
    this.api = server ? createClient(authApi, server) : undefined;
  }

  /** What to send as the bearer token to `service` of `namespace`; undefined: nothing. */
  async tokenFor(namespace: string, service: string): Promise<string | undefined> {
    const parent = await this.general();
    if (isCoreService(namespace, service)) return parent;
    if (!this.api || this.unsupported) return undefined;
    const audience = audienceOf(namespace, service);
    const hit = this.cache.get(audience);
    if (hit && hit.parent === parent && Date.now() < hit.renewAt) return hit.token;
    const key = `${audience}\n${parent}`;
    let p = this.pending.get(key);
    if (!p) {
      p = this.mint(this.api, parent, audience).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async mint(api: TypedClient<typeof authApi>, parent: string, audience: string): Promise<string | undefined> {
    let minted: { token: string; expiresAt: number };
    try {
      minted = await api.Scope({ audience }, { metadata: { authorization: `Bearer ${parent}` } });
    } catch (err) {
      // a server without auth.Scope (a test double, a server built without auth): its
      // services check no tokens either, so calls simply go without one
      if (isMicroError(err) && err.code === 404 && !this.cache.size) {
        this.unsupported = true;
        return undefined;
      }
      throw err;
    }
    const { token, expiresAt } = minted;
    const now = Date.now();
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(audience, { parent, token, renewAt: now + Math.max(0, expiresAt * 1000 - now) * RENEW_AT });
    return token;
  }
}

/** Client middleware: each call carries the token `tokens` has for its target (none when it has none). */
export function scopedBearer(tokens: ScopedTokens): ClientMiddleware {
  return async (req, next) => {
    const token = await tokens.tokenFor(req.namespace, req.service);
    if (token !== undefined) req.metadata = { ...req.metadata, authorization: `Bearer ${token}` };
    return next(req);
  };
}

/**
 * The identity a service hands on to the calls it makes while serving one (`{ parent:
 * ctx }`): set by ServiceAuth in place of the caller's token, used by the Client to
 * attach a token scoped to each callee.
 */
const handedOn = new WeakMap<Context, ScopedTokens>();

export function handOnIdentity(ctx: Context, tokens: ScopedTokens): void {
  handedOn.set(ctx, tokens);
}

export function handedOnIdentity(ctx: Context): ScopedTokens | undefined {
  return handedOn.get(ctx);
}
