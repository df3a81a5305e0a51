import { bearer, Client, namespacedClient, remoteEngines, Service, ServiceAuth, type Account, type Engines, type Handlers, type Logger, type Registry, type RpcServer, type ServiceDef } from '@micro/sdk';
import type { AuthAccounts, AuthTokens } from '../auth/storage.js';

/**
 * Public services hosted by micro server: the platform's value-add services (services/ in
 * the repository), each an ordinary SDK service that `micro run ./services/<name>` also
 * runs. Here they run in the server's process, in namespace micro, on its RPC listener
 * (and NATS on the nats profile), registered as public (ServiceDefOptions.public): the
 * gateway sends a tenant's `/v1/<name>/…` to them when the tenant has no service of that
 * name, and they keep each tenant's data in the tenant's own namespace of the store,
 * blobs, events and config (ctx.tenant), so that quotas count it and purge deletes it.
 *
 * Who they are:
 * - Towards their callers and the services they call, the service account
 *   `service:services` of micro: calls are checked by the SDK's ServiceAuth as for any
 *   service, against this server (one checker shared by all of them).
 * - Towards the engines, an account `service:hosted` of micro with scope admin, so that
 *   they may act in their callers' namespaces; its token is minted in process and renewed
 *   before it expires. It is never handed to a caller. Towards a tenant's own services
 *   (`Engines.clientIn`) the same account, as a token scoped to the callee: that service
 *   can use it nowhere else.
 */
export interface HostedService {
  def: ServiceDef;
  /** the handlers, given the engines to keep data in */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each service has its own handler types
  handlers(engines: Engines): Handlers<any>;
  /**
   * anonymous HTTP routes the gateway serves with its endpoints, by path prefix:
   * `{ u: 'Redirect' }` sends `GET /u/<rest>` to endpoint Redirect (gateway/routes.ts says
   * what the endpoint is given and answers); default none
   */
  routes?: Record<string, string>;
  /**
   * work it does beside answering calls (a scheduler), given the engines its handlers
   * got: started once the service serves, stopped before it stops; default none
   */
  background?(engines: Engines): { stop(): Promise<void> };
}

/** Which hosted services run: MICRO_SERVICES unset or `all`: every one; `none`: none; else a comma-separated list of names. */
export function selectHosted(all: readonly HostedService[], setting: string | undefined = process.env.MICRO_SERVICES): HostedService[] {
  const value = setting?.trim() ?? 'all';
  if (value === 'all') return [...all];
  if (value === 'none' || value === '') return [];
  const names = value.split(',').map((n) => n.trim()).filter(Boolean);
  const known = new Map(all.map((h) => [h.def.name, h]));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new Error(`MICRO_SERVICES names ${unknown.join(', ')}, which micro server does not host; choose from ${[...known.keys()].join(', ') || 'none'} (or all, none)`);
  }
  return names.map((n) => known.get(n) as HostedService);
}

export interface HostedOptions {
  services: readonly HostedService[];
  /** the server's RPC listener, shared with its core services */
  rpc: RpcServer;
  /** the server's own RPC address (where the engines and auth are reached) */
  address: string;
  registry: Registry;
  accounts: Pick<AuthAccounts, 'issueServiceSecret'>;
  tokens: Pick<AuthTokens, 'issue'>;
  logger: Logger;
  /** seconds a registration lives without a heart-beat (0: until the server stops) */
  registerTTL: number;
  nodeMetadata?: Record<string, string>;
}

/** A token is renewed when this share of its life has passed. */
const RENEW_AT = 0.8;

/** Starts and stops the hosted services of one server. */
export class HostedServices {
  private readonly running: Service[] = [];
  private readonly background: { stop(): Promise<void> }[] = [];
  private token: { value: string; renewAt: number } | undefined;

  constructor(private readonly options: HostedOptions) {}

  async start(): Promise<void> {
    const { options } = this;
    if (options.services.length === 0) return;
    const client = new Client({ address: options.address, namespace: 'micro', preferLocal: false, timeout: 30_000, middleware: [bearer(() => this.engineToken())] });
    // tenants' own services (found through the registry) are called with the same admin
    // identity, as a token scoped to each callee, minted by the server's auth.Scope
    const tokenServer = new Client({ address: options.address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: [] });
    const asHosted = bearer(() => this.engineToken(), { server: tokenServer });
    const clients = new Map<string, Client>();
    const engines = {
      ...remoteEngines(client),
      clientIn: (namespace: string) => namespacedClient(namespace, () => new Client({ namespace, registry: options.registry, timeout: 30_000, middleware: [asHosted] }), clients),
    };
    const logger = options.logger.child({ component: 'services' });
    // one checker for all of them: one revocation stream and one copy of micro's rules
    const credentials = { ...(await options.accounts.issueServiceSecret('services', 'micro')), namespace: 'micro' };
    const auth = new ServiceAuth({ address: options.address, credentials, required: true, logger });
    for (const hosted of options.services) {
      const svc = new Service(hosted.def, hosted.handlers(engines), {
        namespace: 'micro',
        server: options.rpc,
        registry: options.registry,
        logger,
        registerTTL: options.registerTTL,
        nodeMetadata: options.nodeMetadata,
        auth,
      });
      await svc.start();
      this.running.push(svc);
    }
    for (const hosted of options.services) if (hosted.background) this.background.push(hosted.background(engines));
    options.logger.info({ services: options.services.map((h) => h.def.name) }, `hosting ${options.services.length} public services`);
  }

  async stop(): Promise<void> {
    for (const work of this.background.splice(0).reverse()) await work.stop().catch((err: unknown) => this.options.logger.error({ err }, 'a hosted service\'s background work failed to stop'));
    for (const svc of this.running.splice(0).reverse()) await svc.stop().catch(() => undefined);
  }

  /** The admin token the engines are called with (see the comment at the top). */
  private async engineToken(): Promise<string> {
    if (this.token && Date.now() < this.token.renewAt) return this.token.value;
    const account: Account = { id: 'service:hosted', type: 'service', issuer: 'micro', scopes: ['service', 'admin'] };
    const issuedAt = Date.now();
    const { token, expiresAt } = await this.options.tokens.issue(account);
    this.token = { value: token, renewAt: issuedAt + (expiresAt * 1000 - issuedAt) * RENEW_AT };
    return token;
  }
}
