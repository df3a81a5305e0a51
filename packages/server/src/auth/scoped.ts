import { audienceProblem, bearerToken, checkKeyServices, errors, isPlatformAdmin, signJwt, type AccessClaims, type Context, type SigningKey } from '@micro/sdk';
import type { AuthTokens } from './storage.js';

/**
 * Minting service-scoped tokens (see the SDK's auth/scoped.ts): a token for one service
 * is the general token it comes from — every claim, expiry included — plus `aud`.
 * Nothing widens: a scoped token is never exchanged again (the server refuses tokens
 * with `aud`), and it dies with its parent (same sub, sid, jti, iat and exp).
 */

/** A token for `audience` from a general token that `verify` just accepted. */
export function signScoped(parent: string, audience: string, key: SigningKey): { token: string; expiresAt: number } {
  const payload = JSON.parse(Buffer.from(parent.split('.')[1] ?? '', 'base64url').toString('utf8')) as AccessClaims;
  return { token: signJwt({ ...payload, aud: audience }, key), expiresAt: payload.exp };
}

/**
 * auth.Scope: the caller's own token (the one it called with) scoped to `audience`, a
 * service of the caller's namespace (any namespace for an admin of micro), or a public
 * service of micro (ServiceDefOptions.public), which serves every namespace.
 */
export async function scopeForCaller(
  tokens: Pick<AuthTokens, 'scope'>,
  ctx: Context,
  audience: string,
  isPublic: (service: string) => Promise<boolean> = () => Promise.resolve(false),
): Promise<{ token: string; expiresAt: number }> {
  const me = ctx.account;
  const header = ctx.metadata.authorization;
  if (!me || header === undefined) throw errors.Unauthorized('auth', 'credentials required: Scope exchanges the token you call it with');
  const problem = audienceProblem(audience);
  if (problem) throw errors.BadRequest('auth', `audience: ${problem}`);
  const namespace = audience.slice(0, audience.indexOf('/'));
  if (namespace !== me.issuer && !isPlatformAdmin(me) && !(namespace === 'micro' && (await isPublic(audience.slice(namespace.length + 1))))) {
    throw errors.Forbidden('auth', `audience: account ${me.id} of namespace ${me.issuer} may not call services of namespace ${namespace}`);
  }
  // a token of an API key limited to some services is scoped to those only
  checkKeyServices(me, audience.slice(namespace.length + 1));
  return tokens.scope(bearerToken(header, 'auth'), audience);
}
