import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import {
  BLOCKED_ERROR_ID,
  bearerToken,
  checkKeyServices,
  Client,
  errors,
  isMicroError,
  isPlatformAdmin,
  keyMayCall,
  MicroError,
  isPublicService,
  RuleSet,
  serviceResource,
  toMicroErrorPublic,
  type Account,
  type EndpointRecord,
  type PreparedCall,
  type Logger,
  type Registry,
} from './deps.js';
import type { AuthAccounts, AuthTokens } from '../auth/storage.js';
import { WebSocketServer } from 'ws';
import { TwoKeyCache } from './cache.js';
import { flatFields, openApiDocument, type EndpointAccess, type GatewayPrices } from './openapi.js';
import { RateLimiter, type Limiter, type RateLimitOptions } from './ratelimit.js';
import { NamespaceRates, RateLimited } from './quota.js';
import { NamespaceMonths, type MonthlyCounter } from './monthly.js';
import { SECURITY_HEADERS, SECURITY_PAIRS, tooDeep } from './json.js';
import { defaultDashboardDir, isDashboardPath, serveDashboard } from './dashboard.js';
import type { StatsCollector } from '../stats/collector.js';
import { DEFAULT_STREAM_LIMITS, serveEventStream, serveWebSocket, wantsEventStream, type StreamCall, type StreamLimits } from './streams.js';
import { credentialsRequired, failureCode, idempotencyKeyOf, Settlement, type GatewayMeter, type MeterTicket } from './meter.js';
import { requestId } from './request-id.js';
import { activeTracing, remoteParent } from '@micro/sdk';
import { webhookRoute, type WebhookRoute } from './webhooks.js';
import { APP_PREFIX, proxyApp } from './apps.js';
import { routeOf, routeQuery, writeRouteAnswer, type RouteRequest, type RouteTarget } from './routes.js';

export interface GatewayOptions {
  /** where to listen: `tcp://127.0.0.1:8080` (default), `127.0.0.1:0`, `http://host:port` */
  address?: string;
  registry: Registry;
  tokens: AuthTokens;
  accounts: AuthAccounts;
  logger?: Logger;
  /** services of namespace `micro` that guard themselves (the core services): no rules at the gateway */
  selfGuarded?: Iterable<string>;
  /** endpoints of those services that take no credentials (`{ auth: ['Token', …] }`): the only ones of them anonymous callers reach; public in /openapi.json */
  publicEndpoints?: Record<string, readonly string[]>;
  /** the largest request body, bytes (default 1 MiB) */
  maxBodyBytes?: number;
  /** how deep a JSON body may nest (default 64) */
  maxDepth?: number;
  /** ms a call may take before the caller gets a 504 (default 30,000) */
  timeout?: number;
  /** per account (or per IP for anonymous callers); false turns it off */
  rateLimit?: RateLimitOptions | false;
  /** the limiter to use instead of an in-memory one (e.g. RedisRateLimiter, shared by the nodes); rateLimit false still turns limits off */
  limiter?: Limiter;
  /**
   * each namespace's requestsPerSecond quota (null: unlimited), counted over the calls of
   * its own accounts in the limiter's buckets (quota.ts); default none
   */
  requestsPerSecond?: (namespace: string) => Promise<number | null>;
  /** each namespace's requestsPerMonth quota (null: unlimited), counted after requestsPerSecond let a call go (monthly.ts); default none */
  requestsPerMonth?: (namespace: string) => Promise<number | null>;
  /** where the months are counted: the nats profile's RedisRateLimiter (shared); default this node's memory */
  monthlyCounter?: MonthlyCounter;
  /** origins allowed by CORS (`*` for any); default none: no CORS headers. Listed origins (not `*`) may also use the micro-token cookie */
  corsOrigins?: string[];
  /** ms to receive the headers of a request (default 10,000) */
  headersTimeout?: number;
  /** ms to receive a whole request (default 30,000) */
  requestTimeout?: number;
  /** ms the rules of a namespace are cached (default 1,000) */
  rulesTtl?: number;
  /** the most streams (WebSocket and SSE) one account (or anonymous IP) has open at once (default 100) */
  maxStreams?: number;
  /** limits of streams: queued requests, buffered responses, pings, keep-alives */
  streamLimits?: Partial<StreamLimits>;
  /** call services running in this process directly (default true; tests turn it off to go over the network) */
  preferLocal?: boolean;
  /** metrics (issue 7): serves `GET /metrics` from it and counts the gateway's calls into `stats.gateway` */
  stats?: StatsCollector;
  /** the built web dashboard served at /dashboard/ (default packages/web/dist); false: none */
  dashboardDir?: string | false;
  /** raw routes of the core services, `POST /webhooks/<name>` (webhooks.ts); default none */
  webhooks?: ReadonlyMap<string, WebhookRoute>;
  /** anonymous routes of micro's public services by prefix, `GET /<prefix>/<rest>` → an endpoint (routes.ts); default none */
  routes?: ReadonlyMap<string, RouteTarget>;
  /**
   * `/runtime/<rest>`: the Kubernetes runtime's transfers of sources and builds to and from
   * its pods (runtime/kubernetes/transfer.ts), streamed and authenticated by their signed
   * URLs; default none
   */
  runtimeTransfers?: (req: IncomingMessage, res: ServerResponse, rest: string) => Promise<void>;
  /** the price of each endpoint, shown in /openapi.json (micro server: the platform's pricing service); default what the endpoint's record says */
  prices?: GatewayPrices;
  /** metering of priced calls (meter.ts, the README's "Metering"); default none: nothing is metered */
  meter?: GatewayMeter;
}

/** The request id the gateway made for a /v1 request (X-Request-Id), kept on the request. */
const REQUEST_ID = Symbol('micro.requestId');
type Identified = IncomingMessage & { [REQUEST_ID]?: string };

/** A new request id for `req`, kept on it for every answer it gets. */
function identify(req: IncomingMessage): string {
  const id = requestId();
  (req as Identified)[REQUEST_ID] = id;
  return id;
}

function requestIdOf(req: IncomingMessage): string | undefined {
  return (req as Identified)[REQUEST_ID];
}

/** MICRO_GATEWAY_TRUST_PROXY set: the gateway is behind a proxy that appends the client's address to X-Forwarded-For */
const TRUST_PROXY = !!process.env.MICRO_GATEWAY_TRUST_PROXY;

/**
 * The HTTP client's address for the services called in this process (`ctx.peer`, the
 * source auth throttles wrong secrets by): the socket's peer; with MICRO_GATEWAY_TRUST_PROXY
 * the last X-Forwarded-For entry (the one the trusted proxy added; earlier ones are the
 * client's to make up).
 */
export function peerOf(req: IncomingMessage, trustProxy = TRUST_PROXY): string {
  const forwarded = trustProxy ? req.headers['x-forwarded-for'] : undefined;
  const last = typeof forwarded === 'string' ? forwarded.split(',').pop()?.trim() : undefined;
  return `tcp:${last || req.socket.remoteAddress || ''}`;
}

export const DEFAULT_GATEWAY_ADDRESS = 'tcp://127.0.0.1:8080';
const ID = 'gateway';
const SERVICE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SEGMENT = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const ENDPOINT = /^[A-Za-z_][A-Za-z0-9_]{0,127}(\.[A-Za-z_][A-Za-z0-9_]{0,127})?$/;
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const API_KEY_TOKEN_MARGIN = 60;
const JSON_TYPE = /^application\/json\s*(;|$)/i;
/** Requests whose whole body was taken from the buffer (not yet `complete`, but nothing of them is left to read). */
const bodyTaken = new WeakSet<IncomingMessage>();

/** `tcp://h:p`, `http://h:p` or `h:p` → host and port. */
export function parseGatewayAddress(address: string): { host: string; port: number } {
  const withScheme = /^[a-z]+:\/\//i.test(address) ? address : `tcp://${address}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw errors.BadRequest(ID, `invalid gateway address ${JSON.stringify(address)}: use host:port, e.g. 127.0.0.1:8080`);
  }
  if (!['tcp:', 'http:'].includes(url.protocol)) throw errors.BadRequest(ID, `invalid gateway address ${JSON.stringify(address)}: tcp:// or http:// only`);
  const port = url.port === '' ? (url.protocol === 'http:' ? 80 : NaN) : Number(url.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw errors.BadRequest(ID, `invalid gateway address ${JSON.stringify(address)}: it needs a port`);
  return { host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port };
}

/**
 * The HTTP/JSON API gateway: `POST /v1/{service}/{endpoint}` calls an endpoint of the
 * caller's namespace through the SDK client, with the caller's identity (to any service
 * but the core ones, a token scoped to that service); `GET` takes the fields of flat
 * requests of read-only endpoints as query parameters (no other endpoint answers a GET:
 * a link of any site is a GET); `GET /openapi.json` describes the
 * namespace. Authentication, rules, limits and errors are applied here at the edge; the
 * service checks the token and its rules again where the call is served.
 */
/** ms the gateway trusts what it read of a service's endpoints */
const ENDPOINT_TTL = 1_000;

export class Gateway {
  private readonly server: Server;
  private readonly logger: Logger | undefined;
  private readonly selfGuarded: Set<string>;
  private readonly maxBody: number;
  private readonly maxDepth: number;
  private readonly timeout: number;
  private readonly limiter: Limiter | undefined;
  private readonly rates: NamespaceRates | undefined;
  /** requestsPerMonth (its usage is quota.Read's) */
  readonly months: NamespaceMonths | undefined;
  private readonly cors: Set<string>;
  private readonly rulesTtl: number;
  private readonly clients = new Map<string, Client>();
  private readonly rules = new Map<string, { set: RuleSet; at: number }>();
  /**
   * Endpoints of a service by namespace and name, for ENDPOINT_TTL ms. The registry hands
   * out deep copies of whole records (schemas included): asked on every request that was
   * a third of the gateway's CPU (--cpu-prof, see BENCHMARKS.md). Unknown services are not
   * cached, so a service that just registered is found at once; one that left is routed
   * for at most ENDPOINT_TTL more, and its call then fails with the client's own error.
   */
  /** by namespace and service: the endpoints a call finds, and where they are served (`home`: the namespace, or micro for a public service) */
  private readonly endpoints = new TwoKeyCache<Located>(10_000);
  private readonly keyTokens = new Map<string, { token: string; exp: number }>();
  /** the gateway's own tokens for the public services' routes, by service */
  private readonly routeTokens = new Map<string, { token: string; until: number }>();
  /** tokens scoped to a service, by credential then `<namespace>/<service>`, with the second until which they are handed out */
  private readonly scopedTokens = new TwoKeyCache<{ token: string; until: number }>(10_000);
  /** `/v1/…` paths already parsed (valid ones only): the same few paths come again and again */
  private readonly routes = new Map<string, [string, string]>();
  /** the SDK's compiled call of each endpoint read from the registry (they live as long as the endpoints cache holds them) */
  private readonly prepared = new WeakMap<EndpointRecord, PreparedCall>();
  private readonly resources = new WeakMap<EndpointRecord, string>();
  private readonly ipKeys = new WeakMap<Socket, string>();
  private readonly sockets = new Set<Socket>();
  private readonly wss: WebSocketServer;
  private readonly maxStreams: number;
  private readonly streamLimits: StreamLimits;
  private readonly openStreams = new Map<string, number>();
  /** what ends each open stream when the gateway closes */
  private readonly streamClosers = new Set<() => void>();
  /** what ends each open stream of an API key (or of a token exchanged for one) when the key is revoked or blocked, by key id */
  private readonly keyStreams = new Map<string, Set<() => void>>();
  private readonly unsubscribeRevocations: () => void;
  private readonly meter: GatewayMeter | undefined;
  private boundUrl: string | undefined;
  private dashboardDir: string | undefined;

  constructor(private readonly options: GatewayOptions) {
    this.logger = options.logger;
    this.meter = options.meter;
    this.selfGuarded = new Set(options.selfGuarded ?? []);
    this.maxBody = options.maxBodyBytes ?? 1024 * 1024;
    this.maxDepth = options.maxDepth ?? 64;
    this.timeout = options.timeout ?? 30_000;
    this.limiter = options.rateLimit === false ? undefined : (options.limiter ?? new RateLimiter(options.rateLimit));
    this.rates = options.requestsPerSecond ? new NamespaceRates({ lookup: options.requestsPerSecond }, options.limiter ?? this.limiter) : undefined;
    this.months = options.requestsPerMonth ? new NamespaceMonths({ lookup: options.requestsPerMonth }, options.monthlyCounter) : undefined;
    this.cors = new Set(options.corsOrigins ?? []);
    this.rulesTtl = options.rulesTtl ?? 1_000;
    this.maxStreams = options.maxStreams ?? 100;
    this.streamLimits = { ...DEFAULT_STREAM_LIMITS, ...options.streamLimits };
    // a cached token of an API key, and the scoped copies of any token, may have been
    // revoked (its account's scopes changed, a new password, a logout, its key revoked or
    // blocked): mint afresh
    this.unsubscribeRevocations = options.tokens.revocations.subscribe((r) => {
      this.keyTokens.clear();
      this.scopedTokens.clear();
      // a key revoked or blocked (on any node): its open streams end too
      if (r.kind === 'session' && r.id.startsWith('key:')) for (const end of [...(this.keyStreams.get(r.id.slice(4)) ?? [])]) end();
    });
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: this.maxBody,
      perMessageDeflate: false,
      // the client offers `micro` and, from a browser, `micro-token.<token>`: the answer is `micro`
      handleProtocols: (protocols) => (protocols.has('micro') ? 'micro' : ([...protocols][0] ?? false)),
    });
    this.wss.on('headers', (headers: string[], req: IncomingMessage) => {
      const id = requestIdOf(req);
      if (id) headers.push(`X-Request-Id: ${id}`);
    });
    this.server = createServer(
      {
        maxHeaderSize: 16 * 1024,
        headersTimeout: options.headersTimeout ?? 10_000,
        requestTimeout: options.requestTimeout ?? 30_000,
        keepAliveTimeout: 5_000,
        // how often the two timeouts above are checked (node's default is every 30 s)
        connectionsCheckingInterval: Math.min(1_000, options.headersTimeout ?? 10_000),
      },
      (req, res) => {
        this.handle(req, res).catch((err: unknown) => this.fail(req, res, err, ID));
      },
    );
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return this.plainAfterUpgrade(req, socket);
      this.upgrade(req, socket, head).catch((err: unknown) => this.refuse(req, socket, err));
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      const code = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const status = code === 431 ? 'Request Header Fields Too Large' : code === 408 ? 'Request Timeout' : 'Bad Request';
      const body = JSON.stringify({ id: ID, code, detail: code === 400 ? 'malformed HTTP request' : status.toLowerCase(), status });
      socket.end(`HTTP/1.1 ${code} ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\nx-content-type-options: nosniff\r\n\r\n${body}`);
    });
  }

  /** `http://host:port` once listening. */
  get url(): string {
    if (!this.boundUrl) throw new Error('the gateway is not listening');
    return this.boundUrl;
  }

  async listen(): Promise<string> {
    const { host, port } = parseGatewayAddress(this.options.address ?? DEFAULT_GATEWAY_ADDRESS);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE') reject(errors.ServiceUnavailable(ID, `the API gateway address ${host}:${port} is in use — choose another with --gateway or MICRO_GATEWAY_ADDRESS (127.0.0.1:0 picks a free port)`));
        else reject(err);
      });
      this.server.listen(port, host, () => {
        this.server.removeAllListeners('error');
        this.server.on('error', (err) => this.logger?.error({ err }, 'gateway server error'));
        resolve();
      });
    });
    const a = this.server.address();
    const bound = typeof a === 'object' && a ? a : { address: host, port };
    this.boundUrl = `http://${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`;
    return this.boundUrl;
  }

  /** Stops listening; calls in flight get up to `graceMs` to finish. */
  async close(graceMs = 2_000): Promise<void> {
    this.unsubscribeRevocations();
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    for (const end of [...this.streamClosers]) end();
    const timer = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, graceMs);
    await closed;
    clearTimeout(timer);
    this.boundUrl = undefined;
  }

  // ---- a request -------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // the security headers go out with the answer (send), in one writeHead, not here
    const origin = req.headers.origin;
    if (origin && (this.cors.has(origin) || this.cors.has('*'))) {
      res.setHeader('access-control-allow-origin', this.cors.has('*') ? '*' : origin);
      res.setHeader('vary', 'Origin');
      if (req.method === 'OPTIONS') {
        res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
        res.setHeader('access-control-allow-headers', 'authorization, content-type, micro-namespace');
        res.setHeader('access-control-max-age', '600');
        res.writeHead(204, [...SECURITY_PAIRS]);
        res.end();
        return;
      }
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    if (path === '/openapi.json') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.notAllowed(req, res, 'GET');
      return this.openapi(req, res);
    }
    if (path === '/metrics' && this.options.stats) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return this.notAllowed(req, res, 'GET');
      return this.metrics(req, res, query, this.options.stats);
    }
    if (path.startsWith('/webhooks/') && this.options.webhooks) return this.webhook(req, res, path, this.options.webhooks);
    if (path.startsWith('/runtime/') && this.options.runtimeTransfers) return this.options.runtimeTransfers(req, res, path.slice('/runtime/'.length));
    // tenants' web apps (apps.ts): anonymous, streamed, never given the caller's credentials
    if (path.startsWith(APP_PREFIX)) {
      await this.limit(req, undefined);
      return proxyApp(req, res, this.options.registry);
    }
    if (!path.startsWith('/v1/')) {
      // the public services' anonymous routes (a short link, a public object): off the API's path too
      const route = this.options.routes ? routeOf(this.options.routes, path) : undefined;
      if (route) return this.serveRoute(req, res, route[0], route[1], query);
      // the dashboard's static files: off the API's path (a call never reaches this)
      if (this.options.dashboardDir !== false && isDashboardPath(path)) return serveDashboard(req, res, path, (this.dashboardDir ??= this.options.dashboardDir ?? defaultDashboardDir()));
      throw errors.NotFound(ID, 'not found: the API is under /v1/{service}/{endpoint}; see /openapi.json');
    }
    const requestId = identify(req);
    const [service, endpoint] = this.route(path);
    const get = req.method === 'GET';
    if (req.method !== 'POST' && !get) return this.notAllowed(req, res, 'GET, POST');
    // a body announced too large is refused before a byte of it is read
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > this.maxBody) throw errors.PayloadTooLarge(ID, `the request body is ${length} bytes; the most is ${this.maxBody}`);

    const stats = this.options.stats?.gateway;
    const started = stats ? performance.now() : 0;
    const resolved = await this.resolve(req, service, endpoint);
    const { call, key, namespace, account } = resolved;
    const ep = call.endpoint;
    if (ep.kind === 'client' || ep.kind === 'bidi') throw errors.NotImplemented(service, `${service}.${ep.name} is a ${ep.kind} stream: open it as a WebSocket on this path`);
    // a link, an image or a top-level navigation of any site is a GET: it reaches only what changes nothing
    if (get && ep.readonly !== true) return this.notAllowed(req, res, 'POST', `${service}.${ep.name} is not read-only: GET reaches only read-only endpoints; ${ep.kind === 'server' ? 'POST the request as JSON with Accept: text/event-stream, or open a WebSocket' : 'POST the request as JSON'}`);
    if (ep.kind === 'server') {
      if (wantsEventStream(req)) {
        let request: unknown = get ? queryRequest(query, ep, service) : this.body(req, service);
        if (request instanceof Promise) request = await request;
        const release = this.acquire(key);
        const settlement = this.meter ? await this.admitStream(req, resolved, release) : undefined;
        const end = () => res.destroy();
        const untrack = this.trackStream(account, end, end);
        res.once('close', () => {
          untrack();
          release();
          // a stream that has not ended normally by now has failed: the client went away
          settlement?.failed(499);
        });
        return serveEventStream(req, res, { ...call, requestId }, request, this.streamLimits, settlement);
      }
      throw errors.NotImplemented(service, `${service}.${ep.name} is a server stream: open it as a WebSocket on this path, or ${get ? 'GET' : 'POST'} it with Accept: text/event-stream`);
    }

    let request: unknown;
    if (get) request = queryRequest(query, ep, service);
    else {
      request = this.body(req, service);
      if (request instanceof Promise) request = await request;
    }

    // prepared with the endpoint's idempotency (from the registry): a call lost with an
    // instance that died is retried on another only when running it twice is harmless
    let prepared = this.prepared.get(ep);
    if (!prepared) {
      prepared = call.client.prepare(service, ep.name, 'unary', ep.idempotent === true);
      this.prepared.set(ep, prepared);
    }
    // metering: undefined for what is not metered, which makes no await
    let ticket = this.meter ? this.admit(req, resolved, false) : undefined;
    if (ticket instanceof Promise) ticket = await ticket;
    // traces (issue 7): a span of the request when the server traces; otherwise an
    // incoming traceparent is only handed on (no span object, one header read)
    const tracing = activeTracing();
    const tp = req.headers.traceparent;
    if (!tracing) {
      const parent = tp === undefined ? undefined : remoteParent(tp);
      const invoked = call.client.invoke(prepared, request, { timeout: this.timeout, metadata: call.metadata, parent, peer: call.peer }) as Promise<unknown>;
      const result = await (ticket ? this.settled(invoked, ticket, service) : invoked);
      send(res, 200, result === undefined ? null : result, false, requestId);
      stats?.observe(namespace, service, ep.name, 200, started);
      return;
    }
    const span = tracing.span(`${req.method} /v1/${service}/${endpoint}`, 'server', tp, { 'micro.service': 'gateway', 'micro.namespace': call.client.namespace, 'micro.endpoint': `${service}.${ep.name}` });
    res.setHeader('traceresponse', span.traceparent());
    let result: unknown;
    try {
      const invoked = call.client.invoke(prepared, request, { timeout: this.timeout, metadata: call.metadata, parent: span.parent(), peer: call.peer }) as Promise<unknown>;
      result = await (ticket ? this.settled(invoked, ticket, service) : invoked);
    } catch (err) {
      span.end(err);
      throw err;
    }
    span.end();
    send(res, 200, result === undefined ? null : result, false, requestId);
    stats?.observe(namespace, service, ep.name, 200, started);
  }

  /**
   * The call offered to the meter: not asked for accounts of micro (the platform's staff
   * and services are not metered); for anonymous callers a refusal is the gateway's one
   * 401 to strangers.
   */
  private admit(req: IncomingMessage, r: Resolved, stream: boolean): MeterTicket | undefined | Promise<MeterTicket | undefined> {
    const { account } = r;
    if (account?.issuer === 'micro') return undefined;
    const meter = this.meter as GatewayMeter;
    const call = {
      requestId: requestIdOf(req) as string,
      idempotencyKey: r.idempotencyKey,
      account,
      keyId: account?.type === 'apikey' ? account.metadata?.key : undefined,
      namespace: r.namespace,
      home: r.home,
      service: r.call.service,
      endpoint: r.call.endpoint,
      stream,
    };
    if (account) return meter.admit(call);
    try {
      const ticket = meter.admit(call);
      return ticket instanceof Promise ? ticket.catch((err: unknown) => Promise.reject(anonymousRefusal(err))) : ticket;
    } catch (err) {
      throw anonymousRefusal(err);
    }
  }

  /** A stream is one call: admitted at open (a refusal gives back the stream's place), settled once at its end (streams.ts). */
  private async admitStream(req: IncomingMessage, r: Resolved, release: () => void): Promise<Settlement | undefined> {
    try {
      const ticket = await this.admit(req, r, true);
      return ticket ? new Settlement(ticket, this.logger) : undefined;
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * The service's answer once the meter has recorded it: a success is settled (durably)
   * before the caller sees it, so every 200 of a metered call is charged; a failure
   * releases what the meter held.
   */
  private async settled(invoked: Promise<unknown>, ticket: MeterTicket, service: string): Promise<unknown> {
    let result: unknown;
    try {
      result = await invoked;
    } catch (err) {
      new Settlement(ticket, this.logger).failed(failureCode(err, service));
      throw err;
    }
    await ticket.settle(true, 200);
    return result;
  }

  /**
   * Credentials, rate limit, namespace, registry, rules: the call, or an error. `key` is
   * what limits count against. Each step awaits only when it has to go out (a token to
   * verify, a Redis limiter, a registry or rules read past their cache): an anonymous call
   * or a call with a cached key token makes none, which was 5 % of the gateway's CPU
   * (--cpu-prof) when every step was an async function.
   */
  private async resolve(req: IncomingMessage, service: string, endpoint: string): Promise<Resolved> {
    // a bad Idempotency-Key is a 400 whoever calls, before anything is done
    const idempotencyKey = idempotencyKeyOf(req.headers['idempotency-key']);
    const account = this.credential(req) === undefined ? undefined : await this.authenticate(req);
    const key = this.limitKey(req, account);
    if (this.limiter) {
      let wait = this.limiter.take(key);
      if (typeof wait !== 'number') wait = await wait;
      if (wait > 0) throw tooMany(wait);
    }
    // an API key limited to some services calls only those (403 v1.blocked), before any quota counts the call
    if (account?.type === 'apikey') checkKeyServices(account, service);
    const namespace = this.namespaceOf(req, account);
    // the namespace's own calls count against its requestsPerSecond (quota.ts says why only those)
    if (this.rates && account?.issuer === namespace) await this.rates.admit(namespace);
    if (this.months && account?.issuer === namespace) await this.months.admit(namespace);

    // the core services (registry, store, auth, runtime, …) run in namespace micro and serve
    // every namespace themselves (they act in the caller's, from its token): a tenant's
    // call of one is routed there; their names are reserved for that. Any other name is
    // looked up in the caller's namespace first, then among micro's public services.
    let ep: EndpointRecord | undefined;
    let located: Located;
    try {
      const asked = this.selfGuarded.has(service) ? 'micro' : namespace;
      located = this.cachedEndpoints(service, asked) ?? (await this.endpointsOf(service, asked));
      ep = findEndpoint(located.list, endpoint);
      if (!ep) throw errors.NotFound(service, `endpoint ${endpoint} of service ${service} not found`);
      // a public service is called under the caller's own namespace's rules (it serves strangers: see the SDK's auth/enforce.ts)
      const rulesOf = located.public ? namespace : located.home;
      if (!this.rulesFresh(rulesOf)) await this.loadRules(rulesOf);
      this.authorize(service, ep.name, rulesOf, account, ep);
    } catch (err) {
      // without credentials, a service that does not exist, an endpoint that does not and
      // one no public rule opens get the same answer: a stranger learns nothing of the namespace
      if (!account && isMicroError(err) && (err.code === 404 || err.code === 401)) throw credentialsRequired();
      throw err;
    }
    const home = located.home;
    let token = account ? this.forwardToken(req, account, home, service) : undefined;
    if (token !== undefined && typeof token !== 'string') token = await token;
    const metadata: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    // the namespace an admin of micro acts in, for a public service (which trusts it from admins only)
    if (located.public) metadata['micro-tenant'] = namespace;
    return { call: { service, endpoint: ep, client: this.client(home), metadata, timeout: this.timeout, peer: peerOf(req) }, key, namespace, home, account, idempotencyKey };
  }

  /** parsePath, remembered for up to 10,000 valid paths */
  private route(path: string): [string, string] {
    let r = this.routes.get(path);
    if (!r) {
      r = parsePath(path);
      if (this.routes.size >= 10_000) this.routes.clear();
      this.routes.set(path, r);
    }
    return r;
  }

  /** The endpoints of a service read less than ENDPOINT_TTL ago, or undefined. */
  private cachedEndpoints(service: string, namespace: string): Located | undefined {
    // by namespace, then service: no key string to build per request
    const hit = this.endpoints.get(namespace, service);
    return hit && Date.now() - hit.at < ENDPOINT_TTL ? hit : undefined;
  }

  /** The service in `namespace`, else a public service of that name in micro, or a 404. */
  private async endpointsOf(service: string, namespace: string): Promise<Located> {
    const now = Date.now();
    let records = await this.options.registry.getService(service, { namespace });
    let home = namespace;
    if (records.length === 0 && namespace !== 'micro') {
      records = (await this.options.registry.getService(service, { namespace: 'micro' })).filter(isPublicService);
      home = 'micro';
    }
    if (records.length === 0) {
      this.endpoints.delete(namespace, service);
      throw errors.NotFound(service, `service ${service} not found in namespace ${namespace}`);
    }
    const located: Located = { list: records.flatMap((r) => r.endpoints), at: now, home, public: home === 'micro' && records.every(isPublicService) };
    this.endpoints.set(namespace, service, located);
    return located;
  }

  /**
   * An open stream: `end` ends it when the gateway closes, `revoked` when the API key it
   * was opened with (`metadata.key` of what a key, or a token of one, acts as) is revoked
   * or blocked. Returns the untrack, once the stream is over.
   */
  private trackStream(account: Account | undefined, end: () => void, revoked: () => void): () => void {
    this.streamClosers.add(end);
    const keyId = account?.type === 'apikey' ? account.metadata?.key : undefined;
    if (keyId === undefined) return () => this.streamClosers.delete(end);
    let set = this.keyStreams.get(keyId);
    if (!set) this.keyStreams.set(keyId, (set = new Set()));
    const streams = set;
    streams.add(revoked);
    return () => {
      this.streamClosers.delete(end);
      streams.delete(revoked);
      if (streams.size === 0 && this.keyStreams.get(keyId) === streams) this.keyStreams.delete(keyId);
    };
  }

  /** One more open stream of `key`; 429 past maxStreams. Returns the release (idempotent). */
  private acquire(key: string): () => void {
    const n = this.openStreams.get(key) ?? 0;
    if (n >= this.maxStreams) throw new MicroError(ID, 429, `too many open streams: at most ${this.maxStreams} at once`);
    this.openStreams.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.openStreams.get(key) ?? 1) - 1;
      if (left <= 0) this.openStreams.delete(key);
      else this.openStreams.set(key, left);
    };
  }

  /** `GET /v1/{service}/{endpoint}` with `Upgrade: websocket`: checked like a call, then upgraded. */
  private async upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (!path.startsWith('/v1/')) throw errors.NotFound(ID, 'not found: streams are under /v1/{service}/{endpoint}');
    identify(req);
    const [service, endpoint] = parsePath(path);
    if (req.method !== 'GET') throw errors.MethodNotAllowed(ID, 'a WebSocket is opened with GET');
    if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') throw errors.BadRequest(ID, 'only Upgrade: websocket is supported');
    if (q >= 0 && q < url.length - 1) throw errors.BadRequest(service, 'a WebSocket stream takes its requests as messages, not query parameters');
    // the cookie is checked for its origin in authenticate (cross-site WebSocket hijacking)
    const resolved = await this.resolve(req, service, endpoint);
    const release = this.acquire(resolved.key);
    socket.once('close', release);
    const settlement = this.meter ? await this.admitStream(req, resolved, release) : undefined;
    // the upgrade may yet fail (a bad handshake): a socket that closes unsettled was no success
    if (settlement) socket.once('close', () => settlement.failed(499));
    if (socket.destroyed) {
      settlement?.failed(499);
      return release();
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const end = () => ws.close(1001, 'the gateway is shutting down');
      const untrack = this.trackStream(resolved.account, end, () => ws.close(1008, 'the API key was revoked or blocked'));
      void serveWebSocket(ws, resolved.call, this.streamLimits, settlement).finally(untrack);
    });
  }

  /**
   * Another Upgrade (`h2c`, as `curl --http2` asks): served as a plain HTTP/1.1 request
   * without the upgrade when it has no body (the connection closes after it); else a 400.
   */
  private plainAfterUpgrade(req: IncomingMessage, socket: Socket): void {
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
      return this.refuse(req, socket, errors.BadRequest(ID, `Upgrade: ${String(req.headers.upgrade).slice(0, 32)} is not supported: send the request without it`));
    }
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.once('finish', () => socket.end());
    this.handle(req, res).catch((err: unknown) => this.fail(req, res, err, ID));
  }

  /** A refused upgrade: a plain HTTP JSON error, and the socket closes. */
  private refuse(req: IncomingMessage, socket: Socket, err: unknown): void {
    const e = toMicroErrorPublic(err, ID);
    if (e.code >= 500 && e.code !== 504 && e.code !== 501) this.logger?.error({ err, url: req.url?.slice(0, 200) }, 'gateway upgrade failed');
    const code = e.code >= 400 && e.code <= 599 ? e.code : 500;
    const body = JSON.stringify({ ...e.toJSON(), code });
    const headers = [`HTTP/1.1 ${code} ${e.status.replace(/[^\x20-\x7e]/g, '')}`, 'content-type: application/json; charset=utf-8', `content-length: ${Buffer.byteLength(body)}`, 'connection: close'];
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) headers.push(`${k}: ${v}`);
    const requestId = requestIdOf(req);
    if (requestId) headers.push(`x-request-id: ${requestId}`);
    if (code === 429) headers.push(`retry-after: ${e instanceof RateLimited ? e.retryAfter : 1}`);
    if (socket.writable) socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
    else socket.destroy();
  }

  private notAllowed(req: IncomingMessage, res: ServerResponse, allow: string, detail?: string): void {
    res.setHeader('allow', allow);
    this.fail(req, res, errors.MethodNotAllowed(ID, detail ?? `method ${String(req.method).slice(0, 16)} is not allowed here; use ${allow}`), ID);
  }

  /** The caller's credentials: Authorization Bearer (token or API key) or the micro-token cookie; undefined without. */
  private credential(req: IncomingMessage): string | undefined {
    const header = req.headers.authorization;
    if (header !== undefined) return bearerToken(header, ID);
    const fromProtocol = protocolToken(req);
    if (fromProtocol !== undefined) return fromProtocol;
    return cookieToken(req);
  }

  /**
   * Why the micro-token cookie of this request is refused, or undefined when it may be
   * used. A browser sends the cookie with whatever any site makes it request, so it counts
   * only on requests the gateway's own pages made: see "Cookies and CSRF" in the README.
   */
  private cookieRefusal(req: IncomingMessage): string | undefined {
    const origin = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    const websocket = String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
    const get = (req.method === 'GET' || req.method === 'HEAD') && !websocket;
    const trusted = origin !== undefined && (origin === ownOrigin(req) || this.cors.has(origin));
    if (origin !== undefined && !trusted) return `from origin ${JSON.stringify(origin.slice(0, 100))}`;
    if (site !== undefined) {
      if (site === 'same-origin' || trusted) return undefined;
      // typed in the address bar or opened from a bookmark: a plain GET, which reaches read-only endpoints only
      if (site === 'none' && get) return undefined;
      return `on a request that Sec-Fetch-Site calls ${JSON.stringify(String(site).slice(0, 32))}`;
    }
    if (trusted) return undefined;
    // neither header: not a browser of today; what an old browser can be made to send
    // without them is a GET (read-only endpoints only) or a form (never application/json)
    if (websocket) return 'on a WebSocket without an Origin';
    if (get) return undefined;
    if (req.method === 'POST' && JSON_TYPE.test(String(req.headers['content-type'] ?? ''))) return undefined;
    return 'on a request without Origin that is neither a GET nor a POST of application/json';
  }

  private async authenticate(req: IncomingMessage): Promise<Account | undefined> {
    if (req.headers.authorization === undefined && protocolToken(req) === undefined && cookieToken(req) !== undefined) {
      const why = this.cookieRefusal(req);
      if (why !== undefined) throw errors.Forbidden(ID, `the micro-token cookie is not accepted ${why}: the gateway takes it only from its own pages; send the token as Authorization: Bearer <token>`);
    }
    let credential: string | undefined;
    try {
      credential = this.credential(req);
      if (credential === undefined) return undefined;
      if (credential.startsWith('mk_')) {
        // the same check as auth.Token and auth.Inspect make of an API key
        const account = await this.options.accounts.keys.verify(credential);
        if (!account) throw errors.Unauthorized(ID, 'API key refused: unknown, revoked, expired or wrong');
        return account;
      }
      return await this.options.tokens.verify(credential);
    } catch (err) {
      // auth's storage out of reach (a 503) is not a wrong credential: it passes as it is;
      // nor is a blocked key (its secret matched): the caller gets the admin's message
      if (isMicroError(err) && (err.code >= 500 || err.id === BLOCKED_ERROR_ID)) throw err;
      // failed credentials count against the caller's IP: guessing is rate limited too
      if (this.limiter) {
        const wait = await this.limiter.take(`ip:${req.socket.remoteAddress ?? ''}`);
        if (wait > 0) throw tooMany(wait);
      }
      throw isMicroError(err) ? new MicroError(ID, 401, err.detail) : errors.Unauthorized(ID, 'invalid credentials');
    }
  }

  private async limit(req: IncomingMessage, account: Account | undefined): Promise<void> {
    if (!this.limiter) return;
    const wait = await this.limiter.take(this.limitKey(req, account));
    if (wait > 0) throw tooMany(wait);
  }

  private limitKey(req: IncomingMessage, account: Account | undefined): string {
    if (account) return `acct:${account.issuer}/${account.id}`;
    // the key of an anonymous caller is its socket's address: made once per connection
    let key = this.ipKeys.get(req.socket);
    if (key === undefined) {
      key = `ip:${req.socket.remoteAddress ?? ''}`;
      this.ipKeys.set(req.socket, key);
    }
    return key;
  }

  /** `service:<service>:<endpoint>` of an endpoint read from the registry, made once. */
  private resourceOf(service: string, ep: EndpointRecord): string {
    let r = this.resources.get(ep);
    if (r === undefined) {
      r = serviceResource(service, ep.name);
      this.resources.set(ep, r);
    }
    return r;
  }

  /** The namespace of the call: the account's, or the Micro-Namespace header (admins of micro; anonymous callers reach public endpoints only). */
  private namespaceOf(req: IncomingMessage, account: Account | undefined): string {
    const asked = req.headers['micro-namespace'];
    if (asked === undefined) return account?.issuer ?? 'micro';
    if (typeof asked !== 'string' || !NAMESPACE.test(asked)) throw errors.BadRequest(ID, 'micro-namespace: not a valid namespace name');
    if (account && asked !== account.issuer && !isPlatformAdmin(account)) {
      throw errors.Forbidden(ID, `account ${account.id} of namespace ${account.issuer} may not act in namespace ${asked}`);
    }
    return asked;
  }

  /** Reads the rules of a namespace when the cached ones are older than rulesTtl: before ruleSet (authorize). */
  private rulesFresh(namespace: string): boolean {
    const hit = this.rules.get(namespace);
    return hit !== undefined && Date.now() - hit.at < this.rulesTtl;
  }

  private async loadRules(namespace: string): Promise<void> {
    if (this.rulesFresh(namespace)) return;
    const hit = this.rules.get(namespace);
    const set = new RuleSet(await this.options.accounts.rules.list(namespace));
    // the oldest goes, not all: a set just loaded for a call in flight stays
    if (!hit && this.rules.size >= 1000) this.rules.delete(this.rules.keys().next().value as string);
    this.rules.set(namespace, { set, at: Date.now() });
  }

  /** The rules loadRules read. */
  private ruleSet(namespace: string): RuleSet {
    const hit = this.rules.get(namespace);
    if (!hit) throw errors.ServiceUnavailable(ID, `the rules of namespace ${namespace} are not loaded`);
    return hit.set;
  }

  /** The namespace's rules, as the service will apply them (core services guard themselves). */
  private authorize(service: string, endpoint: string, namespace: string, account: Account | undefined, ep?: EndpointRecord): void {
    if (isPlatformAdmin(account)) return;
    if (namespace === 'micro' && this.selfGuarded.has(service)) {
      // they check callers themselves; anonymous ones reach only their public endpoints,
      // refused here so that they get the gateway's one answer to strangers
      if (account || this.options.publicEndpoints?.[service]?.includes(endpoint)) return;
      throw credentialsRequired();
    }
    const resource = ep ? this.resourceOf(service, ep) : serviceResource(service, endpoint);
    const decision = this.ruleSet(namespace).evaluate(resource, account);
    if (decision.access === 'granted') return;
    if (!account) throw errors.Unauthorized(service, `credentials required to call ${resource} (no rule grants it)`);
    throw errors.Forbidden(service, `account ${account.id} may not call ${resource}${decision.rule ? `: rule ${decision.rule.id} denies it` : ' (no rule grants it)'}`);
  }

  /**
   * The token forwarded to the service. A core service (micro, self-guarded) gets the
   * caller's token (for an API key an access token of what the key acts as); any other
   * service — a node some account registered — gets that token scoped to it (`aud`, see
   * auth/scoped.ts), which it cannot replay anywhere else. Both are minted in process and
   * cached: a hit answers without a promise, so the hot path stays await-free.
   */
  private forwardToken(req: IncomingMessage, account: Account, namespace: string, service: string): string | Promise<string> {
    const credential = this.credential(req) as string;
    const now = Date.now() / 1000;
    if (namespace === 'micro' && this.selfGuarded.has(service)) return credential.startsWith('mk_') ? this.keyToken(credential, account, now) : credential;
    const audience = `${namespace}/${service}`;
    const hit = this.scopedTokens.get(credential, audience);
    if (hit && hit.until > now) return hit.token;
    return this.mintScoped(credential, account, audience, now);
  }

  /** An access token of what an API key acts as (cached until a minute before it expires). */
  private keyToken(credential: string, account: Account, now: number): string | Promise<string> {
    const hit = this.keyTokens.get(credential);
    if (hit && hit.exp - API_KEY_TOKEN_MARGIN > now) return hit.token;
    return this.options.tokens.issue(account).then(({ token, expiresAt }) => {
      if (this.keyTokens.size >= 1000) this.keyTokens.clear();
      this.keyTokens.set(credential, { token, exp: expiresAt });
      return token;
    });
  }

  private async mintScoped(credential: string, account: Account, audience: string, now: number): Promise<string> {
    const fromKey = credential.startsWith('mk_');
    const general = fromKey ? await this.keyToken(credential, account, now) : credential;
    const { token, expiresAt } = await this.options.tokens.scope(general, audience);
    // a key's token is renewed a minute early (keyToken): its scoped copies go with it
    this.scopedTokens.set(credential, audience, { token, until: fromKey ? expiresAt - API_KEY_TOKEN_MARGIN : expiresAt });
    return token;
  }

  private client(namespace: string): Client {
    let c = this.clients.get(namespace);
    if (!c) {
      c = new Client({ namespace, registry: this.options.registry, middleware: [], timeout: this.timeout, retries: 1, preferLocal: this.options.preferLocal ?? true });
      if (this.clients.size >= 1000) this.clients.clear();
      this.clients.set(namespace, c);
    }
    return c;
  }

  /**
   * The JSON body: application/json, at most maxBody bytes, at most maxDepth deep; none
   * is `{}`. A small body has usually been parsed with the headers (the HTTP parser runs
   * through the whole packet before this request's first await returns): then it is
   * taken from the stream's buffer at once, without a promise or listeners (which were
   * 3 % of the gateway's CPU under load).
   */
  private body(req: IncomingMessage, service: string): unknown {
    const type = req.headers['content-type'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    const length = Number(req.headers['content-length'] ?? 0);
    if (!chunked && length === 0) return {};
    if (!type || !JSON_TYPE.test(type)) {
      throw new MicroError(ID, 415, `content-type must be application/json (got ${type ? JSON.stringify(type.slice(0, 64)) : 'none'})`, 'Unsupported Media Type');
    }
    // the whole body is in the stream's buffer once its content-length bytes are there
    // (`complete` is set only later, when the parser reports the end of the message)
    const whole = req.complete ? req.readableLength <= this.maxBody : !chunked && req.readableLength === length;
    if (whole && req.listenerCount('data') === 0) {
      bodyTaken.add(req);
      const buffered = req.read() as Buffer | null;
      return this.parseBody(buffered === null ? '' : buffered.toString('utf8'), service);
    }
    return readBody(req, this.maxBody).then((buf) => {
      bodyTaken.add(req);
      return this.parseBody(buf.toString('utf8'), service);
    });
  }

  private parseBody(text: string, service: string): unknown {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      // a body of only white space is no body: checked here, off the path of good bodies
      if (text.trim() === '') return {};
      throw errors.BadRequest(service, `malformed JSON body: ${(err as Error).message.slice(0, 200)}`);
    }
    // a text of n characters nests at most n / 2 deep: short bodies need no walk
    if (text.length > 2 * this.maxDepth && tooDeep(value, this.maxDepth)) throw errors.BadRequest(service, `the request body nests deeper than ${this.maxDepth} levels`);
    return value;
  }

  private async openapi(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const account = await this.authenticate(req);
    await this.limit(req, account);
    // what a namespace holds, public endpoints included, is for its callers only
    if (!account) throw credentialsRequired();
    const namespace = this.namespaceOf(req, account);
    const own = await this.options.registry.listServices({ namespace });
    // micro's public services answer a tenant's calls of names its namespace does not hold
    const shared = namespace === 'micro' ? [] : (await this.options.registry.listServices({ namespace: 'micro' })).filter((r) => isPublicService(r) && !own.some((o) => o.name === r.name));
    const services = [...own, ...shared.map((r) => ({ ...r, namespace: 'micro' }))];
    await this.loadRules(namespace);
    const rules = this.ruleSet(namespace);
    const access = (service: string, endpoint: string): EndpointAccess | undefined => {
      // what an API key may not call is not its caller's to see
      if (!keyMayCall(account, service)) return undefined;
      // public: what a caller without credentials may call: a public rule (scope ''), or
      // for the core services, which guard themselves, their own public endpoints
      const open = namespace === 'micro' && this.selfGuarded.has(service)
        ? (this.options.publicEndpoints?.[service]?.includes(endpoint) ?? false)
        : rules.evaluate(serviceResource(service, endpoint), undefined).access === 'granted';
      try {
        this.authorize(service, endpoint, namespace, account);
        return open ? 'public' : 'credentials';
      } catch {
        return undefined;
      }
    };
    send(res, 200, openApiDocument(namespace, services, access, this.options.prices), req.method === 'HEAD');
  }

  /**
   * `GET /metrics` (issue 7): the Prometheus text of the caller's namespace; credentials
   * required; an admin of micro names another with `?namespace=` (or micro-namespace).
   */
  private async metrics(req: IncomingMessage, res: ServerResponse, query: string, stats: StatsCollector): Promise<void> {
    const account = await this.authenticate(req);
    if (!account) throw credentialsRequired();
    await this.limit(req, account);
    // what stats.Prometheus serves: a key limited to other services does not read it
    checkKeyServices(account, 'stats');
    let namespace = this.namespaceOf(req, account);
    const asked = query === '' ? null : new URLSearchParams(query).get('namespace');
    if (asked !== null) {
      if (!NAMESPACE.test(asked)) throw errors.BadRequest(ID, 'namespace: not a valid namespace name');
      if (asked !== account.issuer && !isPlatformAdmin(account)) throw errors.Forbidden(ID, `account ${account.id} of namespace ${account.issuer} may not read the metrics of namespace ${asked}`);
      namespace = asked;
    }
    const body = await stats.prometheus(namespace);
    res.writeHead(200, [...SECURITY_PAIRS, 'content-type', 'text/plain; version=0.0.4; charset=utf-8', 'content-length', String(Buffer.byteLength(body))]);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** `POST /webhooks/<name>`: a core service's raw route (webhooks.ts) gets the body unparsed; it authenticates the caller itself. */
  private async webhook(req: IncomingMessage, res: ServerResponse, path: string, routes: ReadonlyMap<string, WebhookRoute>): Promise<void> {
    if (req.method !== 'POST') return this.notAllowed(req, res, 'POST');
    const route = webhookRoute(routes, path);
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > this.maxBody) throw errors.PayloadTooLarge(ID, `the request body is ${length} bytes; the most is ${this.maxBody}`);
    const body = await readBody(req, this.maxBody);
    bodyTaken.add(req);
    const answer = await route({ method: req.method, headers: req.headers, body, peer: peerOf(req) });
    send(res, answer.status, answer.body);
  }

  /**
   * `GET|HEAD|PUT /<prefix>/<rest>` of a public service's route (routes.ts): anonymous,
   * rate limited per IP, the body of a PUT at most maxBodyBytes; the endpoint is called as
   * the gateway (a token of micro scoped to the service) and its answer written with the
   * gateway's own headers.
   */
  private async serveRoute(req: IncomingMessage, res: ServerResponse, target: RouteTarget, rest: string, query: string): Promise<void> {
    const requestId = identify(req);
    const method = req.method ?? '';
    if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT') return this.notAllowed(req, res, 'GET, HEAD, PUT');
    await this.limit(req, undefined);
    const request: RouteRequest = { method, path: rest, query: routeQuery(query), body: '', contentType: '' };
    if (method === 'PUT') {
      const length = req.headers['content-length'];
      if (length !== undefined && Number(length) > this.maxBody) throw errors.PayloadTooLarge(ID, `the request body is ${length} bytes; the most is ${this.maxBody}`);
      request.body = (await readBody(req, this.maxBody)).toString('base64');
      bodyTaken.add(req);
      request.contentType = String(req.headers['content-type'] ?? '').slice(0, 200);
    }
    const token = await this.routeToken(target.service);
    const answer = await this.client('micro').call(target.service, target.endpoint, request, { timeout: this.timeout, metadata: { authorization: `Bearer ${token}` }, peer: peerOf(req) });
    writeRouteAnswer(res, target.service, answer, method === 'HEAD', requestId);
  }

  /** The gateway's own token for a public service's routes: an account of micro, scoped to the service, minted in process and kept until a minute before it expires. */
  private async routeToken(service: string): Promise<string> {
    const now = Date.now() / 1000;
    const hit = this.routeTokens.get(service);
    if (hit && hit.until > now) return hit.token;
    const general = await this.options.tokens.issue({ id: 'service:gateway', type: 'service', issuer: 'micro', scopes: ['service', 'admin'] });
    const { token, expiresAt } = await this.options.tokens.scope(general.token, `micro/${service}`);
    this.routeTokens.set(service, { token, until: Math.min(expiresAt, general.expiresAt) - API_KEY_TOKEN_MARGIN });
    return token;
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown, id: string): void {
    const e = toMicroErrorPublic(err, id);
    this.options.stats?.gateway.failed(e.code);
    if (e.code >= 500 && e.code !== 504 && e.code !== 501) this.logger?.error({ err, url: req.url?.slice(0, 200) }, 'gateway call failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // a body that was not read is not read: the connection closes after the answer. Decided
    // from the request alone (not from how much of the body had arrived), so that the
    // headers of an answer never tell how long the gateway took to give it
    if (hasBody(req) && !bodyTaken.has(req)) res.setHeader('connection', 'close');
    if (e.code === 429) res.setHeader('retry-after', String(e instanceof RateLimited ? e.retryAfter : 1));
    const code = e.code >= 400 && e.code <= 599 ? e.code : 500;
    send(res, code, e.toJSON(), false, requestIdOf(req));
  }
}

/** A call resolved: what the gateway calls, as whom, in which namespace. */
interface Resolved {
  call: StreamCall;
  /** what limits count against */
  key: string;
  /** the namespace the call acts in */
  namespace: string;
  /** where the service runs (micro for the core services) */
  home: string;
  account: Account | undefined;
  idempotencyKey: string | undefined;
}

/** A meter's refusal of an anonymous caller: the one 401 strangers get (see credentialsRequired). */
function anonymousRefusal(err: unknown): unknown {
  return isMicroError(err) && err.code === 401 ? credentialsRequired() : err;
}

/** Whether the request announced a body. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * `scheme://host` the request came to: the Host header, and https when a proxy in front
 * says so in X-Forwarded-Proto (the gateway itself speaks plain HTTP). A page of another
 * site cannot set either header on a request a browser sends for it.
 */
function ownOrigin(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  if (!host) return undefined;
  const forwarded = req.headers['x-forwarded-proto'];
  const proto = typeof forwarded === 'string' && forwarded.split(',')[0]?.trim().toLowerCase() === 'https' ? 'https' : 'http';
  return `${proto}://${host.toLowerCase()}`;
}

/** The micro-token cookie, or undefined. */
function cookieToken(req: IncomingMessage): string | undefined {
  const cookie = req.headers.cookie;
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === 'micro-token') return decodeCookie(part.slice(eq + 1).trim());
  }
  return undefined;
}

function tooMany(wait: number): MicroError {
  return new RateLimited(wait, ID);
}

/**
 * The body, up to `max` bytes (413 past it). Read with 'data' events rather than
 * for-await: an async iterator per request was 6 % of the gateway's CPU under load.
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        cleanup();
        // what follows is not read (the 413 closes the connection)
        req.pause();
        reject(errors.PayloadTooLarge(ID, `the request body is larger than ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function send(res: ServerResponse, code: number, value: unknown, headOnly = false, requestId?: string): void {
  const body = JSON.stringify(value);
  // one writeHead with a flat list: setHeader per header (validated one by one) cost
  // more than the rest of the answer under load (--cpu-prof, see BENCHMARKS.md)
  const headers = [...SECURITY_PAIRS, 'content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(body))];
  if (requestId !== undefined) headers.push('x-request-id', requestId);
  res.writeHead(code, headers);
  res.end(headOnly ? undefined : body);
}

/** `/v1/svc/Call` → [svc, Call]; `/v1/svc/Handler/Method` → [svc, Handler.Method]; 400 for anything else. */
function parsePath(path: string): [string, string] {
  const parts = path.slice(4).split('/');
  if (parts.length === 3 && parts[2] === '') parts.pop();
  const [asked, a, b] = parts as [string, string | undefined, string | undefined];
  // service names are lower-case (SERVICE_NAME): `/v1/DB/Read` is db's, as M3O answered
  const service = asked.toLowerCase();
  if (parts.length < 2 || parts.length > 3) throw errors.BadRequest(ID, 'the path must be /v1/{service}/{endpoint} or /v1/{service}/{Handler}/{Method}');
  if (!SERVICE.test(service)) throw errors.BadRequest(ID, 'invalid service name in the path: letters, digits, ".", "_" and "-" only');
  if (b === undefined) {
    if (!ENDPOINT.test(a as string)) throw errors.BadRequest(ID, 'invalid endpoint name in the path: letters, digits and "_" only');
    return [service, a as string];
  }
  if (!SEGMENT.test(a as string) || !SEGMENT.test(b)) throw errors.BadRequest(ID, 'invalid endpoint name in the path: letters, digits and "_" only');
  return [service, `${a}.${b}`];
}

/** Where the calls of a service go: its endpoints, the namespace serving them, and whether it is a public service of micro. */
interface Located {
  list: EndpointRecord[];
  at: number;
  home: string;
  public: boolean;
}

/** `Call` answers to `Call` and `call` (the SDK's alias, lower-case first letter). */
function findEndpoint(endpoints: EndpointRecord[], name: string): EndpointRecord | undefined {
  return endpoints.find((e) => e.name === name) ?? endpoints.find((e) => e.name.charAt(0).toLowerCase() + e.name.slice(1) === name);
}

/** The token of a WebSocket subprotocol `micro-token.<token>` (browsers cannot set headers on a WebSocket). */
function protocolToken(req: IncomingMessage): string | undefined {
  if (req.headers.upgrade === undefined) return undefined;
  const offered = req.headers['sec-websocket-protocol'];
  if (typeof offered !== 'string') return undefined;
  for (const p of offered.split(',')) {
    const v = p.trim();
    if (v.startsWith('micro-token.') && v.length > 'micro-token.'.length) return v.slice('micro-token.'.length);
  }
  return undefined;
}

function decodeCookie(value: string): string {
  const v = value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** GET: the query parameters as the request, coerced to the types of the request schema. */
function queryRequest(query: string, ep: EndpointRecord, service: string): Record<string, unknown> {
  const fields = flatFields(ep.request);
  if (!fields) throw errors.BadRequest(service, `${service}.${ep.name} takes a nested request: POST it as JSON`);
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(query);
  } catch {
    throw errors.BadRequest(service, 'malformed query string');
  }
  for (const [name, raw] of params) {
    const type = fields.get(name);
    if (!type) throw errors.BadRequest(service, `unknown query parameter ${JSON.stringify(name.slice(0, 64))}; ${service}.${ep.name} takes ${[...fields.keys()].join(', ') || 'none'}`);
    if (name in out) throw errors.BadRequest(service, `${name}: given more than once`);
    if (type === 'string') out[name] = raw;
    else if (type === 'boolean') {
      if (raw === 'true' || raw === '1' || raw === '') out[name] = true;
      else if (raw === 'false' || raw === '0') out[name] = false;
      else throw errors.BadRequest(service, `${name}: expected true or false`);
    } else {
      const n = raw.trim() === '' ? NaN : Number(raw);
      if (!Number.isFinite(n) || (type === 'integer' && !Number.isInteger(n))) throw errors.BadRequest(service, `${name}: expected ${type === 'integer' ? 'an integer' : 'a number'}`);
      out[name] = n;
    }
  }
  return { ...out };
}
