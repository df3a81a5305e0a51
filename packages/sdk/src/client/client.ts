import { BadRequest, Cancelled, MicroError, NotFound, Timeout, toMicroError } from '../errors/errors.js';
import { CallContext, type Context, type Metadata } from '../context/context.js';
import { codecByName, type Codec, type CodecName } from '../codec/codec.js';
import type { Registry, StreamKind } from '../registry/registry.js';
import type { Selector } from '../selector/selector.js';
import { findLocal, localKey, type LocalInstance } from '../service/local.js';
import { isPromise, type CompiledEndpoint } from '../service/router.js';
import { cancelDeadline, scheduleDeadline } from '../util/deadlines.js';
import { ConnectionError, type ClientConnection, type ConnectionPool, type OutboundCall, type StreamHandle } from '../transport/client.js';
import { encodeRoute, REFUSED } from '../transport/frame.js';
import { defaultNamespace } from '../config/env.js';
import { sharedPool, sharedSelector, defaultRegistry } from './defaults.js';
import { LazyResponseStream, type ResponseStream } from './stream.js';
import { defaultClientMiddleware } from '../auth/process.js';
import { handedOnIdentity, type ScopedTokens } from '../auth/scoped.js';
import { activeTracing } from '../tracing/tracing.js';

/** Options of one call. */
export interface CallOptions {
  /** milliseconds the call may take (default: the client's timeout) */
  timeout?: number;
  /** metadata sent with the call, merged over the client's and the parent call's */
  metadata?: Metadata;
  /** cancels the call */
  signal?: AbortSignal;
  /**
   * The call being served when this call is made: its deadline bounds this one, and its
   * trace and metadata are handed on.
   */
  parent?: Context;
  /** retries after connection errors (default: the client's) */
  retries?: number;
  /** call this node instead of asking the registry, e.g. `tcp://127.0.0.1:9090` */
  address?: string;
  /**
   * For a call served in this process only: the address of the party this call is made
   * for (the gateway passes its HTTP client's), seen by the handler as `ctx.peer`. Never
   * sent on the wire: a remote handler sees the connection's own peer.
   */
  peer?: string;
}

/** What client middleware sees of a call. */
export interface ClientRequest {
  readonly service: string;
  readonly endpoint: string;
  readonly namespace: string;
  readonly kind: StreamKind;
  /** the request, or for client/bidi streams the iterable of requests */
  request: unknown;
  metadata: Metadata;
  /** absolute deadline in epoch ms, or undefined */
  deadline: number | undefined;
  readonly options: CallOptions;
}

/**
 * Client middleware wraps every call a client makes; `next` performs the call and
 * returns its response (a ResponseStream for streaming responses).
 */
export type ClientMiddleware = (req: ClientRequest, next: (req: ClientRequest) => Promise<unknown>) => Promise<unknown>;

export interface ClientOptions {
  namespace?: string;
  registry?: Registry;
  selector?: Selector;
  pool?: ConnectionPool;
  /** default timeout of unary calls, ms (default 30,000); streams have none unless given */
  timeout?: number;
  /** retries after connection errors: always when the request was not sent, else only for idempotent endpoints (default 1) */
  retries?: number;
  codec?: CodecName;
  metadata?: Metadata;
  middleware?: ClientMiddleware[];
  /** call a service in this process directly when it runs here (default true) */
  preferLocal?: boolean;
  /** call this node for every call instead of asking the registry */
  address?: string;
}

/** A call compiled once per endpoint: its route bytes and lookup keys. */
export interface PreparedCall {
  readonly service: string;
  readonly endpoint: string;
  readonly namespace: string;
  readonly kind: StreamKind;
  readonly idempotent: boolean;
  readonly route: Buffer;
  readonly localKey: string;
}

const DEFAULT_TIMEOUT = 30_000;

/**
 * The untyped client: calls any endpoint of any service by name. `createClient` builds
 * the typed one on top of it; the CLI and the gateway use this one directly.
 */
export class Client {
  readonly namespace: string;
  private readonly options: ClientOptions;
  private readonly codec: Codec;
  private readonly timeout: number;
  private readonly retries: number;
  private readonly preferLocal: boolean;
  private readonly baseMetadata: Metadata | undefined;
  private selectorInstance: Selector | undefined;
  private poolInstance: ConnectionPool | undefined;
  private readonly dispatch: (req: ClientRequest, prepared: PreparedCall) => Promise<unknown>;
  private readonly prepared = new Map<string, PreparedCall>();

  constructor(options: ClientOptions = {}) {
    this.options = options;
    this.namespace = options.namespace ?? defaultNamespace();
    this.codec = codecByName(options.codec ?? 'json');
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.retries = Math.max(0, options.retries ?? 1);
    this.preferLocal = options.preferLocal ?? true;
    this.baseMetadata = options.metadata && Object.keys(options.metadata).length > 0 ? options.metadata : undefined;
    // middleware is composed once, here, not per call
    let chain = (req: ClientRequest, prepared: PreparedCall) => this.perform(req, prepared);
    // without middleware of its own, a client in a service started against a server carries the process's token
    let middleware = options.middleware ?? defaultClientMiddleware();
    // tracing (issue 7): a CLIENT span around each call, when the process traces
    const tracing = activeTracing();
    if (tracing) middleware = [tracing.clientMiddleware(process.env.MICRO_SERVICE_NAME || 'client'), ...middleware];
    for (let i = middleware.length - 1; i >= 0; i--) {
      const mw = middleware[i] as ClientMiddleware;
      const next = chain;
      chain = (req, prepared) => mw(req, (r) => next(r, prepared));
    }
    this.dispatch = chain;
  }

  private get selector(): Selector {
    this.selectorInstance ??= this.options.selector ?? sharedSelector(this.options.registry ?? defaultRegistry());
    return this.selectorInstance;
  }

  private get pool(): ConnectionPool {
    this.poolInstance ??= this.options.pool ?? sharedPool();
    return this.poolInstance;
  }

  /** Compiles a call to an endpoint once; reuse the result for every call. */
  prepare(service: string, endpoint: string, kind: StreamKind = 'unary', idempotent = false): PreparedCall {
    const key = `${service}\n${endpoint}\n${kind}${idempotent ? '\ni' : ''}`;
    let p = this.prepared.get(key);
    if (!p) {
      p = {
        service,
        endpoint,
        namespace: this.namespace,
        kind,
        idempotent,
        route: encodeRoute(this.namespace, service, endpoint),
        localKey: localKey(this.namespace, service),
      };
      if (this.prepared.size < 10_000) this.prepared.set(key, p);
    }
    return p;
  }

  /** Calls a request/response endpoint. */
  call(service: string, endpoint: string, request: unknown, options?: CallOptions): Promise<unknown> {
    return this.invoke(this.prepare(service, endpoint, 'unary'), request, options) as Promise<unknown>;
  }

  /** Opens a stream of any kind; `request` is the request (server streams) or an iterable of them. */
  stream(service: string, endpoint: string, kind: Exclude<StreamKind, 'unary'>, request: unknown, options?: CallOptions): ResponseStream<unknown> | Promise<unknown> {
    return this.invoke(this.prepare(service, endpoint, kind), request, options) as never;
  }

  /** @internal the entry point of every call made through this client */
  invoke(prepared: PreparedCall, request: unknown, options: CallOptions = NO_OPTIONS): Promise<unknown> | ResponseStream<unknown> {
    const parent = options.parent;
    const timeout = options.timeout ?? (prepared.kind === 'unary' || parent ? this.timeout : undefined);
    const now = Date.now();
    let deadline = timeout !== undefined && timeout > 0 ? now + timeout : undefined;
    if (parent?.deadline !== undefined && (deadline === undefined || parent.deadline < deadline)) {
      deadline = parent.deadline;
      if (deadline <= now) return Promise.reject(Timeout(prepared.service, `the parent call's deadline passed before calling ${prepared.service}`));
    }
    let metadata: Metadata;
    if (!parent && !options.metadata) metadata = this.baseMetadata ?? EMPTY;
    else metadata = { ...this.baseMetadata, ...parent?.metadata, ...options.metadata };
    const req: ClientRequest = {
      service: prepared.service,
      endpoint: prepared.endpoint,
      namespace: prepared.namespace,
      kind: prepared.kind,
      request,
      metadata,
      deadline,
      options,
    };
    // a call made while serving one carries the serving service's identity, scoped to the callee
    const identity = parent === undefined || metadata.authorization !== undefined ? undefined : handedOnIdentity(parent);
    if (prepared.kind === 'unary' || prepared.kind === 'client') return identity ? this.dispatchAs(identity, req, prepared) : this.dispatch(req, prepared);
    // streaming responses: middleware still runs, the stream comes back at once
    return new LazyResponseStream<unknown>(
      async () => {
        const stream = (await (identity ? this.dispatchAs(identity, req, prepared) : this.dispatch(req, prepared))) as ResponseStream<unknown>;
        return stream;
      },
      () => undefined,
      () => undefined,
      prepared.service,
    );
  }

  /** The call with a token of `identity` for its target (see auth/scoped.ts), then as any call. */
  private async dispatchAs(identity: ScopedTokens, req: ClientRequest, prepared: PreparedCall): Promise<unknown> {
    const token = await identity.tokenFor(req.namespace, req.service);
    if (token !== undefined) req.metadata = { ...req.metadata, authorization: `Bearer ${token}` };
    return this.dispatch(req, prepared);
  }

  /** The call after middleware: in this process when the service runs here, else over the network. */
  private perform(req: ClientRequest, prepared: PreparedCall): Promise<unknown> {
    if (this.preferLocal && !req.options.address && !this.options.address) {
      const local = findLocal(prepared.localKey);
      if (local) return this.callLocal(local, req, prepared);
    }
    return this.callRemote(req, prepared);
  }

  // ---- in-process ------------------------------------------------------------------

  private callLocal(local: LocalInstance, req: ClientRequest, prepared: PreparedCall): Promise<unknown> {
    const ep = local.router.get(prepared.endpoint);
    if (!ep) return Promise.reject(NotFound(prepared.service, `endpoint ${prepared.service}.${prepared.endpoint} not found`));
    if (ep.kind !== prepared.kind) return Promise.reject(kindMismatch(prepared, ep));
    if (req.options.signal?.aborted) return Promise.reject(Cancelled(prepared.service, 'cancelled by the caller'));
    const ctx = new CallContext({
      service: prepared.service,
      endpoint: ep.name,
      namespace: prepared.namespace,
      metadata: req.metadata,
      deadline: req.deadline,
      traceparent: req.options.parent?.traceparent(),
      logger: local.logger,
      peer: req.options.peer,
    });
    local.inflight++;
    if (ep.kind === 'server' || ep.kind === 'bidi') return Promise.resolve(this.localStream(local, ep, ctx, req));
    const input = ep.kind === 'client' ? validatedLocal(req.request, ep) : req.request;
    let out: unknown;
    try {
      out = ep.callLocal(ctx, input);
    } catch (err) {
      local.callEnded();
      return Promise.reject(handlerError(err, ctx));
    }
    // a synchronous handler has answered already: no deadline can pass any more
    if (!isPromise(out)) {
      local.callEnded();
      return Promise.resolve(out);
    }
    const result = out;
    const signal = req.options.signal;
    if (req.deadline === undefined && !signal) {
      return result.then(
        (value) => {
          local.callEnded();
          return value;
        },
        (err: unknown) => {
          local.callEnded();
          throw handlerError(err, ctx);
        },
      );
    }
    // race the handler against the deadline and the caller's signal
    return new Promise((resolve, reject) => {
      let settled = false;
      const entry = {
        at: req.deadline ?? 0,
        onExpire: () => stop(Timeout(prepared.service, `call to ${prepared.service} timed out`)),
      };
      const onAbort = () => stop(Cancelled(prepared.service, 'cancelled by the caller'));
      const stop = (err: MicroError) => {
        if (settled) return;
        settled = true;
        cleanup();
        ctx.abort(err);
        reject(err);
      };
      const cleanup = () => {
        if (entry.at) cancelDeadline(entry);
        signal?.removeEventListener('abort', onAbort);
      };
      if (entry.at) scheduleDeadline(entry);
      signal?.addEventListener('abort', onAbort, { once: true });
      result.then(
        (value) => {
          local.callEnded();
          if (settled) return;
          settled = true;
          cleanup();
          resolve(value);
        },
        (err: unknown) => {
          local.callEnded();
          if (settled) return;
          settled = true;
          cleanup();
          reject(handlerError(err, ctx));
        },
      );
    });
  }

  private localStream(local: LocalInstance, ep: CompiledEndpoint, ctx: CallContext, req: ClientRequest): ResponseStream<unknown> {
    const prepared = { service: req.service };
    let entry: { at: number; onExpire: () => void } | undefined;
    const signal = req.options.signal;
    const onAbort = () => stream.fail(Cancelled(prepared.service, 'cancelled by the caller'));
    const stream: LazyResponseStream<unknown> = new LazyResponseStream<unknown>(
      async () => {
        const input = ep.kind === 'bidi' ? validatedLocal(req.request, ep) : req.request;
        let responses: unknown;
        try {
          responses = await ep.invoke(ctx, input);
        } catch (err) {
          throw handlerError(err, ctx);
        }
        return iterate(responses, ep, ctx);
      },
      (err) => ctx.abort(err),
      () => {
        local.callEnded();
        if (entry) cancelDeadline(entry);
        signal?.removeEventListener('abort', onAbort);
      },
      req.service,
    );
    if (req.deadline !== undefined) {
      entry = { at: req.deadline, onExpire: () => stream.fail(Timeout(prepared.service, `stream from ${prepared.service} passed its deadline`)) };
      scheduleDeadline(entry);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    return stream;
  }

  // ---- over the network --------------------------------------------------------------

  private async callRemote(req: ClientRequest, prepared: PreparedCall): Promise<unknown> {
    const meta = encodeMeta(req);
    const retries = req.options.retries ?? this.retries;
    const direct = req.options.address ?? this.options.address;
    // the body is encoded once, whatever the number of attempts
    const body = prepared.kind === 'unary' || prepared.kind === 'server' ? encodeBody(this.codec, req.request) : undefined;
    let exclude: Set<string> | undefined;
    for (let attempt = 0; ; attempt++) {
      let nodeId = '';
      let conn: ClientConnection;
      try {
        if (direct) {
          conn = this.pool.get(direct);
        } else {
          const node = this.selector.selectSync(prepared.service, { namespace: prepared.namespace, exclude }) ?? (await this.selector.select(prepared.service, { namespace: prepared.namespace, exclude }));
          nodeId = node.id;
          conn = this.pool.get(node.address);
        }
      } catch (err) {
        throw toMicroError(err, prepared.service);
      }
      const timeout = req.deadline === undefined ? 0 : req.deadline - Date.now();
      if (req.deadline !== undefined && timeout <= 0) throw Timeout(prepared.service, `call to ${prepared.service} passed its deadline`);
      const outbound: OutboundCall = {
        kind: prepared.kind,
        route: prepared.route,
        service: prepared.service,
        timeout,
        meta,
        codec: this.codec,
        signal: req.options.signal,
      };
      try {
        let result: unknown;
        if (prepared.kind === 'unary') result = await conn.unary(outbound, body as string | Uint8Array);
        else result = await this.remoteStream(conn, outbound, body, req);
        if (nodeId) this.selector.mark(nodeId, true);
        return result;
      } catch (err) {
        // refused by the server before it ran anything (draining, too busy): another node may take it
        if (err instanceof MicroError && err.id === REFUSED && attempt < retries && !req.options.signal?.aborted) {
          if (nodeId) (exclude ??= new Set()).add(nodeId);
          continue;
        }
        if (err instanceof ConnectionError) {
          if (nodeId) this.selector.mark(nodeId, false);
          const retryable = !err.sent || prepared.idempotent;
          if (retryable && attempt < retries && !req.options.signal?.aborted) {
            if (nodeId) (exclude ??= new Set()).add(nodeId);
            continue;
          }
        }
        throw err;
      }
    }
  }

  private async remoteStream(conn: ClientConnection, outbound: OutboundCall, body: string | Uint8Array | undefined, req: ClientRequest): Promise<unknown> {
    const handle = conn.openStream(outbound, body);
    if (outbound.kind === 'server') return remoteResponses(handle, outbound.service);
    // client and bidi streams: send the caller's requests as credit allows
    const pumping = pump(req.request, handle);
    if (outbound.kind === 'client') {
      const [result] = await Promise.all([handle.result, pumping]);
      return result;
    }
    pumping.catch(() => undefined);
    return remoteResponses(handle, outbound.service);
  }
}

const EMPTY: Metadata = Object.freeze({}) as Metadata;
const NO_OPTIONS: CallOptions = Object.freeze({});

function kindMismatch(prepared: PreparedCall, ep: CompiledEndpoint): MicroError {
  return BadRequest(prepared.service, `endpoint ${prepared.service}.${ep.name} is ${ep.kind === 'unary' ? 'not a stream' : `a ${ep.kind} stream`}; call it as one`);
}

/** What a local caller sees of a handler's failure: the same as a remote caller would. */
function handlerError(err: unknown, ctx: CallContext): MicroError {
  if (!(err instanceof MicroError)) ctx.logger.error({ err }, 'handler failed');
  return toMicroError(err, ctx.service);
}

function encodeBody(codec: Codec, value: unknown): string | Uint8Array {
  if (codec.id === 0) return value === undefined ? 'null' : JSON.stringify(value);
  return codec.encode(value);
}

function encodeMeta(req: ClientRequest): string | undefined {
  const tp = req.options.parent?.traceparent();
  const hasMd = req.metadata !== EMPTY && Object.keys(req.metadata).length > 0;
  if (!tp && !hasMd) return undefined;
  return JSON.stringify(hasMd ? { md: req.metadata, tp } : { tp });
}

async function pump(requests: unknown, handle: StreamHandle): Promise<void> {
  try {
    for await (const r of asAsyncIterable(requests)) await handle.send(r);
    handle.end();
  } catch (err) {
    handle.cancel(toMicroError(err, 'micro.client'));
    throw err;
  }
}

function remoteResponses(handle: StreamHandle, service: string): ResponseStream<unknown> {
  return new LazyResponseStream<unknown>(
    () => handle.responses,
    (err) => handle.cancel(err),
    () => undefined,
    service,
  );
}

function asAsyncIterable(value: unknown): AsyncIterable<unknown> | Iterable<unknown> {
  if (value && (typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' || typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function')) {
    return value as AsyncIterable<unknown>;
  }
  throw BadRequest('micro.client', 'a client or bidirectional stream takes an iterable or async iterable of requests');
}

/** In-process streamed requests, validated one by one as the handler reads them. */
async function* validatedLocal(requests: unknown, ep: CompiledEndpoint): AsyncGenerator<unknown> {
  for await (const r of asAsyncIterable(requests)) yield ep.parseMessage(r);
}

/** A handler's iterable of responses, checked, ending when the call is aborted. */
async function* iterate(responses: unknown, ep: CompiledEndpoint, ctx: CallContext): AsyncGenerator<unknown> {
  if (!responses || (typeof (responses as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function' && typeof (responses as Iterable<unknown>)[Symbol.iterator] !== 'function')) {
    throw handlerError(new TypeError(`handler of streaming endpoint ${ep.name} must return an iterable`), ctx);
  }
  try {
    for await (const r of responses as AsyncIterable<unknown>) {
      if (ctx.isAborted) return;
      yield ep.checkResponse(r);
    }
  } catch (err) {
    throw handlerError(err, ctx);
  }
}
