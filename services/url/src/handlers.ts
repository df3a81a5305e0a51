import { errors, type Context, type Engines } from '@micro/sdk';
import { gatewayOnly, missing, pathSegments, publicService, publicUrl, rfc3339, str64, tenantStore } from '@micro/services-kit';
import { randomBytes } from 'node:crypto';
import { ID, url, type URLPair } from './definition.js';
import { checkDestination } from './destination.js';
import { hitLock, Hits, type StoredLink } from './hits.js';

const SERVICE = 'url';
/** the tenant's records: database url of the tenant's namespace, key = the id */
const DATABASE = 'url';
/** the platform-wide index id → tenant: table ids of database url of the service's own namespace */
const INDEX = { database: 'url', table: 'ids' };
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** 62^8 ≈ 2^47.6 ids */
const ID_LENGTH = 8;
const LIST_LIMIT = 1000;

/** Where short links point from: MICRO_SHORT_URL_BASE (e.g. https://m3o.sh), else <MICRO_PUBLIC_URL>/u. */
export function shortBase(): string {
  return (process.env.MICRO_SHORT_URL_BASE || `${publicUrl()}/u`).replace(/\/+$/, '');
}

function newId(): string {
  const bytes = randomBytes(ID_LENGTH * 2);
  let id = '';
  // 248 = 4 × 62: bytes past it are skipped, so every character is equally likely
  for (const b of bytes) if (b < 248 && id.length < ID_LENGTH) id += ALPHABET[b % 62];
  return id.length === ID_LENGTH ? id : newId();
}

/** The id a request names: `id`, else the last path segment of `shortURL`; a 400 naming the field. */
function idOf(req: { id?: string; shortURL?: string }): string {
  if (req.id !== undefined && req.id !== '') return checkId(req.id, 'id');
  if (req.shortURL !== undefined && req.shortURL !== '') {
    const last = req.shortURL.replace(/[?#].*$/, '').replace(/\/+$/, '').split('/').pop() ?? '';
    return checkId(last, 'shortURL');
  }
  throw missing(SERVICE, 'id');
}

function checkId(id: string, field: string): string {
  if (!ID.test(id)) throw errors.BadRequest(SERVICE, `${field}: an id is 1-64 of A-Z, a-z, 0-9, _ and -`);
  return id;
}

function pairOf(id: string, link: StoredLink, hits: number): URLPair {
  return { id, destinationURL: link.destinationURL, created: rfc3339(link.created), hitCount: str64(link.hits + hits), shortURL: `${shortBase()}/${id}` };
}

const notFound = (id: string) => errors.NotFound(SERVICE, `no short link ${id}`);

export const service = publicService(url, (engines: Engines) => {
  let home: string | undefined;
  const hits = new Hits(engines, () => home);
  const index = (ctx: Context) => {
    home = ctx.namespace;
    return { namespace: ctx.namespace, ...INDEX };
  };
  const mine = (ctx: Context) => tenantStore(engines.store, ctx, DATABASE);

  /** The caller's link `id`, or a 404 (another tenant's is as missing as none). */
  const own = async (ctx: Context, id: string): Promise<StoredLink> => {
    const [rec] = await mine(ctx).read(id);
    if (!rec) throw notFound(id);
    return rec.value as StoredLink;
  };

  /** `fn` under the lock the hit flushes of the link take (hits.ts), so that none of them writes over it */
  const locked = async (ctx: Context, id: string, fn: () => Promise<void>): Promise<void> => {
    const lock = await engines.sync.lock(hitLock(ctx.tenant, id), { namespace: index(ctx).namespace, ttl: 10_000, wait: 5_000 });
    try {
      await fn();
    } finally {
      await lock.release().catch(() => undefined);
    }
  };

  /**
   * Claims `id` platform-wide for the caller, then keeps the link in the caller's
   * namespace; the claim is undone when that fails (a quota), so nothing is half made.
   */
  const create = async (ctx: Context, destinationURL: string, chosen: string | undefined): Promise<URLPair> => {
    const scope = index(ctx);
    const id = chosen ?? newId();
    const lock = await engines.sync.lock(`url-id/${id}`, { namespace: ctx.namespace, ttl: 10_000, wait: 5_000 });
    try {
      const [taken] = await engines.store.read(id, scope);
      if (taken) {
        if (chosen) throw errors.Conflict(SERVICE, `id: ${id} is taken`);
        return await create(ctx, destinationURL, undefined);
      }
      await engines.store.write({ key: id, value: { tenant: ctx.tenant } }, scope);
    } finally {
      await lock.release().catch(() => undefined);
    }
    const link: StoredLink = { destinationURL, created: Date.now(), hits: 0 };
    try {
      await mine(ctx).write({ key: id, value: link });
    } catch (err) {
      await engines.store.delete(id, scope);
      throw err;
    }
    return pairOf(id, link, 0);
  };

  /** The destination of `id` for the gateway's redirect, counting a hit; 404 for an id nobody has. */
  const redirect = async (ctx: Context, id: string, count: boolean): Promise<string> => {
    const [entry] = await engines.store.read(id, index(ctx));
    const tenant = (entry?.value as { tenant?: string } | undefined)?.tenant;
    const [rec] = tenant ? await engines.store.read(id, { namespace: tenant, database: DATABASE }) : [];
    if (!tenant || !rec) throw notFound(id);
    if (count) hits.add(tenant, id);
    return (rec.value as StoredLink).destinationURL;
  };

  return {
    Shorten: async ({ destinationURL }, ctx) => {
      const pair = await create(ctx, checkDestination(destinationURL ?? ''), undefined);
      return { shortURL: pair.shortURL };
    },
    Create: async ({ destinationURL, id }, ctx) => {
      const dest = checkDestination(destinationURL ?? '');
      return { url: await create(ctx, dest, id === undefined || id === '' ? undefined : checkId(id, 'id')) };
    },
    Resolve: async (req, ctx) => {
      const id = idOf(req);
      const link = await own(ctx, id);
      index(ctx);
      hits.add(ctx.tenant, id);
      return { destinationURL: link.destinationURL };
    },
    List: async ({ shortURL }, ctx) => {
      if (shortURL) {
        const id = idOf({ shortURL });
        const [rec] = await mine(ctx).read(id);
        return { urlPairs: rec ? [pairOf(id, rec.value as StoredLink, hits.unflushed(ctx.tenant, id))] : [] };
      }
      const records = await mine(ctx).read('', { prefix: true, limit: LIST_LIMIT });
      return { urlPairs: records.map((r) => pairOf(r.key, r.value as StoredLink, hits.unflushed(ctx.tenant, r.key))) };
    },
    Update: async (req, ctx) => {
      const id = idOf(req);
      const destinationURL = checkDestination(req.destinationURL ?? '');
      await locked(ctx, id, async () => {
        const link = await own(ctx, id);
        await mine(ctx).write({ key: id, value: { ...link, destinationURL } });
      });
      return {};
    },
    Delete: async (req, ctx) => {
      const id = idOf(req);
      const scope = index(ctx);
      await locked(ctx, id, async () => {
        await own(ctx, id);
        await mine(ctx).delete(id);
      });
      hits.forget(ctx.tenant, id);
      // the id is freed only if it is still the caller's
      const [entry] = await engines.store.read(id, scope);
      if ((entry?.value as { tenant?: string } | undefined)?.tenant === ctx.tenant) await engines.store.delete(id, scope);
      return {};
    },
    Redirect: async ({ method, path }, ctx) => {
      gatewayOnly(ctx);
      const [id, ...more] = pathSegments(path, SERVICE);
      if (more.length > 0 || id === undefined || !ID.test(id)) throw errors.NotFound(SERVICE, 'no such short link');
      // a HEAD (a link checker, a preview) is not a visit
      const location = await redirect(ctx, id, method === 'GET');
      return { status: 302, location };
    },
  };
}, { routes: { u: 'Redirect' } });

export { url as definition };
