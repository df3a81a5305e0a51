import { defineService, endpoint, z } from '@micro/sdk';
import { deployedEndpoints, m3oRequest } from '@micro/services-kit';

const app = z.object({
  backend: z.string(),
  branch: z.string(),
  created: z.string(),
  custom_domains: z.array(z.string()),
  env_vars: z.record(z.string(), z.string()),
  id: z.string(),
  name: z.string(),
  path: z.string(),
  port: z.number(),
  region: z.string(),
  repo: z.string(),
  status: z.string(),
  updated: z.string(),
  url: z.string(),
});
export type App = z.infer<typeof app>;

/** a name as the caller sent it; the handlers check it (services kit's checkLabel) so that the error says what a name may be */
const name = z.string().max(1024).optional();
const text = (max: number) => z.string().max(max).optional();
const envVars = z.record(z.string().max(256), z.string().max(64 * 1024)).optional();

/** Web apps (M3O's app API): a git repository's Node web server run sandboxed in the caller's namespace, served through the gateway. */
export const appDef = defineService({
  name: 'app',
  version: '1.0.0',
  public: true,
  endpoints: {
    Run: endpoint({
      request: m3oRequest({ name, repo: text(1024), branch: text(256), path: text(1024), port: z.number().optional(), env_vars: envVars, region: text(64) }),
      response: z.object({ service: app }),
      price: 1_000_000,
      freeQuota: 10,
      description: 'Fetches the repository (public https or ssh git), builds it and runs it as a web app listening on $PORT; answers when it answers HTTP (status "running") or failed (status "error: …")',
    }),
    Update: endpoint({
      request: m3oRequest({ name, env_vars: envVars }),
      response: z.object({}),
      price: 1_000_000,
      freeQuota: 10,
      description: "Fetches the branch's latest commit, builds it and replaces the running app once the new one answers (with new env_vars when given); a build or start that fails leaves the old one running",
    }),
    Delete: endpoint({ request: m3oRequest({ name }), response: z.object({}), price: 10, freeQuota: 1_000, idempotent: true, description: 'Stops the app and forgets it' }),
    Get: endpoint({ request: m3oRequest({ name }), response: z.object({ service: app }), price: 10, freeQuota: 10_000, idempotent: true, readonly: true, description: 'One of your apps, with its status' }),
    Status: endpoint({ request: m3oRequest({ name }), response: z.object({ service: app }), price: 10, freeQuota: 10_000, idempotent: true, readonly: true, description: 'One of your apps, with its status: running, deploying or error: <why>' }),
    List: endpoint({ request: m3oRequest({}), response: z.object({ services: z.array(app) }), price: 10, freeQuota: 10_000, idempotent: true, readonly: true, description: 'Your apps, by name' }),
    ...deployedEndpoints('app'),
    Resolve: endpoint({ request: m3oRequest({ id: text(64) }), response: z.object({ url: z.string() }), price: 10, freeQuota: 10_000, idempotent: true, readonly: true, description: 'The URL of one of your apps by its id' }),
  },
});
