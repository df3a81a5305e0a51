import { errors, type Account, type ServiceDef } from '@micro/sdk';

/**
 * Team roles on the core services, checked in one place: the guard every core service of
 * micro server runs (`authenticate` with the service's definition). A role is a scope of
 * the account in its namespace (given by the signup service's team endpoints):
 *
 * - `admin` (owners and admins): everything of the namespace, as before roles existed;
 * - `developer`: everything but managing accounts, API keys and rules;
 * - `viewer`: only the endpoints the definition marks `readonly` (runtime Read/Logs, store
 *   Read/List, config Get, registry reads…) and its own session (log out, scope a token,
 *   its password).
 *
 * An account with none of these scopes (service accounts, accounts an owner made) is not
 * restricted here: the namespace rule and the services' own checks alone govern it. An API
 * key has a subset of its account's scopes, so a viewer or developer cannot make an
 * unrestricted key: CreateKey is refused to both.
 */
export type TeamRole = 'admin' | 'developer' | 'viewer';

/** The role of an account on the core services: the strongest role scope it has, or undefined. */
export function roleOf(account: Account): TeamRole | undefined {
  for (const role of ['admin', 'developer', 'viewer'] as const) if (account.scopes.includes(role)) return role;
  return undefined;
}

/** What a developer may not call: accounts, keys and rules are the admins' (members are signup's own check). */
const ADMIN_ONLY: ReadonlySet<string> = new Set(['CreateAccount', 'UpdateAccount', 'DeleteAccount', 'CreateRule', 'DeleteRule', 'CreateKey', 'RevokeKey', 'BlockKey', 'UnblockKey', 'RotateKeys'].map((e) => `auth.${e}`));

/** Not read-only, yet a viewer's own business: its session and its password. */
const OWN_SESSION: ReadonlySet<string> = new Set(['Token', 'Login', 'Refresh', 'Logout', 'Inspect', 'Scope', 'Revocations', 'SetPassword'].map((e) => `auth.${e}`));

/** Services that check the caller's team role themselves (signup: members, invites). */
const SELF_CHECKED: ReadonlySet<string> = new Set(['signup']);

/** A check of one call against the caller's role, for the endpoints of `def`. */
export function roleCheck(def: ServiceDef): (account: Account, endpoint: string) => void {
  const readonly = new Set(Object.entries(def.endpoints).filter(([, ep]) => ep.readonly).map(([name]) => name));
  return (account, endpoint) => {
    const role = roleOf(account);
    if (role === undefined || role === 'admin' || SELF_CHECKED.has(def.name)) return;
    const call = `${def.name}.${endpoint}`;
    if (role === 'developer' ? !ADMIN_ONLY.has(call) : readonly.has(endpoint) || endpoint.startsWith('Debug.') || OWN_SESSION.has(call)) return;
    const what = role === 'developer' ? 'accounts, API keys and rules are managed by admins' : 'a viewer may only read';
    throw errors.Forbidden(def.name, `${call} is refused to account ${account.id} of namespace ${account.issuer}, role ${role}: ${what}`);
  };
}
