import { bearerToken, checkKeyServices, errors, isPlatformAdmin, type Account, type Context, type HandlerMiddleware, type ServiceDef } from '@micro/sdk';
import { roleCheck } from './roles.js';
import type { AuthTokens } from './storage.js';

/**
 * Authentication and the namespace rule for the core services, applied where the call is
 * served: every call needs a valid bearer token except the endpoints listed as public,
 * and an account reaches only its own namespace unless it is an admin of `micro`.
 *
 * (The access rules of a namespace govern the services that run in it, checked by each
 * service: see sdk auth/enforce.ts. The core services are reached by every namespace
 * and guard themselves with the namespace rule and admin scopes, so that no rule can
 * lock a namespace out of the platform.)
 */
export function isAdmin(account: Account | undefined): boolean {
  return isPlatformAdmin(account);
}

/**
 * With `def` (the service's definition), the caller's team role is checked too (roles.ts):
 * viewers reach only read-only endpoints, developers no account, key or rule management.
 */
export function authenticate(tokens: Pick<AuthTokens, 'verify'>, publicEndpoints: ReadonlySet<string> = new Set(), def?: ServiceDef): HandlerMiddleware {
  const role = def && roleCheck(def);
  return async (ctx, req, next) => {
    if (publicEndpoints.has(ctx.endpoint)) return next(req);
    const header = ctx.metadata.authorization;
    if (!header) throw errors.Unauthorized(ctx.service, 'credentials required: send authorization: Bearer <token> (micro login)');
    const account = await tokens.verify(bearerToken(header, ctx.service));
    // a token of an API key limited to some services reaches only those (as at the gateway)
    checkKeyServices(account, ctx.service);
    role?.(account, ctx.endpoint);
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

/** Whether the caller administers a namespace: an admin of micro, or an account of that namespace with scope admin. */
export function isNamespaceAdmin(account: Account | undefined, namespace: string): boolean {
  return isAdmin(account) || (!!account && account.issuer === namespace && account.scopes.includes('admin'));
}

/** The namespace a management request acts in, which the caller must administer. */
export function adminNamespaceFor(ctx: Context, asked: string | undefined): string {
  const namespace = namespaceFor(ctx, asked);
  if (!isNamespaceAdmin(ctx.account, namespace)) {
    throw errors.Forbidden(ctx.service, `${ctx.service}.${ctx.endpoint} needs scope admin in namespace ${namespace} (account ${ctx.account?.id} has ${JSON.stringify(ctx.account?.scopes ?? [])})`);
  }
  return namespace;
}
