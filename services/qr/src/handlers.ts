import { randomUUID } from 'node:crypto';
import QRCode from 'qrcode';
import { errors, readBlob, type Context, type Engines, type Handlers } from '@micro/sdk';
import { gatewayOnly, missing, pathSegments, publicService, publicUrl, RECORD_ID, Records, rfc3339, type RouteRequest, type Stamped } from '@micro/services-kit';
import { QR_LIMITS, qr } from './definition.js';

const SERVICE = 'qr';
const TABLE = 'codes';
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A code as the store keeps it: its id (a UUID v4, the secret part of its URL) names its PNG too. */
export interface Code extends Stamped {
  text: string;
  size: number;
  /** the blob key of the PNG, in the tenant's namespace */
  blob: string;
}

/** The gateway's URL of code `id` of namespace `ns`: the namespace says where to look, the id is what cannot be guessed. */
function codeUrl(ns: string, id: string): string {
  return `${publicUrl()}/qr/${encodeURIComponent(ns)}/${id}.png`;
}

function checkedText(text: string | undefined): string {
  if (text === undefined || text === '') throw missing(SERVICE, 'text');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > QR_LIMITS.textBytes) throw errors.BadRequest(SERVICE, `text: at most ${QR_LIMITS.textBytes} bytes of UTF-8 fit in a QR code (got ${bytes})`);
  return text;
}

function checkedSize(size: number | undefined): number {
  if (size === undefined || size === 0) return QR_LIMITS.size.default;
  const { min, max } = QR_LIMITS.size;
  if (size < min || size > max) throw errors.BadRequest(SERVICE, `size: must be from ${min} to ${max} pixels (got ${size})`);
  return size;
}

/**
 * The PNG of `text`: error correction level M, a quiet zone of 4 modules, `size` pixels
 * square — or 4 pixels a module where `size` is less than a pixel a module (a long text
 * at a small size: a code that no camera could read at the size asked).
 */
export function renderPng(text: string, size: number): Promise<Buffer> {
  return QRCode.toBuffer(text, { type: 'png', errorCorrectionLevel: 'M', margin: 4, width: size });
}

export interface QrOptions {
  /** codes one tenant keeps (default and at most 1,000: Codes answers them all at once) */
  maxCodes?: number;
}

/** The qr service's handlers: codes in the store and PNGs in the blobs of the caller's namespace. */
export function qrHandlers(engines: Engines, options: QrOptions = {}): Handlers<typeof qr> {
  const codes = new Records<Code>(engines, { service: SERVICE, noun: 'QR code', table: TABLE, ...(options.maxCodes ? { maxRecords: options.maxCodes } : {}) });
  const blobs = (ns: string) => ({ namespace: ns });

  /** The gateway's /qr/<namespace>/<id>.png: the PNG of that code, to whoever has the URL. */
  const serve = async (req: RouteRequest) => {
    const notFound = errors.NotFound(SERVICE, 'no such QR code');
    if (req.method === 'PUT') throw errors.MethodNotAllowed(SERVICE, 'QR codes are made by qr.Generate');
    const [ns, file, ...rest] = pathSegments(req.path, SERVICE);
    const id = file?.endsWith('.png') ? file.slice(0, -4) : '';
    if (!ns || !NAMESPACE.test(ns) || rest.length > 0 || !RECORD_ID.test(id)) throw notFound;
    const [rec] = await codes.store({ tenant: ns }).read(id, { table: TABLE });
    if (!rec) throw notFound;
    const png = await readBlob(engines.blobs.get((rec.value as Code).blob, blobs(ns)));
    return { status: 200, contentType: 'image/png', body: png.toString('base64'), filename: `${id}.png` };
  };

  return {
    async Generate({ text, size }, ctx) {
      const t = checkedText(text);
      const s = checkedSize(size);
      const png = await renderPng(t, s);
      // the PNG first, then the record naming it: a refused or failed record leaves no code behind
      const blob = `${SERVICE}/${randomUUID()}.png`;
      await engines.blobs.put(blob, png, blobs(ctx.tenant));
      try {
        const code = await codes.create(ctx, { text: t, size: s, blob });
        return { qr: codeUrl(ctx.tenant, code.id) };
      } catch (err) {
        await engines.blobs.delete(blob, blobs(ctx.tenant)).catch(() => undefined);
        throw err;
      }
    },
    async Codes(_req, ctx) {
      const list = await codes.list(ctx);
      return { codes: list.map((c) => ({ id: c.id, text: c.text, file: codeUrl(ctx.tenant, c.id), created: rfc3339(c.created) })) };
    },
    async Delete({ id }, ctx) {
      if (!id) throw missing(SERVICE, 'id');
      const code = await codes.delete(ctx, id);
      await engines.blobs.delete(code.blob, blobs(ctx.tenant)).catch(() => undefined);
      return {};
    },
    async Serve(req, ctx: Context) {
      gatewayOnly(ctx);
      return serve(req);
    },
  };
}

export const service = publicService(qr, (engines) => qrHandlers(engines), { routes: { qr: 'Serve' } });
