import { errors, type Context, type Engines } from '@micro/sdk';
import { checkName, fromBase64, gatewayOnly, imagePath, mediaType, pathSegments, publicService, TenantImages, type RouteRequest } from '@micro/services-kit';
import { image, MAX_INPUT_BYTES } from './definition.js';
import { Gate } from './gate.js';
import { convert, formatOf, inspect, mediaTypeOf, resize, type Crop, type Format } from './pictures.js';

const SERVICE = 'image';
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** `data:image/png;base64,` (M3O's clients put a space after the comma) */
const DATA_URL = /^\s*data:[^,]*;base64\s*,/i;

interface Source {
  base64?: string;
  file?: string;
  url?: string;
}

interface Output {
  name?: string;
  outputURL?: boolean;
}

/** The format of a result: that of `name`'s extension when given (it must be when the result is stored), else the input's. */
function outputFormat(req: Output, input: () => Format): Format {
  if (req.outputURL) return formatOf(checkName(req.name, 'name', SERVICE));
  return req.name ? formatOf(req.name) : input();
}

export const service = publicService(image, (engines: Engines) => {
  const gate = new Gate();
  const images = (ctx: Pick<Context, 'tenant' | 'signal'>) => new TenantImages(engines, ctx);

  /** The input's bytes: from exactly one of file, base64 (bare or a data URL) and url (one of the caller's own images). */
  const bytesOf = async (req: Source, ctx: Context): Promise<Buffer> => {
    const given = (['file', 'base64', 'url'] as const).filter((f) => req[f]);
    if (given.length === 0) throw errors.BadRequest(SERVICE, 'the image is required: send it as base64, file or url');
    if (given.length > 1) throw errors.BadRequest(SERVICE, `send the image as one of base64, file or url, not ${given.join(' and ')}`);
    if (req.file) return fromBase64(req.file, 'file', SERVICE, MAX_INPUT_BYTES);
    if (req.base64) {
      if (/^\s*data:/i.test(req.base64) && !DATA_URL.test(req.base64)) throw errors.BadRequest(SERVICE, 'base64: a data URL must be base64-encoded (data:image/png;base64,…)');
      return fromBase64(req.base64.replace(DATA_URL, ''), 'base64', SERVICE, MAX_INPUT_BYTES);
    }
    const url = req.url as string;
    const name = images(ctx).nameOf(url);
    if (name === undefined) {
      throw errors.BadRequest(SERVICE, 'url: only the URLs of your own images (as Upload answers them) are read; nothing is fetched from elsewhere: send the image as base64 or file');
    }
    const bytes = await images(ctx).read(name);
    if (!bytes) throw errors.NotFound(SERVICE, 'url: you have no image there');
    return bytes;
  };

  /** A result: stored under name, answering its url (outputURL), else as a data URL. */
  const answer = async (ctx: Context, req: Output, out: Buffer, format: Format) => {
    if (req.outputURL) return { base64: '', url: await images(ctx).put(req.name as string, out, SERVICE) };
    return { base64: `data:${mediaTypeOf(format)};base64,${out.toString('base64')}`, url: '' };
  };

  /** The gateway's /image/<namespace>/<name>: every stored image is public. */
  const serve = async (req: RouteRequest, ctx: Context) => {
    if (req.method === 'PUT') throw errors.MethodNotAllowed(SERVICE, 'images are stored with image.Upload');
    const [ns, ...rest] = pathSegments(req.path, SERVICE);
    const name = rest.join('/');
    const missing = () => errors.NotFound(SERVICE, 'no such image');
    if (!ns || !NAMESPACE.test(ns)) throw missing();
    try {
      checkName(name, 'name', SERVICE);
    } catch {
      throw missing();
    }
    const bytes = await images({ tenant: ns, signal: ctx.signal }).read(name);
    if (!bytes) throw missing();
    return { status: 200, contentType: mediaType(name), body: bytes.toString('base64'), filename: name.split('/').pop() };
  };

  return {
    Resize: (req, ctx) => gate.run(ctx.tenant, async () => {
      const crop = req.cropOptions as Crop | undefined;
      if (!req.width && !req.height && !crop) throw errors.BadRequest(SERVICE, 'width or height is required (or cropOptions, to crop only)');
      if (req.outputURL) checkName(req.name, 'name', SERVICE);
      if (req.name) formatOf(req.name);
      const picture = await inspect(await bytesOf(req, ctx));
      const format = outputFormat(req, () => picture.format);
      return answer(ctx, req, await resize(picture, { width: req.width ?? 0, height: req.height ?? 0, crop }, format), format);
    }),
    Convert: (req, ctx) => gate.run(ctx.tenant, async () => {
      const format = formatOf(req.outputURL ? checkName(req.name, 'name', SERVICE) : req.name || '');
      const picture = await inspect(await bytesOf(req, ctx));
      return answer(ctx, req, await convert(picture, format), format);
    }),
    Upload: (req, ctx) => gate.run(ctx.tenant, async () => {
      const name = checkName(req.name, 'name', SERVICE);
      const format = formatOf(name);
      const picture = await inspect(await bytesOf(req, ctx));
      return { url: await images(ctx).put(name, await convert(picture, format), SERVICE) };
    }),
    Delete: async ({ url }, ctx) => {
      if (!url) throw errors.BadRequest(SERVICE, 'url: is required (the url Upload answered)');
      const name = images(ctx).nameOf(url);
      if (name === undefined && !imagePath(url)) throw errors.BadRequest(SERVICE, 'url: not an image URL of this platform (<gateway>/image/<namespace>/<name>)');
      if (name === undefined || !(await images(ctx).delete(name))) throw errors.NotFound(SERVICE, 'url: you have no image there');
      return {};
    },
    Serve: async (req, ctx) => {
      gatewayOnly(ctx);
      return serve(req, ctx);
    },
  };
}, { routes: { image: 'Serve' } });
