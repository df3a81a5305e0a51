import { Client, MicroError, isPublicService, RemoteRegistry, TokenSource, bearer, createClient, platformClient, runtime, type ClientMiddleware, type ServiceRecord, type TypedClient } from '@micro/sdk';
import { Home, LOCAL_ENV, displayAddress, type ResolvedEnv } from './config.js';
import { CliError } from './output.js';

/**
 * A command's connection to the server of the current environment: the core services
 * (namespace `micro`, on the server's own address) and a client for user services,
 * found through the server's registry. Both send the environment's credentials as a
 * bearer token, fetched once from auth.Token and shared.
 */
export class Connection {
  readonly env: ResolvedEnv;
  readonly address: string;
  /** the namespace of user services: --namespace, else the account's */
  readonly namespace: string;
  readonly middleware: ClientMiddleware[];
  readonly platform: Client;
  readonly registry: RemoteRegistry;
  private servicesClient: Client | undefined;
  private publicClient: Client | undefined;

  constructor(env: ResolvedEnv, namespace?: string) {
    if (!env.address) throw noLocalServer();
    this.env = env;
    this.address = env.address;
    this.namespace = namespace || env.namespace;
    if (env.credentials) {
      const tokenClient = new Client({ address: this.address, namespace: 'micro', preferLocal: false, timeout: 10_000 });
      this.middleware = [bearer(new TokenSource(env.credentials, tokenClient))];
    } else {
      this.middleware = [];
    }
    this.platform = platformClient(this.address, this.middleware);
    this.registry = new RemoteRegistry(this.platform);
  }

  /** The untyped client for the services of the namespace. */
  get services(): Client {
    this.servicesClient ??= new Client({
      namespace: this.namespace,
      registry: this.registry,
      // the CLI process serves nothing: always go over the network, as any caller would
      preferLocal: false,
      middleware: this.middleware,
    });
    return this.servicesClient;
  }

  /** The untyped client for micro's public services (the value-add services), which serve every namespace. */
  get publicServices(): Client {
    this.publicClient ??= new Client({ namespace: 'micro', registry: this.registry, preferLocal: false, middleware: this.middleware });
    return this.publicClient;
  }

  /**
   * The service as a call of this namespace finds it: the namespace's own, else a public
   * service of micro of that name (as the gateway routes it); no records: neither.
   */
  async find(service: string): Promise<{ records: ServiceRecord[]; client: Client }> {
    const own = await this.registry.getService(service, { namespace: this.namespace });
    if (own.length > 0 || this.namespace === 'micro') return { records: own, client: this.services };
    const shared = (await this.registry.getService(service, { namespace: 'micro' })).filter(isPublicService);
    return { records: shared, client: this.publicServices };
  }

  get runtime(): TypedClient<typeof runtime> {
    return createClient(runtime, this.platform);
  }

  /** An error of a call, as a message that says what to do next. */
  explain(err: unknown, service?: string): CliError {
    return explainError(err, { env: this.env, address: this.address, service, namespace: this.namespace });
  }
}

/** Connects to the current environment (MICRO_ENV, or the one `micro env set` chose). */
export function connect(home: Home, namespace?: string): Connection {
  return new Connection(home.resolve(), namespace);
}

export function noLocalServer(): CliError {
  return new CliError('no micro server is running for this MICRO_HOME — start one with `micro server`');
}

export interface ErrorContext {
  env: Pick<ResolvedEnv, 'name' | 'credentialSource'> & { credentials?: { id: string } | undefined };
  address?: string;
  service?: string;
  namespace?: string;
}

/**
 * Turns what a call threw into a message for people. The SDK's errors are precise but
 * speak of transports and codes; here they become what happened and what to do.
 */
export function explainError(err: unknown, ctx: ErrorContext): CliError {
  if (err instanceof CliError) return err;
  if (!(err instanceof MicroError)) {
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'EPIPE') return new CliError('', 0);
    return new CliError(`error: ${e instanceof Error ? e.message : String(err)}`);
  }
  const { env } = ctx;
  const where = ctx.address ? displayAddress(ctx.address) : undefined;
  if (err.name === 'ConnectionError') {
    // the server's own address (not a service node's that merely starts the same way)
    if (where && new RegExp(`${where.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?!\\d)`).test(err.detail)) {
      const remedy = env.name === LOCAL_ENV ? 'start one with `micro server`' : `check the address of environment ${env.name} with \`micro env\`, or start a server with \`micro server\``;
      return new CliError(`no server at ${where} — ${remedy}`);
    }
    return new CliError(`cannot reach ${ctx.service ?? err.id}: ${err.detail} — is it running? See \`micro status\``);
  }
  switch (err.code) {
    case 401:
      if (env.credentialSource === 'none') return new CliError(`not logged in to ${env.name} — run \`micro login\``);
      // the token source says so when the server refused our own credentials
      if (err.id === 'micro.auth') {
        if (env.credentialSource === 'admin') return new CliError(`the local admin account was refused (${err.detail}) — restart \`micro server\`, or run \`micro login\``);
        return new CliError(`${err.detail} — run \`micro login\` to log in to ${env.name} again`);
      }
      return new CliError(`unauthorized: ${err.detail} — log in with \`micro login\``);
    case 403:
      return new CliError(`forbidden: ${err.detail} — ${env.credentials ? `account ${env.credentials.id} may not do this; ` : ''}log in as another account with \`micro login\``);
    case 404:
      return new CliError(ctx.service ? `${err.detail} — see \`micro services\`` : err.detail);
    case 400:
    case 422:
      return new CliError(err.detail);
    case 504:
      return new CliError(`${err.detail} — try again, or give more time with --timeout`);
    default:
      return new CliError(`${err.id}: ${err.detail} (${err.code} ${err.status})`);
  }
}
