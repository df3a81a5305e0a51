import { errors, z, type Context } from '@micro/sdk';

/**
 * The endpoint behind an anonymous HTTP route of the gateway (`GET /u/<id>`, `GET
 * /space/<namespace>/<name>`): what it is given and what it answers, the gateway's
 * RouteRequest and RouteAnswer (packages/server/src/gateway/routes.ts). The gateway calls
 * it as itself (an account of micro, the service's own namespace); the headers of the HTTP
 * answer are the gateway's, so a service says only the status, a redirect's location, the
 * media type and the bytes.
 */
export const routeRequest = z.object({
  method: z.enum(['GET', 'HEAD', 'PUT']),
  /** what follows `/<prefix>/`, percent-encoded */
  path: z.string().max(4096),
  query: z.record(z.string(), z.string().max(1024)).default({}),
  /** base64 */
  body: z.string().default(''),
  contentType: z.string().max(200).default(''),
});
export type RouteRequest = z.infer<typeof routeRequest>;

export const routeAnswer = z.object({
  status: z.number().int(),
  location: z.string().optional(),
  contentType: z.string().optional(),
  /** base64 */
  body: z.string().optional(),
  filename: z.string().optional(),
});
export type RouteAnswer = z.infer<typeof routeAnswer>;

/**
 * A route's endpoint answers the gateway only (calls of the service's own namespace); a
 * tenant calling it through /v1 gets the 404 of an endpoint that is not there.
 */
export function gatewayOnly(ctx: Pick<Context, 'account' | 'namespace' | 'service' | 'endpoint'>): void {
  if (ctx.account?.issuer !== ctx.namespace) throw errors.NotFound(ctx.service, `endpoint ${ctx.endpoint} of service ${ctx.service} not found`);
}

/** The path segments of a route's path, percent-decoded; a 400 for a malformed escape. */
export function pathSegments(path: string, service: string): string[] {
  return path.split('/').map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw errors.BadRequest(service, 'malformed percent-encoding in the path');
    }
  });
}

/**
 * Where the gateway is reached from outside, for the URLs a service hands out:
 * MICRO_PUBLIC_URL (read on each call), else http://127.0.0.1:8080.
 */
export function publicUrl(): string {
  return (process.env.MICRO_PUBLIC_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
}
