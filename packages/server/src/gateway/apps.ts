import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { APP_PROTOCOL, APP_PROTOCOL_KEY, errors, isMicroError, type NodeRecord, type Registry } from '@micro/sdk';

/**
 * The gateway's reverse proxy to tenants' web apps: `/app/<namespace>/<name>/<rest>` is
 * forwarded to the app `<name>` of namespace `<namespace>`, i.e. to a registry node of the
 * service `app-<name>` in that namespace that the runtime's app bridge registered
 * (metadata `protocol: http`; the registry's guard lets a sandboxed namespace register only
 * addresses of its own socket folder). The namespace in the path is the only one looked
 * in: one tenant's app is never found under another's name, and only `app-` services with
 * the app bridge's marker are served (a tenant's micro services are not reachable here).
 *
 * The apps share the gateway's origin, so what a browser would let one page do to another
 * of the same origin is taken away:
 * - request headers that carry the platform's credentials (Authorization, Cookie — the
 *   dashboard's micro-token — and Micro-*) are not forwarded;
 * - every answer carries `Content-Security-Policy: sandbox …` without allow-same-origin:
 *   the app's pages run in an opaque origin, so their requests to the API carry no
 *   same-origin cookie the gateway accepts (see "Cookies and CSRF" in README.md);
 * - Set-Cookie of an app is dropped (it would set cookies of the gateway's origin).
 */

export const APP_PREFIX = '/app/';
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
const NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const ID = 'app';
/** ms an app may take to send its response head */
const HEAD_TIMEOUT = 30_000;

/** Request headers an app is never given: credentials of the platform, hop-by-hop headers, what the proxy sets itself. */
const DROPPED_REQUEST = new Set(['authorization', 'proxy-authorization', 'cookie', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'transfer-encoding', 'proxy-connection', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-prefix', 'x-real-ip']);
/** Response headers the gateway does not pass on: hop-by-hop ones, and cookies of its origin. */
const DROPPED_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'trailer', 'proxy-authenticate', 'set-cookie', 'content-security-policy']);
export const APP_CSP = 'sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads';

export interface AppTarget {
  namespace: string;
  name: string;
  /** the path and query the app is asked for, from its own root: `/…` */
  path: string;
}

/** The app a path names; a 404 for a malformed namespace or name, a redirect (undefined path) for `/app/<ns>/<name>` without its slash. */
export function appTarget(url: string): AppTarget | { redirect: string } {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q);
  const [namespace = '', name = '', ...rest] = path.slice(APP_PREFIX.length).split('/');
  if (!NAMESPACE.test(namespace) || !NAME.test(name) || name.includes('--')) throw errors.NotFound(ID, `not found: apps are served at /app/<namespace>/<name>/`);
  if (rest.length === 0) return { redirect: `${APP_PREFIX}${namespace}/${name}/${query}` };
  return { namespace, name, path: `/${rest.join('/')}${query}` };
}

/** The headers the app is given: the caller's, less credentials and hop-by-hop ones, with where it was asked from. */
export function appRequestHeaders(req: IncomingMessage, prefix: string): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || DROPPED_REQUEST.has(k) || k.startsWith('micro-') || k.startsWith('sec-websocket')) continue;
    out[k] = v;
  }
  out['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  out['x-forwarded-host'] = req.headers.host ?? '';
  out['x-forwarded-proto'] = 'encrypted' in req.socket ? 'https' : 'http';
  out['x-forwarded-prefix'] = prefix;
  return out;
}

function responseHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !DROPPED_RESPONSE.has(k)) out[k] = v;
  out['content-security-policy'] = APP_CSP;
  out['x-content-type-options'] = 'nosniff';
  return out;
}

/** A node the app bridge registered for the app, picked at random among its instances. */
async function appNode(registry: Registry, target: AppTarget): Promise<NodeRecord> {
  const records = await registry.getService(`app-${target.name}`, { namespace: target.namespace }).catch(() => []);
  const nodes = records.flatMap((r) => r.nodes).filter((n) => n.metadata?.[APP_PROTOCOL_KEY] === APP_PROTOCOL && /^(unix|tcp):\/\//.test(n.address));
  const node = nodes[Math.floor(Math.random() * nodes.length)];
  if (!node) throw errors.NotFound(ID, `no app named ${target.name} is running in namespace ${target.namespace}`);
  return node;
}

/** Where a node's address is reached. */
function endpointOf(address: string): { socketPath: string } | { host: string; port: number } {
  if (address.startsWith('unix://')) return { socketPath: address.slice('unix://'.length) };
  const u = new URL(address.replace(/^tcp:/, 'http:'));
  return { host: u.hostname, port: Number(u.port) };
}

/** Forwards the request to the app and its answer back, streaming both bodies; `headTimeout` ms for the app's response head. */
export async function proxyApp(req: IncomingMessage, res: ServerResponse, registry: Registry, headTimeout = HEAD_TIMEOUT): Promise<void> {
  const target = appTarget(req.url ?? '/');
  if ('redirect' in target) {
    res.writeHead(308, { location: target.redirect, 'content-length': '0' });
    res.end();
    return;
  }
  const node = await appNode(registry, target);
  const prefix = `${APP_PREFIX}${target.namespace}/${target.name}`;
  await new Promise<void>((resolve, reject) => {
    const upstream = httpRequest({ ...endpointOf(node.address), method: req.method, path: target.path, headers: appRequestHeaders(req, prefix), agent: false, timeout: headTimeout }, (answer) => {
      upstream.setTimeout(0);
      res.writeHead(answer.statusCode ?? 502, responseHeaders(answer.headers));
      answer.pipe(res);
      answer.on('error', () => res.destroy());
      res.on('close', () => {
        answer.destroy();
        resolve();
      });
    });
    upstream.on('timeout', () => upstream.destroy(errors.Timeout(ID, `app ${target.name} did not answer within ${headTimeout / 1000} s`)));
    upstream.on('error', (err) => {
      if (res.headersSent) {
        res.destroy();
        resolve();
      } else reject(isMicroError(err) ? err : errors.BadGateway(ID, `app ${target.name} did not answer: ${err.message}`));
    });
    req.on('aborted', () => upstream.destroy());
    req.pipe(upstream);
  });
}
