import type { ServerResponse } from 'node:http';
import { errors } from './deps.js';

/**
 * Anonymous HTTP routes of micro's public services: `GET /<prefix>/<rest>` (and HEAD,
 * PUT) answered by one endpoint of a hosted service, for what plain HTTP clients open
 * without credentials — a short link (`/u/<id>`: a redirect), a public object of a tenant
 * (`/space/<namespace>/<name>`: its bytes). A service declares its routes
 * (`HostedService.routes`, `{ u: 'Redirect' }`); the gateway reads nothing of the service
 * but the route's endpoint answer, and decides every header itself, so that what a tenant
 * stored cannot run script on the gateway's origin (which holds the dashboard and its
 * `micro-token` cookie): see `routeHeaders`.
 *
 * The endpoint is called with the gateway's own identity (an account of micro, with a
 * token scoped to the service), so its `ctx.tenant` is micro: the route's path says whose
 * data it serves, and the service serves only what its owner made public (or what a URL
 * it signed names).
 */

/** The request a route's endpoint gets. */
export interface RouteRequest {
  /** GET, HEAD or PUT */
  method: string;
  /** what follows `/<prefix>/`, still percent-encoded */
  path: string;
  /** the query parameters (each at most once) */
  query: Record<string, string>;
  /** the body of a PUT, base64 ('' for none) */
  body: string;
  /** the Content-Type of a PUT ('' for none) */
  contentType: string;
}

/** What a route's endpoint answers (an error is thrown instead, as from any endpoint). */
export interface RouteAnswer {
  /** 200 … 299, or a redirect (301, 302, 303, 307, 308) */
  status: number;
  /** the redirect's target: an absolute http(s) URL */
  location?: string;
  /** the body's media type (default application/octet-stream) */
  contentType?: string;
  /** the body, base64 */
  body?: string;
  /** the name a download is saved under */
  filename?: string;
}

/** Where a route goes. */
export interface RouteTarget {
  service: string;
  endpoint: string;
}

/** A route's first path segment: lower-case letters, digits and `-`. */
export const ROUTE_PREFIX = /^[a-z][a-z0-9-]{0,31}$/;
/** Paths the gateway serves itself. */
const RESERVED = new Set(['v1', 'webhooks', 'dashboard', 'openapi.json', 'metrics', 'runtime', 'app']);

/** The routes of the hosted services in one map; a bad or reserved prefix, or two services claiming one, stop the server. */
export function collectRoutes(services: readonly { def: { name: string; endpoints: Record<string, unknown> }; routes?: Record<string, string> }[]): Map<string, RouteTarget> {
  const routes = new Map<string, RouteTarget>();
  for (const s of services) {
    for (const [prefix, endpoint] of Object.entries(s.routes ?? {})) {
      if (!ROUTE_PREFIX.test(prefix) || RESERVED.has(prefix)) throw new Error(`service ${s.def.name}: route /${prefix}/ must be 1-32 of a-z, 0-9 and - and not one of ${[...RESERVED].join(', ')}`);
      if (!(endpoint in s.def.endpoints)) throw new Error(`service ${s.def.name}: route /${prefix}/ names endpoint ${endpoint}, which it does not have`);
      const taken = routes.get(prefix);
      if (taken) throw new Error(`services ${taken.service} and ${s.def.name} both serve /${prefix}/`);
      routes.set(prefix, { service: s.def.name, endpoint });
    }
  }
  return routes;
}

/** The route of `path` and what follows its prefix, or undefined (not a route's path). */
export function routeOf(routes: ReadonlyMap<string, RouteTarget>, path: string): [RouteTarget, string] | undefined {
  const slash = path.indexOf('/', 1);
  if (slash < 0) return undefined;
  const target = routes.get(path.slice(1, slash));
  return target ? [target, path.slice(slash + 1)] : undefined;
}

/** At most this many query parameters, each at most QUERY_VALUE characters. */
const QUERY_PARAMS = 16;
const QUERY_VALUE = 1024;

/** The query of a route's request: each parameter once, bounded; a 400 naming what is wrong. */
export function routeQuery(query: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (query === '') return out;
  const params = new URLSearchParams(query);
  let n = 0;
  for (const [name, value] of params) {
    if (++n > QUERY_PARAMS) throw errors.BadRequest('gateway', `at most ${QUERY_PARAMS} query parameters`);
    if (name in out) throw errors.BadRequest('gateway', `query parameter ${JSON.stringify(name.slice(0, 64))} is repeated`);
    if (value.length > QUERY_VALUE || name.length > 64) throw errors.BadRequest('gateway', `query parameter ${JSON.stringify(name.slice(0, 64))} is too long`);
    out[name] = value;
  }
  return out;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** type/subtype with an optional charset: anything else is sent as application/octet-stream */
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}(; ?charset=[a-z0-9_-]{1,32})?$/i;
/**
 * Types a browser shows without running anything: served inline. Everything else (HTML,
 * SVG, XML, PDF, scripts, unknown types) is a download (`attachment`), and every answer
 * has a sandbox CSP too, so that even a browser that rendered it would give it an opaque
 * origin and no script.
 */
const INLINE = /^(image\/(png|jpeg|gif|webp|avif|bmp|x-icon|vnd\.microsoft\.icon)|text\/plain|application\/json|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+)(;|$)/i;
/** what a tenant's object may do in a browser: nothing (no script, no plugins, an opaque origin) but show its own image or media */
const SANDBOX_CSP = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/** The header list of a route's answer of `type` (the gateway's, never the service's). */
export function routeHeaders(type: string, filename: string | undefined): string[] {
  const safeType = MEDIA_TYPE.test(type) ? type : 'application/octet-stream';
  const name = (filename ?? '').replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128);
  const disposition = INLINE.test(safeType) ? 'inline' : name ? `attachment; filename="${name}"` : 'attachment';
  return [
    'content-type', safeType,
    'content-disposition', disposition,
    'x-content-type-options', 'nosniff',
    'content-security-policy', SANDBOX_CSP,
    'x-frame-options', 'DENY',
    'referrer-policy', 'no-referrer',
    // a public object may be embedded by the tenant's own sites (an <img> of another origin)
    'cross-origin-resource-policy', 'cross-origin',
    'cache-control', 'no-store',
  ];
}

/** Writes the answer of a route's endpoint; a malformed answer is a 502 (the service's fault, not the caller's). */
export function writeRouteAnswer(res: ServerResponse, service: string, answer: unknown, headOnly: boolean, requestId: string): void {
  const a = (answer ?? {}) as RouteAnswer;
  const status = a.status;
  if (REDIRECTS.has(status)) {
    const location = redirectTarget(a.location, service);
    res.writeHead(status, ['location', location, 'content-length', '0', 'cache-control', 'no-store', 'referrer-policy', 'no-referrer', 'x-content-type-options', 'nosniff', 'content-security-policy', "default-src 'none'; frame-ancestors 'none'", 'x-request-id', requestId]);
    res.end();
    return;
  }
  if (!Number.isInteger(status) || status < 200 || status > 299) throw errors.BadGateway(service, `${service} answered its route with status ${String(status).slice(0, 16)}`);
  const body = typeof a.body === 'string' ? Buffer.from(a.body, 'base64') : Buffer.alloc(0);
  res.writeHead(status, [...routeHeaders(typeof a.contentType === 'string' ? a.contentType : '', a.filename), 'content-length', String(body.length), 'x-request-id', requestId]);
  res.end(headOnly ? undefined : body);
}

/** A redirect's Location: an absolute http(s) URL, normalized (no CR/LF can survive `URL`). */
function redirectTarget(location: unknown, service: string): string {
  let url: URL | undefined;
  try {
    url = typeof location === 'string' ? new URL(location) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw errors.BadGateway(service, `${service} answered a redirect without an http(s) location`);
  return url.href;
}
