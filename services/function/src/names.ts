import { errors } from '@micro/sdk';
import { missing } from '@micro/services-kit';

export const SERVICE = 'function';

/**
 * A function's name: lower-case letters, digits and inner dashes, at most 63 (a DNS label,
 * so that it can name a host one day). The runtime runs it as `fn-<name>` in the caller's
 * namespace: the prefix keeps functions apart from the tenant's other services.
 */
const NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkName(name: string | undefined): string {
  if (!name) throw missing(SERVICE, 'name');
  if (!NAME.test(name) || name.includes('--')) {
    throw errors.BadRequest(SERVICE, `name ${JSON.stringify(name.slice(0, 80))} is not a function name: use 1 to 63 lower-case letters, digits and single dashes, starting with a letter and not ending with a dash`);
  }
  return name;
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

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** at most this many environment variables a function */
export const MAX_ENV = 100;

export function checkEnv(env: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Object.entries(env ?? {});
  if (entries.length > MAX_ENV) throw errors.BadRequest(SERVICE, `env_vars: at most ${MAX_ENV} variables`);
  for (const [k, v] of entries) {
    if (!ENV_KEY.test(k)) throw errors.BadRequest(SERVICE, `env_vars: ${JSON.stringify(k.slice(0, 80))} is not an environment variable name (letters, digits and _, not starting with a digit)`);
    if (k.toUpperCase().startsWith('MICRO_')) throw errors.BadRequest(SERVICE, `env_vars: ${k}: names starting with MICRO_ are the platform's`);
    out[k] = v;
  }
  return out;
}
