import type { AnyEndpointDef, RequestIn, ResponseOut, ServiceDef } from '../service/definition.js';
import { Client, type CallOptions, type ClientOptions } from './client.js';
import type { ResponseStream } from './stream.js';

type Requests<E extends AnyEndpointDef> = AsyncIterable<RequestIn<E>> | Iterable<RequestIn<E>>;

/** The method a typed client has for an endpoint, by the endpoint's kind. */
export type MethodFor<E extends AnyEndpointDef> = E['kind'] extends 'unary'
  ? (request: RequestIn<E>, options?: CallOptions) => Promise<ResponseOut<E>>
  : E['kind'] extends 'server'
    ? (request: RequestIn<E>, options?: CallOptions) => ResponseStream<ResponseOut<E>>
    : E['kind'] extends 'client'
      ? (requests: Requests<E>, options?: CallOptions) => Promise<ResponseOut<E>>
      : (requests: Requests<E>, options?: CallOptions) => ResponseStream<ResponseOut<E>>;

/** A client with one method per endpoint of the service, typed from its schemas. */
export type TypedClient<D extends ServiceDef> = { readonly [K in keyof D['endpoints']]: MethodFor<D['endpoints'][K]> };

/**
 * A typed client for a service definition.
 *
 * ```ts
 * const hello = createClient(helloworld);
 * const { message } = await hello.Call({ name: 'Alice' });
 * ```
 *
 * Pass the options of a Client, or a Client to share its settings between services.
 */
export function createClient<D extends ServiceDef>(def: D, options: ClientOptions | Client = {}): TypedClient<D> {
  const client = options instanceof Client ? options : new Client(options);
  const methods = Object.create(null) as Record<string, unknown>;
  for (const [name, ep] of Object.entries(def.endpoints)) {
    // routes and lookup keys are compiled here, once
    const prepared = client.prepare(def.name, name, ep.kind, ep.idempotent);
    methods[name] = (request: unknown, callOptions?: CallOptions) => client.invoke(prepared, request, callOptions);
  }
  return Object.freeze(methods) as TypedClient<D>;
}
