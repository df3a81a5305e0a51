import { errors } from '@micro/sdk';

/**
 * What a job calls: an endpoint of a service of the job's own namespace, named as the
 * gateway's paths name it — `greeter.Call` or `/v1/greeter/Call` (`Handler.Method`
 * endpoints: `greeter.Handler.Method` or `/v1/greeter/Handler/Method`). There is no way to
 * name a namespace, a host or a URL: the namespace is always the caller's (ctx.tenant).
 * M3O's callback was a URL; calling outside addresses from the platform is refused.
 */
export interface Callback {
  service: string;
  /** as written; matched against the service's endpoints as the gateway does (Call = call) */
  endpoint: string;
}

const SERVICE = '[A-Za-z0-9][A-Za-z0-9_-]{0,62}';
const NAME = '[A-Za-z][A-Za-z0-9_]{0,63}';
const DOTTED = new RegExp(`^(${SERVICE})\\.(${NAME}(?:\\.${NAME})?)$`);
const PATH = new RegExp(`^/v1/(${SERVICE})/(${NAME}(?:/${NAME})?)$`);
const FORMS = 'an endpoint of a service of your own namespace, e.g. "greeter.Call" or "/v1/greeter/Call"';

/** The callback named by `text`, or a 400 saying which forms are taken. */
export function parseCallback(text: string): Callback {
  const trimmed = text.trim();
  if (trimmed === '') throw errors.BadRequest('cron', 'Missing callback');
  if (/^[a-z][a-z0-9+.-]*:/i.test(trimmed)) throw errors.BadRequest('cron', `callback: URLs are not called; a job calls ${FORMS}`);
  const dotted = DOTTED.exec(trimmed);
  if (dotted) return { service: dotted[1] as string, endpoint: dotted[2] as string };
  const path = PATH.exec(trimmed);
  if (path) return { service: path[1] as string, endpoint: (path[2] as string).replace('/', '.') };
  throw errors.BadRequest('cron', `callback: "${trimmed.slice(0, 80)}" is not ${FORMS} (no namespace, host or query can be named)`);
}

/** The endpoint of `names` that `endpoint` names, as the gateway finds it (as given, or with its first letter upper-cased). */
export function findEndpoint(names: readonly string[], endpoint: string): string | undefined {
  if (names.includes(endpoint)) return endpoint;
  const upper = endpoint.charAt(0).toUpperCase() + endpoint.slice(1);
  return names.includes(upper) ? upper : undefined;
}
