import { z } from 'zod';
import { isSchema } from './validate.js';
import { priceProblem } from './price.js';
import type { EndpointRecord, JSONSchema, StreamKind } from '../registry/registry.js';

/**
 * A service definition is the contract of a service: its name, version and endpoints
 * with their zod schemas. It holds no handlers, so a caller can import it to get a fully
 * typed client without importing the service's implementation.
 *
 * ```ts
 * export const helloworld = defineService({
 *   name: 'helloworld',
 *   version: '1.0.0',
 *   endpoints: {
 *     Call: endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string() }) }),
 *   },
 * });
 * ```
 */

export interface EndpointOptions<Req extends z.ZodType, Res extends z.ZodType> {
  request: Req;
  response: Res;
  description?: string;
  /** the call may be retried after it reached the server (reads, upserts) */
  idempotent?: boolean;
  /**
   * the call changes nothing (a pure read): the API gateway lets `GET` (query parameters,
   * server-sent events) reach it; every other endpoint is `POST` only, so that a link, an
   * image or a form of another site cannot change anything (default false)
   */
  readonly?: boolean;
  /**
   * what a successful call through the API gateway costs the caller beyond its free quota:
   * whole units of 10^-6 USD (`100` = $0.0001), 0 to 10^15. Set, even to 0, it makes the
   * endpoint metered: its calls are counted and shown in `micro usage`. Platform admins may
   * set another price (`micro platform pricing set`), which wins. Default: not priced
   */
  price?: number;
  /** successful calls a month each payer makes free of charge, 0 to 10^12; set, it makes the endpoint metered. Default: none */
  freeQuota?: number;
  metadata?: Record<string, string>;
}

export interface EndpointDef<Req extends z.ZodType = z.ZodType, Res extends z.ZodType = z.ZodType, K extends StreamKind = StreamKind> {
  readonly kind: K;
  readonly request: Req;
  readonly response: Res;
  readonly description?: string;
  readonly idempotent: boolean;
  readonly readonly: boolean;
  readonly price?: number;
  readonly freeQuota?: number;
  readonly metadata?: Record<string, string>;
}

export type AnyEndpointDef = EndpointDef<z.ZodType, z.ZodType, StreamKind>;
export type EndpointMap = Record<string, AnyEndpointDef>;

function make<K extends StreamKind>(kind: K) {
  return <Req extends z.ZodType, Res extends z.ZodType>(options: EndpointOptions<Req, Res>): EndpointDef<Req, Res, K> => {
    if (!isSchema(options.request)) throw new TypeError(`endpoint request must be a zod schema`);
    if (!isSchema(options.response)) throw new TypeError(`endpoint response must be a zod schema`);
    return Object.freeze({
      kind,
      request: options.request,
      response: options.response,
      description: options.description,
      idempotent: options.idempotent ?? false,
      readonly: options.readonly ?? false,
      // checked by defineService, which can name the endpoint
      ...(options.price !== undefined ? { price: options.price } : {}),
      ...(options.freeQuota !== undefined ? { freeQuota: options.freeQuota } : {}),
      metadata: options.metadata,
    });
  };
}

/** A request/response endpoint. */
export const endpoint = make('unary');
/** One request, a stream of responses. */
export const serverStream = make('server');
/** A stream of requests, one response. */
export const clientStream = make('client');
/** A stream of requests and a stream of responses, independent of each other. */
export const bidiStream = make('bidi');

export interface ServiceDefOptions<N extends string, E extends EndpointMap> {
  name: N;
  version?: string;
  description?: string;
  metadata?: Record<string, string>;
  /**
   * A public service (default false): run in namespace `micro`, it serves the callers of
   * every namespace (the platform's value-add services). The gateway routes a tenant's
   * `/v1/<name>/…` to it when the tenant's own namespace has no service of that name; any
   * account with a token scoped to it may call it, and its handlers keep each caller's
   * data apart by `ctx.tenant`. Run in any other namespace it is an ordinary service.
   */
  public?: boolean;
  endpoints: E;
}

export interface ServiceDef<N extends string = string, E extends EndpointMap = EndpointMap> {
  readonly name: N;
  readonly version: string;
  readonly description?: string;
  readonly metadata?: Record<string, string>;
  readonly public?: boolean;
  readonly endpoints: E;
}

/** The registry metadata that marks a public service (see ServiceDefOptions.public). */
export const PUBLIC_SERVICE_KEY = 'public';

/** Whether a registry record is of a public service (see ServiceDefOptions.public). */
export function isPublicService(record: { metadata?: Record<string, string> }): boolean {
  return record.metadata?.[PUBLIC_SERVICE_KEY] === 'true';
}

/** Service names: lower-case words with dots, dashes or underscores, like DNS labels. */
export const SERVICE_NAME = /^[a-z][a-z0-9]*([._-][a-z0-9]+)*$/;
/** Endpoint names: `Call`, `call`, `Greeter.Hello`. */
export const ENDPOINT_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

export function defineService<const N extends string, const E extends EndpointMap>(options: ServiceDefOptions<N, E>): ServiceDef<N, E> {
  if (typeof options.name !== 'string' || options.name.length > 128 || !SERVICE_NAME.test(options.name)) {
    throw new TypeError(`invalid service name "${String(options.name)}": use lower-case letters, digits, ".", "-" or "_", starting with a letter`);
  }
  for (const [name, def] of Object.entries(options.endpoints)) {
    if (name.length > 128 || !ENDPOINT_NAME.test(name)) {
      throw new TypeError(`invalid endpoint name "${name}" in service ${options.name}: use Name or Handler.Method`);
    }
    for (const kind of ['price', 'freeQuota'] as const) {
      const problem = def[kind] === undefined ? undefined : priceProblem(kind, def[kind]);
      if (problem) throw new TypeError(`invalid ${kind} of endpoint ${name} in service ${options.name}: ${problem}`);
    }
  }
  return Object.freeze({
    name: options.name,
    version: options.version ?? 'latest',
    description: options.description,
    metadata: options.metadata,
    ...(options.public ? { public: true } : {}),
    endpoints: options.endpoints,
  });
}

/** JSON Schema of a zod schema, as published in the registry. */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JSONSchema {
  try {
    return z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JSONSchema;
  } catch {
    // schemas with transforms that have no JSON form are described as "anything"
    return {};
  }
}

/** The registry's view of an endpoint: requests as the caller sends them, responses as received. */
export function endpointRecord(name: string, def: AnyEndpointDef): EndpointRecord {
  const record: EndpointRecord = {
    name,
    kind: def.kind,
    request: jsonSchemaOf(def.request, 'input'),
    response: jsonSchemaOf(def.response, 'output'),
  };
  if (def.description) record.description = def.description;
  if (def.idempotent) record.idempotent = true;
  if (def.readonly) record.readonly = true;
  if (def.price !== undefined) record.price = def.price;
  if (def.freeQuota !== undefined) record.freeQuota = def.freeQuota;
  if (def.metadata) record.metadata = def.metadata;
  return record;
}

// ---- type helpers -------------------------------------------------------------------

export type RequestIn<E extends AnyEndpointDef> = z.input<E['request']>;
export type RequestOut<E extends AnyEndpointDef> = z.output<E['request']>;
export type ResponseIn<E extends AnyEndpointDef> = z.input<E['response']>;
export type ResponseOut<E extends AnyEndpointDef> = z.output<E['response']>;
