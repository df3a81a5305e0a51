import type { ServiceRecord } from '@micro/sdk';

/** The path of an endpoint: `Call` → /v1/svc/Call, `Greeter.Hello` → /v1/svc/Greeter/Hello. */
export function endpointPath(service: string, endpoint: string): string {
  return `/v1/${service}/${endpoint.split('.').join('/')}`;
}

/** A JSON Schema of the registry as OpenAPI 3.1 takes it (its dialect is 2020-12 already). */
function schema(s: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!s || typeof s !== 'object') return {};
  const { $schema: _dialect, ...rest } = s;
  return rest;
}

const ERROR_RESPONSE = { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };

/**
 * OpenAPI 3.1 of the unary endpoints of these services (one version each: the first the
 * registry lists), POST with a JSON body. Streams are listed with `x-micro-stream` only.
 */
export function openApiDocument(namespace: string, services: ServiceRecord[], include: (service: string, endpoint: string) => boolean): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const svc of [...services].sort((a, b) => a.name.localeCompare(b.name))) {
    if (seen.has(svc.name)) continue;
    seen.add(svc.name);
    for (const ep of svc.endpoints) {
      if (!include(svc.name, ep.name)) continue;
      const op: Record<string, unknown> = {
        operationId: `${svc.name}.${ep.name}`,
        tags: [svc.name],
        summary: ep.description ?? `${svc.name} ${ep.name}`,
        security: [{ bearer: [] }, { cookie: [] }, {}],
      };
      if (ep.kind !== 'unary') {
        paths[endpointPath(svc.name, ep.name)] = { get: { ...op, description: `a ${ep.kind} stream: open a WebSocket on this path`, 'x-micro-stream': ep.kind, responses: { '101': { description: 'switching protocols' } } } };
        continue;
      }
      paths[endpointPath(svc.name, ep.name)] = {
        post: {
          ...op,
          requestBody: { required: false, content: { 'application/json': { schema: schema(ep.request) } } },
          responses: {
            '200': { description: 'the response', content: { 'application/json': { schema: schema(ep.response) } } },
            '400': ERROR_RESPONSE,
            '401': ERROR_RESPONSE,
            '403': ERROR_RESPONSE,
            '404': ERROR_RESPONSE,
            '429': ERROR_RESPONSE,
            '504': ERROR_RESPONSE,
            default: ERROR_RESPONSE,
          },
        },
      };
    }
  }
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: { title: `Micro API (namespace ${namespace})`, version: '1.0.0' },
    paths,
    components: {
      schemas: {
        Error: {
          type: 'object',
          required: ['id', 'code', 'detail', 'status'],
          properties: { id: { type: 'string' }, code: { type: 'integer' }, detail: { type: 'string' }, status: { type: 'string' } },
        },
      },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'an access token (JWT) or an API key (mk_…)' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'micro-token' },
      },
    },
  };
}
