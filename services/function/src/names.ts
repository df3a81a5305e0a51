import { errors } from '@micro/sdk';
import { checkEnvVars, checkLabel } from '@micro/services-kit';

export const SERVICE = 'function';

/** A function's name (a DNS label, services kit's checkLabel); the runtime runs it as `fn-<name>` in the caller's namespace. */
export function checkName(name: string | undefined): string {
  return checkLabel(SERVICE, name, 'a function');
}

/** The runtime's name of a function's service. */
export function serviceOf(name: string): string {
  return `fn-${name}`;
}

const ENTRYPOINT = /^[A-Za-z_$][A-Za-z0-9_$]{0,127}$/;

export function checkEntrypoint(entrypoint: string | undefined): string {
  if (!entrypoint) return '';
  if (!ENTRYPOINT.test(entrypoint)) throw errors.BadRequest(SERVICE, `entrypoint ${JSON.stringify(entrypoint.slice(0, 80))} is not the name of an exported function (a JavaScript identifier); leave it empty for the default export`);
  return entrypoint;
}

export function checkEnv(env: Record<string, string> | undefined): Record<string, string> {
  return checkEnvVars(SERVICE, env);
}
