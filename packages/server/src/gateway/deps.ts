/** What the gateway takes from the SDK, in one place. */
export { BLOCKED_ERROR_ID, bearerToken, checkKeyServices, Client, errors, isMicroError, isPlatformAdmin, keyMayCall, MicroError, isPublicService, RuleSet, serviceResource } from '@micro/sdk';
export type { Account, EndpointRecord, Logger, PreparedCall, Registry, ServiceRecord } from '@micro/sdk';
import { errors, isMicroError, type MicroError } from '@micro/sdk';

/** Anything thrown as the caller sees it: typed errors pass, anything else is a 500 without details. */
export function toMicroErrorPublic(err: unknown, id: string): MicroError {
  if (isMicroError(err)) return err;
  return errors.InternalServerError(id, 'internal server error');
}
