
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import {
  brokerService,
  createLogger,
  errors,
  MemoryBroker,
  MemoryRegistry,
  NatsBroker,
  NatsRpcListener,
  microHome,
  processAlive,
  privateDir,
  profileFromEnv,
  redactUrl,
  readJson,
  registryService,
  runtime as runtimeService,
  RpcServer,
  Service,
  writeJsonDurable,
  type Broker,
  type Logger,
  type BlobStore,
  type Profile,
  type Registry,
} from '@micro/sdk';
import { authKeyFromEnv, openAuthStorage } from './auth/open.js';
import type { AuthAccounts, AuthTokens } from './auth/storage.js';
import { authenticate } from './auth/guard.js';
import { authCoreService } from './auth/index.js';
import { guardedBroker, guardedRegistry, positiveFromEnv, type CoreContext, type CoreService, type CoreServiceFactory } from './core.js';
import { coreServicesFor } from './core-services.js';
import { HostedServices, selectHosted, type HostedService } from './hosted/index.js';
import { PURGE_ERROR_ID, purgeAuth, purgeNamespace, purgeRegistry, type PurgeReport, type PurgeStep } from './purge/index.js';
import { openQuotas, quotaCoreService, type Quotas } from './quota/index.js';
import { StatsCollector, statsCoreService } from './stats/index.js';
import { ensureServerDirs, nodeId, serverPaths, type ServerPaths } from './home.js';
import type { PostgresRuntimeDirectory } from './runtime/directory.js';
import { DEFAULT_NODE_LEASE } from './runtime/lease.js';
import { SERVER_NODE_KEY, withoutEndedServers } from './registry/leases.js';
import { LocalRuntime, runtimeHandlers, type Runtime, type RuntimeOptions } from './runtime/index.js';
import { runtimeKind } from './runtime/kubernetes/kind.js';
import type { KubernetesRuntimeOptions } from './runtime/kubernetes/runtime.js';
import type { KubeClientOptions } from './runtime/kubernetes/client.js';
import { defaultProvided } from './runtime/build.js';
import { installPathsFor, Sandbox, type SandboxOptions } from './runtime/sandbox.js';
import { checkGatewayRate, DEFAULT_GATEWAY_ADDRESS, Gateway, parseGatewayRate, type GatewayMeter, type GatewayRate } from './gateway/index.js';
import type { RedisRateLimiter } from './gateway/ratelimit-redis.js';
import { collectWebhooks } from './gateway/webhooks.js';
import { collectRoutes } from './gateway/routes.js';

export interface MicroServerOptions {
  /** MICRO_HOME (default: the environment's, or ~/.micro) */
  home?: string;
  /** RPC address (default MICRO_SERVER_ADDRESS or tcp://127.0.0.1:8081) */
  address?: string;
  logger?: Logger;
  /** runtime settings (backoff, timings) — tests make them short */
  runtime?: Pick<RuntimeOptions, 'backoff' | 'timing' | 'timeouts' | 'uploadLimits' | 'untrusted'>;
  /** the sandbox of tenant services (default mode MICRO_RUNTIME_SANDBOX, limits MICRO_SANDBOX_*) */
  sandbox?: Pick<SandboxOptions, 'mode' | 'limitsFor' | 'diskCheckEvery'>;
  /** MICRO_RUNTIME=kubernetes: timings of builds, rollouts and probes, and the client's retries — tests make them short */
  kubernetes?: Pick<KubernetesRuntimeOptions, 'timing' | 'resources' | 'reconcile'> & { clientOptions?: KubeClientOptions };
  /**
   * HTTP API gateway address (default MICRO_GATEWAY_ADDRESS, else 127.0.0.1:8080 — or a
   * free port of 127.0.0.1 when the RPC address asks for port 0); false: no gateway
   */
  gateway?: string | false;
  /**
   * The gateway's limit per caller (an account; anonymous callers and failed credentials
   * per IP): `rate` calls a second in bursts of up to `burst` (default twice the rate).
   * false turns it off, meant for benchmarks only: anonymous callers and guessed
   * credentials are then not slowed either. Each namespace's requestsPerSecond quota
   * applies either way. Default MICRO_GATEWAY_RATE, else 50 a second in bursts of 100.
   */
  gatewayRate?: GatewayRate;
  /**
   * Whether nodes of a namespace may register with an address (the registry guard,
   * registry/guard.ts); default: the runtime's rule when it has one (Kubernetes: an address
   * of one of the namespace's pods), else the sandbox's (a sandboxed namespace serves only
   * from unix sockets in its own folder; any address when the sandbox is off). Admins of
   * micro are not held to it.
   */
  addressAllowed?: (namespace: string, address: string) => boolean | Promise<boolean>;
  /**
   * More services to host in namespace `micro` beside the core ones, each a plain factory
   * (the platform layer, `@micro/platform`, joins this way; `micro server` passes it)
   */
  coreServices?: readonly CoreServiceFactory[];
  /**
   * Public services to host in process (the value-add services of services/): see
   * hosted/. Which of them run is chosen by MICRO_SERVICES (default all; `none`; or
   * `db,user,…`). Default none.
   */
  services?: readonly HostedService[];
}

/** The gateway's per-caller limit: the option, else MICRO_GATEWAY_RATE, else undefined (the default). */
function gatewayRateOf(option: GatewayRate | undefined): { rate: number; burst: number } | false | undefined {
  if (option !== undefined) return checkGatewayRate(option, 'gatewayRate');
  const text = process.env.MICRO_GATEWAY_RATE;
  return text === undefined || text.trim() === '' ? undefined : parseGatewayRate(text);
}

/** What `<home>/server/server.json` says about a running server. */
export interface ServerInfo {
  address: string;
  /** the API gateway's http:// URL, when it runs */
  gateway?: string;
  pid: number;
  startedAt: string;
}

export const DEFAULT_SERVER_ADDRESS = 'tcp://127.0.0.1:8081';

/**
 * micro server: the core services in one process, each an ordinary service behind the
 * same RPC interface and on one address — registry, broker and auth (the runtime joins
 * them). One server per MICRO_HOME, guarded by a lock file.
 */
export class MicroServer {
  readonly paths: ServerPaths;
  readonly logger: Logger;
  /** where services are found: in memory, or (nats profile) a JetStream KV bucket the nodes share */
  registry: Registry = new MemoryRegistry();
  /** pub/sub: in memory, or (nats profile) NATS subjects */
  broker: Broker = new MemoryBroker();
  /** the engines this server runs on (MICRO_PROFILE), read at start */
  profile: Profile = { name: 'local' };
  private readonly requestedAddress: string;
  private rpc: RpcServer | undefined;
  private services: Service[] = [];
  private cores: CoreService[] = [];
  private accounts: AuthAccounts | undefined;
  private quotas: Quotas | undefined;
  private tokens: AuthTokens | undefined;
  private limiter: RedisRateLimiter | undefined;
  private locked = false;
  private boundAddress: string | undefined;
  private runtime: Runtime | undefined;
  /** the Kubernetes runtime's transfers on the gateway (/runtime/…) */
  private transfers: ((req: IncomingMessage, res: ServerResponse, rest: string) => Promise<void>) | undefined;
  private directory: PostgresRuntimeDirectory | undefined;
  private readonly runtimeOptions: MicroServerOptions['runtime'];
  private readonly addressAllowed: MicroServerOptions['addressAllowed'];
  private readonly sandboxOptions: MicroServerOptions['sandbox'];
  private readonly kubernetesOptions: MicroServerOptions['kubernetes'];
  private readonly extraServices: readonly CoreServiceFactory[];
  private readonly hostedServices: readonly HostedService[];
  private hosted: HostedServices | undefined;
  /** how tenant services are sandboxed; its addressAllowed says where a namespace may serve from */
  sandbox: Sandbox | undefined;
  private readonly gatewayAddress: string | false;
  /** undefined: the gateway's default (50 a second, bursts of 100) */
  private readonly gatewayRate: { rate: number; burst: number } | false | undefined;
  private gateway: Gateway | undefined;

  constructor(options: MicroServerOptions = {}) {
    this.paths = serverPaths(options.home ?? microHome());
    this.requestedAddress = options.address ?? process.env.MICRO_SERVER_ADDRESS ?? DEFAULT_SERVER_ADDRESS;
    this.logger = options.logger ?? createLogger().child({ component: 'server' });
    this.runtimeOptions = options.runtime;
    this.addressAllowed = options.addressAllowed;
    this.sandboxOptions = options.sandbox;
    this.kubernetesOptions = options.kubernetes;
    this.extraServices = options.coreServices ?? [];
    this.hostedServices = options.services ?? [];
    // --- API gateway: where it listens (a server on a free port gets a gateway on a free port)
    this.gatewayAddress =
      options.gateway ?? process.env.MICRO_GATEWAY_ADDRESS ?? (/:0$/.test(this.requestedAddress) ? 'tcp://127.0.0.1:0' : DEFAULT_GATEWAY_ADDRESS);
    // checked here, so that a wrong setting stops the server before it starts anything
    this.gatewayRate = gatewayRateOf(options.gatewayRate);
  }

  /** `http://host:port` of the API gateway, or undefined when it is off. */
  get gatewayUrl(): string | undefined {
    return this.gateway?.url;
  }

  get address(): string {
    if (!this.boundAddress) throw new Error('micro server is not started');
    return this.boundAddress;
  }

  async start(): Promise<this> {
    ensureServerDirs(this.paths);
    this.lock();
    try {
      // accounts, rules, API keys, sessions and signing keys: <home>/data/auth.db and
      // server/jwt-keys.json (local profile), or Postgres shared by the nodes (nats)
      const profile = profileFromEnv();
      this.profile = profile;
      if (profile.name === 'nats') {
        // the registry and pub/sub every node shares; connecting waits (with backoff) for NATS
        const onRetry = (message: string) => this.logger.warn(message);
        // the engines of this profile are loaded only here (see nats.ts)
        const { openRegistry } = await import('./nats.js');
        this.registry = await openRegistry(profile, { onRetry });
        this.broker = await new NatsBroker({ url: profile.natsUrl, prefix: profile.prefix }).connect();
        this.logger.info({ nats: redactUrl(profile.natsUrl), postgres: redactUrl(profile.postgresUrl), redis: redactUrl(profile.redisUrl), prefix: profile.prefix }, 'nats profile: engines connected');
      }
      const auth = await openAuthStorage(profile, { home: this.paths.home, serverDir: this.paths.dir, keysPath: this.paths.keys }, { logger: this.logger });
      this.accounts = auth.accounts;
      this.tokens = auth.tokens;
      // the local runtime starts every instance afresh, with new secrets (this node's only);
      // a cluster's pods outlive the server and keep the secrets their Secrets hold
      if (runtimeKind() === 'local') await this.accounts.dropServiceSecrets();
      if (!existsSync(this.paths.admin) || !(await this.accounts.get('admin', 'micro'))) {
        writeJsonDurable(this.paths.admin, { ...(await this.accounts.createAdmin()), namespace: 'micro' });
        this.logger.info(`created the admin account; its secret is in ${this.paths.admin}`);
      }
      this.rpc = new RpcServer({ logger: this.logger });
      this.boundAddress = await this.rpc.listen(this.requestedAddress);
      // nats profile: the core services are served over NATS too (and registered with their
      // nats: address, so the services and gateways of every node reach them); they leave the
      // shared registry within 30 s of a node's death, and `micro services` when its lease ends
      if (profile.name === 'nats') this.rpc.attach(new NatsRpcListener(this.rpc, { url: profile.natsUrl, prefix: profile.prefix, logger: this.logger }));
      // the cluster isolates a Kubernetes runtime's services (their pods, Pod Security, NetworkPolicies):
      // no local sandbox, and their nodes register with their pods' addresses
      if (runtimeKind() === 'local') this.sandbox = await this.openSandbox(this.rpc);
      // nats profile: the core services' registry nodes carry this node's id, so that `micro
      // services` drops them once its lease ends (registry/leases.ts)
      const nodeMetadata = profile.name === 'nats' ? { [SERVER_NODE_KEY]: nodeId(this.paths.dir) } : undefined;
      const common = { namespace: 'micro', server: this.rpc, registry: this.registry, logger: this.logger, registerTTL: profile.name === 'nats' ? 30 : 0, auth: false as const, nodeMetadata };
      // nats profile: this node's lease and what every node's runtime runs, in PostgreSQL (runtime/directory.ts, lease.ts)
      if (profile.name === 'nats') {
        const { PostgresRuntimeDirectory } = await import('./nats.js');
        const leaseMs = (positiveFromEnv('MICRO_NODE_LEASE', 'whole number of seconds') ?? DEFAULT_NODE_LEASE) * 1000;
        this.directory = await PostgresRuntimeDirectory.open({
          url: profile.postgresUrl,
          prefix: profile.prefix,
          node: nodeId(this.paths.dir),
          logger: this.logger.child({ component: 'runtime' }),
          lease: { leaseMs, address: this.boundAddress },
          authKey: authKeyFromEnv(),
        });
      }
      const dataDir = privateDir(join(this.paths.home, 'data'));
      // limits and usage of each namespace, checked where each resource is used (quota/)
      this.quotas = await openQuotas(profile, dataDir);
      // uploaded sources are read from the store service's blobs, once it runs
      let blobs: BlobStore | undefined;
      const kind = runtimeKind();
      if (kind === 'kubernetes') {
        // loaded only here: the cluster's client is of no use to a server running services locally
        const { kubernetesRuntimeFromEnv } = await import('./runtime/kubernetes/index.js');
        const k8s = kubernetesRuntimeFromEnv({
          ...this.kubernetesOptions,
          ...(this.runtimeOptions?.uploadLimits ? { uploadLimits: this.runtimeOptions.uploadLimits } : {}),
          blobs: () => blobs,
          home: this.paths.home,
          registry: this.registry,
          credentials: (service, namespace) => this.serviceCredentials(service, namespace),
          quotas: this.quotas,
          logger: this.logger.child({ component: 'runtime' }),
        });
        this.transfers = (req, res, rest) => k8s.serveTransfer(req, res, rest);
        this.runtime = k8s;
      } else {
        this.runtime = new LocalRuntime({
          ...this.runtimeOptions,
          blobs: () => blobs,
          home: this.paths.home,
          // services run on this machine: they reach a server bound to every interface on loopback
          serverAddress: this.boundAddress.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:'),
          registry: this.registry,
          profile,
          ...(this.directory ? { directory: { node: nodeId(this.paths.dir), store: this.directory }, cluster: { placement: this.directory.placement, lease: this.directory.lease } } : {}),
          credentials: (service, namespace) => this.serviceCredentials(service, namespace),
          sandbox: this.sandbox,
          quotas: this.quotas,
          logger: this.logger.child({ component: 'runtime' }),
        });
      }
      const quotas = this.quotas;
      const counted = this.runtime;
      quotas.addSource((namespace) => counted.usage(namespace));
      const core: CoreContext = {
        home: this.paths.home,
        profile,
        dataDir,
        quotas: this.quotas,
        logger: this.logger,
        registry: this.registry,
        broker: this.broker,
        accounts: this.accounts,
        tokens: this.tokens,
        purge: (namespace) => this.purgeNamespace(namespace),
        ...(this.runtime.namespaceHook ? { namespaceHook: this.runtime.namespaceHook } : {}),
      };
      const runtime = this.runtime;
      // metrics (issue 7, stats/): collected from every instance, the runtime and the gateway
      const stats = new StatsCollector({ registry: this.registry, logger: this.logger.child({ component: 'stats' }) });
      stats.setRuntime(runtime);
      const builtIn: CoreServiceFactory[] = [
        authCoreService,
        (c) => ({ def: registryService, handlers: guardedRegistry(this.directory ? withoutEndedServers(c.registry, (server) => this.directory?.lease.ended(server)) : c.registry, { addressAllowed: this.addressAllowed ?? ((namespace, address) => runtime.addressAllowed?.(namespace, address) ?? this.sandbox?.addressAllowed(namespace, address) ?? true) }) }),
        (c) => ({ def: brokerService, handlers: guardedBroker(c.broker) }),
        () => ({ def: runtimeService, handlers: runtimeHandlers(runtime) }),
        statsCoreService(stats),
        quotaCoreService,
      ];
      for (const factory of [...builtIn, ...(await coreServicesFor(profile)), ...this.extraServices]) {
        const cs = await factory(core);
        this.cores.push(cs);
        if (cs.events) stats.setEvents(cs.events);
        if (cs.blobs) blobs = cs.blobs;
        await cs.start?.();
        const guard = authenticate(this.tokens, new Set(['Debug.Health', ...(cs.publicEndpoints ?? [])]), cs.def);
        this.services.push(new Service(cs.def, cs.handlers, { ...common, middleware: [guard] }));
      }
      for (const svc of this.services) await svc.start();
      for (const svc of this.services) stats.addLocal(svc);
      // the public value-add services, once the core services they keep data in answer
      const hostedNow = selectHosted(this.hostedServices);
      this.hosted = new HostedServices({
        services: hostedNow,
        rpc: this.rpc,
        address: this.boundAddress.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:'),
        registry: this.registry,
        accounts: this.accounts,
        tokens: this.tokens,
        logger: this.logger,
        registerTTL: common.registerTTL,
        nodeMetadata,
      });
      await this.hosted.start();
      // --- API gateway (packages/server/src/gateway): HTTP/JSON in front of the services of every namespace
      if (this.gatewayAddress !== false) {
        // rate limits shared by the nodes in Redis (nats profile); in memory otherwise
        // (the namespaces' requestsPerSecond and requestsPerMonth count there even with the per-caller limit off)
        const rate = this.gatewayRate || undefined;
        this.limiter = profile.name === 'nats' ? await (await import('./nats.js')).openRateLimiter(profile, { ...rate, logger: this.logger.child({ component: 'gateway' }) }) : undefined;
        if (this.gatewayRate === false) this.logger.warn('the gateway\'s per-caller rate limit is off (MICRO_GATEWAY_RATE=off): meant for benchmarks, not for a server strangers reach');
        this.gateway = new Gateway({
          limiter: this.limiter,
          rateLimit: this.gatewayRate === false ? false : rate,
          requestsPerSecond: async (namespace) => (await quotas.limits(namespace)).requestsPerSecond,
          requestsPerMonth: async (namespace) => (await quotas.limits(namespace)).requestsPerMonth,
          monthlyCounter: this.limiter,
          address: this.gatewayAddress,
          registry: this.registry,
          tokens: this.tokens,
          accounts: this.accounts,
          logger: this.logger.child({ component: 'gateway' }),
          selfGuarded: this.cores.map((cs) => cs.def.name),
          publicEndpoints: Object.fromEntries(this.cores.map((cs) => [cs.def.name, ['Debug.Health', ...(cs.publicEndpoints ?? [])]])),
          webhooks: collectWebhooks(this.cores),
          routes: collectRoutes(hostedNow),
          corsOrigins: process.env.MICRO_GATEWAY_CORS_ORIGINS?.split(',').map((o) => o.trim()).filter(Boolean),
          stats,
          prices: this.cores.find((cs) => cs.prices)?.prices,
          meter: this.meter(),
          ...(this.transfers ? { runtimeTransfers: this.transfers } : {}),
        });
        const months = this.gateway.months;
        if (months) quotas.addSource(async (namespace) => ({ requestsPerMonth: await months.used(namespace) }));
        await this.gateway.listen();
      }
      // --- end API gateway
      const info: ServerInfo = { address: this.boundAddress, pid: process.pid, startedAt: new Date().toISOString() };
      if (this.gateway) info.gateway = this.gateway.url;
      writeJsonDurable(this.paths.info, info);
      // services that ran before (also before a crash of the server) come back
      await this.runtime.start();
      this.logger.info({ address: this.boundAddress, gateway: this.gateway?.url, home: this.paths.home }, 'micro server started');
      return this;
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** The meter of the core service that gives one (the platform's usage service); two would charge a call twice. */
  private meter(): GatewayMeter | undefined {
    const meters = this.cores.filter((cs) => cs.meter);
    if (meters.length > 1) throw new Error(`only one core service may meter the gateway's calls: ${meters.map((cs) => cs.def.name).join(', ')} each give a meter`);
    return meters[0]?.meter;
  }

  /**
   * Tenant services run sandboxed without a network: they reach this server's RPC through
   * a unix socket mounted into their sandbox. A machine that cannot sandbox says so here;
   * the runtime then refuses namespaces other than micro (MICRO_RUNTIME_SANDBOX=on: the
   * server does not start; off: tenants run unsandboxed).
   */
  private async openSandbox(rpc: RpcServer): Promise<Sandbox> {
    const sandbox = new Sandbox({ ...this.sandboxOptions, home: this.paths.home, installPaths: installPathsFor(defaultProvided().map((p) => p.path)) });
    if (sandbox.mode === 'off') {
      this.logger.warn('MICRO_RUNTIME_SANDBOX=off: services of every namespace run unsandboxed, as this server\'s user, with its files in reach');
      return sandbox;
    }
    const unavailable = sandbox.selfTest();
    if (unavailable && sandbox.mode === 'on') throw new Error(`MICRO_RUNTIME_SANDBOX=on but this server cannot sandbox services: ${unavailable}`);
    if (unavailable) {
      this.logger.warn(`this server cannot sandbox services (${unavailable}): micro run of namespaces other than micro is refused (MICRO_RUNTIME_SANDBOX=off runs them unsandboxed)`);
      return sandbox;
    }
    await rpc.listenAlso(sandbox.serverAddress.slice('unix://'.length));
    this.logger.info({ socket: sandbox.serverAddress }, 'tenant services run sandboxed');
    return sandbox;
  }

  /**
   * Deletes everything a namespace holds in every core service (purge/): for the platform
   * services (`CoreContext.purge`), never reachable by a tenant. Refuses `micro` and anything
   * not a namespace name.
   */
  purgeNamespace(namespace: string): Promise<PurgeReport> {
    const { runtime, accounts, quotas, registry } = this;
    if (!runtime || !accounts || !quotas) return Promise.reject(errors.ServiceUnavailable(PURGE_ERROR_ID, 'micro server is not started'));
    const steps: PurgeStep[] = [
      { name: 'runtime', run: (ns) => runtime.purgeNamespace(ns) },
      ...(runtime.tenants ? [runtime.tenants.purgeStep()] : []),
      { name: 'auth', run: (ns) => purgeAuth(accounts, ns) },
      { name: 'registry', run: (ns) => purgeRegistry(registry, ns) },
      ...this.cores.flatMap((cs) => (cs.purge ? [{ name: cs.def.name, run: cs.purge }] : [])),
      { name: 'quota', run: (ns) => quotas.purge(ns) },
      { name: 'requestsPerMonth', run: async (ns) => this.gateway?.months?.purge(ns) },
    ];
    return purgeNamespace(namespace, steps);
  }

  /** Credentials for a service the runtime starts: a new secret of its service account. */
  serviceCredentials(service: string, namespace: string): Promise<{ id: string; secret: string }> {
    if (!this.accounts) return Promise.reject(new Error('micro server is not started'));
    return Promise.resolve(this.accounts.issueServiceSecret(service, namespace));
  }

  async stop(): Promise<void> {
    // the services run by the runtime stop first (they are remembered and come back)
    // --- API gateway: no new calls from outside
    await this.gateway?.close().catch((err: unknown) => this.logger.error({ err }, 'gateway stop failed'));
    this.gateway = undefined;
    await this.limiter?.close();
    this.limiter = undefined;
    // --- end API gateway
    await this.runtime?.stop().catch((err: unknown) => this.logger.error({ err }, 'runtime stop failed'));
    this.runtime = undefined;
    await this.hosted?.stop();
    this.hosted = undefined;
    await this.directory?.close().catch((err: unknown) => this.logger.error({ err }, 'runtime directory close failed'));
    this.directory = undefined;
    for (const svc of this.services.reverse()) await svc.stop().catch(() => undefined);
    this.services = [];
    for (const cs of this.cores.reverse()) await cs.stop?.().catch((err: unknown) => this.logger.error({ err, service: cs.def.name }, 'stop failed'));
    this.cores = [];
    await this.rpc?.drain(5_000);
    this.rpc = undefined;
    this.sandbox?.close();
    await this.quotas?.close().catch((err: unknown) => this.logger.error({ err }, 'quotas close failed'));
    this.quotas = undefined;
    this.sandbox = undefined;
    await this.registry.close?.();
    await this.broker.close?.();
    // the NATS connection is shared in the process and closes itself after its last user
    this.registry = new MemoryRegistry();
    this.broker = new MemoryBroker();
    if (this.locked) {
      rmSync(this.paths.info, { force: true });
      rmSync(this.paths.lock, { force: true });
      this.locked = false;
    }
    this.boundAddress = undefined;
  }

  /** One server per home: a second one is refused while the first one's process lives. */
  private lock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.paths.lock, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        this.locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number(readFileSync(this.paths.lock, 'utf8').trim());
        if (pid && processAlive(pid)) {
          const info = readJson<ServerInfo>(this.paths.info);
          throw errors.Conflict(
            'micro.server',
            `micro server is already running on ${this.paths.home} (pid ${pid}${info ? `, ${info.address}` : ''}); stop it first, or set MICRO_HOME to use another home`,
          );
        }
        // the lock of a server that died (kill -9): take it over
        rmSync(this.paths.lock, { force: true });
      }
    }
    throw errors.Conflict('micro.server', `could not take the lock ${this.paths.lock}`);
  }
}

