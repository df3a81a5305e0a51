import { MicroError } from '../errors/errors.js';
import type { Account } from '../context/context.js';

/**
 * What an API key carries besides its account's scopes, and the refusals that come of it,
 * shared by the auth service (which makes and checks keys), the gateway and the core
 * services' guard (which check what a key may call).
 *
 * Two lists, not to be confused:
 * - **scopes** (`KeyInfo.scopes`): the account's permission scopes the key acts with (a
 *   subset of the account's: `admin`, `developer`…), which rules and roles look at;
 * - **services** (`KeyInfo.services`): which services the key may call at all: `["*"]`
 *   (any, the default) or service names, M3O's "key scopes". A call of another service is
 *   refused with 403 `v1.blocked`, as M3O did, before any rule is looked at.
 */

/** The error id of the gateway's refusals of a key (M3O's): blocked keys, services the key may not call. */
export const BLOCKED_ERROR_ID = 'v1.blocked';

/** The metadata entry of an `apikey` account (and of the tokens it is exchanged for) that lists the services it may call, comma-separated; absent or `*`: any. */
export const KEY_SERVICES_METADATA = 'keyServices';

/** Bounds of a key's fields (the schema of authApi applies them). */
export const KEY_LIMITS = { description: 256, services: 32, serviceName: 64, blockMessage: 500 } as const;

/** The services an account may call when it is an API key limited to some; undefined: any. */
export function keyServicesOf(account: Account | undefined): string[] | undefined {
  if (account?.type !== 'apikey') return undefined;
  const list = account.metadata?.[KEY_SERVICES_METADATA];
  return list === undefined || list === '*' ? undefined : list.split(',');
}

/** Whether `account` may call `service` as far as its key's services go (any account that is no limited key: yes). */
export function keyMayCall(account: Account | undefined, service: string): boolean {
  const list = keyServicesOf(account);
  return list === undefined || list.includes(service.toLowerCase());
}

/** 403 `v1.blocked` unless the key may call `service` (M3O's wording). */
export function checkKeyServices(account: Account | undefined, service: string): void {
  if (keyMayCall(account, service)) return;
  throw new MicroError(BLOCKED_ERROR_ID, 403, `insufficient privileges: this API key may call ${(keyServicesOf(account) ?? []).join(', ')}`);
}

/** The refusal of a blocked key: 403 `v1.blocked` with the message of the admin who blocked it. */
export function keyBlocked(message: string): MicroError {
  return new MicroError(BLOCKED_ERROR_ID, 403, `this API key is blocked: ${message}`);
}
