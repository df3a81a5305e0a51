import { errors, type Context, type Engines } from '@micro/sdk';
import { checkName, encodePath, fromBase64, gatewayOnly, mediaType, pathSegments, publicService, publicUrl, rfc3339, TenantObjects, type ObjectRecord, type RouteRequest } from '@micro/services-kit';
import { MAX_OBJECT_BYTES, space, URL_TTL } from './definition.js';
import { Signer } from './signing.js';

const SERVICE = 'space';
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const LIST_LIMIT = 1000;

function visibilityOf(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (value === 'public') return true;
  if (value === 'private') return false;
  throw errors.BadRequest(SERVICE, 'visibility: must be public or private');
}

/** The gateway's address of an object of namespace `ns`. */
function objectUrl(ns: string, name: string): string {
  return `${publicUrl()}/space/${encodeURIComponent(ns)}/${encodePath(name)}`;
}

function described(ns: string, name: string, rec: ObjectRecord) {
  return { name, created: rfc3339(rec.created), modified: rfc3339(rec.modified), visibility: rec.public ? 'public' : 'private', url: rec.public ? objectUrl(ns, name) : '' };
}

const notFound = () => errors.NotFound(SERVICE, 'no such object');

export const service = publicService(space, (engines: Engines) => {
  const signer = new Signer(engines);
  const objects = (ctx: Pick<Context, 'tenant'>) => new TenantObjects(engines, ctx.tenant, SERVICE);
  const existing = async (ctx: Context, name: string) => {
    const rec = await objects(ctx).head(name);
    if (!rec) throw errors.NotFound(SERVICE, `name: no object ${JSON.stringify(name.slice(0, 100))}`);
    return rec;
  };

  /** Create (`fresh`: 409 when the name is taken) and Update; both under one lock per object, so two Creates make one. */
  const write = async (ctx: Pick<Context, 'tenant' | 'namespace'>, req: { name?: string; object?: string; visibility?: string }, fresh: boolean) => {
    const name = checkName(req.name, 'name', SERVICE);
    const data = fromBase64(req.object ?? '', 'object', SERVICE, MAX_OBJECT_BYTES);
    const lock = await engines.sync.lock(`space/${ctx.tenant}/${name}`, { namespace: ctx.namespace, ttl: 30_000, wait: 10_000 });
    try {
      const store = objects(ctx);
      const was = await store.head(name);
      if (was && fresh) throw errors.Conflict(SERVICE, `name: an object ${JSON.stringify(name.slice(0, 100))} exists (Update replaces it)`);
      const rec = await store.put(name, data, was, { public: visibilityOf(req.visibility, was?.public ?? false) });
      return { url: rec.public ? objectUrl(ctx.tenant, name) : '' };
    } finally {
      await lock.release().catch(() => undefined);
    }
  };

  /** A signed gateway URL for `method` on the caller's object `name`. */
  const signed = async (ctx: Context, method: 'GET' | 'PUT', name: string, visibility: string) => {
    const expires = Math.floor(Date.now() / 1000) + URL_TTL;
    const signature = await signer.sign(ctx.namespace, { method, namespace: ctx.tenant, name, visibility, expires });
    const query = new URLSearchParams({ ...(method === 'PUT' ? { visibility } : {}), expires: String(expires), signature });
    return `${objectUrl(ctx.tenant, name)}?${query}`;
  };

  /** The gateway's /space/<namespace>/<name>: GET/HEAD of a public object or with a signature; PUT with a signature. */
  const serve = async (req: RouteRequest, ctx: Context) => {
    const [ns, ...rest] = pathSegments(req.path, SERVICE);
    const name = rest.join('/');
    if (!ns || !NAMESPACE.test(ns) || name === '') throw notFound();
    try {
      checkName(name, 'name', SERVICE);
    } catch {
      throw notFound();
    }
    const { expires, signature, visibility = '' } = req.query;
    const parts = { namespace: ns, name, visibility, expires: Number(expires) };
    const valid = (method: 'GET' | 'PUT') => signature !== undefined && expires !== undefined && signer.verify(ctx.namespace, { ...parts, method }, signature);
    const store = new TenantObjects(engines, ns, SERVICE);
    if (req.method === 'PUT') {
      // no such URL, or one that expired: the same answer
      if (!(await valid('PUT'))) throw errors.Forbidden(SERVICE, 'this upload URL is not valid (wrong or expired signature): ask space.Upload for another');
      await write({ tenant: ns, namespace: ctx.namespace }, { name, object: req.body, visibility }, false);
      return { status: 201 };
    }
    const rec = await store.head(name);
    // a private object is as missing as none, unless the URL is signed for it
    if (!rec || (!rec.public && !(await valid('GET')))) throw notFound();
    const bytes = await store.bytes(rec);
    return { status: 200, contentType: mediaType(name), body: bytes.toString('base64'), filename: name.split('/').pop() };
  };

  return {
    Create: (req, ctx) => write(ctx, req, true),
    Update: (req, ctx) => write(ctx, req, false),
    Delete: async ({ name }, ctx) => {
      const n = checkName(name, 'name', SERVICE);
      await objects(ctx).delete(n, await existing(ctx, n));
      return {};
    },
    List: async ({ prefix }, ctx) => {
      const list = await objects(ctx).list(prefix ?? '', LIST_LIMIT);
      return { objects: list.map(({ key, rec }) => described(ctx.tenant, key, rec)) };
    },
    Head: async ({ name }, ctx) => {
      const n = checkName(name, 'name', SERVICE);
      return { object: described(ctx.tenant, n, await existing(ctx, n)) };
    },
    Read: async ({ name }, ctx) => {
      const n = checkName(name, 'name', SERVICE);
      const rec = await existing(ctx, n);
      const data = await objects(ctx).bytes(rec);
      return { object: { ...described(ctx.tenant, n, rec), data: data.toString('base64') } };
    },
    Download: async ({ name }, ctx) => {
      const n = checkName(name, 'name', SERVICE);
      await existing(ctx, n);
      return { url: await signed(ctx, 'GET', n, '') };
    },
    Upload: async ({ name, visibility }, ctx) => {
      const n = checkName(name, 'name', SERVICE);
      const v = visibility === undefined || visibility === '' ? 'private' : visibilityOf(visibility, false) ? 'public' : 'private';
      return { url: await signed(ctx, 'PUT', n, v) };
    },
    Serve: async (req, ctx) => {
      gatewayOnly(ctx);
      return serve(req, ctx);
    },
  };
}, { routes: { space: 'Serve' } });
