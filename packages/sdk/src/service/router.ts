import { MicroError, NotFound, toMicroError } from '../errors/errors.js';
import type { CallContext, Context } from '../context/context.js';
import type { AnyEndpointDef } from './definition.js';
import type { Handler } from './handlers.js';
import { parseRequest, parseResponse } from './validate.js';
import type { StreamKind } from '../registry/registry.js';

/**
 * Server middleware: wraps every call of a service. `request` is the parsed request for
 * unary and server-streaming endpoints, and the async iterable of requests for
 * client-streaming and bidirectional ones; `next` returns the response (or, for
 * streaming responses, the async iterable of responses).
 *
 * ```ts
 * const timing: HandlerMiddleware = async (ctx, req, next) => {
 *   const t = performance.now();
 *   try { return await next(req); } finally { ctx.logger.info({ ms: performance.now() - t }, 'served'); }
 * };
 * ```
 */
export type HandlerMiddleware = (ctx: Context, request: unknown, next: (request: unknown) => Promise<unknown>) => Promise<unknown>;

export interface CompiledEndpoint {
  readonly name: string;
  readonly kind: StreamKind;
  readonly def: AnyEndpointDef;
  /**
   * Validates the request and runs middleware and the handler. Returns the handler's
   * value as is when it is not a promise (a synchronous handler costs no promise), a
   * promise otherwise; throws when validation or a synchronous handler fails.
   */
  readonly call: (ctx: CallContext, request: unknown) => unknown;
  /** `call` as a promise, for callers that always await */
  readonly invoke: (ctx: CallContext, request: unknown) => Promise<unknown>;
  /**
   * `call` for a client in the same process: counted by `observe` but not timed (NaN
   * seconds). Two clock reads would cost a sixth of an in-process call (the inprocess
   * benchmark); over the network they are lost in the rest.
   */
  readonly callLocal: (ctx: CallContext, request: unknown) => unknown;
  /** validates one streamed request message */
  readonly parseMessage: (value: unknown) => unknown;
  /** validates one outgoing response (identity unless response validation is on) */
  readonly checkResponse: (value: unknown) => unknown;
}

export interface RouterOptions {
  service: string;
  endpoints: Record<string, AnyEndpointDef>;
  handlers: Record<string, Handler>;
  middleware: HandlerMiddleware[];
  validateResponses: boolean;
  /** told of every call's outcome (HTTP-style code) and seconds, around the middleware (metrics) */
  observe?: CallObserver;
}

/** Receives the outcome of each call: endpoint name, code (200 or the error's), seconds (NaN: not timed, see CompiledEndpoint.callLocal). */
export type CallObserver = (endpoint: string, code: number, seconds: number) => void;

/** `Call` → `call`, `Greeter.Hello` → `greeter.Hello`: the alias the gateway and CLI may use. */
export function lowerFirst(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/**
 * The router of one service: endpoints compiled once (validation, middleware chain,
 * handler) and found by name with one Map lookup per call.
 */
export class Router {
  readonly service: string;
  private readonly endpoints = new Map<string, CompiledEndpoint>();

  constructor(options: RouterOptions) {
    this.service = options.service;
    const id = options.service;
    for (const [name, def] of Object.entries(options.endpoints)) {
      const handler = options.handlers[name];
      if (typeof handler !== 'function') throw new TypeError(`service ${id}: no handler for endpoint ${name}`);
      const validate = (value: unknown) => parseRequest(def.request, value, id);
      const checkResponse = options.validateResponses ? (value: unknown) => parseResponse(def.response, value, id) : (value: unknown) => value;
      const handle = handler as (req: unknown, ctx: Context) => unknown;
      // the innermost step: the handler itself, its response checked when asked to
      let inner: (ctx: Context, req: unknown) => unknown = (ctx, req) => handle(req, ctx);
      if (def.kind === 'unary' && options.validateResponses) {
        inner = (ctx, req) => {
          const out = handle(req, ctx);
          return isPromise(out) ? out.then(checkResponse) : checkResponse(out);
        };
      }
      // middleware, composed once here, not per call
      let chain = inner;
      for (let i = options.middleware.length - 1; i >= 0; i--) {
        const mw = options.middleware[i] as HandlerMiddleware;
        const next = chain;
        chain = (ctx, req) => mw(ctx, req, async (r) => next(ctx, r));
      }
      // requests of unary and server-streaming calls are validated here; streamed ones
      // message by message as the handler reads them
      const needsParse = def.kind === 'unary' || def.kind === 'server';
      const run = chain;
      const parsed = needsParse ? (ctx: CallContext, req: unknown) => run(ctx, validate(req)) : run;
      const call = options.observe ? observed(name, parsed, options.observe, true) : parsed;
      const callLocal = options.observe ? observed(name, parsed, options.observe, false) : parsed;
      const invoke = (ctx: CallContext, req: unknown): Promise<unknown> => {
        try {
          return Promise.resolve(call(ctx, req));
        } catch (err) {
          return Promise.reject(err as Error);
        }
      };
      const compiled: CompiledEndpoint = { name, kind: def.kind, def, call, invoke, callLocal, parseMessage: validate, checkResponse };
      this.endpoints.set(name, compiled);
      const alias = lowerFirst(name);
      if (!this.endpoints.has(alias)) this.endpoints.set(alias, compiled);
    }
  }

  /** The endpoint, or undefined. */
  get(name: string): CompiledEndpoint | undefined {
    return this.endpoints.get(name);
  }

  /** The endpoint, or a 404 naming what was asked for. */
  resolve(name: string): CompiledEndpoint {
    const ep = this.endpoints.get(name);
    if (!ep) throw NotFound(this.service, `endpoint ${this.service}.${name} not found`);
    return ep;
  }

  names(): string[] {
    return [...new Set([...this.endpoints.values()].map((e) => e.name))];
  }
}

/**
 * `call` with its outcome and latency told to `observe` (metrics). A synchronous answer
 * is counted at once, without a promise, so sync handlers keep their fast path (a
 * metrics middleware cost in-process calls a promise each).
 */
function observed(name: string, call: (ctx: CallContext, req: unknown) => unknown, observe: CallObserver, timed: boolean): (ctx: CallContext, req: unknown) => unknown {
  return (ctx, req) => {
    const started = timed ? performance.now() : NaN;
    let out: unknown;
    try {
      out = call(ctx, req);
    } catch (err) {
      observe(name, errorCode(err), seconds(started));
      throw err;
    }
    if (!isPromise(out)) {
      observe(name, 200, seconds(started));
      return out;
    }
    return out.then(
      (value) => {
        observe(name, 200, seconds(started));
        return value;
      },
      (err: unknown) => {
        observe(name, errorCode(err), seconds(started));
        throw err;
      },
    );
  };
}

/** Seconds since `started`, or NaN for a call that is not timed. */
function seconds(started: number): number {
  return Number.isNaN(started) ? NaN : (performance.now() - started) / 1000;
}

function errorCode(err: unknown): number {
  return err instanceof MicroError ? err.code : 500;
}

export function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as Promise<unknown> | undefined)?.then === 'function';
}

/** Errors as the caller will see them: typed errors pass, anything else is a bare 500. */
export function callerError(err: unknown, service: string): MicroError {
  return toMicroError(err, service);
}
