import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errors } from './deps.js';
import { SECURITY_HEADERS } from './json.js';

/**
 * The web dashboard (packages/web, built by vite into packages/web/dist), served by the
 * gateway at /dashboard/. It is a static single page that talks to the public /v1 API
 * with the user's token, so serving it needs no state: a file read per request (the
 * dashboard is not on the API's hot path).
 */

const ID = 'gateway';

/**
 * Only its own scripts, styles and API: no inline script, nothing from elsewhere, never in a frame.
 * (Preact sets styles through the CSSOM, which style-src does not restrict.)
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** The built dashboard: @micro/web's dist when the package resolves, else the sibling folder of this package. */
export function defaultDashboardDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@micro/web/package.json')), 'dist');
  } catch {
    // packages/server/dist/gateway/dashboard.js → packages/web/dist
    return fileURLToPath(new URL('../../../web/dist/', import.meta.url));
  }
}

/**
 * Paths that are pages of the dashboard rather than files: the links of the signup emails
 * (`<site>/dashboard/signup/verify?email=…&code=…`, `<site>/dashboard/signup?email=…`).
 * They answer index.html, which reads the path and the query. Only these: any other
 * missing name stays a 404.
 */
const PAGES: ReadonlySet<string> = new Set(['signup', 'signup/verify']);

/** Whether a path is the dashboard's: `/dashboard` or under `/dashboard/`. */
export function isDashboardPath(path: string): boolean {
  return path === '/dashboard' || path.startsWith('/dashboard/');
}

/**
 * Answers GET/HEAD of `/dashboard[/...]` from `dir`. `/dashboard` redirects to
 * `/dashboard/`; `/dashboard/` is index.html; a file that is not there is a 404, and a
 * dashboard that was not built a 404 that says how to build it. Throws MicroErrors (the
 * gateway writes them as its JSON errors).
 */
export async function serveDashboard(req: IncomingMessage, res: ServerResponse, path: string, dir: string): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    throw errors.MethodNotAllowed(ID, `method ${String(req.method).slice(0, 16)} is not allowed here; the dashboard is read with GET`);
  }
  if (path === '/dashboard') {
    res.writeHead(308, { ...SECURITY_HEADERS, location: '/dashboard/', 'content-length': '0' });
    res.end();
    return;
  }
  let rel: string;
  try {
    rel = decodeURIComponent(path.slice('/dashboard/'.length));
  } catch {
    throw errors.BadRequest(ID, 'malformed path');
  }
  if (rel === '' || PAGES.has(rel)) rel = 'index.html';
  // only plain relative names inside the folder: no `..`, no hidden files, no NUL, no backslash
  const parts = rel.split('/');
  if (rel.length > 512 || /[\0\\]/.test(rel) || parts.some((p) => p === '' || p.startsWith('.'))) throw errors.NotFound(ID, 'not found');
  const file = join(dir, ...parts);
  if (!file.startsWith(dir.endsWith(sep) ? dir : dir + sep)) throw errors.NotFound(ID, 'not found');

  let body: Buffer;
  try {
    if (!(await stat(file)).isFile()) throw new Error('not a file');
    body = await readFile(file);
  } catch {
    const built = await stat(join(dir, 'index.html')).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!built) throw errors.NotFound(ID, `the dashboard is not built: run \`npm run build --workspace @micro/web\` (or npm start, which builds it) — looked in ${dir}`);
    throw errors.NotFound(ID, `not found: ${path.slice(0, 256)}`);
  }
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'content-security-policy': DASHBOARD_CSP,
    'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': String(body.length),
  };
  // vite names the assets by the hash of their content: they never change
  if (parts[0] === 'assets') headers['cache-control'] = 'public, max-age=31536000, immutable';
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}
