import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { errors, isMicroError, MicroError, type BlobStore, type Logger, type Profile, type Registry, type RuntimeApp, type RuntimeInstance, type RuntimeProgress, type RuntimeService, type RuntimeState } from '@micro/sdk';
import { ArtifactTooLarge, ARTIFACT_LIMITS, ARTIFACT_MAX_BYTES, artifactKey, artifactPrefix, packBuild, unpackBuild } from './artifact.js';
import { buildOutput, buildPath, buildService, checkServiceName, defaultProvided, linkProvided, readPackage, serviceName, tscPath, type BuildSandbox, type PackageJson, type ProvidedPackage } from './build.js';
import { Instance, StartError, type InstanceHost, type Launch, type Timing } from './instance.js';
import type { Sandbox } from './sandbox.js';
import { admitInstances, admitService, instanceCap, type InstanceCap, type RuntimeQuotas } from './quota.js';
import { QUOTA_ERROR_ID, type Limits } from '../quota/limits.js';
import { LogFiles, logsOptions, type LogFile, type LogLine, type LogsRequest } from './logs.js';
import type { Resolver } from './address.js';
import { deleteUpload, fetchOptionsFor, fetchSource, parseSource, sourceFolderName, sourceRef, type FetchOptions, type SourceSpec } from './source.js';
import type { UploadLimits } from './upload.js';
import type { RuntimeDirectory } from './directory.js';
import type { Assignment, PlacementStore, ServiceSpec } from './placement.js';
import type { Runtime } from './runtime.js';
import { tracked, checkEnv, checkInstances, checkNamespace, limitedProgress, maskEnv, notFound, type Progress } from './checks.js';
import { StateStore, type BuildRecord, type InstanceRecord, type ServiceRecordState } from './state.js';

export interface RuntimeOptions {
  /** MICRO_HOME: state in <home>/runtime/, logs in <home>/logs/<namespace>/<service>.log */
  home: string;
  /** given to every service as MICRO_SERVER */
  serverAddress: string;
  /** the server's registry: a new instance is ready once its node is in it */
  registry: Registry;
  /**
   * The server's profile: with `nats`, services get MICRO_PROFILE, MICRO_NATS_URL and
   * MICRO_PREFIX, so they serve and call over NATS (never the Postgres or Redis URLs, nor
   * MICRO_AUTH_KEY: services reach those engines only through the server)
   */
  profile?: Profile;
  /**
   * Where the runtimes of all nodes publish what they run (nats profile: PostgreSQL), so
   * that `micro status` on any node shows the whole platform; this node's id marks its own
   */
  directory?: { node: string; store: RuntimeDirectory };
  /**
   * nats profile: the platform's desired state and placement (placement.ts) and this node's
   * lease (lease.ts). The runtime then runs the instances the placement gives this node,
   * checked every `reconcileEvery` ms (default 1,000), and none while it holds no lease.
   */
  cluster?: { placement: PlacementStore; lease: LeaseView; reconcileEvery?: number };
  /** the account a service acts as, given to it as MICRO_AUTH_ID / MICRO_AUTH_SECRET */
  credentials(service: string, namespace: string): Promise<{ id: string; secret: string }>;
  logger: Logger;
  /** the packages linked into built services, never installed by npm (default: defaultProvided(): the SDK this package resolves, and @micro/services-kit where installed) */
  provided?: readonly ProvidedPackage[];
  /** restart backoff in ms (default 1 s doubling up to 30 s) */
  backoff?: { initial?: number; max?: number };
  /** other durations, in ms (see Timing) */
  timing?: Partial<Omit<Timing, 'backoffInitial' | 'backoffMax'>>;
  /** ms each build step may take: git clone, npm install, compile (default 5, 10 and 5 minutes) */
  timeouts?: { fetch?: number; install?: number; build?: number };
  /**
   * Runs the services and builds of every namespace but `micro` sandboxed (sandbox.ts);
   * when it is unavailable, those are refused. Default: none (everything as the server)
   */
  sandbox?: Sandbox;
  /**
   * The blob store uploads (`upload:<key>` sources) are read from, in the namespace of the
   * service; an upload is kept while its service exists (a rebuild after a restart needs
   * it) and deleted when the service is killed or updated from another source
   */
  blobs?: () => BlobStore | undefined;
  /** bounds of an unpacked upload (default UPLOAD_LIMITS: 50,000 entries, 256 MiB, 64 MiB a file) */
  uploadLimits?: Partial<UploadLimits>;
  /**
   * Shared builds (artifact.ts): the largest packed build kept in `blobs` (default 256
   * MiB; the blob store's own bound on a blob applies too) and the bounds of unpacking one
   */
  artifacts?: { maxBytes?: number; limits?: Partial<UploadLimits> };
  /**
   * git fetches of callers that are not admins of micro (see cloneUntrusted in source.ts):
   * the resolver (default the system's), the time (default 60 s) and size (256 MiB) bounds
   */
  untrusted?: { resolver?: Resolver; timeout?: number; maxBytes?: number };
  /**
   * The namespaces' quotas (quota.ts): services, instances per service, and the memory and
   * CPU each instance gets at most. Default: none (unlimited)
   */
  quotas?: RuntimeQuotas;
}

/** What the runtime needs of its node's lease. */
export interface LeaseView {
  holdsLease(): boolean;
  on(event: 'lost', listener: (reason: string) => void): unknown;
  on(event: 'held', listener: () => void): unknown;
  off(event: 'lost', listener: (reason: string) => void): unknown;
  off(event: 'held', listener: () => void): unknown;
}

type Request<K extends string> = { name: K extends 'create' ? string | undefined : string; namespace?: string | undefined };
export interface CreateRequest {
  source: string;
  /**
   * whether the caller is an admin of micro, who may run paths of the server's machine
   * and any git URL; the handlers pass false for every other caller (see source.ts).
   * Default true: the server's own calls
   */
  trusted?: boolean | undefined;
  name?: string | undefined;
  namespace?: string | undefined;
  env?: Record<string, string> | undefined;
  instances?: number | undefined;
  /** run it as a plain HTTP app (the app bridge, `@micro/sdk/app-bridge`) rather than a micro service */
  app?: RuntimeApp | undefined;
  /** fetch the source as a stranger's even when the caller is trusted (a platform service acting for a tenant) */
  asTenant?: boolean | undefined;
}
/** Update: a new source replaces the service's (under the same rules as Create's); without one, the same source again. */
export interface UpdateRequest {
  name: string;
  namespace?: string | undefined;
  source?: string | undefined;
  trusted?: boolean | undefined;
  asTenant?: boolean | undefined;
  /** a new environment (as Create's env) for the new instances; without it, the same */
  env?: Record<string, string> | undefined;
}
export type { LogsRequest } from './logs.js';
export type ProgressFn = (progress: RuntimeProgress) => void;

const ERROR_ID = 'runtime';
/** What services inherit from the server's environment; the rest of it stays with the server. */
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'MICRO_LOG_LEVEL', 'MICRO_TRACING', 'NODE_EXTRA_CA_CERTS'];

/** A service the runtime runs (or failed to). */
interface Managed {
  name: string;
  namespace: string;
  source: string;
  /** whether an admin of micro gave the source: else it is fetched under the rules for strangers */
  trusted: boolean;
  env: Record<string, string>;
  /** set for a plain HTTP app */
  app: RuntimeApp | undefined;
  desired: number;
  running: boolean;
  version: string | undefined;
  build: BuildRecord | undefined;
  buildError: string | undefined;
  createdAt: string;
  updatedAt: string;
  /** nats profile: the generation of the desired state it runs; undefined: not in the platform's desired state */
  generation: number | undefined;
  /** the instances of the processes it runs */
  live: Instance[];
  /** the instances of its last failed start, for status */
  failed: InstanceRecord[];
  /** the operation in progress; a second one is refused */
  busy: 'create' | 'update' | 'delete' | 'restore' | undefined;
  phase: 'building' | 'starting';
  log: LogFile;
  host: InstanceHost;
}

/**
 * The local runtime of `micro server`: builds services from source and runs each
 * instance as a child process. See README.md in this folder for what it does and why.
 */
export class LocalRuntime implements Runtime {
  private readonly options: RuntimeOptions;
  private readonly timing: Timing;
  private readonly store: StateStore;
  private readonly buildsDir: string;
  private readonly logsDir: string;
  private readonly services = new Map<string, Managed>();
  private readonly logFiles: LogFiles;
  /** operations in progress, awaited by stop() */
  private readonly operations = new Set<Promise<unknown>>();
  /** each namespace's cap on an instance's memory and CPU (its quota), read as instances start (serviceEnv) */
  private readonly caps = new Map<string, InstanceCap>();
  /** kills build steps when the runtime stops */
  private abort = new AbortController();
  private closed = true;
  private providedPackages: readonly ProvidedPackage[] | undefined;
  /** counts finished create, update and kill calls: a reconcile that read the placement before one of them ends acts on nothing */
  private epoch = 0;
  private reconciling = false;
  private reconcileTimer: NodeJS.Timeout | undefined;
  /** why the last reconcile failed, logged once until one succeeds */
  private reconcileError: string | undefined;
  private readonly onLeaseLost = (reason: string) => void this.suspend(reason);
  private readonly onLeaseHeld = () => this.kick();

  constructor(options: RuntimeOptions) {
    this.options = options;
    this.timing = {
      startTimeout: 30_000,
      stopTimeout: 15_000,
      drainDelay: 1_000,
      readyPoll: 100,
      stableAfter: 60_000,
      ...options.timing,
      backoffInitial: options.backoff?.initial ?? 1_000,
      backoffMax: options.backoff?.max ?? 30_000,
    };
    this.store = new StateStore(join(options.home, 'runtime'));
    this.buildsDir = join(options.home, 'runtime', 'builds');
    this.logsDir = join(options.home, 'logs');
    this.logFiles = new LogFiles(this.logsDir);
  }

  private get provided(): readonly ProvidedPackage[] {
    this.providedPackages ??= this.options.provided ?? defaultProvided();
    return this.providedPackages;
  }

  /**
   * Loads what ran before, stops the processes a previous server left behind (it died
   * without stopping them), and brings every service that should run back, from its last
   * good build (rebuilt from source when that build is gone). It does not wait for them
   * to be ready: they register with the server, which may still be starting.
   */
  async start(): Promise<void> {
    if (!this.closed) return;
    this.closed = false;
    this.abort = new AbortController();
    const records = this.store.load((err, movedTo) => this.options.logger.error({ err, movedTo }, 'runtime state could not be read; starting without it'));
    await Promise.all(records.flatMap((r) => r.processes).map((p) => this.killStale(p)));
    const cluster = this.options.cluster;
    const unshared: Managed[] = [];
    for (const record of records) {
      const svc = this.manage(record);
      // recorded when its build began, never finished: the server stopped meanwhile
      if (!svc.running && !svc.build && !svc.buildError) svc.buildError = 'the server stopped while it was being built; run it again';
      this.services.set(key(svc.namespace, svc.name), svc);
      // nats profile: the placement says what this node runs now (the reconcile)
      if (cluster) {
        if (svc.running && svc.build && svc.generation === undefined) unshared.push(svc);
      } else if (svc.running) this.track(this.restore(svc));
    }
    this.persist();
    if (cluster) {
      // what ran on this node before the platform kept desired state becomes the platform's, unless the name is taken
      for (const svc of unshared) await this.share(svc);
      cluster.lease.on('lost', this.onLeaseLost);
      cluster.lease.on('held', this.onLeaseHeld);
      this.kick();
    }
    this.options.logger.info({ services: this.services.size }, 'runtime started');
  }

  /** Stops every instance gracefully; the services stay recorded and come back at the next start. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconcileTimer);
    this.options.cluster?.lease.off('lost', this.onLeaseLost);
    this.options.cluster?.lease.off('held', this.onLeaseHeld);
    this.abort.abort();
    await Promise.allSettled([...this.operations]);
    await Promise.all([...this.services.values()].flatMap((svc) => svc.live.map((i) => i.stop({ drain: false }))));
    for (const svc of this.services.values()) svc.live = [];
    this.persist();
    await this.logFiles.flushed();
  }

  // ---- the endpoints ---------------------------------------------------------------

  /** `micro run`: fetches, builds and starts a service; progress goes to onProgress. */
  async create(req: CreateRequest, onProgress: ProgressFn = () => undefined): Promise<RuntimeService> {
    this.checkOpen();
    const namespace = checkNamespace(req.namespace);
    this.options.sandbox?.check(namespace);
    this.checkLease();
    const env = checkEnv(req.env ?? {});
    const desired = req.instances ?? 1;
    checkInstances(desired);
    if (req.name) this.checkFree(namespace, checkServiceName(req.name));
    const trusted = (req.trusted ?? true) && !req.asTenant;
    const spec = parseSource(req.source, { trusted });
    return this.track(this.createFrom(spec, { ...req, trusted }, namespace, env, desired, limitedProgress(onProgress)));
  }

  private async createFrom(spec: SourceSpec, req: CreateRequest & { trusted: boolean }, namespace: string, env: Record<string, string>, desired: number, progress: Progress): Promise<RuntimeService> {
    // fetched before the name is known (it may come from package.json), then moved
    const buildId = newBuildId();
    const incoming = join(this.buildsDir, '.incoming', buildId);
    let fetched: { commit?: string };
    let pkg: PackageJson | undefined;
    let name: string;
    try {
      const limits = await this.options.quotas?.limits(namespace);
      admitInstances(namespace, desired, limits);
      if (req.name) await this.checkDesiredFree(namespace, req.name);
      progress('fetch', `fetching ${req.source}`);
      fetched = await fetchSource(spec, incoming, this.fetchOptions((line) => progress('fetch', line), namespace, req.trusted));
      pkg = readPackage(incoming);
      name = serviceName(req.name, pkg, sourceFolderName(spec));
      this.checkFree(namespace, name);
      await this.checkDesiredFree(namespace, name);
      if (this.options.cluster) await this.precheckServices(namespace, name, limits);
      // last: nothing awaits from here until the service is added below, so one node is exact
      else this.admitLocalService(namespace, name, limits);
    } catch (err) {
      await rm(incoming, { recursive: true, force: true });
      // no service refers to the upload: it goes (a new micro run uploads again)
      await this.dropUpload(namespace, req.source);
      throw err;
    }
    // a service that failed to build or start (checkFree let it through) is replaced
    const replaced = this.services.get(key(namespace, name));
    const replaces = replaced !== undefined;
    const now = new Date().toISOString();
    const svc = this.manage({ name, namespace, source: req.source, trusted: req.trusted, env, ...(req.app ? { app: req.app } : {}), instances: desired, running: false, processes: [], createdAt: now, updatedAt: now });
    svc.busy = 'create';
    this.services.set(key(namespace, name), svc);
    if (replaced) await this.dropUpload(namespace, replaced.source);
    const dir = join(this.serviceBuilds(namespace, name), buildId);
    try {
      if (replaces) {
        await rm(this.serviceBuilds(namespace, name), { recursive: true, force: true });
        await this.dropArtifacts(svc, () => true);
      }
      await mkdir(this.serviceBuilds(namespace, name), { recursive: true, mode: 0o700 });
      await rename(incoming, dir);
      this.persist();
      svc.log.append('', 'runtime', `micro run ${req.source}`);
      svc.build = await this.build(svc, dir, buildId, pkg, fetched.commit, progress, spec);
      svc.phase = 'starting';
      if (this.options.cluster) {
        await this.placeAndStart(svc, svc.build, desired, progress);
      } else {
        progress('start', `starting ${desired} instance${desired === 1 ? '' : 's'} of ${name}`);
        svc.live = await this.startInstances(svc, svc.build, range(desired));
      }
      svc.running = true;
      svc.failed = [];
      // on several nodes, once the others' instances run too (platformView)
      if (!this.options.cluster) progress('start', `${name} is running`);
    } catch (err) {
      await rm(incoming, { recursive: true, force: true });
      // refused by the platform's services quota: the service was never the platform's, so it goes
      if (isMicroError(err) && err.id === QUOTA_ERROR_ID && err.code === 403) await this.forget(svc);
      // build and start failures said why already; anything else (a full disk) says it here
      else if (!svc.buildError && svc.failed.length === 0) svc.buildError = (err as Error).message;
      throw err;
    } finally {
      svc.busy = undefined;
      this.epoch++;
      this.touch(svc);
    }
    return this.options.cluster ? this.platformView(svc, desired, progress) : this.view(svc);
  }

  /**
   * nats profile: records a new service in the platform's desired state and places its
   * instances (the first on this node), starts this node's share and waits for the others'.
   * A name another node took meanwhile is a 409; a start that fails here takes the service
   * out of the desired state again (it stays here, failed, as on one node).
   */
  private async placeAndStart(svc: Managed, build: BuildRecord, desired: number, progress: Progress): Promise<void> {
    const cluster = this.options.cluster as NonNullable<RuntimeOptions['cluster']>;
    const node = this.nodeId();
    const max = (await this.options.quotas?.limits(svc.namespace))?.services ?? null;
    const created = await cluster.placement.create(svc.namespace, svc.name, specOf(svc, build), desired, node, max);
    if (!created) throw errors.Conflict(ERROR_ID, `service ${svc.name} is already running on the platform (another node ran it meanwhile); use micro update ${svc.name}`);
    try {
      const mine = (await cluster.placement.assigned(node)).find((a) => a.namespace === svc.namespace && a.name === svc.name)?.slots.map((s) => s.slot) ?? [];
      svc.desired = mine.length;
      svc.generation = 1;
      progress('start', `starting ${desired} instance${desired === 1 ? '' : 's'} of ${svc.name}: ${mine.length} on this node${desired > mine.length ? `, ${desired - mine.length} on the others` : ''}`);
      svc.live = await this.startInstances(svc, build, mine);
    } catch (err) {
      svc.generation = undefined;
      svc.desired = desired;
      await cluster.placement.remove(svc.namespace, svc.name).catch((e: unknown) => this.options.logger.error({ err: e, service: svc.name }, 'could not take a service that failed to start out of the desired state'));
      throw err;
    }
  }

  /**
   * What Create and Update answer on the nats profile: this node's instances and those of
   * the other nodes, once they all run (or the start timeout passed: the others keep
   * starting, `micro status` shows them).
   */
  private async platformView(svc: Managed, total: number, progress: Progress): Promise<RuntimeService> {
    const own = this.view(svc);
    const directory = this.options.directory;
    if (!directory || svc.live.length >= total) {
      progress('start', `${svc.name} is running`);
      return { ...own, desiredInstances: total };
    }
    const deadline = Date.now() + this.timing.startTimeout;
    let others: RuntimeInstance[];
    let said = false;
    for (;;) {
      const rows = await directory.store.others({ namespace: svc.namespace, name: svc.name }).catch(() => []);
      others = rows.filter((r) => r.live).flatMap((r) => r.service.instances.map((i) => ({ ...i })));
      const running = svc.live.filter((i) => i.state === 'running').length + others.filter((i) => i.state === 'running').length;
      if (running >= total || Date.now() > deadline || this.closed) {
        progress('start', running >= total ? `${svc.name} is running` : `${svc.name}: ${running}/${total} instances running; the others are still starting (see micro status)`);
        break;
      }
      if (!said) progress('start', 'waiting for the instances on the other nodes');
      said = true;
      await new Promise((r) => setTimeout(r, 250));
    }
    const view = this.view(svc);
    return { ...view, instances: [...view.instances, ...others], desiredInstances: total };
  }

  /** Local profile: a new service within the namespace's quota (a failed one of the same name is replaced, not added). */
  private admitLocalService(namespace: string, name: string, limits: Limits | undefined): void {
    if (this.services.has(key(namespace, name))) return;
    admitService(namespace, this.servicesOf(namespace).length, limits?.services ?? null);
  }

  /**
   * nats profile, before the build: the platform's services and this node's failed ones
   * (never in the desired state; those being created are counted once placed). The binding
   * check is placement.create's, in the transaction that adds the service.
   */
  private async precheckServices(namespace: string, name: string, limits: Limits | undefined): Promise<void> {
    const placement = this.options.cluster?.placement;
    if (!placement || !limits || limits.services === null) return;
    const failed = this.servicesOf(namespace).filter((s) => s.generation === undefined && !s.busy && s.name !== name).length;
    admitService(namespace, (await placement.count(namespace)) + failed, limits.services);
  }

  private servicesOf(namespace: string): Managed[] {
    return [...this.services.values()].filter((s) => s.namespace === namespace);
  }

  /** How many services a namespace has: on the platform (nats profile), else on this node (quota.Read). */
  async usage(namespace: string): Promise<{ services: number }> {
    const placement = this.options.cluster?.placement;
    return { services: placement ? await placement.count(namespace) : this.servicesOf(namespace).length };
  }

  /** nats profile: a name is free on the platform when no node's desired state has it. */
  private async checkDesiredFree(namespace: string, name: string): Promise<void> {
    const placement = this.options.cluster?.placement;
    if (!placement) return;
    const there = await placement.get(namespace, checkServiceName(name));
    if (there) throw errors.Conflict(ERROR_ID, `service ${name} is already running${there.nodes.length ? ` (on node ${there.nodes.join(', ')})` : ''}; use micro update ${name}`);
  }

  /** `micro status`: the services of a namespace, or one of them. */
  /** `micro status` of this node's own services (the local profile's whole answer). */
  readLocal(req: { name?: string | undefined; namespace?: string | undefined }): { services: RuntimeService[] } {
    const namespace = checkNamespace(req.namespace);
    if (req.name) return { services: [this.view(this.find(namespace, req.name))] };
    const services = [...this.services.values()].filter((s) => s.namespace === namespace).sort((a, b) => a.name.localeCompare(b.name));
    return { services: services.map((s) => this.view(s)) };
  }

  /**
   * `micro status`: this node's services, and with a directory (nats profile) what every
   * other node published, each marked with its node.
   */
  async read(req: { name?: string | undefined; namespace?: string | undefined }): Promise<{ services: RuntimeService[] }> {
    const directory = this.options.directory;
    if (!directory) return this.readLocal(req);
    const namespace = checkNamespace(req.namespace);
    const name = req.name === undefined ? undefined : checkServiceName(req.name);
    const mine = (name === undefined || this.services.has(key(namespace, name)) ? this.readLocal({ name, namespace }).services : []).map((s) => ({ ...s, node: directory.node }));
    const others = await directory.store.others({ namespace, name });
    const services = [...mine, ...others.map((o) => ({ ...o.service, node: o.node, nodeSeenAt: new Date(o.seenAt).toISOString() }))];
    if (name !== undefined && services.length === 0) throw notFound(namespace, name);
    return { services: services.sort((a, b) => a.name.localeCompare(b.name) || a.node.localeCompare(b.node)) };
  }

  /** For kill and update of a service this node does not run: which node does (nats profile), else not found. */
  private async elsewhere(namespace: string, name: string, verb: string): Promise<never> {
    const others = (await this.options.directory?.store.others({ namespace, name })) ?? [];
    if (others.length === 0) throw notFound(namespace, name);
    throw errors.Conflict('runtime', `${name} runs on node ${others.map((o) => o.node).join(', ')}, not on this one: run micro ${verb} ${name} against that node (its MICRO_SERVER)`);
  }

  /**
   * `micro update`: fetches and builds the source again into a new build folder, then
   * replaces the instances one by one: a new one starts and registers before an old one
   * leaves the registry and drains. A build that fails, or a first new instance that does
   * not start, leaves the old instances as they were.
   */
  async update(req: UpdateRequest, onProgress: ProgressFn = () => undefined): Promise<RuntimeService> {
    this.checkOpen();
    const namespace = checkNamespace(req.namespace);
    const trusted = (req.trusted ?? true) && !req.asTenant;
    const env = req.env === undefined ? undefined : checkEnv(req.env);
    // a new source is checked before anything else happens
    if (req.source !== undefined) parseSource(req.source, { trusted });
    let svc: Managed;
    try {
      this.checkLease();
      if (this.options.cluster) await this.fromPlacement(namespace, checkServiceName(req.name));
      else if (this.options.directory && !this.services.has(key(namespace, checkServiceName(req.name)))) await this.elsewhere(namespace, req.name, 'update');
      svc = this.find(namespace, req.name);
      this.options.sandbox?.check(namespace);
      this.claim(svc, 'update');
    } catch (err) {
      if (req.source !== undefined) await this.dropUpload(namespace, req.source);
      throw err;
    }
    const progress = limitedProgress(onProgress);
    const source = req.source === undefined ? { source: svc.source, trusted: svc.trusted } : { source: req.source, trusted };
    return this.track(
      (async () => {
        let adopted = false;
        const oldEnv = svc.env;
        // the new instances start with it; a failed update puts the old one back
        if (env) svc.env = env;
        try {
          svc.log.append('', 'runtime', `micro update ${svc.name}${req.source === undefined ? '' : ` from ${req.source}`}`);
          const build = await this.fetchAndBuild(svc, progress, source);
          try {
            if (svc.running && svc.live.length > 0) {
              await this.roll(svc, build, progress);
            } else if (!this.options.cluster || svc.generation === undefined) {
              // a failed service of this node is started again; on the platform, with its placement
              if (this.options.cluster) await this.placeAndStart(svc, build, svc.desired, progress);
              else {
                progress('start', `starting ${svc.desired} instance${svc.desired === 1 ? '' : 's'} of ${svc.name}`);
                svc.live = await this.startInstances(svc, build, range(svc.desired));
              }
              svc.running = true;
            }
          } catch (err) {
            // a build no instance runs (the rollback left none on it) is of no use
            if (!svc.live.some((i) => i.build.id === build.id)) {
              await rm(build.dir, { recursive: true, force: true });
              await this.dropArtifacts(svc, (id) => id === build.id);
            }
            throw err;
          }
          svc.build = build;
          svc.buildError = undefined;
          svc.failed = [];
          if (source.source !== svc.source) {
            const old = svc.source;
            svc.source = source.source;
            svc.trusted = source.trusted;
            await this.dropUpload(svc.namespace, old);
          }
          adopted = true;
          // the other nodes roll their instances when they see the new generation
          const total = await this.publishUpdate(svc, build, progress);
          progress('start', `${svc.name} runs build ${build.id}`);
          await this.pruneBuilds(svc);
          return this.options.cluster ? await this.platformView(svc, total, progress) : this.view(svc);
        } finally {
          if (!adopted) svc.env = oldEnv;
          // a new upload that did not become the service's source is of no use
          if (!adopted && source.source !== svc.source) await this.dropUpload(svc.namespace, source.source);
          svc.busy = undefined;
          this.epoch++;
          this.touch(svc);
        }
      })(),
    );
  }

  /**
   * nats profile, Update: a service this node runs no instance of is updated here all the
   * same (built here, kept in the blob store, rolled by the nodes that run it): it is taken
   * from the desired state for the length of the update.
   */
  private async fromPlacement(namespace: string, name: string): Promise<void> {
    const placement = this.options.cluster?.placement;
    if (!placement || this.services.has(key(namespace, name))) return;
    const there = await placement.get(namespace, name);
    if (!there || this.services.has(key(namespace, name))) return;
    const svc = this.manage(recordOf(there, 0, this.buildDir(namespace, name, there.spec.build.id)));
    svc.generation = there.generation;
    this.services.set(key(namespace, name), svc);
  }

  /** nats profile: the new build becomes the platform's (the next generation); the number of instances it has in all. */
  private async publishUpdate(svc: Managed, build: BuildRecord, progress: Progress): Promise<number> {
    const placement = this.options.cluster?.placement;
    if (!placement) return svc.desired;
    const generation = await placement.update(svc.namespace, svc.name, specOf(svc, build));
    if (generation === undefined) throw notFound(svc.namespace, svc.name);
    svc.generation = generation;
    const there = await placement.get(svc.namespace, svc.name);
    const elsewhere = (there?.nodes ?? []).filter((n) => n !== this.nodeId());
    if (elsewhere.length > 0) progress('start', `node${elsewhere.length === 1 ? '' : 's'} ${elsewhere.join(', ')} roll${elsewhere.length === 1 ? 's' : ''} their instances to build ${build.id}`);
    return there?.instances ?? svc.desired;
  }

  /** `micro kill`: stops every instance gracefully and forgets the service (its log stays). */
  async delete(req: Request<'delete'>): Promise<void> {
    this.checkOpen();
    const namespace = checkNamespace(req.namespace);
    if (this.options.cluster) return this.deleteFromPlatform(namespace, checkServiceName(req.name));
    if (this.options.directory && !this.services.has(key(namespace, checkServiceName(req.name)))) await this.elsewhere(namespace, req.name, 'kill');
    const svc = this.find(namespace, req.name);
    this.claim(svc, 'delete');
    svc.log.append('', 'runtime', `micro kill ${svc.name}`);
    try {
      await this.track(this.forget(svc));
    } finally {
      svc.busy = undefined;
    }
  }

  /**
   * Stops and forgets every service of a namespace (the server's namespace purge, purge/):
   * each as `micro kill` does (on the nats profile it leaves the desired state, so every node
   * stops its instances), then its builds and logs go. A service busy being created or
   * updated is a 409: the purge is retried once that is done.
   */
  async purgeNamespace(namespace: string): Promise<void> {
    this.checkOpen();
    const ns = checkNamespace(namespace);
    const desired = (await this.options.cluster?.placement.names(ns)) ?? [];
    const local = [...this.services.values()].filter((s) => s.namespace === ns).map((s) => s.name);
    for (const name of new Set([...local, ...desired])) {
      try {
        await this.delete({ namespace: ns, name });
      } catch (err) {
        if (!(err instanceof MicroError && err.code === 404)) throw err;
      }
    }
    await rm(join(this.buildsDir, ns), { recursive: true, force: true });
    await this.logFiles.drop(ns);
  }

  /**
   * nats profile, Kill from any node: the service leaves the desired state (every node stops
   * its instances at its next reconcile), its artifacts and upload go; this node's own
   * instances stop before it answers.
   */
  private async deleteFromPlatform(namespace: string, name: string): Promise<void> {
    const placement = (this.options.cluster as NonNullable<RuntimeOptions['cluster']>).placement;
    const svc = this.services.get(key(namespace, name));
    if (svc) this.claim(svc, 'delete');
    try {
      const there = await placement.get(namespace, name);
      if (!svc && !there) throw notFound(namespace, name);
      await placement.remove(namespace, name);
      if (svc) {
        svc.log.append('', 'runtime', `micro kill ${name}`);
        await this.track(this.forget(svc));
      } else if (there) {
        await this.dropArtifacts({ namespace, name }, () => true);
        await this.dropUpload(namespace, there.spec.source);
      }
    } finally {
      if (svc) svc.busy = undefined;
      this.epoch++;
    }
  }

  /**
   * `micro logs`: the last lines of a service's log, then with follow new ones until
   * signal aborts. Logs are kept by the node that runs the service: for a service of
   * another node (nats profile) the answer names that node.
   */
  async *logs(req: LogsRequest, signal?: AbortSignal): AsyncGenerator<LogLine> {
    const namespace = checkNamespace(req.namespace);
    const options = logsOptions(req, signal);
    // without a name: every service of the namespace (on this node), merged by time
    if (req.name === undefined) return yield* this.logFiles.readNamespace(namespace, options);
    const file = this.logFile(namespace, checkServiceName(req.name));
    // a killed service's log can still be read
    if (!this.services.has(key(namespace, req.name)) && !existsSync(file.path)) await this.elsewhere(namespace, req.name, 'logs');
    yield* file.read(options);
  }

  // ---- building ---------------------------------------------------------------------

  private fetchOptions(onLine: (line: string) => void, namespace: string, trusted: boolean): FetchOptions {
    const o = this.options;
    return fetchOptionsFor({ blobs: o.blobs?.(), namespace, trusted, onLine, signal: this.abort.signal, timeout: o.timeouts?.fetch, uploadLimits: o.uploadLimits, untrusted: o.untrusted, knownHosts: join(o.home, 'runtime', 'known_hosts'), logger: o.logger });
  }

  /** Deletes the blob of an upload source that no service of the namespace refers to (nothing for other sources). */
  private async dropUpload(namespace: string, source: string): Promise<void> {
    if ([...this.services.values()].some((s) => s.namespace === namespace && s.source === source)) return;
    await deleteUpload(this.options.blobs?.(), namespace, source, this.options.logger);
  }

  /** Fetches the service's source (or the one an update gives) again into a new build folder and builds it. */
  private async fetchAndBuild(svc: Managed, progress: Progress, from: { source: string; trusted: boolean } = svc): Promise<BuildRecord> {
    const buildId = newBuildId();
    const dir = join(this.serviceBuilds(svc.namespace, svc.name), buildId);
    progress('fetch', `fetching ${from.source}`);
    let fetched: { commit?: string };
    let pkg: PackageJson | undefined;
    let spec: SourceSpec;
    try {
      spec = parseSource(from.source, { trusted: from.trusted });
      fetched = await fetchSource(spec, dir, this.fetchOptions((line) => progress('fetch', line), svc.namespace, from.trusted));
      pkg = readPackage(dir);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      svc.buildError = (err as Error).message;
      svc.log.append('', 'runtime', `fetch failed: ${svc.buildError}`);
      throw err;
    }
    return this.build(svc, dir, buildId, pkg, fetched.commit, progress, spec);
  }

  private async build(svc: Managed, dir: string, id: string, pkg: PackageJson | undefined, commit: string | undefined, progress: Progress, spec: SourceSpec): Promise<BuildRecord> {
    svc.phase = 'building';
    try {
      const sandbox = this.buildSandbox(svc, dir, id);
      // fetched by the server: given to the namespace's uid before any of its code runs
      if (sandbox) await this.options.sandbox?.own(svc.namespace, dir);
      const entry = await buildService(dir, pkg, {
        provided: this.provided,
        origin: spec.kind === 'folder' ? spec.path : undefined,
        env: sandbox
          ? { ...this.sandbox(svc.namespace)?.baseEnv([dirname(tscPath())]), ...npmConfig(), npm_config_cache: '/tmp/.npm', npm_config_update_notifier: 'false', ...svc.env }
          : { ...pickEnv(process.env, [...INHERITED_ENV, 'SSH_AUTH_SOCK', 'HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY', 'https_proxy', 'http_proxy', 'no_proxy']), ...npmConfig(), ...svc.env, PATH: buildPath(process.env.PATH) },
        ...(sandbox ? { sandbox } : {}),
        installTimeout: this.options.timeouts?.install ?? 10 * 60_000,
        buildTimeout: this.options.timeouts?.build ?? 5 * 60_000,
        signal: this.abort.signal,
        progress: (step, line) => {
          svc.log.append('', 'runtime', `${step}: ${line}`);
          progress(step, line);
        },
      });
      const build: BuildRecord = { id, dir, entry, builtAt: new Date().toISOString() };
      if (commit) build.commit = commit;
      svc.log.append('', 'runtime', `built ${id}${commit ? ` (commit ${commit})` : ''}: entry ${entry}`);
      const artifact = await this.packArtifact(svc, dir, id);
      if (artifact) build.artifact = artifact;
      return build;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      svc.buildError = buildOutput(err) ?? (err as Error).message;
      // its output is in the log already, line by line
      svc.log.append('', 'runtime', `build failed: ${(err as Error).message.split('\n')[0]}`);
      throw err;
    }
  }

  /** The sandbox of a namespace, when its services run in one. */
  private sandbox(namespace: string): Sandbox | undefined {
    const sandbox = this.options.sandbox;
    return sandbox?.applies(namespace) ? sandbox : undefined;
  }

  /** How the build steps of a sandboxed service run: as its namespace's uid, in its folder. */
  private buildSandbox(svc: Managed, dir: string, buildId: string): BuildSandbox | undefined {
    const sandbox = this.sandbox(svc.namespace);
    if (!sandbox) return undefined;
    sandbox.check(svc.namespace);
    let step = 0;
    return {
      wrap: (argv, network, env) => sandbox.command({ namespace: svc.namespace, dir, group: `build-${buildId}-${step++}`, argv, env, network, build: true }),
    };
  }

  /** A sandboxed instance: started through bwrap as its namespace's uid, within its limits. */
  private sandboxLaunch(svc: Managed, build: BuildRecord, instanceId: string, env: NodeJS.ProcessEnv): Launch {
    const sandbox = this.sandbox(svc.namespace) as Sandbox;
    sandbox.check(svc.namespace);
    const cap = this.caps.get(svc.namespace);
    const cmd = sandbox.command({ namespace: svc.namespace, dir: build.dir, group: `${instanceId}-${randomBytes(3).toString('hex')}`, argv: argvOf(svc, build), env, ...(cap ? { cap } : {}) });
    const socket = env.MICRO_SERVICE_ADDRESS?.slice('unix://'.length);
    return {
      command: cmd.command,
      args: cmd.args,
      env: cmd.env,
      input: cmd.input,
      isolated: true,
      verdict: cmd.verdict,
      watch: (stop) => sandbox.watchDisk(build.dir, cmd.limits.disk, stop),
      dispose: () => {
        cmd.dispose();
        if (socket) rmSync(socket, { force: true });
      },
    };
  }

  /** Keeps the current build and the one before it; older build folders are removed. */
  private async pruneBuilds(svc: Managed): Promise<void> {
    const dir = this.serviceBuilds(svc.namespace, svc.name);
    const inUse = new Set(svc.live.map((i) => i.build.id));
    const ids = (await readdir(dir).catch(() => [] as string[])).sort();
    const keep = new Set([...inUse, ...ids.filter((id) => !inUse.has(id)).slice(-1)]);
    if (svc.build) keep.add(svc.build.id);
    for (const id of ids) if (!keep.has(id)) await rm(join(dir, id), { recursive: true, force: true });
    await this.dropArtifacts(svc, (id) => !keep.has(id));
  }

  /**
   * Keeps the build just made in the blob store of its namespace (artifact.ts), before any
   * instance runs from its folder. Without a blob store, or past the bound, there is none:
   * a warning in the service's log, and the service is rebuilt from source where its
   * folder is gone, as before.
   */
  private async packArtifact(svc: Managed, dir: string, id: string): Promise<{ key: string; sha256: string } | undefined> {
    const blobs = this.options.blobs?.();
    if (!blobs) return undefined;
    const key = artifactKey(svc.name, id);
    try {
      const packed = await packBuild(dir, blobs, key, svc.namespace, this.options.artifacts?.maxBytes ?? ARTIFACT_MAX_BYTES);
      svc.log.append('', 'runtime', `kept build ${id} in the blob store as ${key} (${packed.size} bytes)`);
      return { key: packed.key, sha256: packed.sha256 };
    } catch (err) {
      const why = err instanceof ArtifactTooLarge ? err.message : `it could not be stored: ${(err as Error).message}`;
      svc.log.append('', 'runtime', `build ${id} is not kept in the blob store (${why}); without its folder it is rebuilt from source`);
      this.options.logger.warn({ err, service: svc.name, namespace: svc.namespace, build: id }, 'a build could not be kept in the blob store');
      return undefined;
    }
  }

  /** Deletes the service's artifacts whose build id `drop` says. */
  private async dropArtifacts(svc: { name: string; namespace: string }, drop: (buildId: string) => boolean): Promise<void> {
    const blobs = this.options.blobs?.();
    if (!blobs) return;
    const prefix = artifactPrefix(svc.name);
    try {
      for (;;) {
        const listed = await blobs.list({ namespace: svc.namespace, prefix, limit: 1000 });
        const doomed = listed.filter((b) => drop(b.key.slice(prefix.length).replace(/\.tar\.gz$/, '')));
        for (const b of doomed) await blobs.delete(b.key, { namespace: svc.namespace });
        if (listed.length < 1000 || doomed.length === 0) return;
      }
    } catch (err) {
      this.options.logger.warn({ err, service: svc.name, namespace: svc.namespace }, 'could not delete the artifacts of a service');
    }
  }

  /**
   * Brings a build folder back from its artifact: unpacked under the rules of uploads
   * (links only inside the folder), checked against the SHA-256 recorded with the build,
   * the runtime's links to the SDK made again, and given to the namespace's uid when it
   * is sandboxed. Nothing is fetched, installed or compiled.
   */
  private async restoreArtifact(svc: Managed, build: BuildRecord): Promise<boolean> {
    const blobs = this.options.blobs?.();
    if (!build.artifact || !blobs) return false;
    try {
      await rm(build.dir, { recursive: true, force: true });
      await unpackBuild(blobs, build.artifact, svc.namespace, build.dir, { ...ARTIFACT_LIMITS, ...this.options.artifacts?.limits });
      // unpacked by the server, no tenant code has touched it yet: the server links, then hands it over
      await linkProvided(build.dir, this.provided);
      if (this.sandbox(svc.namespace)) await this.options.sandbox?.own(svc.namespace, build.dir);
      if (!existsSync(join(build.dir, build.entry))) throw new Error(`it has no entry file ${build.entry}`);
      svc.log.append('', 'runtime', `its build folder is gone: restored build ${build.id} from ${build.artifact.key} (no fetch, install or compile)`);
      return true;
    } catch (err) {
      await rm(build.dir, { recursive: true, force: true });
      svc.log.append('', 'runtime', `could not restore build ${build.id} from ${build.artifact.key}: ${(err as Error).message}`);
      this.options.logger.warn({ err, service: svc.name, namespace: svc.namespace }, 'could not restore a build from its artifact');
      return false;
    }
  }

  // ---- running ----------------------------------------------------------------------

  /** Starts an instance for each slot, together; if any fails, all are stopped and the first failure thrown. */
  private async startInstances(svc: Managed, build: BuildRecord, slots: number[]): Promise<Instance[]> {
    const instances = slots.map((slot) => this.newInstance(svc, build, slot));
    svc.live = instances;
    const results = await Promise.allSettled(instances.map((i) => i.start()));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failure) return instances;
    await Promise.all(instances.map((i) => i.stop({ drain: false })));
    svc.live = [];
    svc.failed = instances.map((inst, idx) => {
      const r = results[idx];
      const rec = inst.record();
      if (r?.status === 'rejected') rec.lastError = (r.reason as Error).message;
      return rec;
    });
    throw startFailure(svc, failure.reason);
  }

  /** Replaces svc's instances one by one with instances of `build`; rolls back if one fails. */
  private async roll(svc: Managed, build: BuildRecord, progress: Progress): Promise<void> {
    const old = [...svc.live];
    const replaced: { next: Instance; prev: Instance }[] = [];
    for (const [idx, prev] of old.entries()) {
      const next = this.newInstance(svc, build, prev.slot);
      svc.live.push(next);
      try {
        await next.start();
      } catch (err) {
        await next.stop({ drain: false });
        svc.live = svc.live.filter((i) => i !== next);
        const error = startFailure(svc, err);
        svc.buildError = `build ${build.id} did not start: ${error.detail}`;
        if (replaced.length > 0) await this.rollBack(svc, replaced.map((r) => r.next), prev.build, progress);
        throw error;
      }
      progress('start', `instance ${idx + 1}/${old.length}: ${next.id} (pid ${next.pid}) is ready; stopping ${prev.id} (pid ${prev.pid})`);
      await prev.stop({ drain: true });
      svc.live = svc.live.filter((i) => i !== prev);
      replaced.push({ next, prev });
    }
  }

  /** After a failed rolling update: replaces the instances already updated by instances of the old build. */
  private async rollBack(svc: Managed, updated: Instance[], build: BuildRecord, progress: Progress): Promise<void> {
    progress('start', `rolling back to build ${build.id}`);
    for (const inst of updated) {
      const back = this.newInstance(svc, build, inst.slot);
      svc.live.push(back);
      try {
        await back.start();
      } catch (err) {
        // the updated instance keeps running rather than leaving no instance at all
        await back.stop({ drain: false });
        svc.live = svc.live.filter((i) => i !== back);
        svc.log.append('', 'runtime', `rollback of ${inst.id} failed: ${(err as Error).message}`);
        continue;
      }
      await inst.stop({ drain: true });
      svc.live = svc.live.filter((i) => i !== inst);
    }
  }

  private newInstance(svc: Managed, build: BuildRecord, slot: number): Instance {
    const instance = new Instance(`${svc.name}-${randomBytes(4).toString('hex')}`, build, svc.host);
    instance.slot = slot;
    return instance;
  }

  /** Brings a service back at start: from its build, or rebuilt from source when the build is gone. */
  private async restore(svc: Managed): Promise<void> {
    const build = svc.build;
    if (build && existsSync(join(build.dir, build.entry))) {
      svc.live = range(svc.desired).map((slot) => this.newInstance(svc, build, slot));
      for (const inst of svc.live) inst.launch();
      return;
    }
    svc.busy = 'restore';
    try {
      if (build && (await this.restoreArtifact(svc, build))) {
        if (this.closed) return;
        svc.live = range(svc.desired).map((slot) => this.newInstance(svc, build, slot));
        for (const inst of svc.live) inst.launch();
        return;
      }
      svc.log.append('', 'runtime', 'its build is gone: building it again from source');
      const rebuilt = await this.fetchAndBuild(svc, () => undefined);
      if (this.closed) return;
      svc.build = rebuilt;
      svc.buildError = undefined;
      svc.live = range(svc.desired).map((slot) => this.newInstance(svc, rebuilt, slot));
      for (const inst of svc.live) inst.launch();
    } catch (err) {
      this.options.logger.error({ err, service: svc.name, namespace: svc.namespace }, 'could not rebuild a service to bring it back');
    } finally {
      svc.busy = undefined;
      this.touch(svc);
    }
  }

  /** Stops a service's instances and removes it, its build folders and its state; the log stays. */
  private async forget(svc: Managed): Promise<void> {
    await Promise.all(svc.live.map((i) => i.stop({ drain: true })));
    svc.live = [];
    if (this.services.get(key(svc.namespace, svc.name)) === svc) this.services.delete(key(svc.namespace, svc.name));
    this.persist();
    await rm(this.serviceBuilds(svc.namespace, svc.name), { recursive: true, force: true });
    await this.dropArtifacts(svc, () => true);
    await this.dropUpload(svc.namespace, svc.source);
  }

  /**
   * A process recorded by a server that died: stopped (SIGTERM, then SIGKILL) when it is
   * still ours, which /proc/<pid>/environ tells (a pid may have been reused since). Where
   * there is no /proc, nothing is killed; the SDK also exits by itself when its parent dies.
   */
  private async killStale(record: InstanceRecord): Promise<void> {
    const pid = record.pid;
    if (!pid || !isOurs(pid, record.id)) return;
    this.options.logger.warn({ pid, instance: record.id }, 'stopping an instance left by a previous server');
    const alive = () => isOurs(pid, record.id);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const deadline = Date.now() + Math.min(this.timing.stopTimeout, 5_000);
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (alive()) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }

  // ---- several nodes (nats profile): running what the placement gives this node ------

  /** Reconciles now, then every reconcileEvery ms. */
  private kick(): void {
    const cluster = this.options.cluster;
    if (!cluster || this.closed) return;
    clearTimeout(this.reconcileTimer);
    this.reconcileTimer = undefined;
    void this.track(this.reconcile()).finally(() => {
      if (this.closed || this.reconcileTimer) return;
      this.reconcileTimer = setTimeout(() => this.kick(), cluster.reconcileEvery ?? 1_000);
      this.reconcileTimer.unref();
    });
  }

  /**
   * One reconcile: a scheduler pass (placement.ts), then this node's instances made to match
   * its slots: services it has no slot of any more stop here (killed, or handed over), new
   * ones are restored from their artifact and started, a newer generation is rolled out,
   * and an instance started for a hand-over says when it is ready. Nothing runs while the
   * node holds no lease: the others have taken its slots, or will.
   */
  private async reconcile(): Promise<void> {
    const cluster = this.options.cluster;
    if (!cluster || this.closed || this.reconciling || !cluster.lease.holdsLease()) return;
    this.reconciling = true;
    const epoch = this.epoch;
    try {
      await cluster.placement.schedule();
      const assigned = await cluster.placement.assigned(this.nodeId());
      const current = () => !this.closed && epoch === this.epoch && cluster.lease.holdsLease();
      if (!current()) return;
      const mine = new Map(assigned.map((a) => [key(a.namespace, a.name), a]));
      for (const svc of [...this.services.values()]) {
        if (!current()) return;
        if (svc.busy || mine.has(key(svc.namespace, svc.name))) continue;
        // a service that failed to start here and never was the platform's stays, as on one node
        if (svc.generation !== undefined || svc.live.length > 0) await this.retire(svc);
      }
      for (const a of assigned) if (current()) await this.converge(a);
      if (this.reconcileError) this.options.logger.info('runtime reconcile works again');
      this.reconcileError = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (this.reconcileError !== message) this.options.logger.warn({ err }, 'runtime reconcile failed; trying again in a second');
      this.reconcileError = message;
    } finally {
      this.reconciling = false;
    }
  }

  /** Makes this node's instances of one service what its slots say (the slow parts run on, tracked). */
  private async converge(a: Assignment): Promise<void> {
    const cluster = this.options.cluster as NonNullable<RuntimeOptions['cluster']>;
    const k = key(a.namespace, a.name);
    let svc = this.services.get(k);
    if (svc?.busy) return;
    if (svc && svc.generation === undefined) {
      // a local record of the same name that never was the platform's: the desired state wins
      this.options.logger.warn({ service: a.name, namespace: a.namespace }, 'this node had a service of a name the platform runs: it is replaced by the platform\'s');
      await this.retire(svc);
      svc = undefined;
    }
    if (!svc) {
      // not running, and no generation, until its build is here (stale below)
      svc = this.manage({ ...recordOf(a, a.slots.length, this.buildDir(a.namespace, a.name, a.spec.build.id)), running: false });
      this.services.set(k, svc);
    }
    const target = svc;
    const slots = new Set(a.slots.map((s) => s.slot));
    const missing = a.slots.filter((s) => !target.live.some((i) => i.slot === s.slot)).map((s) => s.slot);
    // a new generation, or instances to start and the build folder gone (removed, or never here): the build first
    const stale = target.generation !== a.generation || (missing.length > 0 && !(target.build && existsSync(join(target.build.dir, target.build.entry))));
    const surplus = target.live.filter((i) => !slots.has(i.slot));
    target.desired = a.slots.length;
    if (!stale && missing.length === 0 && surplus.length === 0) {
      for (const s of a.slots) {
        if (!s.handover || s.ready) continue;
        if (target.live.some((i) => i.slot === s.slot && i.state === 'running')) await cluster.placement.ready(a.namespace, a.name, s.slot, this.nodeId());
      }
      return;
    }
    target.busy = 'restore';
    target.phase = 'starting';
    void this.track(
      (async () => {
        try {
          if (stale) {
            const build = await this.buildOf(target, a);
            if (!build) {
              await cluster.placement.refuse(a.namespace, a.name, [...slots], this.nodeId());
              // the platform's: retired at the next reconcile, which finds no slot of it here
              target.generation = a.generation;
              return;
            }
            const { spec } = a;
            Object.assign(target, { source: spec.source, trusted: spec.trusted, env: spec.env, createdAt: spec.createdAt });
            if (target.live.length > 0 && target.build?.id !== build.id) {
              target.log.append('', 'runtime', `rolling to build ${build.id} (generation ${a.generation} of the platform)`);
              await this.roll(target, build, () => undefined).catch((err: unknown) => {
                target.log.append('', 'runtime', `could not roll to build ${build.id}: ${(err as Error).message}`);
              });
            }
            if (!target.live.some((i) => i.build.id !== build.id)) target.build = build;
            target.generation = a.generation;
            target.running = true;
          }
          const build = target.build;
          if (!build || this.closed || !cluster.lease.holdsLease()) return;
          for (const slot of missing) {
            const inst = this.newInstance(target, build, slot);
            target.live.push(inst);
            inst.launch();
          }
          if (missing.length > 0) target.log.append('', 'runtime', `starting instance${missing.length === 1 ? '' : 's'} ${missing.join(', ')} of the platform's ${a.instances} here`);
          await Promise.all(surplus.map((i) => i.stop({ drain: true })));
          target.live = target.live.filter((i) => !surplus.includes(i));
        } catch (err) {
          this.options.logger.error({ err, service: a.name, namespace: a.namespace }, 'could not run the instances the placement gave this node');
        } finally {
          target.busy = undefined;
          this.touch(target);
        }
      })(),
    );
  }

  /**
   * The build of a generation on this node: its folder when it is here, else unpacked from
   * its artifact, else built again from its source here. Undefined when none works: the
   * slots then go to other nodes.
   */
  private async buildOf(svc: Managed, a: Assignment): Promise<BuildRecord | undefined> {
    const build: BuildRecord = { ...a.spec.build, dir: this.buildDir(a.namespace, a.name, a.spec.build.id) };
    if (existsSync(join(build.dir, build.entry))) return build;
    try {
      await mkdir(this.serviceBuilds(a.namespace, a.name), { recursive: true, mode: 0o700 });
      if (await this.restoreArtifact(svc, build)) return build;
      svc.log.append('', 'runtime', `build ${build.id} could not be restored from the blob store: building it again from source on this node`);
      return await this.fetchAndBuild(svc, () => undefined, { source: a.spec.source, trusted: a.spec.trusted });
    } catch (err) {
      svc.log.append('', 'runtime', `this node cannot run build ${build.id}: ${(err as Error).message.split('\n')[0]}; its instances go to other nodes`);
      this.options.logger.warn({ err, service: a.name, namespace: a.namespace }, 'could not build a service the placement gave this node: its instances go to other nodes');
      return undefined;
    }
  }

  /** A service this node runs no slot of any more: its instances stop (drained), its folders go; its artifacts and upload stay (the platform's). */
  private async retire(svc: Managed): Promise<void> {
    svc.busy = 'delete';
    try {
      await Promise.all(svc.live.map((i) => i.stop({ drain: true })));
      svc.live = [];
      if (this.services.get(key(svc.namespace, svc.name)) === svc) this.services.delete(key(svc.namespace, svc.name));
      this.persist();
      await rm(this.serviceBuilds(svc.namespace, svc.name), { recursive: true, force: true });
    } finally {
      svc.busy = undefined;
    }
  }

  /**
   * The node lost its lease (PostgreSQL out of its reach, or another server took its id):
   * the other nodes count it as gone and start its instances, so it stops them all rather
   * than running them twice. It runs them again when the lease is held again and the
   * placement still gives them to it.
   */
  private async suspend(reason: string): Promise<void> {
    if (this.closed) return;
    const running = [...this.services.values()].filter((s) => s.live.length > 0);
    this.options.logger.warn({ reason, services: running.length }, 'this node lost its lease: stopping every instance it runs (the other nodes take them over)');
    await Promise.all(
      running.map(async (svc) => {
        svc.log.append('', 'runtime', `this node lost its lease (${reason}): instances stopped`);
        const live = svc.live;
        svc.live = [];
        await Promise.all(live.map((i) => i.stop({ drain: false })));
      }),
    );
    this.persist();
  }

  /** A service this node ran before the platform kept desired state: the platform's now, unless its name is taken. */
  private async share(svc: Managed): Promise<void> {
    const cluster = this.options.cluster;
    if (!cluster || !svc.build) return;
    try {
      if (await cluster.placement.create(svc.namespace, svc.name, specOf(svc, svc.build), svc.desired, this.nodeId())) {
        svc.generation = 1;
        this.persist();
      }
    } catch (err) {
      this.options.logger.warn({ err, service: svc.name, namespace: svc.namespace }, 'could not put a service of this node into the platform\'s desired state');
    }
  }

  private checkLease(): void {
    const lease = this.options.cluster?.lease;
    if (lease && !lease.holdsLease()) throw errors.ServiceUnavailable(ERROR_ID, 'this node holds no lease (it cannot reach PostgreSQL, or another server runs with its node id): run micro against another node, or wait until it holds its lease again');
  }

  private nodeId(): string {
    const node = this.options.directory?.node;
    if (!node) throw new Error('the runtime of several nodes needs its node id (RuntimeOptions.directory)');
    return node;
  }

  private buildDir(namespace: string, name: string, buildId: string): string {
    return join(this.serviceBuilds(namespace, name), buildId);
  }

  // ---- bookkeeping ------------------------------------------------------------------

  private manage(record: ServiceRecordState): Managed {
    const log = this.logFile(record.namespace, record.name);
    const svc: Managed = {
      name: record.name,
      namespace: record.namespace,
      source: record.source,
      // recorded before sources had owners: only what ran in micro keeps the trust it had
      trusted: record.trusted ?? record.namespace === 'micro',
      env: record.env ?? {},
      app: record.app,
      desired: record.instances,
      running: record.running,
      version: record.version,
      build: record.build,
      buildError: record.buildError,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
      generation: record.generation,
      live: [],
      // what was running before is not failed; what failed before stays visible
      failed: record.running ? [] : record.processes.map((p) => ({ id: p.id, restarts: p.restarts, lastError: p.lastError })),
      busy: undefined,
      phase: 'building',
      log,
      host: undefined as unknown as InstanceHost,
    };
    svc.host = {
      name: svc.name,
      namespace: svc.namespace,
      registry: this.options.registry,
      log,
      timing: this.timing,
      logger: this.options.logger,
      env: (id) => this.serviceEnv(svc, id),
      changed: () => this.persist(),
      // persisted by the changed() that follows
      registered: (version) => {
        svc.version = version;
      },
      closing: () => this.closed,
      ...(this.sandbox(svc.namespace)
        ? { launch: (id: string, build: BuildRecord, env: NodeJS.ProcessEnv) => this.sandboxLaunch(svc, build, id, env) }
        : svc.app
          ? { launch: (_id: string, build: BuildRecord, env: NodeJS.ProcessEnv) => ({ command: process.execPath, args: argvOf(svc, build).slice(1), env, isolated: false }) }
          : {}),
      ...(svc.app ? { waitingFor: `did not answer HTTP on $PORT (${svc.app.port})` } : {}),
    };
    return svc;
  }

  private async serviceEnv(svc: Managed, instanceId: string): Promise<NodeJS.ProcessEnv> {
    const { id, secret } = await this.options.credentials(svc.name, svc.namespace);
    const sandbox = this.sandbox(svc.namespace);
    // the quota read as each instance first starts: what sandboxLaunch caps its limits to
    if (sandbox) this.caps.set(svc.namespace, instanceCap(await this.options.quotas?.limits(svc.namespace)));
    // sandboxed: no MICRO_HOME, no engine URLs (raw NATS would bypass every check), the
    // server's RPC and its own listening address as unix sockets of its sandbox
    if (sandbox) {
      return {
        ...sandbox.baseEnv(),
        ...svc.env,
        MICRO_SERVER: sandbox.serverAddress,
        MICRO_SERVICE_ADDRESS: sandbox.serviceAddress(svc.namespace, instanceId),
        MICRO_NAMESPACE: svc.namespace,
        MICRO_AUTH_ID: id,
        MICRO_AUTH_SECRET: secret,
        MICRO_AUTH_NAMESPACE: svc.namespace,
        MICRO_RUNTIME_INSTANCE: instanceId,
        MICRO_SERVICE_NAME: svc.name,
        ...appEnv(svc),
      };
    }
    return {
      ...pickEnv(process.env, INHERITED_ENV),
      ...svc.env,
      MICRO_SERVER: this.options.serverAddress,
      MICRO_NAMESPACE: svc.namespace,
      MICRO_HOME: this.options.home,
      MICRO_AUTH_ID: id,
      MICRO_AUTH_SECRET: secret,
      MICRO_AUTH_NAMESPACE: svc.namespace,
      MICRO_RUNTIME_INSTANCE: instanceId,
      MICRO_SERVICE_NAME: svc.name,
      ...profileEnv(this.options.profile),
      ...appEnv(svc),
    };
  }

  private logFile(namespace: string, name: string): LogFile {
    return this.logFiles.get(namespace, name);
  }

  private serviceBuilds(namespace: string, name: string): string {
    return join(this.buildsDir, namespace, name);
  }

  private find(namespace: string, name: string): Managed {
    const svc = this.services.get(key(namespace, checkServiceName(name)));
    if (!svc) throw notFound(namespace, name);
    return svc;
  }

  /** A name is free when no service has it, or when the one that has it failed and runs nothing. */
  private checkFree(namespace: string, name: string): void {
    const svc = this.services.get(key(namespace, name));
    if (!svc) return;
    if (svc.busy) throw errors.Conflict(ERROR_ID, `service ${name} is being ${svc.busy === 'restore' ? 'restored' : `${svc.busy}d`}; try again when that is done`);
    if (svc.running || svc.live.length > 0) throw errors.Conflict(ERROR_ID, `service ${name} is already running; use micro update ${name}`);
  }

  private claim(svc: Managed, op: 'update' | 'delete'): void {
    if (svc.busy) throw errors.Conflict(ERROR_ID, `service ${svc.name} is being ${svc.busy === 'restore' ? 'restored' : `${svc.busy}d`}; try again when that is done`);
    svc.busy = op;
  }

  private checkOpen(): void {
    if (this.closed) throw errors.ServiceUnavailable(ERROR_ID, 'the runtime is not running');
  }

  private track<T>(op: Promise<T>): Promise<T> {
    return tracked(this.operations, op);
  }

  private touch(svc: Managed): void {
    svc.updatedAt = new Date().toISOString();
    this.persist();
  }

  /** Writes every service to state.json (small; written whole on each change). */
  private persist(): void {
    const records: ServiceRecordState[] = [...this.services.values()].map((svc) => {
      const r: ServiceRecordState = {
        name: svc.name,
        namespace: svc.namespace,
        source: svc.source,
        trusted: svc.trusted,
        env: svc.env,
        instances: svc.desired,
        running: svc.running,
        processes: svc.live.length > 0 ? svc.live.map((i) => i.record()) : svc.failed,
        createdAt: svc.createdAt,
        updatedAt: svc.updatedAt,
      };
      if (svc.version) r.version = svc.version;
      if (svc.generation !== undefined) r.generation = svc.generation;
      if (svc.build) r.build = svc.build;
      if (svc.buildError) r.buildError = svc.buildError;
      if (svc.app) r.app = svc.app;
      return r;
    });
    try {
      this.store.save(records);
    } catch (err) {
      this.options.logger.error({ err }, 'could not write the runtime state');
    }
    this.options.directory?.store.publish([...this.services.values()].map((svc) => this.view(svc)));
  }

  private view(svc: Managed): RuntimeService {
    const instances: RuntimeInstance[] =
      svc.live.length > 0 ? svc.live.map((i) => i.view()) : svc.failed.map((f) => ({ id: f.id, state: f.lastError ? 'error' : 'stopped', restarts: f.restarts, ...(f.lastError ? { lastError: f.lastError } : {}) }));
    const view: RuntimeService = {
      name: svc.name,
      namespace: svc.namespace,
      version: svc.version ?? sourceRef(svc.source) ?? '',
      source: svc.source,
      state: serviceState(svc),
      instances,
      desiredInstances: svc.desired,
      env: maskEnv(svc.env),
      createdAt: svc.createdAt,
      updatedAt: svc.updatedAt,
    };
    if (svc.app) view.app = svc.app;
    if (svc.build || svc.buildError) {
      view.build = { id: svc.build?.id ?? '' };
      if (svc.build?.commit) view.build.commit = svc.build.commit;
      if (svc.build?.builtAt) view.build.builtAt = svc.build.builtAt;
      if (svc.buildError) view.build.error = svc.buildError;
    }
    return view;
  }
}



function serviceState(svc: Managed): RuntimeState {
  if (svc.busy === 'create' || svc.busy === 'restore') return svc.phase;
  const states = svc.live.map((i) => i.state);
  if (states.length === 0) return svc.buildError || svc.failed.some((f) => f.lastError) ? 'error' : svc.running ? 'pending' : 'stopped';
  if (states.includes('crashed')) return 'crashed';
  if (states.includes('running')) return 'running';
  return 'starting';
}

function startFailure(svc: Managed, err: unknown) {
  const message = `${svc.name} ${(err as Error).message}`;
  if (err instanceof StartError && err.kind === 'timeout') return errors.Timeout(ERROR_ID, message);
  if (err instanceof StartError && err.kind === 'stopped') return errors.ServiceUnavailable(ERROR_ID, message);
  return errors.BadRequest(ERROR_ID, message);
}





function pickEnv(env: NodeJS.ProcessEnv, keys: string[]): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const k of keys) if (env[k] !== undefined) out[k] = env[k];
  return out;
}

/** npm's own settings (registry, proxy, cache) as the server has them. */
function npmConfig(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => k.toLowerCase().startsWith('npm_config_')));
}



/** How an instance of the service starts: node and its entry; an app's entry through the app bridge. */
function argvOf(svc: Managed, build: BuildRecord): string[] {
  const entry = join(build.dir, build.entry);
  return svc.app ? [process.execPath, appBridge(), entry] : [process.execPath, entry];
}

let bridge: string | undefined;
/** The app bridge of the SDK the server runs with (inside the sandbox it is mounted read-only with the SDK). */
function appBridge(): string {
  bridge ??= fileURLToPath(import.meta.resolve('@micro/sdk/app-bridge'));
  return bridge;
}

/** What an app is told besides a service's environment: the port it listens on. */
function appEnv(svc: Managed): Record<string, string> {
  return svc.app ? { PORT: String(svc.app.port) } : {};
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** What every node needs to run a service: its spec without this node's folders. */
function specOf(svc: Managed, build: BuildRecord): ServiceSpec {
  const { dir: _dir, ...shared } = build;
  const spec: ServiceSpec = { source: svc.source, trusted: svc.trusted, env: svc.env, build: shared, createdAt: svc.createdAt, updatedAt: new Date().toISOString() };
  if (svc.version) spec.version = svc.version;
  if (svc.app) spec.app = svc.app;
  return spec;
}

/** A service of the desired state as this node records it: `instances` of its own, its build in `dir`; no generation (the caller sets it once it runs that one). */
function recordOf(desired: Omit<Assignment, 'slots'>, instances: number, dir: string): ServiceRecordState {
  const { spec } = desired;
  const record: ServiceRecordState = {
    name: desired.name,
    namespace: desired.namespace,
    source: spec.source,
    trusted: spec.trusted,
    env: spec.env,
    instances,
    running: true,
    build: { ...spec.build, dir },
    processes: [],
    createdAt: spec.createdAt,
    updatedAt: spec.updatedAt,
  };
  if (spec.app) record.app = spec.app;
  if (spec.version) record.version = spec.version;
  return record;
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Build ids sort by time, so the newest build folder is the last one listed. */
function newBuildId(): string {
  return `${Date.now().toString(36).padStart(9, '0')}-${randomBytes(3).toString('hex')}`;
}

/** Whether pid is a process this runtime started as instance `id` (its environment says so). */
function isOurs(pid: number, id: string): boolean {
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    return environ.split('\0').includes(`MICRO_RUNTIME_INSTANCE=${id}`);
  } catch {
    return false;
  }
}

/** What a service needs to know of the server's profile (see RuntimeOptions.profile). */
function profileEnv(profile: Profile | undefined): Record<string, string> {
  if (profile?.name !== 'nats') return {};
  return { MICRO_PROFILE: 'nats', MICRO_NATS_URL: profile.natsUrl, MICRO_PREFIX: profile.prefix };
}
