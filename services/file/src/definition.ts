import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest, routeAnswer, routeRequest } from '@micro/services-kit';

/** the largest file content, UTF-8 bytes (through the gateway its body limit, 1 MiB by default, comes first) */
export const MAX_CONTENT_BYTES = 4 * 1024 * 1024;
/** metadata: at most this many entries, each key 128 and value 1,024 characters */
export const MAX_METADATA = 32;

const record = z.object({
  content: z.string(),
  created: z.string(),
  metadata: z.record(z.string(), z.string()),
  path: z.string(),
  project: z.string(),
  updated: z.string(),
});
const where = { path: z.string().max(4096).optional(), project: z.string().max(4096).optional() };

/** Text files by project and path (M3O's file API); `Serve` is the gateway's `/file/<namespace>/<project>/<path>` (routes), no API of its own. */
export const file = defineService({
  name: 'file',
  version: '1.0.0',
  public: true,
  endpoints: {
    Save: endpoint({
      request: m3oRequest({
        file: z.object({ content: z.string().max(MAX_CONTENT_BYTES).optional(), metadata: z.record(z.string().max(128), z.string().max(1024)).optional(), path: z.string().max(4096).optional(), project: z.string().max(4096).optional() }).passthrough().optional(),
        public: z.boolean().optional(),
      }),
      response: z.object({ url: z.string() }),
      price: 100,
      freeQuota: 1_000,
      idempotent: true,
      description: 'Saves a file (replacing any at its project and path); public files are served by the gateway at url',
    }),
    Read: endpoint({ request: m3oRequest(where), response: z.object({ file: record }), price: 10, freeQuota: 1_000, idempotent: true, readonly: true, description: 'A file with its content' }),
    List: endpoint({ request: m3oRequest(where), response: z.object({ files: z.array(record) }), price: 10, freeQuota: 1_000, idempotent: true, readonly: true, description: 'The files of a project whose paths start with path (at most 1,000, in path order; content left empty: Read a file for it)' }),
    Delete: endpoint({ request: m3oRequest(where), response: z.object({}), price: 10, freeQuota: 1_000, idempotent: true, description: 'Deletes a file' }),
    Serve: endpoint({ request: routeRequest, response: routeAnswer, description: 'The gateway\'s /file/<namespace>/<project>/<path>: public files (callable by the gateway only)' }),
  },
});
