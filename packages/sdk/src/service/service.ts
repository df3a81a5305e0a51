import { z } from 'zod';
import type { Logger } from '../logger/logger.js';
import { rootLogger, serviceLogger } from '../logger/logger.js';
import { defaultNamespace, defaultServiceAddress } from '../config/env.js';
import { defaultRegistry } from '../client/defaults.js';
import type { Registry, ServiceRecord } from '../registry/registry.js';
import { RpcServer } from '../transport/server.js';
import { NatsRpcListener, type NatsTransportOptions } from '../transport/nats/server.js';
import { profileFromEnv } from '../engines/profile.js';
import { randomHex } from '../util/ids.js';
import { endpoint, endpointRecord, PUBLIC_SERVICE_KEY, type AnyEndpointDef, type ServiceDef } from './definition.js';
import type { Handler, Handlers } from './handlers.js';
import { addLocal, removeLocal, type LocalInstance } from './local.js';
import { Router, type HandlerMiddleware } from './router.js';
import { ServiceAuth } from '../auth/enforce.js';
import { activeTracing } from '../tracing/tracing.js';
import { METRICS_ENDPOINT, metricsResponseSchema, ServiceMetrics } from '../metrics/metrics.js';

export interface ServiceOptions {
  /** default MICRO_NAMESPACE or `micro` */
  namespace?: string;
  /**
   * where to listen: `tcp://host:port`, `unix:///path`, or false to serve only callers
   * in this process (default MICRO_SERVICE_ADDRESS or tcp://127.0.0.1:0, a free port)
   */
  address?: string | false;
  /** share one listener between the services of a process */
  server?: RpcServer;
  registry?: Registry;
  /** seconds a registration lives without a heart-beat (default MICRO_REGISTER_TTL, else 30; 0 = until deregistered) */
  registerTTL?: number;
  /** seconds between heart-beats (default a third of the TTL) */
  registerInterval?: number;
  middleware?: HandlerMiddleware[];
  /** check every response against its schema (default false: the types check them) */
  validateResponses?: boolean;
  logger?: Logger;
  metadata?: Record<string, string>;
  /**
   * added to the metadata of this instance's registry node (beside pid and instance), e.g.
   * `server`: the micro server node that serves a core service (default none)
   */
  nodeMetadata?: Record<string, string>;
  /** ms to let calls in flight finish on stop (default 10,000) */
  drainTimeout?: number;
  /** largest frame accepted by this service's listener (default 4 MiB) */
  maxFrame?: number;
  /**
   * Serve over NATS (transport/nats): the default with MICRO_PROFILE=nats, which takes
   * the URL and prefix from the profile; `false` turns it off. Served over NATS, the
   * service registers its `nats:` address and listens on TCP only when `address` (or
   * MICRO_SERVICE_ADDRESS) is given. [NATS transport, issue 6]
   */
  nats?: NatsTransportOptions | false;
  /**
   * Checks every call where it is served: the caller's token, the namespace, the access
   * rules of the namespace (see auth/enforce.ts). Default: on when the process runs
   * against a micro server (MICRO_SERVER is set), off otherwise (unit tests, services in
   * one process). `false` turns it off; a ServiceAuth checks against that server.
   */
  auth?: boolean | ServiceAuth;
}

/** Every service answers this endpoint: is it up, and is it draining. */
export const HEALTH_ENDPOINT = 'Debug.Health';
const healthResponse = z.object({
  status: z.enum(['ok', 'draining']),
  service: z.string(),
  version: z.string(),
  node: z.string(),
  uptime: z.number().describe('seconds since start'),
  inflight: z.number(),
});
const healthEndpoint = endpoint({
  request: z.object({}),
  response: healthResponse,
  description: 'health of this instance',
  idempotent: true,
  readonly: true,
});

// metrics (issue 7): every service answers Debug.Metrics with its families (metrics/)
const metricsEndpoint = endpoint({
  request: z.object({}),
  response: metricsResponseSchema,
  description: 'calls, errors and latency per endpoint, and process figures, of this instance',
  idempotent: true,
  readonly: true,
});

export type ServiceState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * A running instance of a service definition with its handlers.
 *
 * ```ts
 * const svc = new Service(helloworld, { Call: async ({ name }) => ({ message: `Hello ${name}` }) });
 * await svc.start();   // listens, registers, heart-beats
 * await svc.stop();    // deregisters, drains calls in flight, closes
 * ```
 */
export class Service<D extends ServiceDef = ServiceDef> {
  readonly def: D;
  readonly namespace: string;
  readonly nodeId: string;
  readonly logger: Logger;
  private readonly options: ServiceOptions;
  private readonly router: Router;
  private readonly registry: Registry;
  private server: RpcServer | undefined;
  private ownsServer = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private local: LocalInstance | undefined;
  private startedAt = 0;
  private boundAddress: string | undefined;
  private currentState: ServiceState = 'new';
  private readonly auth: ServiceAuth | undefined;
  /** calls, errors and latency per endpoint (metrics/, issue 7) */
  readonly metrics: ServiceMetrics;

  constructor(def: D, handlers: Handlers<D>, options: ServiceOptions = {}) {
    this.def = def;
    this.options = options;
    this.namespace = options.namespace ?? defaultNamespace();
    this.nodeId = `${def.name}-${randomHex(8)}`;
    this.logger = serviceLogger(options.logger ?? rootLogger(), { service: def.name, namespace: this.namespace, node: this.nodeId });
    this.registry = options.registry ?? defaultRegistry();
    this.metrics = new ServiceMetrics(def.name);
    const endpoints: Record<string, AnyEndpointDef> = { ...def.endpoints, [HEALTH_ENDPOINT]: healthEndpoint, [METRICS_ENDPOINT]: metricsEndpoint };
    const allHandlers: Record<string, Handler> = {
      ...(handlers as Record<string, Handler>),
      [HEALTH_ENDPOINT]: () => this.health(),
      [METRICS_ENDPOINT]: async () => ({ metrics: await this.metrics.snapshot() }),
    };
    for (const name of Object.keys(handlers)) {
      if (!(name in def.endpoints)) throw new TypeError(`service ${def.name}: handler ${name} has no endpoint in the definition`);
    }
    this.auth = serviceAuth(options.auth, this.logger);
    if (def.public) this.auth?.servePublic(def.name);
    // auth runs first: no other middleware sees a call that is not allowed; the router's
    // `observe` (metrics) wraps it all, so that denied calls are counted (as 401/403)
    // tracing (issue 7): a SERVER span around each call served, when the process traces
    const tracing = activeTracing();
    const traced = tracing ? [tracing.serverMiddleware(this.namespace)] : [];
    const middleware = [...(this.auth ? [this.auth.middleware()] : []), ...traced, ...(options.middleware ?? [])];
    this.router = new Router({
      service: def.name,
      endpoints,
      handlers: allHandlers,
      middleware,
      validateResponses: options.validateResponses ?? false,
      observe: (endpoint, code, seconds) => this.metrics.observe(endpoint, code, seconds),
    });
  }

  get state(): ServiceState {
    return this.currentState;
  }

  /** The address callers in other processes use, once started (undefined when in-process only). */
  get address(): string | undefined {
    return this.boundAddress;
  }

  /** The registry record of this instance. */
  record(): ServiceRecord {
    const endpoints = Object.entries(this.def.endpoints).map(([name, ep]) => endpointRecord(name, ep));
    endpoints.push(endpointRecord(HEALTH_ENDPOINT, healthEndpoint), endpointRecord(METRICS_ENDPOINT, metricsEndpoint));
    const record: ServiceRecord = {
      name: this.def.name,
      version: this.def.version,
      namespace: this.namespace,
      endpoints,
      nodes: this.boundAddress ? [{ id: this.nodeId, address: this.boundAddress, metadata: { ...this.options.nodeMetadata, ...nodeMetadata() } }] : [],
    };
    if (this.def.description) record.description = this.def.description;
    const metadata: Record<string, string> = { ...this.def.metadata, ...this.options.metadata };
    if (this.def.public) metadata[PUBLIC_SERVICE_KEY] = 'true';
    if (Object.keys(metadata).length > 0) record.metadata = metadata;
    return record;
  }

  async start(): Promise<this> {
    if (this.currentState !== 'new' && this.currentState !== 'stopped') throw new Error(`service ${this.def.name} is ${this.currentState}`);
    this.currentState = 'starting';
    this.startedAt = Date.now();
    try {
      // keys and rules before the first call can arrive (a failure is retried on that call)
      await this.auth?.start(this.namespace, this.logger);
      const address = this.options.address ?? defaultServiceAddress();
      // NATS transport (issue 6): served over NATS in the nats profile
      const nats = address === false ? undefined : natsOptions(this.options.nats);
      if (this.options.server) {
        this.server = this.options.server;
        this.boundAddress = this.server.address;
      } else if (address !== false) {
        this.server = new RpcServer({ logger: this.logger, maxFrame: this.options.maxFrame });
        this.ownsServer = true;
        if (!nats || this.options.address !== undefined || process.env.MICRO_SERVICE_ADDRESS) this.boundAddress = await this.server.listen(address);
        if (nats) this.server.attach(new NatsRpcListener(this.server, { ...nats, logger: this.logger }));
      }
      this.server?.mount(this.namespace, this.router, this.logger);
      // the address of the first listener attached (NATS), once callers can reach it there
      if (this.server) this.boundAddress = await this.server.expose(this.namespace, this.def.name);
      this.local = {
        router: this.router,
        logger: this.logger,
        namespace: this.namespace,
        nodeId: this.nodeId,
        accepting: true,
        inflight: 0,
        callEnded: () => {
          const local = this.local;
          if (local) local.inflight--;
        },
      };
      addLocal(this.local);
      if (this.boundAddress) await this.register();
      this.currentState = 'running';
      this.logger.info({ address: this.boundAddress ?? 'in-process', namespace: this.namespace }, `service ${this.def.name} started`);
      return this;
    } catch (err) {
      await this.teardown();
      this.currentState = 'stopped';
      throw err;
    }
  }

  private async register(): Promise<void> {
    const ttl = this.options.registerTTL ?? registerTtlFromEnv();
    const interval = (this.options.registerInterval ?? ttl / 3) * 1000;
    await this.registry.register(this.record(), { ttl, namespace: this.namespace });
    // a registration without a TTL never expires, so it needs no heart-beat
    if (ttl <= 0) return;
    this.heartbeat = setInterval(() => {
      this.registry.register(this.record(), { ttl, namespace: this.namespace }).catch((err: unknown) => {
        this.logger.warn({ err }, 'registry heart-beat failed; retrying at the next interval');
      });
    }, interval);
    this.heartbeat.unref();
  }

  /**
   * Graceful stop: leave the registry (callers move elsewhere), refuse new calls, let the
   * calls in flight finish (up to drainTimeout), then close.
   */
  async stop(): Promise<void> {
    if (this.currentState !== 'running') return;
    this.currentState = 'stopping';
    const timeout = this.options.drainTimeout ?? 10_000;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (this.boundAddress) {
      await this.registry.deregister(this.record(), { namespace: this.namespace }).catch((err: unknown) => {
        this.logger.warn({ err }, 'could not deregister; the registration expires with its TTL');
      });
    }
    if (this.local) this.local.accepting = false;
    const deadline = Date.now() + timeout;
    if (this.ownsServer && this.server) await this.server.drain(timeout);
    while (this.local && this.local.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await this.teardown();
    this.currentState = 'stopped';
    this.logger.info(`service ${this.def.name} stopped`);
  }

  private async teardown(): Promise<void> {
    this.auth?.stop();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (this.local) removeLocal(this.local);
    this.local = undefined;
    this.server?.unmount(this.namespace, this.def.name);
    if (this.ownsServer) await this.server?.close();
    this.server = undefined;
    this.ownsServer = false;
    this.boundAddress = undefined;
  }

  private health(): z.input<typeof healthResponse> {
    return {
      status: this.currentState === 'running' ? 'ok' : 'draining',
      service: this.def.name,
      version: this.def.version,
      node: this.nodeId,
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
      inflight: (this.local?.inflight ?? 0) + (this.ownsServer ? (this.server?.activeCalls ?? 0) : 0),
    };
  }
}

/** The auth of a service from its option: see ServiceOptions.auth. */
function serviceAuth(option: ServiceOptions['auth'], logger: Logger): ServiceAuth | undefined {
  if (option instanceof ServiceAuth) return option;
  if (option === false) return undefined;
  const fromEnv = ServiceAuth.fromEnv(logger, option === true);
  if (option === true && !fromEnv) throw new TypeError('auth: true needs MICRO_SERVER, the address of micro server (or pass a ServiceAuth)');
  return fromEnv;
}

/** The NATS transport of a service from its option and the profile (issue 6). */
function natsOptions(option: ServiceOptions['nats']): NatsTransportOptions | undefined {
  if (option === false) return undefined;
  if (option) return option;
  const profile = profileFromEnv();
  return profile.name === 'nats' ? { url: profile.natsUrl, prefix: profile.prefix } : undefined;
}

/** What a node tells about its process: its pid and, under the runtime, its instance id. */
function nodeMetadata(): Record<string, string> {
  const md: Record<string, string> = { pid: String(process.pid) };
  if (process.env.MICRO_RUNTIME_INSTANCE) md.instance = process.env.MICRO_RUNTIME_INSTANCE;
  return md;
}

/**
 * Starts a service and stops it gracefully on SIGINT / SIGTERM: the one call a service's
 * main file needs.
 *
 * ```ts
 * await run(helloworld, { Call: async ({ name }) => ({ message: `Hello ${name}` }) });
 * ```
 */
export async function run<D extends ServiceDef>(def: D, handlers: Handlers<D>, options: ServiceOptions = {}): Promise<Service<D>> {
  const svc = new Service(def, handlers, options);
  await svc.start();
  const shutdown = (signal: string) => {
    svc.logger.info(`${signal} received, stopping`);
    svc.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        svc.logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  // under the runtime, a service outlives neither its server nor a kill -9 of it
  if (process.env.MICRO_RUNTIME_INSTANCE) {
    const parent = process.ppid;
    const watch = setInterval(() => {
      if (process.ppid !== parent) {
        clearInterval(watch);
        shutdown('parent exit');
      }
    }, 1_000);
    watch.unref();
  }
  return svc;
}

/**
 * MICRO_REGISTER_TTL: seconds an instance stays in the registry after its last heart-beat
 * (how long a killed instance can still be picked). Default 30; 1 to 3600.
 */
function registerTtlFromEnv(): number {
  const raw = process.env.MICRO_REGISTER_TTL;
  if (raw === undefined || raw.trim() === '') return 30;
  const ttl = Number(raw);
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 3600) throw new Error(`MICRO_REGISTER_TTL must be a whole number of seconds from 1 to 3600, not "${raw}"`);
  return ttl;
}
