import { defineService, endpoint, z } from '@micro/sdk';
import { i64, m3oRequest, recordId, routeAnswer, routeRequest } from '@micro/services-kit';

/**
 * Bounds of a code. A QR code (version 40, error correction level M, as M3O's) holds at most
 * 2,331 bytes; `size` is the PNG's width and height in pixels, M3O's default 256.
 */
export const QR_LIMITS = Object.freeze({ textBytes: 2_331, size: { min: 64, max: 1024, default: 256 } });

const code = z.object({ created: z.string(), file: z.string(), id: z.string(), text: z.string() });

/** QR codes (M3O's qr API); `Serve` is the gateway's `/qr/<namespace>/<id>.png` (routes), no API of its own. */
export const qr = defineService({
  name: 'qr',
  version: '1.0.0',
  description: 'QR codes of any text as PNG images, kept and served at a URL',
  public: true,
  endpoints: {
    Generate: endpoint({
      description: `A QR code of \`text\` (at most ${QR_LIMITS.textBytes} bytes of UTF-8) as a PNG of \`size\` pixels square (${QR_LIMITS.size.min} to ${QR_LIMITS.size.max}, default ${QR_LIMITS.size.default}), kept; \`qr\` is its URL`,
      request: m3oRequest({ text: z.string().max(10_000).optional(), size: i64().optional() }),
      response: z.object({ qr: z.string() }),
      price: 100,
      freeQuota: 1_000,
    }),
    Codes: endpoint({
      description: 'Your QR codes, oldest first (at most 1,000 are kept)',
      request: z.object({}).passthrough(),
      response: z.object({ codes: z.array(code) }),
      idempotent: true,
      readonly: true,
      price: 10,
      freeQuota: 10_000,
    }),
    Delete: endpoint({
      description: 'Deletes one of your codes: its URL answers 404 from then on (not in M3O\'s API, whose codes were kept for ever)',
      request: m3oRequest({ id: recordId().optional() }),
      response: z.object({}),
      idempotent: true,
      price: 10,
      freeQuota: 10_000,
    }),
    Serve: endpoint({ request: routeRequest, response: routeAnswer, description: 'The gateway\'s /qr/<namespace>/<id>.png: a code\'s PNG to anyone with its URL (callable by the gateway only)' }),
  },
});
