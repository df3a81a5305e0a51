import { errors, type Account, type Context, type HandlerMiddleware } from '@micro/sdk';
import type { Tokens } from './tokens.js';

/**
 * Authentication and the namespace rule for the core services, applied where the call is
 * served: every call needs a valid bearer token except the endpoints listed as public,
 * and an account reaches only its own namespace unless it is an admin of `micro`.
 */
export function isAdmin(account: Account | undefined): boolean {
  return !!account && account.issuer === 'micro' && account.scopes.includes('admin');
}

export function authenticate(tokens: Tokens, publicEndpoints: ReadonlySet<string> = new Set()): HandlerMiddleware {
  return async (ctx, req, next) => {
    if (publicEndpoints.has(ctx.endpoint)) return next(req);
    const header = ctx.metadata.authorization;
    if (!header) throw errors.Unauthorized(ctx.service, 'credentials required: send authorization: Bearer <token> (micro login)');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw errors.Unauthorized(ctx.service, 'authorization must be "Bearer <token>"');
    const account = await tokens.verify(m[1] as string);
    (ctx as { account: Account | undefined }).account = account;
    return next(req);
  };
}

/** The namespace a request acts in: the one asked for, which must be the caller's own unless an admin asks. */
export function namespaceFor(ctx: Context, asked: string | undefined): string {
  const account = ctx.account;
  if (!account) throw errors.Unauthorized(ctx.service, 'credentials required');
  const namespace = asked ?? account.issuer;
  if (namespace !== account.issuer && !isAdmin(account)) {
    throw errors.Forbidden(ctx.service, `account ${account.id} of namespace ${account.issuer} may not act in namespace ${namespace}`);
  }
  return namespace;
}

export function requireAdmin(ctx: Context): void {
  if (!isAdmin(ctx.account)) throw errors.Forbidden(ctx.service, `${ctx.service}.${ctx.endpoint} needs an admin of namespace micro`);
}
