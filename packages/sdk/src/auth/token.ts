import { Unauthorized } from '../errors/errors.js';
import type { Client, ClientMiddleware } from '../client/client.js';
import { createClient } from '../client/typed.js';
import { authService, type Credentials } from './definition.js';

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

/** Client middleware that sends `authorization: Bearer <token>` with every call. */
export function bearer(source: TokenSource | (() => Promise<string>) | string): ClientMiddleware {
  const get = typeof source === 'string' ? () => Promise.resolve(source) : source instanceof TokenSource ? () => source.get() : source;
  return async (req, next) => {
    const token = await get();
    req.metadata = { ...req.metadata, authorization: `Bearer ${token}` };
    return next(req);
  };
}
