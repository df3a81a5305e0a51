import { defineService, endpoint, z } from '@micro/sdk';
import { i64Out, m3oRequest, routeAnswer, routeRequest } from '@micro/services-kit';

/** a short link's id: what follows /u/ (ids we make are 8 of these; one chosen with Create up to 64) */
export const ID = /^[A-Za-z0-9_-]{1,64}$/;

const urlPair = z.object({
  /** RFC 3339 */
  created: z.string(),
  destinationURL: z.string(),
  hitCount: i64Out,
  id: z.string(),
  shortURL: z.string(),
});
export type URLPair = z.infer<typeof urlPair>;

/** an id or a short URL (its last path segment is the id); the handlers check that one is given */
const which = { id: z.string().max(4096).optional(), shortURL: z.string().max(4096).optional() };
const destination = z.string().max(100_000).optional();

/** Short links (M3O's url API); `Redirect` is the gateway's `GET /u/<id>` (routes), no API of its own. */
export const url = defineService({
  name: 'url',
  version: '1.0.0',
  public: true,
  endpoints: {
    Shorten: endpoint({ request: m3oRequest({ destinationURL: destination }), response: z.object({ shortURL: z.string() }), price: 100, freeQuota: 1_000, description: 'A short link to destinationURL (http or https, public hosts only), served by the gateway as a redirect' }),
    Create: endpoint({ request: m3oRequest({ destinationURL: destination, id: z.string().max(4096).optional() }), response: z.object({ url: urlPair }), price: 100, freeQuota: 1_000, description: 'A short link with the id you choose (1-64 of A-Z a-z 0-9 _ -, unique across the platform), or a new one' }),
    Resolve: endpoint({ request: m3oRequest(which), response: z.object({ destinationURL: z.string() }), price: 10, freeQuota: 10_000, description: 'The destination of one of your short links; counts a hit' }),
    List: endpoint({ request: m3oRequest({ shortURL: z.string().max(4096).optional() }), response: z.object({ urlPairs: z.array(urlPair) }), price: 10, freeQuota: 1_000, idempotent: true, readonly: true, description: 'Your short links (at most 1,000, newest id order), or the one shortURL names' }),
    Update: endpoint({ request: m3oRequest({ ...which, destinationURL: destination }), response: z.object({}), price: 50, freeQuota: 1_000, idempotent: true, description: 'Points one of your short links elsewhere' }),
    Delete: endpoint({ request: m3oRequest(which), response: z.object({}), price: 10, freeQuota: 1_000, idempotent: true, description: 'Deletes one of your short links; its id may be taken again' }),
    Redirect: endpoint({ request: routeRequest, response: routeAnswer, description: 'The gateway\'s GET /u/<id>: a 302 to the destination, counting a hit (callable by the gateway only)' }),
  },
});
