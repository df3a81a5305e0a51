import { defineService, endpoint, z } from '@micro/sdk';
import { deployedEndpoints, m3oRequest } from '@micro/services-kit';

/** The source of one function: at most 256 KiB of JavaScript or TypeScript. */
export const MAX_SOURCE = 256 * 1024;

const func = z.object({
  branch: z.string(),
  created: z.string(),
  entrypoint: z.string(),
  env_vars: z.record(z.string(), z.string()),
  id: z.string(),
  name: z.string(),
  region: z.string(),
  repo: z.string(),
  runtime: z.string(),
  source: z.string(),
  status: z.string(),
  subfolder: z.string(),
  updated: z.string(),
  url: z.string(),
});
export type Func = z.infer<typeof func>;


/** a name as the caller sent it; the handlers check it (names.ts) so that the error says what a name may be */
const name = z.string().max(1024).optional();
const text = (max: number) => z.string().max(max).optional();

/** Functions (M3O's function API): JavaScript or TypeScript deployed from source, run sandboxed in the caller's namespace. */
export const functionDef = defineService({
  name: 'function',
  version: '1.0.0',
  public: true,
  endpoints: {
    Deploy: endpoint({
      request: m3oRequest({
        name,
        source: z.string().max(MAX_SOURCE, `at most ${MAX_SOURCE / 1024} KiB of source`).optional(),
        runtime: text(64),
        entrypoint: text(128),
        env_vars: z.record(z.string().max(256), z.string().max(64 * 1024)).optional(),
        region: text(64),
        repo: text(4096),
        branch: text(256),
        subfolder: text(1024),
      }),
      response: z.object({ function: func }),
      price: 100_000,
      freeQuota: 100,
      description: 'Builds the function from its source (JavaScript, or TypeScript with runtime typescript) and runs it in your namespace; answers when it runs, or with status "error: …" and the build\'s or the start\'s output',
    }),
    Call: endpoint({
      request: m3oRequest({ name, request: z.record(z.string(), z.unknown()).optional() }),
      response: z.object({ response: z.record(z.string(), z.unknown()) }),
      price: 100,
      freeQuota: 10_000,
      description: 'Calls the function with the request; an idle function is started first (a cold start)',
    }),
    Update: endpoint({
      request: m3oRequest({ name, source: z.string().max(MAX_SOURCE, `at most ${MAX_SOURCE / 1024} KiB of source`).optional() }),
      response: z.object({}),
      price: 100_000,
      freeQuota: 100,
      description: 'Rebuilds the function (from new source when given) and replaces its instance once the new one runs; a build that fails leaves the old one running',
    }),
    Describe: endpoint({ request: m3oRequest({ name }), response: z.object({ function: func }), price: 10, freeQuota: 10_000, idempotent: true, readonly: true, description: 'One of your functions, with its status' }),
    List: endpoint({ request: m3oRequest({}), response: z.object({ functions: z.array(func) }), price: 10, freeQuota: 10_000, idempotent: true, readonly: true, description: 'Your functions, by name' }),
    Delete: endpoint({ request: m3oRequest({ name }), response: z.object({}), price: 10, freeQuota: 1_000, idempotent: true, description: 'Stops the function and forgets it' }),
    ...deployedEndpoints('function'),
    Runtimes: endpoint({ request: m3oRequest({}), response: z.object({ runtimes: z.array(z.string()) }), price: 0, freeQuota: 1_000_000, idempotent: true, readonly: true, description: 'What functions can be written in' }),
    Proxy: endpoint({ request: m3oRequest({ id: text(64) }), response: z.object({ url: z.string() }), price: 10, freeQuota: 10_000, idempotent: true, readonly: true, description: "The gateway URL of the function's own service (POST with your key and {\"request\": …})" }),
  },
});
