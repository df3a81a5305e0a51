import type { EndpointRecord, ServiceRecord } from '@micro/sdk';

/**
 * The price and free quota of an endpoint served from namespace `home` (units of 10^-6 USD
 * a call, calls a month), or undefined when it is not priced: the platform's pricing
 * service answers it (its admins' prices over the definitions'), without it the endpoint's
 * record (recordPrice).
 */
export type GatewayPrices = (home: string, service: string, endpoint: Pick<EndpointRecord, 'name' | 'price' | 'freeQuota'>) => EndpointPrice | undefined;

export interface EndpointPrice {
  price: number;
  freeQuota: number;
}

/** What an endpoint's own definition says of its price (its registry record), or undefined: not priced. */
export function recordPrice(_home: string, _service: string, ep: Pick<EndpointRecord, 'price' | 'freeQuota'>): EndpointPrice | undefined {
  if (ep.price === undefined && ep.freeQuota === undefined) return undefined;
  return { price: ep.price ?? 0, freeQuota: ep.freeQuota ?? 0 };
}

/** units (10^-6 USD) as an exact decimal of dollars, as few digits as it takes: 100 → "0.0001", 35000000 → "35" */
export function unitsAsDollars(units: number): string {
  const digits = String(units).padStart(7, '0');
  const cents = digits.slice(-6).replace(/0+$/, '');
  return cents ? `${digits.slice(0, -6)}.${cents}` : digits.slice(0, -6);
}

/** The sentence of a priced operation, and its `x-micro-price`. */
function priceOf(p: EndpointPrice): { sentence: string; extension: { units: number; dollars: string; freeQuota: number } } {
  const free = p.freeQuota > 0 ? ` beyond ${p.freeQuota.toLocaleString('en-US')} free calls a month` : '';
  const sentence = p.price === 0 ? 'Metered: free of charge, each call counted in usage.' : `Priced: ${unitsAsDollars(p.price)} USD (${p.price} units of 10^-6 USD) a successful call${free}.`;
  return { sentence, extension: { units: p.price, dollars: unitsAsDollars(p.price), freeQuota: p.freeQuota } };
}

/** The path of an endpoint: `Call` → /v1/svc/Call, `Greeter.Hello` → /v1/svc/Greeter/Hello. */
export function endpointPath(service: string, endpoint: string): string {
  return `/v1/${service}/${endpoint.split('.').join('/')}`;
}

/**
 * Who reaches an endpoint through the gateway: `public` anyone, with or without
 * credentials (a public rule, or a public endpoint of a core service); `credentials` the
 * caller with credentials; undefined (or false) not this caller: not listed.
 */
export type EndpointAccess = 'public' | 'credentials';

export type Primitive = 'string' | 'number' | 'integer' | 'boolean';

/**
 * The fields of a flat request schema (strings, numbers, integers, booleans, string enums;
 * nullable ones too), or undefined when it has nested ones: what a GET takes as query
 * parameters (a unary call, or a server stream as server-sent events).
 */
export function flatFields(schema: Record<string, unknown>): Map<string, Primitive> | undefined {
  if (schema.type !== 'object') return undefined;
  const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  const fields = new Map<string, Primitive>();
  for (const [name, p] of Object.entries(props)) {
    const types = Array.isArray(p.type) ? (p.type as unknown[]).filter((t) => t !== 'null') : [p.type];
    const t = types.length === 1 ? types[0] : p.enum && (p.enum as unknown[]).every((v) => typeof v === 'string') ? 'string' : undefined;
    if (t !== 'string' && t !== 'number' && t !== 'integer' && t !== 'boolean') return undefined;
    fields.set(name, t);
  }
  return fields;
}

/** A JSON Schema of the registry as OpenAPI 3.1 takes it (its dialect is 2020-12 already). */
function schema(s: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!s || typeof s !== 'object') return {};
  const { $schema: _dialect, ...rest } = s;
  return rest;
}

/** Whether a request schema needs a body: it has required fields (no body is `{}`). */
function needsBody(s: Record<string, unknown> | undefined): boolean {
  return !!s && Array.isArray(s.required) && s.required.length > 0;
}

const ERROR_RESPONSE = { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
/** the errors of a call, and of a stream before its upgrade (a plain HTTP answer, no upgrade) */
const ERRORS = { '400': ERROR_RESPONSE, '401': ERROR_RESPONSE, '403': ERROR_RESPONSE, '404': ERROR_RESPONSE, '429': ERROR_RESPONSE } as const;
const STREAM_KIND_TEXT = {
  server: 'a server stream: one request, a stream of responses',
  client: 'a client stream: a stream of requests, one response',
  bidi: 'a bidi stream: a stream of requests and a stream of responses, independent of each other',
} as const;

const WEBSOCKET_TEXT = [
  'Open a WebSocket on this path (GET with `Upgrade: websocket`; no query string). Credentials: `Authorization: Bearer`,',
  'the `micro-token` cookie (only with the gateway\'s own or a CORS-listed `Origin`, else 403), or (browsers) the subprotocols',
  '`micro, micro-token.<token or API key>` (security scheme `websocketProtocol`); offer `micro` too: the gateway answers `micro`',
  'and so never echoes the token. Everything a call is checked for is checked before the upgrade: a refusal is a plain',
  'HTTP error (400, 401, 403, 404, 429) and no upgrade. Messages are JSON text (at most the gateway\'s body limit, 1 MiB by default),',
  'their schemas in `x-micro-messages`.',
].join(' ');

const MESSAGES_TEXT = {
  server: 'Send the request as the first message; each response is one message.',
  client: 'Send each request as one message, then `{"end": true}`; the response is one message.',
  bidi: 'Send each request as one message and `{"end": true}` after the last; responses come as messages, before the end too.',
} as const;

const END_TEXT =
  'The end: close 1000 when the service is done; on an error, one last message `{"error": {"id","code","detail","status"}}` and close 4000 + code. ' +
  'Closing the socket cancels the call. 1003: a message not JSON text (or too deep), 1008: too many requests queued, 1009: a message too large.';

/** One operation on a stream: the WebSocket upgrade, and for server streams also server-sent events. */
function streamOperation(ep: EndpointRecord & { kind: 'server' | 'client' | 'bidi' }, base: Record<string, unknown>, isPublic: boolean): Record<string, unknown> {
  const request = schema(ep.request);
  const response = schema(ep.response);
  // server-sent events by GET: read-only server streams only (a GET reaches nothing else)
  const fields = ep.kind === 'server' && ep.readonly === true ? flatFields(ep.request ?? {}) : undefined;
  const required = new Set(Array.isArray(request.required) ? (request.required as string[]) : []);
  const props = (request.properties ?? {}) as Record<string, Record<string, unknown>>;
  const sse = fields
    ? ' Or GET it with `Accept: text/event-stream` and the request as query parameters: server-sent events, `data: <response>` per response, then `event: end` (or `event: error` with the error as data).'
    : '';
  const postSse = ep.kind === 'server' ? ' Or POST the request as JSON with `Accept: text/event-stream`: the same server-sent events.' : '';
  const parameters: unknown[] = [
    {
      name: 'Upgrade',
      in: 'header',
      required: !fields,
      description: fields ? '`websocket` for a WebSocket; leave it out for server-sent events (`Accept: text/event-stream`)' : '`websocket`',
      schema: { type: 'string', enum: ['websocket'] },
    },
  ];
  if (fields) {
    for (const [name, type] of fields) {
      const p = props[name] ?? {};
      parameters.push({
        name,
        in: 'query',
        // a WebSocket takes its request as a message: the query is for server-sent events only
        required: false,
        description: `server-sent events only: ${typeof p.description === 'string' ? p.description : name}${required.has(name) ? ' (required by the request)' : ''}`,
        schema: { type, ...(Array.isArray(p.enum) ? { enum: p.enum } : {}) },
      });
    }
  }
  const responses: Record<string, unknown> = {
    '101': {
      description: `Switching Protocols: the stream runs on the WebSocket. ${MESSAGES_TEXT[ep.kind]} ${END_TEXT}`,
      headers: {
        Upgrade: { schema: { type: 'string', const: 'websocket' } },
        'Sec-WebSocket-Protocol': { description: '`micro` when it was offered (the token is never echoed)', schema: { type: 'string' } },
      },
    },
  };
  if (fields) {
    responses['200'] = {
      description: 'server-sent events: `data: <JSON response>` per response, `: keep-alive` comments, `event: end` at the end, or `event: error` with `{"id","code","detail","status"}`',
      content: { 'text/event-stream': { schema: { type: 'string' }, 'x-micro-data': response } },
    };
  }
  Object.assign(responses, ERRORS, { '501': ERROR_RESPONSE, default: ERROR_RESPONSE });
  return {
    ...base,
    description: `${STREAM_KIND_TEXT[ep.kind]}. ${WEBSOCKET_TEXT} ${MESSAGES_TEXT[ep.kind]}${sse}${postSse}`,
    security: [{ bearer: [] }, { cookie: [] }, { websocketProtocol: [] }, ...(isPublic ? [{}] : [])],
    parameters,
    'x-micro-stream': ep.kind,
    'x-micro-messages': { request, response, end: { end: true }, error: { $ref: '#/components/schemas/StreamError' } },
    'x-micro-sse': !!fields,
    responses,
  };
}

/**
 * OpenAPI 3.1 of the endpoints of these services (one version each: the first the
 * registry lists) that `access` lists: unary endpoints as POST with a JSON body, streams
 * as GET (the WebSocket upgrade; server streams with flat requests also as server-sent
 * events), their message schemas in `x-micro-messages`. Public endpoints say so with an
 * empty security requirement (`{}`); the others need one of the credentials.
 */
export function openApiDocument(
  namespace: string,
  services: ServiceRecord[],
  access: (service: string, endpoint: string) => EndpointAccess | boolean | undefined,
  prices: GatewayPrices = recordPrice,
): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const svc of [...services].sort((a, b) => a.name.localeCompare(b.name))) {
    if (seen.has(svc.name)) continue;
    seen.add(svc.name);
    for (const ep of svc.endpoints) {
      const how = access(svc.name, ep.name);
      if (!how) continue;
      const isPublic = how === 'public';
      const op: Record<string, unknown> = {
        operationId: `${svc.name}.${ep.name}`,
        tags: [svc.name],
        summary: ep.description ?? `${svc.name} ${ep.name}`,
        // `{}`: no credentials needed; only on what an anonymous caller may call
        security: [{ bearer: [] }, { cookie: [] }, ...(isPublic ? [{}] : [])],
      };
      if (isPublic) op['x-micro-public'] = true;
      // changes nothing: also answers GET with the request as query parameters (flat requests)
      if (ep.readonly === true) op['x-micro-readonly'] = true;
      // a public service of micro is priced where it is served
      const price = prices(svc.namespace ?? namespace, svc.name, ep);
      const priced = price && priceOf(price);
      if (priced) op['x-micro-price'] = priced.extension;
      if (ep.kind !== 'unary') {
        const stream = streamOperation(ep as EndpointRecord & { kind: 'server' | 'client' | 'bidi' }, op, isPublic);
        // a stream is one call
        if (priced) stream.description = `${priced.sentence} ${String(stream.description)}`;
        paths[endpointPath(svc.name, ep.name)] = { get: stream };
        continue;
      }
      paths[endpointPath(svc.name, ep.name)] = {
        post: {
          ...op,
          ...(priced ? { description: priced.sentence } : {}),
          requestBody: { required: needsBody(ep.request), content: { 'application/json': { schema: schema(ep.request) } } },
          responses: {
            '200': { description: 'the response', content: { 'application/json': { schema: schema(ep.response) } } },
            ...ERRORS,
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
        StreamError: {
          description: 'the last message of a stream that failed (then close 4000 + code)',
          type: 'object',
          required: ['error'],
          properties: { error: { $ref: '#/components/schemas/Error' } },
        },
      },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'an access token (JWT) or an API key (mk_…)' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'micro-token' },
        websocketProtocol: {
          type: 'apiKey',
          in: 'header',
          name: 'Sec-WebSocket-Protocol',
          description: 'streams only: the WebSocket subprotocols `micro, micro-token.<access token or API key>` (browsers cannot set headers on a WebSocket); the gateway answers `micro`',
        },
      },
    },
  };
}
