import type { Context } from '../context/context.js';
import type { AnyEndpointDef, RequestOut, ResponseIn, ServiceDef } from './definition.js';

type MaybePromise<T> = T | Promise<T>;

export type UnaryHandler<E extends AnyEndpointDef> = (request: RequestOut<E>, ctx: Context) => MaybePromise<ResponseIn<E>>;
export type ServerStreamHandler<E extends AnyEndpointDef> = (
  request: RequestOut<E>,
  ctx: Context,
) => AsyncIterable<ResponseIn<E>> | Iterable<ResponseIn<E>>;
export type ClientStreamHandler<E extends AnyEndpointDef> = (
  requests: AsyncIterable<RequestOut<E>>,
  ctx: Context,
) => MaybePromise<ResponseIn<E>>;
export type BidiStreamHandler<E extends AnyEndpointDef> = (
  requests: AsyncIterable<RequestOut<E>>,
  ctx: Context,
) => AsyncIterable<ResponseIn<E>> | Iterable<ResponseIn<E>>;

/** The handler type an endpoint needs, by its kind. */
export type HandlerFor<E extends AnyEndpointDef> = E['kind'] extends 'unary'
  ? UnaryHandler<E>
  : E['kind'] extends 'server'
    ? ServerStreamHandler<E>
    : E['kind'] extends 'client'
      ? ClientStreamHandler<E>
      : BidiStreamHandler<E>;

/** One handler per endpoint of the definition, each typed from its schemas. */
export type Handlers<D extends ServiceDef> = { [K in keyof D['endpoints']]: HandlerFor<D['endpoints'][K]> };

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the untyped view used inside the router
export type Handler = (...args: any[]) => unknown;
