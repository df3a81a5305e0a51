import { bearerToken, errors, type Account, type authApi, type Context, type Handlers, type KeyInfo } from '@micro/sdk';
import type { Quotas } from '../quota/quotas.js';
import { adminNamespaceFor, isNamespaceAdmin, namespaceFor, requireAdmin } from './guard.js';
import { revocationFeed, revokeNow, type RevocationFeedOptions } from './revocations.js';
import { LoginThrottle, sourceOf } from './throttle.js';
import type { AuthAccounts, AuthTokens } from './storage.js';
import { scopeForCaller } from './scoped.js';

/**
 * The auth service of micro server.
 *
 * - Public: Token (id + secret, refresh token or API key → tokens), Login (user +
 *   password), Refresh, Logout, Inspect (token or API key → account), Keys (the JWKS).
 * - Any account: Scope (its own token, for one service of its namespace: see scoped.ts);
 *   Revocations (what of the revocation list concerns its namespace).
 * - Own namespace, any account: ListRules (services need them to check their callers),
 *   CreateKey / ListKeys / RevokeKey for one's own keys, SetPassword for one's own.
 * - Scope `admin` of the namespace (or an admin of micro): accounts, rules, everyone's keys.
 * - Admins of micro: RotateKeys, BlockKey / UnblockKey.
 *
 * Wrong secrets and passwords (Token, Login, SetPassword's current one) are throttled per
 * account and source, and per source: see LoginThrottle.
 *
 * Every access token names its session (`sid`): the refresh family of a login, `key:<id>`
 * for an API key, a fresh id per id/secret exchange. Deleting, disabling or changing an
 * account, a new password, revoking a key, Logout and a reused refresh token add
 * revocation entries (revocations.ts) that every verifier checks at once; `Revocations`
 * streams them to the services of other processes.
 */
export function authHandlers(
  accounts: AuthAccounts,
  tokens: AuthTokens,
  throttle = new LoginThrottle(),
  feed: RevocationFeedOptions = {},
  quotas?: Pick<Quotas, 'limits'>,
  /** whether micro serves a public service of this name (auth.Scope mints tokens for it to every namespace) */
  isPublic?: (service: string) => Promise<boolean>,
): Handlers<typeof authApi> {
  /**
   * An access token, and for people (user accounts) a refresh token: services and API
   * keys hold their credentials and simply exchange them again.
   */
  const grant = async (account: Account, session = account.type === 'user') => {
    if (!session) return { ...(await tokens.issue(account)), account };
    const { refreshToken, refreshExpiresAt, session: sid } = await accounts.sessions.start(account);
    return { ...(await tokens.issue(account, sid)), account, refreshToken, refreshExpiresAt };
  };

  const refresh = async (refreshToken: string) => {
    const { account, refreshToken: next, refreshExpiresAt, session } = await Promise.resolve()
      .then(() => accounts.sessions.rotate(refreshToken))
      .catch(async (err: unknown) => {
        // a reused refresh token ended its session: the access tokens of the thief (or of the owner) stop too
        const ended = (err as { endedSession?: string }).endedSession;
        if (ended) await accounts.revocations.add(revokeNow('session', ended));
        throw err;
      });
    const { token, expiresAt } = await tokens.issue(account, session);
    return { token, expiresAt, account, refreshToken: next, refreshExpiresAt };
  };

  const apiKeyGrant = async (apiKey: string) => {
    const account = await accounts.keys.verify(apiKey);
    if (!account) throw errors.Unauthorized('auth', 'API key refused: unknown, revoked, expired or wrong');
    // the key is the long-lived credential: no session on top of it
    return grant(account, false);
  };

  const caller = (ctx: Context): Account => {
    if (!ctx.account) throw errors.Unauthorized('auth', 'credentials required');
    return ctx.account;
  };

  return {
    Token: async ({ id, secret, namespace, refreshToken, apiKey }, ctx) => {
      if (refreshToken !== undefined) return refresh(refreshToken);
      if (apiKey !== undefined) return apiKeyGrant(apiKey);
      const ns = namespace ?? 'micro';
      const account = await throttle.attempt(
        ns,
        id as string,
        sourceOf(ctx.peer),
        'secret',
        () => accounts.verify(id as string, ns, secret as string),
        () => accounts.verifyGenerated(id as string, ns, secret as string),
      );
      if (!account) throw errors.Unauthorized('auth', `wrong id or secret for ${id} in namespace ${ns}`);
      return grant(account);
    },

    Login: async ({ id, password, namespace }, ctx) => {
      const ns = namespace ?? 'micro';
      const account = await throttle.attempt(
        ns,
        id,
        sourceOf(ctx.peer),
        'password',
        () => accounts.verify(id, ns, password),
        () => accounts.verifyGenerated(id, ns, password),
      );
      if (!account) throw errors.Unauthorized('auth', `wrong id or password for ${id} in namespace ${ns}`);
      if (account.type !== 'user') throw errors.Unauthorized('auth', `${id} is a ${account.type} account: it gets tokens with Token (id and secret), not Login`);
      return grant(account);
    },

    Refresh: ({ refreshToken }) => refresh(refreshToken),

    Logout: async ({ refreshToken }, ctx) => {
      if (refreshToken !== undefined) {
        // a token not known (any more) is no error: logging out twice is fine
        const session = await accounts.sessions.end(refreshToken);
        if (session) await accounts.revocations.add(revokeNow('session', session));
        return {};
      }
      // the session of the caller's own token (the dashboard keeps no refresh token)
      const header = ctx.metadata.authorization;
      if (!header) throw errors.BadRequest('auth', 'refreshToken: required without an authorization: Bearer <token> to log out of');
      const { claims } = await tokens.verifyClaims(bearerToken(header, 'auth'));
      if (!claims.sid) throw errors.BadRequest('auth', 'this token names no session: get a new one and log out with it');
      // an API key's session is the key: revoking it is RevokeKey's business
      if (claims.sid.startsWith('key:')) throw errors.BadRequest('auth', 'a token of an API key is ended by revoking the key (RevokeKey)');
      await accounts.sessions.endSession(claims.sid);
      await accounts.revocations.add(revokeNow('session', claims.sid));
      return {};
    },

    Revocations: (_req, ctx) => revocationFeed(tokens.revocations, tokens.maxTtl, caller(ctx), ctx.signal, feed),

    Inspect: async ({ token }) => {
      // a JWT has three parts; an API key is <keyId>.<secret>
      if (token.split('.').length === 3) {
        const account = await tokens.verify(token);
        const exp = (JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8')) as { exp: number }).exp;
        return { account, expiresAt: exp };
      }
      const account = await accounts.keys.verify(token);
      if (!account) throw errors.Unauthorized('auth', 'not a valid access token or API key');
      const info = await accounts.keys.get(account.metadata?.key ?? '');
      return info?.expiresAt === undefined ? { account } : { account, expiresAt: Math.floor(info.expiresAt / 1000) };
    },

    Scope: ({ audience }, ctx) => scopeForCaller(tokens, ctx, audience, isPublic),

    Keys: () => tokens.jwks(),

    RotateKeys: async (_req, ctx) => {
      requireAdmin(ctx);
      return { kid: await tokens.rotate() };
    },

    CreateAccount: async ({ id, type, secret, scopes, metadata, namespace }, ctx) => {
      const ns = adminNamespaceFor(ctx, namespace);
      return accounts.create({ id, type, namespace: ns, scopes: dedupe(scopes ?? []), metadata, secret });
    },

    ListAccounts: ({ namespace, limit, after }, ctx) => accounts.list(adminNamespaceFor(ctx, namespace), limit ?? 100, after ?? ''),

    DeleteAccount: async ({ id, namespace }, ctx) => {
      const ns = adminNamespaceFor(ctx, namespace);
      await accounts.delete(id, ns);
      // its tokens stop now, not when they expire
      await accounts.revocations.add(revokeNow('account', `${ns}/${id}`));
      return {};
    },

    UpdateAccount: async ({ id, disabled, scopes, namespace }, ctx) => {
      const ns = adminNamespaceFor(ctx, namespace);
      if (id === 'admin' && ns === 'micro' && (disabled || (scopes && !scopes.includes('admin')))) {
        throw errors.Forbidden('auth', 'the admin account of micro cannot be disabled or lose scope admin');
      }
      const account = await accounts.update(id, ns, { disabled, scopes: scopes && dedupe(scopes) });
      // its tokens carry what it was: they stop now (a new login gets what it is)
      await accounts.revocations.add(revokeNow('account', `${ns}/${id}`));
      return { account };
    },

    SetPassword: async ({ id, current, password, namespace }, ctx) => {
      const me = caller(ctx);
      if (me.type === 'apikey') throw errors.Forbidden('auth', 'an API key cannot change passwords: log in with the account');
      const ns = namespaceFor(ctx, namespace);
      const target = id ?? me.id;
      const own = target === me.id && ns === me.issuer;
      if (own) {
        if (current === undefined) throw errors.BadRequest('auth', 'current: required to change your own password');
        if (!(await throttle.attempt(ns, me.id, sourceOf(ctx.peer), 'password', () => accounts.verify(me.id, ns, current)))) throw errors.Forbidden('auth', 'current: the current password is wrong');
      } else if (!isNamespaceAdmin(me, ns)) {
        throw errors.Forbidden('auth', `only an admin of namespace ${ns} may set the password of another account`);
      }
      await accounts.setPassword(target, ns, password);
      // its sessions ended: the access tokens they gave stop too (the caller's own included)
      await accounts.revocations.add(revokeNow('account', `${ns}/${target}`));
      return {};
    },

    CreateRule: async ({ namespace, ...rule }, ctx) => {
      const ns = adminNamespaceFor(ctx, namespace);
      await accounts.ensureNamespace(ns);
      return { rule: await accounts.rules.create(ns, rule) };
    },

    ListRules: async ({ namespace }, ctx) => ({ rules: await accounts.rules.list(namespaceFor(ctx, namespace)) }),

    DeleteRule: async ({ id, namespace }, ctx) => {
      await accounts.rules.delete(adminNamespaceFor(ctx, namespace), id);
      return {};
    },

    CreateKey: async ({ name, description, scopes, services, expiresIn, namespace }, ctx) => {
      const me = caller(ctx);
      const ns = namespaceFor(ctx, namespace);
      if (ns !== me.issuer) throw errors.BadRequest('auth', `namespace: an API key acts for your own account, of namespace ${me.issuer}; create an account in ${ns} for a key there`);
      if (me.type === 'apikey') throw errors.Forbidden('auth', 'an API key cannot create API keys: log in with the account');
      const owner = await accounts.get(me.id, me.issuer);
      if (!owner) throw errors.NotFound('auth', `account ${me.id} no longer exists`);
      const wanted = dedupe(scopes ?? owner.scopes);
      const extra = wanted.filter((s) => !owner.scopes.includes(s));
      if (extra.length > 0) throw errors.Forbidden('auth', `scopes: a key cannot have scopes its account lacks (${extra.join(', ')})`);
      // the apiKeys quota of the namespace, counted by the key engine in its insert's transaction
      const max = quotas ? (await quotas.limits(owner.issuer)).apiKeys : undefined;
      return accounts.keys.create(owner, name, wanted, expiresIn, max, { description: description ?? '', services: dedupe(services ?? ['*']) });
    },

    ListKeys: async ({ namespace }, ctx) => {
      const me = caller(ctx);
      const ns = namespaceFor(ctx, namespace);
      return { keys: isNamespaceAdmin(me, ns) ? await accounts.keys.list(ns) : await accounts.keys.list(ns, me.id) };
    },

    RevokeKey: async ({ id, namespace }, ctx) => {
      const me = caller(ctx);
      const ns = namespaceFor(ctx, namespace);
      const key = await accounts.keys.get(id);
      // another's key is as unknown as a missing one: nothing tells it exists
      if (!key || key.namespace !== ns || (key.account !== me.id && !isNamespaceAdmin(me, ns))) throw errors.NotFound('auth', `no API key ${id} of yours in namespace ${ns}`);
      await accounts.keys.revoke(id);
      // the access tokens it was exchanged for (sid key:<id>) stop now
      await accounts.revocations.add(revokeNow('session', `key:${id}`));
      return {};
    },

    // blocks are the platform's (abuse, unpaid bills): only its admins make and lift them
    BlockKey: async ({ id, message, namespace }, ctx) => {
      const ns = keyAdminNamespace(ctx, namespace);
      const key = present(await accounts.keys.get(id), id, ns);
      const blocked = present(await accounts.keys.block(key.id, message), id, ns);
      // its access tokens (sid key:<id>) stop, and with them every node's cached tokens of it
      await accounts.revocations.add(revokeNow('session', `key:${id}`));
      return { key: blocked };
    },

    UnblockKey: async ({ id, namespace }, ctx) => {
      const ns = keyAdminNamespace(ctx, namespace);
      const key = present(await accounts.keys.get(id), id, ns);
      return { key: present(await accounts.keys.unblock(key.id), id, ns) };
    },
  };
}

/** The namespace of a key to block or unblock: blocks are for admins of micro (see the README). */
function keyAdminNamespace(ctx: Context, namespace: string | undefined): string {
  requireAdmin(ctx);
  return namespaceFor(ctx, namespace);
}

/** The key when it is there and of `namespace`; a 404 otherwise. */
function present(key: KeyInfo | undefined, id: string, namespace: string): KeyInfo {
  if (!key || key.namespace !== namespace) throw errors.NotFound('auth', `no API key ${id} in namespace ${namespace}`);
  return key;
}

function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}
