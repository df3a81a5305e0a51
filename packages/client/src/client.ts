// The client of the API gateway: plain fetch and WebSocket, no Node-only API, so the same
// code runs in browsers, Deno, Bun and Node ≥ 20 (which needs a WebSocket constructor
// passed in, e.g. from `ws`, for streams: Node 20 has no global one).

/** What a caller gets for `{"id","code","detail","status"}` from the gateway. */
export class MicroHttpError extends Error {
  override readonly name = 'MicroHttpError';
  constructor(
    /** the service (or `gateway`) that answered */
    readonly id: string,
    /** the HTTP status */
    readonly code: number,
    readonly detail: string,
    /** the status text, e.g. `Bad Request` */
    readonly status: string,
  ) {
    super(`${code} ${status}: ${detail} (${id})`);
  }
}

export type MicroClientErrorKind = 'network' | 'timeout' | 'protocol' | 'closed' | 'too-large';

/** The gateway could not be reached, did not answer in time, or answered with something that is not the protocol. */
export class MicroClientError extends Error {
  override readonly name = 'MicroClientError';
  constructor(
    message: string,
    /**
     * `network`: no answer (refused, DNS, TLS, reset); `timeout`; `protocol`: an answer the
     * client cannot read, or a stream the gateway closed abnormally; `closed`: a send on a
     * stream that is over (after `end()`, `close()`, or the service's end); `too-large`: a
     * stream message over `maxMessageBytes` (not sent; the stream goes on)
     */
    readonly kind: MicroClientErrorKind,
    /** the URL that was asked */
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The parts of a WebSocket the client uses (browsers, Node ≥ 22, Deno, and `ws` have them). */
export interface WebSocketLike {
  readonly readyState: number;
  /** bytes queued and not yet sent: sends wait while it is over the high-water mark */
  readonly bufferedAmount?: number;
  /** stop and go on reading the socket (`ws` has them; browsers do not): backpressure towards the gateway */
  pause?(): void;
  resume?(): void;
  close(code?: number, reason?: string): void;
  send(data: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: { data?: unknown; code?: number; reason?: string; message?: string; error?: unknown }) => void): void;
}

/** A WebSocket constructor: the global one, or `ws`'s (whose third argument carries headers). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: { headers?: Record<string, string> }) => WebSocketLike;

export type FetchLike = (input: string, init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<{
  readonly status: number;
  readonly statusText: string;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export interface MicroClientOptions {
  /** the gateway, e.g. `http://127.0.0.1:8080` (a path prefix is kept: `https://host/api`) */
  url: string;
  /** an access token or API key, or a function that returns one (called before every call) */
  token?: string | (() => string | Promise<string>);
  /** sent as `Micro-Namespace` (only admins of `micro` may pick another namespace than their token's) */
  namespace?: string;
  /** ms a call may take (default 30,000); for streams, ms to open the socket and hear the first message */
  timeout?: number;
  /** another fetch (default the global one) */
  fetch?: FetchLike;
  /** the WebSocket constructor for streams (default the global one; on Node 20 pass `WebSocket` from `ws`) */
  WebSocket?: WebSocketConstructor;
  /** the largest stream message sent, bytes (default 1 MiB, the gateway's default `maxBodyBytes`) */
  maxMessageBytes?: number;
}

export interface CallOptions {
  /** ms for this call (default the client's timeout) */
  timeout?: number;
  /** cancels the call (or the stream) */
  signal?: AbortSignal;
  /** more headers */
  headers?: Record<string, string>;
}

/** Options of a stream: those of a call (`timeout` bounds the opening, and for a server stream the first response) and more. */
export interface StreamOptions extends CallOptions {
  /** the largest message sent, bytes (default the client's `maxMessageBytes`, 1 MiB) */
  maxMessageBytes?: number;
  /** `send` resolves once the socket holds less than this many bytes (default 1 MiB) */
  highWaterMark?: number;
  /** responses held for a slow reader before the socket stops being read, where the WebSocket can pause (`ws`) (default 1,000) */
  maxQueued?: number;
}

/** A client stream: requests, then one response. */
export interface ClientStream<Req, Res> {
  /** one request; resolves when the socket has taken it (paced by `highWaterMark`); rejects once the stream is over */
  send(request: Req): Promise<void>;
  /** `{"end": true}`, then the service's response */
  end(): Promise<Res>;
  /** cancels the call (the socket closes; the service's `ctx.signal` fires) */
  close(): void;
}

/** A bidi stream: requests and responses, independent of each other. */
export interface BidiStream<Req, Res> extends AsyncIterable<Res> {
  /** one request; resolves when the socket has taken it (paced by `highWaterMark`); rejects once the stream is over */
  send(request: Req): Promise<void>;
  /** `{"end": true}`: no more requests; the responses go on until the service is done */
  end(): Promise<void>;
  /** cancels the call (as breaking out of `for await` does) */
  close(): void;
}

/** What kind of endpoint: a call, or a stream of requests (`client`), of responses (`server`), or both (`bidi`). */
export type EndpointKind = 'unary' | 'server' | 'client' | 'bidi';

/**
 * A service's endpoints as `{ Call: { request: {...}; response: {...} } }`: what
 * `client.service<T>()` types. Streams say their kind: `{ ...; kind: 'server' }`.
 */
export type EndpointTypes = Record<string, { request: unknown; response: unknown; kind?: EndpointKind }>;

/** The method of one endpoint in `client.service<T>()`. */
export type EndpointMethod<E extends { request: unknown; response: unknown; kind?: EndpointKind }> = E extends { kind: 'server' }
  ? (request: E['request'], options?: StreamOptions) => AsyncIterable<E['response']>
  : E extends { kind: 'client' }
    ? (options?: StreamOptions) => ClientStream<E['request'], E['response']>
    : E extends { kind: 'bidi' }
      ? (options?: StreamOptions) => BidiStream<E['request'], E['response']>
      : (request: E['request'], options?: CallOptions) => Promise<E['response']>;

/** `client.service<T>(name)`: one method per endpoint (`'Greeter.Hello'` too: `svc['Greeter.Hello'](req)`). */
export type ServiceClient<T extends EndpointTypes> = { [K in keyof T]: EndpointMethod<T[K]> };

/** The streams of `T` and their kinds: what `client.service<T>(name, kinds)` needs at run time (types are gone by then). */
export type StreamKinds<T extends EndpointTypes> = {
  [K in keyof T as T[K] extends { kind: 'server' | 'client' | 'bidi' } ? K : never]: T[K] extends { kind: infer S } ? S : never;
};

const DEFAULT_TIMEOUT = 30_000;
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
const OPEN = 1;
const DEFAULT_MAX_MESSAGE = 1024 * 1024;
const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
const DEFAULT_MAX_QUEUED = 1000;
/** what the gateway means by a close code (see the gateway's README) */
const CLOSE_MEANING: Record<number, string> = {
  1001: ' (the gateway is going away)',
  1003: ' (the gateway refused a message: not JSON text, or nested too deep)',
  1006: ' (the connection dropped)',
  1007: ' (a message was not valid UTF-8)',
  1008: ' (the gateway refused the stream: too many requests queued, or a second request to an endpoint that takes one)',
  1009: ' (a message was larger than the gateway takes)',
};

/** `Handler.Method` → `/v1/svc/Handler/Method`, each segment escaped. */
export function endpointPath(service: string, endpoint: string): string {
  return `/v1/${encodeURIComponent(service)}/${endpoint.split('.').map(encodeURIComponent).join('/')}`;
}

function isErrorBody(v: unknown): v is { id?: unknown; code: number; detail: string; status?: unknown } {
  return typeof v === 'object' && v !== null && typeof (v as { code?: unknown }).code === 'number' && typeof (v as { detail?: unknown }).detail === 'string';
}

function toHttpError(v: { id?: unknown; code: number; detail: string; status?: unknown }, fallbackId: string, fallbackStatus: string): MicroHttpError {
  return new MicroHttpError(typeof v.id === 'string' ? v.id : fallbackId, v.code, v.detail, typeof v.status === 'string' ? v.status : fallbackStatus);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export class MicroClient {
  private readonly base: string;
  private readonly fetchFn: FetchLike;

  constructor(readonly options: MicroClientOptions) {
    let u: URL;
    try {
      u = new URL(options.url);
    } catch {
      throw new TypeError(`MicroClient: invalid url ${JSON.stringify(options.url)}: use e.g. http://127.0.0.1:8080`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`MicroClient: url ${JSON.stringify(options.url)} must be http:// or https://`);
    this.base = `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
    const f = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!f) throw new TypeError('MicroClient: no global fetch here: pass options.fetch');
    this.fetchFn = f;
  }

  private async token(): Promise<string | undefined> {
    const t = this.options.token;
    return typeof t === 'function' ? await t() : t;
  }

  private async headers(extra?: Record<string, string>): Promise<Record<string, string>> {
    const h: Record<string, string> = { accept: 'application/json' };
    const token = await this.token();
    if (token) h.authorization = `Bearer ${token}`;
    if (this.options.namespace) h['micro-namespace'] = this.options.namespace;
    return { ...h, ...extra };
  }

  /** POST /v1/{service}/{endpoint}: the response, or a MicroHttpError / MicroClientError. */
  async call<Req = unknown, Res = unknown>(service: string, endpoint: string, request: Req, options: CallOptions = {}): Promise<Res> {
    const url = this.base + endpointPath(service, endpoint);
    const timeout = options.timeout ?? this.options.timeout ?? DEFAULT_TIMEOUT;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout);
    const onAbort = () => controller.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) controller.abort();
    try {
      let res: Awaited<ReturnType<FetchLike>>;
      let text: string;
      try {
        const headers = await this.headers({ 'content-type': 'application/json', ...options.headers });
        res = await this.fetchFn(url, { method: 'POST', headers, body: JSON.stringify(request ?? {}), signal: controller.signal });
        text = await res.text();
      } catch (err) {
        if (timedOut) throw new MicroClientError(`POST ${url}: no answer in ${timeout} ms`, 'timeout', url, { cause: err });
        if (options.signal?.aborted) throw new MicroClientError(`POST ${url}: aborted`, 'network', url, { cause: err });
        const why = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
        throw new MicroClientError(`POST ${url}: cannot reach the gateway: ${why}`, 'network', url, { cause: err });
      }
      const body = parseJson(text);
      if (res.status >= 200 && res.status < 300) {
        if (body === undefined && text !== '') throw new MicroClientError(`POST ${url}: the answer is not JSON: ${text.slice(0, 200)}`, 'protocol', url);
        return body as Res;
      }
      if (isErrorBody(body)) throw toHttpError(body, service, res.statusText);
      throw new MicroHttpError(service, res.status, text.slice(0, 500) || res.statusText, res.statusText);
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * A server stream over a WebSocket on the endpoint's path: the request is the first
   * message, each response one message; ends when the gateway closes with 1000. Breaking
   * out of the `for await` loop closes the socket (the gateway cancels the call). The token
   * goes as the subprotocol `micro-token.<token>` (browsers cannot set headers on a
   * WebSocket); with a constructor that takes headers (`ws`), the namespace goes as
   * `Micro-Namespace` too. Unary endpoints answer this way too (one message).
   */
  stream<Req = unknown, Res = unknown>(service: string, endpoint: string, request: Req, options: StreamOptions = {}): AsyncIterable<Res> {
    return {
      [Symbol.asyncIterator]: () => {
        const ch = this.channel<Res>(service, endpoint, options, 'first');
        // a request that cannot go (too large, not JSON) ends the stream: next() throws why
        ch.send(request ?? {}).catch((err: unknown) => ch.fail(err instanceof Error ? err : new Error(String(err))));
        return ch.iterator();
      },
    };
  }

  /**
   * A client stream: `send` requests (each one message), then `end()` sends `{"end": true}`
   * and resolves with the service's one response. `close()` cancels the call instead.
   */
  clientStream<Req = unknown, Res = unknown>(service: string, endpoint: string, options: StreamOptions = {}): ClientStream<Req, Res> {
    const ch = this.channel<Res>(service, endpoint, options, 'open');
    return {
      send: (request) => ch.send(request),
      end: async () => {
        await ch.end();
        const r = await ch.next();
        if (r.done) throw new MicroClientError(`stream ${ch.url}: the gateway closed the stream without a response`, 'protocol', ch.url);
        ch.close();
        return r.value;
      },
      close: () => ch.close(),
    };
  }

  /**
   * A bidi stream: `send` requests and read responses (`for await`) at the same time;
   * `end()` sends `{"end": true}` (the responses go on until the service is done);
   * `close()` or breaking out of the loop cancels the call.
   */
  bidiStream<Req = unknown, Res = unknown>(service: string, endpoint: string, options: StreamOptions = {}): BidiStream<Req, Res> {
    const ch = this.channel<Res>(service, endpoint, options, 'open');
    let iterating = false;
    return {
      send: (request) => ch.send(request),
      end: () => ch.end(),
      close: () => ch.close(),
      [Symbol.asyncIterator]: () => {
        if (iterating) throw new TypeError('MicroClient.bidiStream: the responses can be iterated once');
        iterating = true;
        return ch.iterator();
      },
    };
  }

  private channel<Res>(service: string, endpoint: string, options: StreamOptions, timeoutUntil: 'first' | 'open'): Channel<Res> {
    const WS = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const headers: Record<string, string> = { ...options.headers };
    if (this.options.namespace) headers['micro-namespace'] = this.options.namespace;
    return new Channel<Res>({
      WS,
      url: this.base + endpointPath(service, endpoint),
      service,
      token: () => this.token(),
      headers,
      timeout: options.timeout ?? this.options.timeout ?? DEFAULT_TIMEOUT,
      timeoutUntil,
      signal: options.signal,
      maxMessageBytes: options.maxMessageBytes ?? this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE,
      highWaterMark: options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK,
      maxQueued: options.maxQueued ?? DEFAULT_MAX_QUEUED,
    });
  }

  /**
   * A typed view of one service: `client.service<{ Call: { request: Req; response: Res } }>('greeter').Call(req)`.
   * Streams need their kinds at run time too: `client.service<T>('greeter', { Stream: 'server', Sum: 'client' })`.
   */
  service<T extends EndpointTypes>(name: string, ...kinds: [keyof StreamKinds<T>] extends [never] ? [kinds?: StreamKinds<T>] : [kinds: StreamKinds<T>]): ServiceClient<T> {
    const kindOf = (kinds[0] ?? {}) as Record<string, EndpointKind | undefined>;
    return new Proxy({} as ServiceClient<T>, {
      get: (_target, prop) => {
        if (typeof prop !== 'string' || prop === 'then') return undefined;
        const kind = Object.prototype.hasOwnProperty.call(kindOf, prop) ? kindOf[prop] : 'unary';
        if (kind === 'server') return (request: unknown, options?: StreamOptions) => this.stream(name, prop, request, options);
        if (kind === 'client') return (options?: StreamOptions) => this.clientStream(name, prop, options);
        if (kind === 'bidi') return (options?: StreamOptions) => this.bidiStream(name, prop, options);
        return (request: unknown, options?: CallOptions) => this.call(name, prop, request, options);
      },
    });
  }
}

/** One WebSocket stream: the socket, the requests going out (in order, paced) and the responses coming in. */
interface ChannelConfig {
  WS: WebSocketConstructor | undefined;
  /** the endpoint's http(s) URL */
  url: string;
  service: string;
  token: () => Promise<string | undefined>;
  headers: Record<string, string>;
  timeout: number;
  /** what `timeout` bounds: the socket opening and the first response (server streams), or the opening only */
  timeoutUntil: 'first' | 'open';
  signal: AbortSignal | undefined;
  maxMessageBytes: number;
  highWaterMark: number;
  maxQueued: number;
}

const END_MESSAGE = '{"end":true}';

class Channel<Res> {
  readonly url: string;
  private readonly queue: Res[] = [];
  /** the error next() throws (once) */
  private failure: Error | undefined;
  /** what send() throws once the stream is over */
  private over: Error | undefined;
  private done = false;
  private ended: Promise<void> | undefined;
  private socket: WebSocketLike | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private wake: (() => void) | undefined;
  private paused = false;
  /** the last send: sends go out one after another, in the order they were made */
  private tail: Promise<void> = Promise.resolve();
  private readonly opened: Promise<void>;
  private settleOpen: ((err?: Error) => void) | undefined;
  private readonly onAbort = () => this.finish(new MicroClientError(`stream ${this.url}: aborted`, 'network', this.url));

  constructor(private readonly c: ChannelConfig) {
    this.url = c.url;
    this.opened = new Promise<void>((resolve, reject) => {
      this.settleOpen = (err) => {
        this.settleOpen = undefined;
        if (err) reject(err);
        else resolve();
      };
    });
    // nobody may be waiting for the opening (a stream closed at once): not an unhandled rejection
    this.opened.catch(() => undefined);
    c.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (c.signal?.aborted) this.onAbort();
    else this.start().catch((err: unknown) => this.finish(err instanceof Error ? err : new Error(String(err))));
  }

  private async start(): Promise<void> {
    const { WS, url } = this.c;
    if (!WS) throw new TypeError('MicroClient: no global WebSocket here (Node 20): pass options.WebSocket, e.g. `import { WebSocket } from "ws"`');
    const token = await this.c.token();
    if (this.done) return;
    // the token as the subprotocol micro-token.<token> (browsers cannot set headers on a
    // WebSocket); offering `micro` too makes the gateway answer `micro`, never echoing the token
    const protocols = token ? ['micro', `micro-token.${token}`] : ['micro'];
    let ws: WebSocketLike;
    try {
      ws = new WS(url.replace(/^http/, 'ws'), protocols, { headers: this.c.headers });
    } catch (err) {
      // e.g. a token with characters a subprotocol cannot carry
      throw new MicroClientError(`stream ${url}: cannot open a WebSocket: ${err instanceof Error ? err.message : String(err)}`, 'protocol', url, { cause: err });
    }
    this.socket = ws;
    this.timer = setTimeout(() => {
      this.finish(new MicroClientError(`stream ${url}: no answer in ${this.c.timeout} ms`, 'timeout', url));
    }, this.c.timeout);
    ws.addEventListener('open', () => {
      if (this.c.timeoutUntil === 'open') clearTimeout(this.timer);
      this.settleOpen?.();
    });
    ws.addEventListener('message', (ev) => this.receive(ev.data));
    ws.addEventListener('error', (ev) => {
      const why = ev.message ?? (ev.error instanceof Error ? ev.error.message : undefined);
      // `ws` says why the upgrade was refused; browsers do not (the HTTP answer is hidden from pages)
      const refused = /Unexpected server response: (\d{3})/.exec(why ?? '');
      if (refused) {
        const code = Number(refused[1]);
        return this.finish(new MicroHttpError(this.c.service, code, `the gateway refused the stream with HTTP ${code} (POST the endpoint to read why)`, STATUS_TEXT[code] ?? 'Error'));
      }
      this.finish(new MicroClientError(`stream ${url}: WebSocket failed${why ? `: ${why}` : ' (refused, not upgraded, or reset)'}`, 'network', url));
    });
    ws.addEventListener('close', (ev) => {
      const code = ev.code ?? 0;
      if (code === 1000) this.finish();
      // 4000 + an HTTP status: the gateway's error (its message came first, and already ended the stream)
      else if (code >= 4400 && code < 4600) this.finish(new MicroHttpError(this.c.service, code - 4000, ev.reason || `closed with ${code}`, ev.reason || STATUS_TEXT[code - 4000] || 'Error'));
      else this.finish(new MicroClientError(`stream ${url}: closed with code ${code || '?'}${ev.reason ? `: ${ev.reason}` : ''}${CLOSE_MEANING[code] ?? ''}`, 'protocol', url));
    });
  }

  private receive(data: unknown): void {
    if (this.c.timeoutUntil === 'first') clearTimeout(this.timer);
    if (this.done) return;
    const text = typeof data === 'string' ? data : String(data);
    const msg = parseJson(text);
    if (msg === undefined) return this.finish(new MicroClientError(`stream ${this.url}: a message is not JSON: ${text.slice(0, 200)}`, 'protocol', this.url));
    if (typeof msg === 'object' && msg !== null && Object.keys(msg).length === 1 && isErrorBody((msg as { error?: unknown }).error)) {
      return this.finish(toHttpError((msg as { error: { code: number; detail: string } }).error, this.c.service, 'Error'));
    }
    this.queue.push(msg as Res);
    // a reader slower than the service: stop reading the socket (where the WebSocket can,
    // as `ws` can), so that TCP and then the gateway hold the service back
    if (this.queue.length >= this.c.maxQueued && !this.paused && this.socket?.pause) {
      this.paused = true;
      this.socket.pause();
    }
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Ends the stream; `err` is what the reader gets. Idempotent. */
  private finish(err?: Error, over?: Error): void {
    if (this.done) return;
    this.done = true;
    this.failure = err;
    this.over = err ?? over ?? new MicroClientError(`stream ${this.url}: the stream is over`, 'closed', this.url);
    clearTimeout(this.timer);
    this.c.signal?.removeEventListener('abort', this.onAbort);
    this.settleOpen?.(this.over);
    const ws = this.socket;
    if (ws && ws.readyState <= OPEN) {
      // a paused `ws` would not read the gateway's closing handshake
      if (this.paused) ws.resume?.();
      ws.close(1000);
    }
    this.notify();
  }

  /** One request: queued behind the previous ones; resolves once the socket has taken it with less than highWaterMark buffered. */
  send(value: unknown): Promise<void> {
    if (this.ended) return Promise.reject(new MicroClientError(`stream ${this.url}: send after end()`, 'closed', this.url));
    if (this.done) return Promise.reject(this.over);
    let text: string;
    try {
      text = JSON.stringify(value === undefined ? null : value);
    } catch (err) {
      return Promise.reject(new TypeError(`stream ${this.url}: the request is not JSON-serialisable: ${(err as Error).message}`));
    }
    // the gateway takes {"end": true} as the end of the requests, never as a request
    if (text === END_MESSAGE) return Promise.reject(new TypeError(`stream ${this.url}: {"end": true} cannot be sent as a request (it ends the requests): call end()`));
    if (text.length * 3 > this.c.maxMessageBytes) {
      const bytes = new TextEncoder().encode(text).length;
      if (bytes > this.c.maxMessageBytes) return Promise.reject(new MicroClientError(`stream ${this.url}: a request of ${bytes} bytes is over the limit of ${this.c.maxMessageBytes} (maxMessageBytes; the gateway closes the stream past its own)`, 'too-large', this.url));
    }
    return this.enqueue(text);
  }

  /** `{"end": true}`: no more requests (idempotent). */
  end(): Promise<void> {
    if (!this.ended) {
      if (this.done) return Promise.reject(this.over);
      this.ended = this.enqueue(END_MESSAGE);
    }
    return this.ended;
  }

  private enqueue(text: string): Promise<void> {
    const p = this.tail.then(() => this.write(text));
    this.tail = p.catch(() => undefined);
    return p;
  }

  private async write(text: string): Promise<void> {
    await this.opened;
    const ws = this.socket as WebSocketLike;
    // pacing: wait while the socket holds more than highWaterMark (browsers have no drain event)
    while (!this.done && (ws.bufferedAmount ?? 0) > this.c.highWaterMark) await new Promise((r) => setTimeout(r, 5));
    if (this.done) throw this.over;
    ws.send(text);
  }

  /** Ends the stream with an error of the client's side. */
  fail(err: Error): void {
    this.finish(err);
  }

  /** The stream cancelled by its caller: the gateway cancels the call. */
  close(): void {
    this.finish(undefined, new MicroClientError(`stream ${this.url}: the stream was closed`, 'closed', this.url));
  }

  async next(): Promise<IteratorResult<Res>> {
    for (;;) {
      if (this.queue.length > 0) {
        const value = this.queue.shift() as Res;
        if (this.paused && this.queue.length <= this.c.maxQueued / 2) {
          this.paused = false;
          this.socket?.resume?.();
        }
        return { value, done: false };
      }
      if (this.done) {
        if (this.failure) {
          const f = this.failure;
          this.failure = undefined;
          throw f;
        }
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  iterator(): AsyncIterator<Res> {
    return {
      next: () => this.next(),
      return: async (): Promise<IteratorResult<Res>> => {
        this.close();
        this.queue.length = 0;
        this.failure = undefined;
        return { value: undefined, done: true };
      },
    };
  }
}
