import { errors, type Context, type Engines } from '@micro/sdk';
import { checkName, encodePath, gatewayOnly, mediaType, pathSegments, publicService, publicUrl, rfc3339, TenantObjects, type ObjectRecord } from '@micro/services-kit';
import { file, MAX_CONTENT_BYTES, MAX_METADATA } from './definition.js';

const SERVICE = 'file';
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** a project: one segment of letters, digits, `.`, `_` and `-` (it is the first segment of the key and of the URL) */
const PROJECT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const DEFAULT_PROJECT = 'default';
const LIST_LIMIT = 1000;

function projectOf(value: string | undefined): string {
  if (value === undefined || value === '') return DEFAULT_PROJECT;
  if (!PROJECT.test(value)) throw errors.BadRequest(SERVICE, 'project: 1-128 of A-Z, a-z, 0-9, ., _ and - (not starting with .)');
  return value;
}

/** the store key of a file: `<project>/<path>` */
const keyOf = (project: string, path: string) => `${project}/${path}`;

function fileUrl(ns: string, project: string, path: string): string {
  return `${publicUrl()}/file/${encodeURIComponent(ns)}/${encodeURIComponent(project)}/${encodePath(path)}`;
}

function recordOf(project: string, path: string, rec: ObjectRecord, content: string) {
  return { project, path, content, created: rfc3339(rec.created), updated: rfc3339(rec.modified), metadata: (rec.extra?.metadata as Record<string, string> | undefined) ?? {} };
}

function checkMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  if (metadata === undefined) return {};
  if (Object.keys(metadata).length > MAX_METADATA) throw errors.BadRequest(SERVICE, `file.metadata: at most ${MAX_METADATA} entries`);
  return metadata;
}

const notFound = () => errors.NotFound(SERVICE, 'no such file');

export const service = publicService(file, (engines: Engines) => {
  const files = (tenant: string) => new TenantObjects(engines, tenant, SERVICE);
  const existing = async (ctx: Context, req: { project?: string; path?: string }) => {
    const project = projectOf(req.project);
    const path = checkName(req.path, 'path', SERVICE);
    const rec = await files(ctx.tenant).head(keyOf(project, path));
    if (!rec) throw errors.NotFound(SERVICE, `path: no file ${JSON.stringify(path.slice(0, 100))} in project ${project}`);
    return { project, path, rec };
  };

  return {
    Save: async ({ file: f, public: open }, ctx) => {
      if (!f) throw errors.BadRequest(SERVICE, 'Missing file');
      const project = projectOf(f.project);
      const path = checkName(f.path, 'file.path', SERVICE);
      const content = Buffer.from(f.content ?? '', 'utf8');
      if (content.length > MAX_CONTENT_BYTES) throw errors.PayloadTooLarge(SERVICE, `file.content: at most ${MAX_CONTENT_BYTES} bytes`);
      const metadata = checkMetadata(f.metadata);
      const key = keyOf(project, path);
      const lock = await engines.sync.lock(`file/${ctx.tenant}/${key}`, { namespace: ctx.namespace, ttl: 30_000, wait: 10_000 });
      try {
        const store = files(ctx.tenant);
        await store.put(key, content, await store.head(key), { public: open === true, extra: { metadata } });
      } finally {
        await lock.release().catch(() => undefined);
      }
      return { url: open === true ? fileUrl(ctx.tenant, project, path) : '' };
    },
    Read: async (req, ctx) => {
      const { project, path, rec } = await existing(ctx, req);
      const content = await files(ctx.tenant).bytes(rec);
      return { file: recordOf(project, path, rec, content.toString('utf8')) };
    },
    List: async (req, ctx) => {
      const project = projectOf(req.project);
      const prefix = req.path ? req.path.replace(/^\/+/, '') : '';
      // eslint-disable-next-line no-control-regex -- control characters are what it looks for
      if (prefix !== '' && /[\u0000-\u001f\u007f]/.test(prefix)) throw errors.BadRequest(SERVICE, 'path: must not contain control characters');
      const list = await files(ctx.tenant).list(keyOf(project, prefix), LIST_LIMIT);
      return { files: list.map(({ key, rec }) => recordOf(project, key.slice(project.length + 1), rec, '')) };
    },
    Delete: async (req, ctx) => {
      const { project, path, rec } = await existing(ctx, req);
      await files(ctx.tenant).delete(keyOf(project, path), rec);
      return {};
    },
    Serve: async ({ path: routePath, method }, ctx) => {
      gatewayOnly(ctx);
      if (method === 'PUT') throw errors.MethodNotAllowed(SERVICE, 'files are saved with file.Save');
      const [ns, project, ...rest] = pathSegments(routePath, SERVICE);
      const path = rest.join('/');
      if (!ns || !NAMESPACE.test(ns) || !project || !PROJECT.test(project) || path === '') throw notFound();
      try {
        checkName(path, 'path', SERVICE);
      } catch {
        throw notFound();
      }
      const store = files(ns);
      const rec = await store.head(keyOf(project, path));
      // a private file is as missing as none
      if (!rec?.public) throw notFound();
      const type = mediaType(path);
      return { status: 200, contentType: type === 'application/octet-stream' ? 'text/plain; charset=utf-8' : type, body: (await store.bytes(rec)).toString('base64'), filename: rest.at(-1) };
    },
  };
}, { routes: { file: 'Serve' } });
