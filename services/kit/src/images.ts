import type { Context, Engines } from '@micro/sdk';
import { withTenantLock } from './lock.js';
import { checkName, encodePath, TenantObjects } from './objects.js';
import { publicUrl } from './route.js';

/** The service whose store database, blob keys and gateway route hold the tenants' public images. */
export const IMAGES = 'image';

/**
 * A tenant's public images: what image's Upload (and Resize or Convert with outputURL)
 * and avatar's `upload` keep, as M3O's CDN kept both. The bytes are in the blob store of
 * the tenant's namespace (its blobBytes quota counts them), the record in its store,
 * database `image` (TenantObjects); the gateway serves them to anyone at
 * `<MICRO_PUBLIC_URL>/image/<namespace>/<name>` (the image service's route). Both
 * services write through here so that one Delete and one route serve them all.
 */
export class TenantImages {
  private readonly objects: TenantObjects;

  constructor(
    private readonly engines: Pick<Engines, 'store' | 'blobs' | 'sync'>,
    private readonly ctx: Pick<Context, 'tenant' | 'signal'>,
  ) {
    this.objects = new TenantObjects(engines, ctx.tenant, IMAGES);
  }

  /** Where the gateway serves image `name` of this tenant. */
  url(name: string): string {
    return imageUrl(this.ctx.tenant, name);
  }

  /** Stores `bytes` as image `name` (replacing one of that name), answering its URL. */
  async put(name: string, bytes: Buffer, service: string): Promise<string> {
    checkName(name, 'name', service);
    await withTenantLock(this.engines, this.ctx, IMAGES, name, async () => {
      await this.objects.put(name, bytes, await this.objects.head(name), { public: true });
    });
    return this.url(name);
  }

  /** The bytes of image `name`, or undefined when the tenant has none of that name. */
  async read(name: string): Promise<Buffer | undefined> {
    const rec = await this.objects.head(name);
    return rec ? this.objects.bytes(rec) : undefined;
  }

  /** Deletes image `name`; false when the tenant has none of that name. */
  async delete(name: string): Promise<boolean> {
    return withTenantLock(this.engines, this.ctx, IMAGES, name, async () => {
      const rec = await this.objects.head(name);
      if (!rec) return false;
      await this.objects.delete(name, rec);
      return true;
    });
  }

  /**
   * The name of this tenant's image that `url` addresses, or undefined when `url` is not
   * an image URL of this tenant on this platform (another tenant's, another host's, not a
   * URL at all).
   */
  nameOf(url: string): string | undefined {
    const parsed = imagePath(url);
    return parsed && parsed.namespace === this.ctx.tenant ? parsed.name : undefined;
  }
}

/** `<MICRO_PUBLIC_URL>/image/<namespace>/<name>` */
export function imageUrl(namespace: string, name: string): string {
  return `${publicUrl()}/${IMAGES}/${encodeURIComponent(namespace)}/${encodePath(name)}`;
}

/** The namespace and name of an image URL of this platform (imageUrl's inverse), or undefined. */
export function imagePath(url: string): { namespace: string; name: string } | undefined {
  const base = `${publicUrl()}/${IMAGES}/`;
  if (!url.startsWith(base) || /[?#]/.test(url)) return undefined;
  let segments: string[];
  try {
    segments = url.slice(base.length).split('/').map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const [namespace, ...rest] = segments;
  const name = rest.join('/');
  if (!namespace || name === '') return undefined;
  try {
    checkName(name, 'url', IMAGES);
  } catch {
    return undefined;
  }
  // a name whose segments held an encoded `/` is not one imageUrl makes
  return imageUrl(namespace, name) === url ? { namespace, name } : undefined;
}
