import { Unauthorized } from '../errors/errors.js';
import type { Client, ClientMiddleware } from '../client/client.js';
import { createClient } from '../client/typed.js';
import { authService, type Credentials } from './definition.js';
import { ScopedTokens, scopedBearer } from './scoped.js';

/**
 * Keeps an access token for a set of credentials: fetched on first use, renewed when
 * 80 % of its life has passed, shared by concurrent callers (one request at a time).
 */
export class TokenSource {
  private token: string | undefined;
  private renewAt = 0;
  private pending: Promise<string> | undefined;

  constructor(
    private readonly credentials: Credentials,
    private readonly client: Client,
  ) {}

  /** The client of the server that issues the tokens (where scoped ones are minted too). */
  get server(): Client {
    return this.client;
  }

  async get(): Promise<string> {
    if (this.token && Date.now() < this.renewAt) return this.token;
    this.pending ??= this.fetch().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async fetch(): Promise<string> {
    const api = createClient(authService, this.client);
    const { token, expiresAt } = await api.Token(this.credentials).catch((err: unknown) => {
      const e = err as { code?: number; detail?: string };
      if (e.code === 401 || e.code === 403) throw Unauthorized('micro.auth', `credentials for ${this.credentials.id} were refused: ${e.detail ?? ''}`);
      throw err;
    });
    const now = Date.now();
    this.token = token;
    this.renewAt = now + Math.max(0, expiresAt * 1000 - now) * 0.8;
    return token;
  }
}

export interface BearerOptions {
  /**
   * A client of micro server (its address, no middleware of its own), where tokens for
   * services other than the core ones are minted (auth.Scope). Default: a TokenSource's
   * own server; for a plain token or function, none.
   */
  server?: Client;
}

/**
 * Client middleware that sends `authorization: Bearer <token>`: the token itself to the
 * core services of micro server, and to any other service a token scoped to it (minted
 * once per target and cached; see scoped.ts). Without a server to mint at, calls to
 * other services go without a token: a general token never reaches a node.
 */
export function bearer(source: TokenSource | (() => Promise<string>) | string, options: BearerOptions = {}): ClientMiddleware {
  const get = typeof source === 'string' ? () => Promise.resolve(source) : source instanceof TokenSource ? () => source.get() : source;
  return scopedBearer(new ScopedTokens(get, options.server ?? (source instanceof TokenSource ? source.server : undefined)));
}
