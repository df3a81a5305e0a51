import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest, routeAnswer, routeRequest } from '@micro/services-kit';

/** the largest object, bytes (through the gateway its body limit, 1 MiB by default, comes first) */
export const MAX_OBJECT_BYTES = 16 * 1024 * 1024;
/** seconds a Download or Upload URL lives */
export const URL_TTL = 3600;

const name = z.string().max(4096).optional();
/** base64 of the object's bytes */
const data = z.string().max(Math.ceil(MAX_OBJECT_BYTES / 3) * 4 + 4096).optional();
const visibility = z.string().max(64).optional();

const headObject = z.object({ created: z.string(), modified: z.string(), name: z.string(), url: z.string(), visibility: z.string() });
const spaceObject = headObject.extend({ data: z.string() });

/** Object storage (M3O's space API); `Serve` is the gateway's `/space/<namespace>/<name>` (routes), no API of its own. */
export const space = defineService({
  name: 'space',
  version: '1.0.0',
  public: true,
  endpoints: {
    Create: endpoint({ request: m3oRequest({ name, object: data, visibility }), response: z.object({ url: z.string() }), price: 100, freeQuota: 1_000, description: 'Stores a new object (409 if the name is taken); visibility public or private (default); url is where the gateway serves a public one' }),
    Update: endpoint({ request: m3oRequest({ name, object: data, visibility }), response: z.object({ url: z.string() }), price: 100, freeQuota: 1_000, idempotent: true, description: 'Stores an object, replacing any of that name' }),
    Delete: endpoint({ request: m3oRequest({ name }), response: z.object({}), price: 10, freeQuota: 1_000, idempotent: true, description: 'Deletes an object' }),
    List: endpoint({ request: m3oRequest({ prefix: z.string().max(4096).optional() }), response: z.object({ objects: z.array(headObject) }), price: 10, freeQuota: 1_000, idempotent: true, readonly: true, description: 'Your objects whose names start with prefix (at most 1,000, in name order)' }),
    Head: endpoint({ request: m3oRequest({ name }), response: z.object({ object: headObject }), price: 10, freeQuota: 1_000, idempotent: true, readonly: true, description: 'An object\'s description, without its data' }),
    Read: endpoint({ request: m3oRequest({ name }), response: z.object({ object: spaceObject }), price: 20, freeQuota: 1_000, idempotent: true, readonly: true, description: 'An object with its data (base64)' }),
    Download: endpoint({ request: m3oRequest({ name }), response: z.object({ url: z.string() }), price: 20, freeQuota: 1_000, idempotent: true, readonly: true, description: 'A signed gateway URL that GETs the object (private ones too) for an hour' }),
    Upload: endpoint({ request: m3oRequest({ name, visibility }), response: z.object({ url: z.string() }), price: 20, freeQuota: 1_000, idempotent: true, description: 'A signed gateway URL to PUT the object\'s bytes to, for an hour' }),
    Serve: endpoint({ request: routeRequest, response: routeAnswer, description: 'The gateway\'s /space/<namespace>/<name>: public objects, and signed URLs (callable by the gateway only)' }),
  },
});
