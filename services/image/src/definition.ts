import { defineService, endpoint, z } from '@micro/sdk';
import { i64, m3oRequest, routeAnswer, routeRequest } from '@micro/services-kit';

/** the largest input image, bytes (through the gateway its body limit, 1 MiB by default, comes first) */
export const MAX_INPUT_BYTES = 8 * 1024 * 1024;
/** the most pixels an input image may have (width × height of one frame): what keeps a small file that decodes to gigabytes out */
export const MAX_INPUT_PIXELS = 25_000_000;
/** the widest and highest a result may be, pixels */
export const MAX_SIDE = 4096;
/** the largest result, bytes: its base64 must fit an RPC frame (4 MiB) with room to spare */
export const MAX_OUTPUT_BYTES = 2.5 * 1024 * 1024;

const source = {
  /** base64 of the image, or a data URL (`data:image/png;base64,…`) as M3O's clients send */
  base64: z.string().max(Math.ceil(MAX_INPUT_BYTES / 3) * 4 + 256).optional(),
  /** the image's bytes (base64 on the wire) */
  file: z.string().max(Math.ceil(MAX_INPUT_BYTES / 3) * 4 + 256).optional(),
  /** the URL of one of the caller's own images (what Upload answered) */
  url: z.string().max(4096).optional(),
};
const name = z.string().max(4096).optional();
const outputURL = z.boolean().optional();
const size = i64().optional();
const cropOptions = z.object({ anchor: z.string().max(64).optional(), height: z.number().optional(), width: z.number().optional() }).passthrough().optional();
const result = z.object({ base64: z.string(), url: z.string() });

/** Images resized, cropped and converted with sharp, kept public in the tenant's blob store (M3O's image API); `Serve` is the gateway's `/image/<namespace>/<name>`. */
export const image = defineService({
  name: 'image',
  version: '1.0.0',
  public: true,
  endpoints: {
    Resize: endpoint({
      request: m3oRequest({ ...source, name, outputURL, width: size, height: size, cropOptions }),
      response: result,
      price: 200,
      freeQuota: 1_000,
      idempotent: true,
      description: 'Resizes an image to width × height (one of them 0 keeps the aspect ratio), then crops it to cropOptions at its anchor; answers it as a data URL, or stores it under name and answers its url (outputURL)',
    }),
    Convert: endpoint({
      request: m3oRequest({ ...source, name, outputURL }),
      response: result,
      price: 200,
      freeQuota: 1_000,
      idempotent: true,
      description: 'Converts an image to the format of name\'s extension (png, jpg, jpeg, webp, gif, avif, tif, tiff); answers it as a data URL, or stores it under name and answers its url (outputURL)',
    }),
    Upload: endpoint({
      request: m3oRequest({ ...source, name }),
      response: z.object({ url: z.string() }),
      price: 100,
      freeQuota: 1_000,
      idempotent: true,
      description: 'Stores an image under name (replacing one of that name), in the format of name\'s extension; url is where the gateway serves it to anyone',
    }),
    Delete: endpoint({ request: m3oRequest({ url: z.string().max(8192).optional() }), response: z.object({}), price: 10, freeQuota: 1_000, idempotent: true, description: 'Deletes one of your images by its url' }),
    Serve: endpoint({ request: routeRequest, response: routeAnswer, description: 'The gateway\'s /image/<namespace>/<name>: stored images, public (callable by the gateway only)' }),
  },
});
