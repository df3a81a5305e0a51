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

/** The gateway could not be reached, did not answer in time, or answered with something that is not the protocol. */
export class MicroClientError extends Error {
  override readonly name = 'MicroClientError';
  constructor(
    message: string,
    /** `network`: no answer (refused, DNS, TLS, reset); `timeout`; `protocol`: an answer the client cannot read */
    readonly kind: 'network' | 'timeout' | 'protocol',
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
}

export interface CallOptions {
  /** ms for this call (default the client's timeout) */
  timeout?: number;
  /** cancels the call (or the stream) */
  signal?: AbortSignal;
  /** more headers */
  headers?: Record<string, string>;
}

/** A service's endpoints as `{ Call: { request: {...}; response: {...} } }`: what `client.service<T>()` types. */
export type EndpointTypes = Record<string, { request: unknown; response: unknown }>;

/** `client.service<T>(name)`: one method per endpoint (`'Greeter.Hello'` too: `svc['Greeter.Hello'](req)`). */
export type ServiceClient<T extends EndpointTypes> = {
  [K in keyof T]: (request: T[K]['request'], options?: CallOptions) => Promise<T[K]['response']>;
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
   * A stream over a WebSocket on the endpoint's path: the request is the first message,
   * each response one message; ends when the gateway closes with 1000. Breaking out of
   * the `for await` loop closes the socket (the gateway cancels the call). The token goes as
   * the subprotocol `micro-token.<token>` (browsers cannot set headers on a WebSocket); with
   * a constructor that takes headers (`ws`), the namespace goes as `Micro-Namespace` too.
   * One request: for server streams (and unary endpoints), not client or bidi streams.
   */
  stream<Req = unknown, Res = unknown>(service: string, endpoint: string, request: Req, options: CallOptions = {}): AsyncIterable<Res> {
    return { [Symbol.asyncIterator]: () => this.openStream<Req, Res>(service, endpoint, request, options) };
  }

  private openStream<Req, Res>(service: string, endpoint: string, request: Req, options: CallOptions): AsyncIterator<Res> {
    const WS = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const httpUrl = this.base + endpointPath(service, endpoint);
    const timeout = options.timeout ?? this.options.timeout ?? DEFAULT_TIMEOUT;
    const queue: Res[] = [];
    let failure: Error | undefined;
    let done = false;
    let wake: (() => void) | undefined;
    let socket: WebSocketLike | undefined;
    let heard = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      failure = err;
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (socket && socket.readyState <= OPEN) socket.close(1000);
      notify();
    };
    const onAbort = () => finish(new MicroClientError(`stream ${httpUrl}: aborted`, 'network', httpUrl));
    const opened = (async () => {
      if (!WS) throw new TypeError('MicroClient.stream: no global WebSocket here (Node 20): pass options.WebSocket, e.g. `import { WebSocket } from "ws"`');
      const token = await this.token();
      const wsUrl = httpUrl.replace(/^http/, 'ws');
      const headers: Record<string, string> = { ...options.headers };
      if (this.options.namespace) headers['micro-namespace'] = this.options.namespace;
      // the token as the subprotocol micro-token.<token> (browsers cannot set headers on a
      // WebSocket); offering `micro` too makes the gateway answer `micro`, never echoing the token
      const protocols = token ? ['micro', `micro-token.${token}`] : ['micro'];
      if (done) return;
      const ws = new WS(wsUrl, protocols, { headers });
      socket = ws;
      timer = setTimeout(() => {
        if (!heard) finish(new MicroClientError(`stream ${httpUrl}: no answer in ${timeout} ms`, 'timeout', httpUrl));
      }, timeout);
      ws.addEventListener('open', () => ws.send(JSON.stringify(request ?? {})));
      ws.addEventListener('message', (ev) => {
        heard = true;
        if (done) return;
        const text = typeof ev.data === 'string' ? ev.data : String(ev.data);
        const msg = parseJson(text);
        if (msg === undefined) return finish(new MicroClientError(`stream ${httpUrl}: a message is not JSON: ${text.slice(0, 200)}`, 'protocol', httpUrl));
        if (typeof msg === 'object' && msg !== null && Object.keys(msg).length === 1 && isErrorBody((msg as { error?: unknown }).error)) {
          return finish(toHttpError((msg as { error: { code: number; detail: string } }).error, service, 'Error'));
        }
        queue.push(msg as Res);
        notify();
      });
      ws.addEventListener('error', (ev) => {
        const why = ev.message ?? (ev.error instanceof Error ? ev.error.message : undefined);
        // `ws` says why the upgrade was refused; browsers do not (the HTTP answer is hidden from pages)
        const refused = /Unexpected server response: (\d{3})/.exec(why ?? '');
        if (refused) {
          const code = Number(refused[1]);
          return finish(new MicroHttpError(service, code, `the gateway refused the stream with HTTP ${code} (POST the endpoint to read why)`, STATUS_TEXT[code] ?? 'Error'));
        }
        finish(new MicroClientError(`stream ${httpUrl}: WebSocket failed${why ? `: ${why}` : ' (refused, not upgraded, or reset)'}`, 'network', httpUrl));
      });
      ws.addEventListener('close', (ev) => {
        const code = ev.code ?? 0;
        if (code === 1000) finish();
        // 4000 + an HTTP status: the gateway's error (its message came first, and already ended the stream)
        else if (code >= 4400 && code < 4600) finish(new MicroHttpError(service, code - 4000, ev.reason || `closed with ${code}`, ev.reason || STATUS_TEXT[code - 4000] || 'Error'));
        else finish(new MicroClientError(`stream ${httpUrl}: closed with code ${code || '?'}${ev.reason ? `: ${ev.reason}` : ''}`, 'protocol', httpUrl));
      });
    })().catch((err: unknown) => finish(err instanceof Error ? err : new Error(String(err))));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort();

    return {
      next: async (): Promise<IteratorResult<Res>> => {
        await opened;
        for (;;) {
          if (queue.length > 0) return { value: queue.shift() as Res, done: false };
          if (done) {
            if (failure) {
              const f = failure;
              failure = undefined;
              throw f;
            }
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (wake = resolve));
        }
      },
      return: async (): Promise<IteratorResult<Res>> => {
        finish();
        queue.length = 0;
        failure = undefined;
        return { value: undefined, done: true };
      },
    };
  }

  /** A typed view of one service: `client.service<{ Call: { request: Req; response: Res } }>('greeter').Call(req)`. */
  service<T extends EndpointTypes>(name: string): ServiceClient<T> {
    return new Proxy({} as ServiceClient<T>, {
      get: (_target, prop) => {
        if (typeof prop !== 'string' || prop === 'then') return undefined;
        return (request: unknown, options?: CallOptions) => this.call(name, prop, request, options);
      },
    });
  }
}
