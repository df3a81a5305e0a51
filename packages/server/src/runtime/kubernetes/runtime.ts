import { createReadStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { create as createTar } from 'tar';
import { errors, isMicroError, type BlobStore, type Logger, type Registry, type RuntimeInstance, type RuntimeService, type RuntimeState } from '@micro/sdk';
import { artifactKey, artifactPrefix } from '../artifact.js';
import { checkServiceName, readPackage, serviceName } from '../build.js';
import { admitInstances, admitService, type RuntimeQuotas } from '../quota.js';
import { logsOptions, matcher, type LogLine, type LogsRequest } from '../logs.js';
import { deleteUpload, fetchOptionsFor, fetchSource, parseSource, sourceFolderName, sourceRef, type FetchOptions, type SourceSpec } from '../source.js';
import type { UploadLimits } from '../upload.js';
import type { CreateRequest, ProgressFn, Runtime, UpdateRequest } from '../runtime.js';
import { tracked, checkEnv, checkInstances, checkNamespace, limitedProgress, maskEnv, notFound, type Progress } from '../checks.js';
import type { Limits } from '../../quota/limits.js';
import type { Quotas } from '../../quota/quotas.js';
import { KubeError, type KubeClient, type KubeObject } from './client.js';
import { clusterNamespace, DEFAULT_NAMESPACE_PREFIX, workloadName } from './names.js';
import {
  ANNOTATIONS,
  BUILD_LABEL,
  buildJob,
  cpuQuantity,
  deploymentName,
  jobName,
  labels,
  memoryQuantity,
  BUILD_ROLE,
  ROLE_LABEL,
  SERVICE_LABEL,
  serviceDeployment,
  serviceSecret,
  serviceSelector,
  MANAGED_BY,
  NAMESPACE_LABEL,
  type ProbeTiming,
  type Resources,
  type ServiceObjects,
} from './objects.js';
import { TenantReconciler, type ReconcileOptions } from './reconcile.js';
import { TenantNamespaces } from './tenant.js';
import { Transfers, type TransferClaim, type TransferStore } from './transfer.js';

/** The tenant namespaces as the driver uses them (tenant.ts's TenantNamespaces). */
export type TenantSeam = Pick<TenantNamespaces, 'ensure' | 'remove' | 'list' | 'purgeStep'>;

export interface KubernetesRuntimeOptions {
  client: KubeClient;
  /** MICRO_HOME: sources staged for builds in <home>/runtime/kubernetes/ */
  home: string;
  /** the server's registry: the version a service registered, for status */
  registry: Registry;
  /** the account a service acts as (kept in its Secret) */
  credentials(service: string, namespace: string): Promise<{ id: string; secret: string }>;
  logger: Logger;
  /** signs the URLs the build Job and the pods fetch through (transfer.ts) */
  transfers: Transfers;
  /** `http://host:port` of the gateway as pods reach it (MICRO_KUBERNETES_GATEWAY) */
  gatewayUrl: string;
  /** `tcp://host:port` of micro server's RPC as pods reach it (MICRO_KUBERNETES_SERVER) */
  serverAddress: string;
  /** the runner image (default MICRO_RUNNER_IMAGE, else micro/runner:latest) */
  image?: string;
  /** MICRO_KUBERNETES_PREFIX (default micro-) */
  prefix?: string;
  /** the tenant namespaces; default TenantNamespaces on `client` with `prefix`, reading quota, plan and owner from `quotas` */
  tenants?: TenantSeam;
  /** how often the cluster namespaces are reconciled with the platform's namespaces (reconcile.ts) */
  reconcile?: ReconcileOptions;
  /** uploads are read from, and builds kept in, the blob store of the service's namespace */
  blobs?: () => BlobStore | undefined;
  /** the namespaces' limits; with `plan`, also the owner and plan labels of their cluster namespaces */
  quotas?: RuntimeQuotas & Partial<Pick<Quotas, 'plan'>>;
  uploadLimits?: Partial<UploadLimits>;
  /** git fetches of callers that are not admins of micro (source.ts's cloneUntrusted) */
  untrusted?: { timeout?: number; maxBytes?: number };
  timing?: Partial<KubernetesTiming>;
  /** an instance's memory and CPU when the namespace's quota sets none (default 512Mi, 500m); a build's (default 1Gi, 1) */
  resources?: { service?: Resources; build?: Resources };
}

export interface KubernetesTiming {
  /** ms a build may take: the Job's activeDeadlineSeconds (default 15 minutes) */
  buildTimeout: number;
  /** ms a rollout may take before it is undone (default 3 minutes) */
  rolloutTimeout: number;
  /** the readiness probe (default every 5 s, 5 s timeout, 3 failures) */
  probe: ProbeTiming;
  /** the Deployment's progressDeadlineSeconds, in the cluster's seconds (default the rollout bound's, at least 10) */
  progressDeadlineSeconds?: number;
  /** seconds between SIGTERM and SIGKILL of a pod (default 30) */
  terminationGraceSeconds: number;
  /** ms the source of a build may wait to be fetched (default 30 minutes) */
  transferTtl: number;
}

const ERROR_ID = 'runtime';
const ONE_YEAR = 365 * 24 * 3600 * 1000;

/** A build as the runtime records it on the Deployment. */
interface BuildInfo {
  id: string;
  builtAt: string;
  commit?: string;
  artifact: string;
  sha256: string;
  entry: string;
}

/** A create or update that failed: shown by status until the name is run again or killed (this server's memory only). */
interface Failure {
  service: RuntimeService;
}

/**
 * `KubernetesRuntime`: services as Deployments of a cluster. See README.md in this folder.
 *
 * The cluster is the state: a service is its Deployment `svc-<name>` in the namespace's
 * cluster namespace, its build and source are the Deployment's annotations, its instances
 * its pods. This server keeps in memory only what runs now (an operation per service) and
 * the failures of the last operations, so several servers can share one cluster.
 */
export class KubernetesRuntime implements Runtime, TransferStore {
  private readonly options: KubernetesRuntimeOptions;
  private readonly timing: KubernetesTiming;
  private readonly prefix: string;
  private readonly image: string;
  private readonly staging: string;
  readonly tenants: TenantSeam;
  /** the platform's hook and the reconcile of the cluster namespaces (reconcile.ts) */
  readonly namespaceHook: TenantReconciler;
  private readonly busy = new Map<string, 'create' | 'update' | 'delete'>();
  private readonly phases = new Map<string, 'building' | 'starting'>();
  private readonly failures = new Map<string, Failure>();
  /** builds uploaded by Jobs, by `namespace/service/build`, until their Job is seen complete */
  private readonly uploaded = new Map<string, { key: string; sha256: string; entry: string; size: number }>();
  private readonly operations = new Set<Promise<unknown>>();
  /** services being created by this server, until their Deployment exists (status shows them building) */
  private readonly creating = new Map<string, RuntimeService>();
  /** the IPs of each cluster namespace's service pods, as last read (addressAllowed) */
  private readonly podIPs = new Map<string, { ips: Set<string>; at: number }>();
  private abort = new AbortController();
  private closed = true;

  constructor(options: KubernetesRuntimeOptions) {
    this.options = options;
    this.timing = {
      buildTimeout: 15 * 60_000,
      rolloutTimeout: 3 * 60_000,
      probe: { periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 },
      terminationGraceSeconds: 30,
      transferTtl: 30 * 60_000,
      ...options.timing,
    };
    this.prefix = options.prefix ?? DEFAULT_NAMESPACE_PREFIX;
    this.image = options.image ?? process.env.MICRO_RUNNER_IMAGE ?? 'micro/runner:latest';
    this.staging = join(options.home, 'runtime', 'kubernetes');
    this.tenants = options.tenants ?? new TenantNamespaces({ client: options.client, prefix: this.prefix, ...(options.quotas?.plan ? { quotas: options.quotas as Pick<Quotas, 'plan' | 'limits'> } : {}) });
    this.namespaceHook = new TenantReconciler(this.tenants, options.logger, options.reconcile);
  }

  async start(): Promise<void> {
    if (!this.closed) return;
    // the cluster must answer: a server that cannot reach it says so at start
    await this.options.client.list('v1', 'Namespace', undefined, `${MANAGED_BY}=micro`).catch((err: unknown) => {
      throw new Error(`MICRO_RUNTIME=kubernetes: ${(err as Error).message}`);
    });
    await mkdir(this.staging, { recursive: true, mode: 0o700 });
    this.closed = false;
    this.abort = new AbortController();
    // every operation in flight (builds, rollouts, log follows) listens to it: no leak to warn of
    setMaxListeners(0, this.abort.signal);
    this.namespaceHook.start();
    this.options.logger.info({ server: this.options.client.server }, 'kubernetes runtime started');
  }

  /** Ends this server's operations; the services keep running in the cluster. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.namespaceHook.stop();
    this.abort.abort();
    await Promise.allSettled([...this.operations]);
  }

  // ---- the endpoints ---------------------------------------------------------------

  async create(req: CreateRequest, onProgress: ProgressFn = () => undefined): Promise<RuntimeService> {
    this.checkOpen();
    const namespace = checkNamespace(req.namespace);
    const cns = clusterNamespace(namespace, this.prefix);
    const env = checkEnv(req.env ?? {});
    const desired = checkInstances(req.instances);
    if (req.name) workloadName(checkServiceName(req.name));
    // the app bridge needs a pod port and a Service of its own: not built for this driver yet
    if (req.app) throw errors.BadRequest(ERROR_ID, 'plain HTTP apps are not run by the kubernetes runtime yet; run micro services, or use the local runtime');
    const trusted = (req.trusted ?? true) && !req.asTenant;
    const spec = parseSource(req.source, { trusted });
    const progress = limitedProgress(onProgress);
    return this.track(this.createFrom(spec, { ...req, trusted }, namespace, cns, env, desired, progress));
  }

  private async createFrom(spec: SourceSpec, req: CreateRequest & { trusted: boolean }, namespace: string, cns: string, env: Record<string, string>, desired: number, progress: Progress): Promise<RuntimeService> {
    const build = newBuildId();
    let name: string | undefined;
    let claimed = false;
    let staged: string | undefined;
    try {
      const limits = await this.options.quotas?.limits(namespace);
      admitInstances(namespace, desired, limits);
      if (req.name) await this.checkFree(namespace, cns, req.name);
      const fetched = await this.fetch(spec, req.source, namespace, req.trusted, build, progress, (pkg, folder) => {
        name = workloadName(serviceName(req.name, pkg, folder));
        return name;
      });
      staged = fetched.staged;
      name = name as string;
      const k = key(namespace, name);
      if (this.busy.has(k)) throw errors.Conflict(ERROR_ID, `service ${name} is being ${this.busy.get(k)}d; try again when that is done`);
      this.busy.set(k, 'create');
      this.phases.set(k, 'building');
      claimed = true;
      await this.checkFree(namespace, cns, name);
      // status shows it from now on (building, starting), as the local runtime does
      const began = new Date().toISOString();
      this.creating.set(k, { name, namespace, version: sourceRef(req.source) ?? '', source: req.source, state: 'building', instances: [], desiredInstances: desired, env: maskEnv(env), createdAt: began, updatedAt: began });
      admitService(namespace, await this.count(cns), limits?.services ?? null);
      await this.tenants.ensure(namespace);
      const s = this.objects(namespace, cns, name);
      const now = new Date().toISOString();
      const info = await this.buildOnce(s, build, env, limits, fetched, progress);
      this.phases.set(k, 'starting');
      const secret = await this.writeSecret(s, info, env);
      progress('start', `starting ${desired} instance${desired === 1 ? '' : 's'} of ${name}`);
      const annotations = this.annotations({ source: req.source, trusted: req.trusted, env, createdAt: now, updatedAt: now, info, secret });
      try {
        await this.options.client.create(serviceDeployment(s, this.deploymentOptions(s, info, secret, env, desired, limits, annotations)));
        await this.rollout(s, progress, info.id);
      } catch (err) {
        await this.removeService(s, namespace);
        throw err;
      }
      this.failures.delete(k);
      progress('start', `${name} is running`);
      return await this.one(namespace, cns, name);
    } catch (err) {
      // a failure before the build (a name taken, the quota, the tenant namespace) leaves no staged source
      if (staged) await rm(staged, { force: true });
      if (name !== undefined && claimed) this.recordFailure(namespace, name, req.source, env, desired, err);
      // no service refers to an upload whose create failed: it goes (a new micro run uploads again)
      if (!(isMicroError(err) && err.code === 409)) await this.dropUpload(namespace, req.source);
      throw err;
    } finally {
      if (name !== undefined && claimed) {
        this.busy.delete(key(namespace, name));
        this.phases.delete(key(namespace, name));
        this.creating.delete(key(namespace, name));
      }
    }
  }

  async read(req: { name?: string | undefined; namespace?: string | undefined }): Promise<{ services: RuntimeService[] }> {
    const namespace = checkNamespace(req.namespace);
    const cns = clusterNamespace(namespace, this.prefix);
    if (req.name !== undefined) return { services: [await this.one(namespace, cns, checkServiceName(req.name))] };
    const deployments = await this.options.client.list('apps/v1', 'Deployment', cns, `${MANAGED_BY}=micro,${NAMESPACE_LABEL}=${namespace}`);
    const pods = await this.options.client.list('v1', 'Pod', cns, `${MANAGED_BY}=micro,${NAMESPACE_LABEL}=${namespace},${ROLE_LABEL}=service`);
    const versions = await this.versions(namespace);
    const services = deployments.filter((d) => d.metadata.labels?.[SERVICE_LABEL]).map((d) => this.view(namespace, d, pods, versions));
    const shown = new Set(services.map((s) => s.name));
    for (const [k, c] of this.creating) {
      if (k.startsWith(`${namespace}/`) && !shown.has(c.name)) {
        services.push({ ...c, state: this.phases.get(k) ?? c.state });
        shown.add(c.name);
      }
    }
    for (const [k, f] of this.failures) if (k.startsWith(`${namespace}/`) && !shown.has(f.service.name)) services.push(f.service);
    return { services: services.sort((a, b) => a.name.localeCompare(b.name)) };
  }

  async update(req: UpdateRequest, onProgress: ProgressFn = () => undefined): Promise<RuntimeService> {
    this.checkOpen();
    const namespace = checkNamespace(req.namespace);
    const cns = clusterNamespace(namespace, this.prefix);
    const name = checkServiceName(req.name);
    if (req.env !== undefined) throw errors.BadRequest(ERROR_ID, 'a new env on update is not supported by the kubernetes runtime yet; kill the service and run it again');
    const trusted = (req.trusted ?? true) && !req.asTenant;
    if (req.source !== undefined) parseSource(req.source, { trusted });
    const k = key(namespace, name);
    let previous: KubeObject;
    try {
      const found = await this.options.client.get('apps/v1', 'Deployment', deploymentName(name), cns);
      if (!found || !ours(found, namespace, name)) throw notFound(namespace, name);
      previous = found;
      if (this.busy.has(k)) throw errors.Conflict(ERROR_ID, `service ${name} is being ${this.busy.get(k)}d; try again when that is done`);
    } catch (err) {
      if (req.source !== undefined) await this.dropUpload(namespace, req.source);
      throw err;
    }
    this.busy.set(k, 'update');
    const progress = limitedProgress(onProgress);
    return this.track(
      (async () => {
        const a = previous.metadata.annotations ?? {};
        const source = req.source ?? a[ANNOTATIONS.source] ?? '';
        const sourceTrusted = req.source === undefined ? a[ANNOTATIONS.trusted] === 'true' : trusted;
        const s = this.objects(namespace, cns, name);
        let adopted = false;
        try {
          const env = await this.currentEnv(s, previous);
          const limits = await this.options.quotas?.limits(namespace);
          // a quota or plan changed since the last run reaches the cluster namespace here
          await this.tenants.ensure(namespace);
          const build = newBuildId();
          const fetched = await this.fetch(parseSource(source, { trusted: sourceTrusted }), source, namespace, sourceTrusted, build, progress, () => name);
          const info = await this.buildOnce(s, build, env, limits, fetched, progress);
          const secret = await this.writeSecret(s, info, env);
          const replicas = Number((previous.spec as { replicas?: number }).replicas ?? 1);
          const annotations = this.annotations({ source, trusted: sourceTrusted, env, createdAt: a[ANNOTATIONS.createdAt] ?? new Date().toISOString(), updatedAt: new Date().toISOString(), info, secret });
          const next = serviceDeployment(s, this.deploymentOptions(s, info, secret, env, replicas, limits, annotations));
          progress('start', `rolling ${replicas} instance${replicas === 1 ? '' : 's'} of ${name} to build ${info.id}`);
          try {
            await this.options.client.apply(next);
            await this.rollout(s, progress, info.id);
          } catch (err) {
            progress('start', `the new build did not become ready: putting build ${a[ANNOTATIONS.build] ?? ''} back`);
            await this.rollBack(s, previous);
            await this.options.client.remove('v1', 'Secret', secret, cns).catch(() => undefined);
            await this.dropArtifact(namespace, info.artifact);
            throw err;
          }
          adopted = true;
          // the previous build's Secret and artifact are of no use any more
          await this.sweep(s, info.id);
          if (source !== a[ANNOTATIONS.source]) await this.dropUpload(namespace, a[ANNOTATIONS.source] ?? '');
          this.failures.delete(k);
          progress('start', `${name} runs build ${info.id}`);
          return await this.one(namespace, cns, name);
        } finally {
          if (!adopted && req.source !== undefined && req.source !== a[ANNOTATIONS.source]) await this.dropUpload(namespace, req.source);
          this.busy.delete(k);
          this.phases.delete(k);
        }
      })(),
    );
  }

  async delete(req: { name: string; namespace?: string | undefined }): Promise<void> {
    this.checkOpen();
    const namespace = checkNamespace(req.namespace);
    const cns = clusterNamespace(namespace, this.prefix);
    const name = checkServiceName(req.name);
    const k = key(namespace, name);
    // one being made or changed here is a 409 (status shows it), not a 404
    if (this.busy.has(k)) throw errors.Conflict(ERROR_ID, `service ${name} is being ${this.busy.get(k)}d; try again when that is done`);
    const found = await this.options.client.get('apps/v1', 'Deployment', deploymentName(name), cns);
    const failed = this.failures.get(k);
    if ((!found || !ours(found, namespace, name)) && !failed) throw notFound(namespace, name);
    this.busy.set(k, 'delete');
    try {
      await this.track(this.removeService(this.objects(namespace, cns, name), namespace));
      this.failures.delete(k);
      const source = found?.metadata.annotations?.[ANNOTATIONS.source] ?? failed?.service.source;
      if (source) await this.dropUpload(namespace, source);
    } finally {
      this.busy.delete(k);
    }
  }

  async *logs(req: LogsRequest, signal?: AbortSignal): AsyncGenerator<LogLine> {
    const namespace = checkNamespace(req.namespace);
    const cns = clusterNamespace(namespace, this.prefix);
    const options = logsOptions(req, signal);
    const name = req.name === undefined ? undefined : checkServiceName(req.name);
    if (name !== undefined) {
      const found = await this.options.client.get('apps/v1', 'Deployment', deploymentName(name), cns);
      if ((!found || !ours(found, namespace, name)) && !this.failures.has(key(namespace, name))) throw notFound(namespace, name);
    }
    const selector = `${MANAGED_BY}=micro,${NAMESPACE_LABEL}=${namespace},${ROLE_LABEL}=service${name ? `,${SERVICE_LABEL}=${name}` : ''}`;
    const pods = await this.options.client.list('v1', 'Pod', cns, selector);
    const match = matcher(options);
    const since = options.since;
    const sinceTime = since === undefined ? undefined : new Date(since).toISOString();
    // the history: every pod's last lines, merged by time, the last `lines` of them
    const history: LogLine[] = [];
    await Promise.all(
      pods.map(async (pod) => {
        try {
          for await (const l of this.options.client.logs(cns, pod.metadata.name, { container: 'service', tailLines: options.lines, ...(sinceTime ? { sinceTime } : {}) }, signal)) {
            const line = match({ t: l.time, i: pod.metadata.name, s: 'stdout', l: l.line }, pod.metadata.labels?.[SERVICE_LABEL]);
            if (line) history.push(line);
          }
        } catch (err) {
          // a pod that is gone or has not started has no log yet
          if (!(err instanceof KubeError && (err.httpStatus === 400 || err.httpStatus === 404))) throw err;
        }
      }),
    );
    history.sort((a, b) => a.time.localeCompare(b.time));
    for (const line of history.slice(Math.max(0, history.length - options.lines))) yield line;
    if (!options.follow) return;
    const now = new Date().toISOString();
    yield* this.follow(cns, selector, pods, match, now, name, signal);
  }

  /**
   * New lines of each pod as they come, in the order they arrive, until `signal` aborts.
   * Pods that start later (a rollout, a replacement) join, found by a watch of the
   * service's pods; a container restarted in its pod is followed again from its last line.
   * Following one service ends once it is killed (no Deployment and no pod left).
   */
  private async *follow(cns: string, selector: string, pods: KubeObject[], match: ReturnType<typeof matcher>, after: string, name: string | undefined, signal?: AbortSignal): AsyncGenerator<LogLine> {
    const { client } = this.options;
    const queue: LogLine[] = [];
    let wake: (() => void) | undefined;
    const stop = new AbortController();
    const onAbort = () => {
      stop.abort();
      wake?.();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    /** pods followed now; the time and lines of each pod's last timestamp (so a follow again repeats none) */
    const following = new Set<string>();
    const last = new Map<string, { time: string; lines: Set<string> }>();
    let gone = false;
    const start = (pod: KubeObject) => {
      const podName = pod.metadata.name;
      if (following.has(podName) || !podStarted(pod) || stop.signal.aborted) return;
      following.add(podName);
      const since = last.get(podName)?.time ?? after;
      void (async () => {
        try {
          for await (const l of client.logs(cns, podName, { container: 'service', follow: true, sinceTime: since }, stop.signal)) {
            const seen = last.get(podName);
            if (l.time < since || (seen && l.time === seen.time && seen.lines.has(l.line))) continue;
            if (seen && seen.time === l.time) seen.lines.add(l.line);
            else last.set(podName, { time: l.time, lines: new Set([l.line]) });
            const line = match({ t: l.time, i: podName, s: 'stdout', l: l.line }, pod.metadata.labels?.[SERVICE_LABEL]);
            if (line && queue.length < 10_000) queue.push(line);
            wake?.();
          }
        } catch {
          // the pod or its container went: its lines end here
        } finally {
          following.delete(podName);
          wake?.();
        }
      })();
    };
    for (const pod of pods) start(pod);
    const watching = (async () => {
      try {
        for await (const event of client.watch('v1', 'Pod', cns, { labelSelector: selector }, stop.signal)) {
          if (event.type === 'SYNC') event.objects.forEach(start);
          else if (event.type !== 'DELETED') start(event.object);
          if (name !== undefined && (event.type === 'DELETED' || event.type === 'SYNC')) {
            const left = event.type === 'SYNC' ? event.objects.length : (await client.list('v1', 'Pod', cns, selector)).length;
            if (left === 0 && !(await client.get('apps/v1', 'Deployment', deploymentName(name), cns))) {
              gone = true;
              wake?.();
              return;
            }
          }
        }
      } catch {
        // the follow ends with what it has
      }
    })();
    try {
      while (!stop.signal.aborted && !(gone && following.size === 0 && queue.length === 0)) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
      while (queue.length > 0) yield queue.shift() as LogLine;
    } finally {
      stop.abort();
      signal?.removeEventListener('abort', onAbort);
      await settle(watching, 1_000);
    }
  }

  async usage(namespace: string): Promise<{ services: number }> {
    let cns: string;
    try {
      cns = clusterNamespace(checkNamespace(namespace), this.prefix);
    } catch {
      return { services: 0 };
    }
    return { services: await this.count(cns) };
  }

  async purgeNamespace(namespace: string): Promise<void> {
    this.checkOpen();
    const ns = checkNamespace(namespace);
    let cns: string;
    try {
      cns = clusterNamespace(ns, this.prefix);
    } catch {
      return; // a name the cluster cannot have has nothing there
    }
    const deployments = await this.options.client.list('apps/v1', 'Deployment', cns, `${MANAGED_BY}=micro,${NAMESPACE_LABEL}=${ns}`);
    for (const d of deployments) {
      const name = d.metadata.labels?.[SERVICE_LABEL];
      if (name) await this.delete({ namespace: ns, name }).catch((err: unknown) => {
        if (!(isMicroError(err) && err.code === 404)) throw err;
      });
    }
    for (const k of [...this.failures.keys()]) if (k.startsWith(`${ns}/`)) this.failures.delete(k);
    // the cluster namespace itself goes in the purge's own step after this one (`tenants.purgeStep`),
    // which runs even when this step failed
  }

  // ---- the registry's address rule -------------------------------------------------

  /**
   * Where a tenant's registry node may serve from: `tcp://<IP>:<port>` with the IP of one
   * of its namespace's service pods (Running or Pending, deleting ones included: they
   * drain). Without it a tenant's service could register another's address (another
   * tenant's pod, a platform address) and have the gateway send it calls. The pods' IPs of
   * a namespace are read from the cluster at most once a second, and kept 10 s: an IP of
   * a pod gone stays allowed that long.
   */
  async addressAllowed(namespace: string, address: string): Promise<boolean> {
    const m = /^tcp:\/\/(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(address);
    if (!m) return false;
    const ip = (m[1] ?? m[2]) as string;
    let cns: string;
    try {
      cns = clusterNamespace(checkNamespace(namespace), this.prefix);
    } catch {
      return false;
    }
    const now = Date.now();
    const cached = this.podIPs.get(cns);
    if (cached && now - cached.at < 10_000 && (cached.ips.has(ip) || now - cached.at < 1_000)) return cached.ips.has(ip);
    let pods: KubeObject[];
    try {
      pods = await this.options.client.list('v1', 'Pod', cns, `${MANAGED_BY}=micro,${NAMESPACE_LABEL}=${namespace},${ROLE_LABEL}=service`);
    } catch (err) {
      if (cached) return cached.ips.has(ip);
      throw errors.ServiceUnavailable(ERROR_ID, `the addresses of namespace ${namespace}'s pods could not be read from the cluster: ${(err as Error).message}`);
    }
    const ips = new Set<string>();
    for (const pod of pods) {
      const st = (pod.status ?? {}) as { phase?: string; podIP?: string; podIPs?: { ip?: string }[] };
      if (st.phase === 'Succeeded' || st.phase === 'Failed') continue;
      for (const x of [st.podIP, ...(st.podIPs ?? []).map((p) => p.ip)]) if (x) ips.add(x);
    }
    this.podIPs.set(cns, { ips, at: now });
    return ips.has(ip);
  }

  // ---- transfers (transfer.ts) -----------------------------------------------------

  /** The gateway's `/runtime/…` (the path after it): sources to build Jobs, builds from them, builds to pods. */
  serveTransfer(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    return this.options.transfers.serve(req, res, rest, this);
  }

  async *source(claim: TransferClaim): AsyncIterable<Uint8Array> {
    const file = this.stagedPath(claim.namespace, claim.build);
    if (!existsSync(file)) throw errors.NotFound(ERROR_ID, 'the source of this build is gone');
    yield* createReadStream(file) as AsyncIterable<Buffer>;
  }

  async build(claim: TransferClaim, data: AsyncIterable<Uint8Array>, entry: string): Promise<void> {
    const blobs = this.options.blobs?.();
    if (!blobs) throw errors.ServiceUnavailable(ERROR_ID, 'this server keeps no blob store for builds');
    const key = artifactKey(claim.service, claim.build);
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha256');
    let size = 0;
    async function* hashed(): AsyncGenerator<Uint8Array> {
      for await (const chunk of data) {
        size += chunk.length;
        hash.update(chunk);
        yield chunk;
      }
    }
    try {
      await blobs.put(key, hashed(), { namespace: claim.namespace });
    } catch (err) {
      await blobs.delete(key, { namespace: claim.namespace }).catch(() => undefined);
      throw err;
    }
    this.uploaded.set(`${claim.namespace}/${claim.service}/${claim.build}`, { key, sha256: hash.digest('hex'), entry, size });
  }

  async *artifact(claim: TransferClaim): AsyncIterable<Uint8Array> {
    const blobs = this.options.blobs?.();
    if (!blobs) throw errors.ServiceUnavailable(ERROR_ID, 'this server keeps no blob store for builds');
    yield* blobs.get(artifactKey(claim.service, claim.build), { namespace: claim.namespace });
  }

  // ---- building --------------------------------------------------------------------

  /**
   * Fetches the source here, as the local runtime does (uploads unpacked within their
   * bounds, strangers' git under cloneUntrusted's rules), learns the service's name from
   * it, and stages it as a gzipped tar the build Job fetches through a signed URL.
   */
  private async fetch(spec: SourceSpec, source: string, namespace: string, trusted: boolean, build: string, progress: Progress, nameOf: (pkg: ReturnType<typeof readPackage>, folder: string) => string): Promise<{ commit?: string; staged: string }> {
    const dir = join(this.staging, `${build}.src`);
    const staged = this.stagedPath(namespace, build);
    try {
      progress('fetch', `fetching ${source}`);
      const fetched = await fetchSource(spec, dir, this.fetchOptions((line) => progress('fetch', line), namespace, trusted));
      nameOf(readPackage(dir), sourceFolderName(spec));
      await mkdir(join(this.staging, namespace), { recursive: true, mode: 0o700 });
      await pipeline(createTar({ gzip: true, cwd: dir, portable: true, follow: false }, ['.']) as unknown as NodeJS.ReadableStream, createWriteStream(staged, { mode: 0o600 }));
      return { ...(fetched.commit ? { commit: fetched.commit } : {}), staged };
    } catch (err) {
      await rm(staged, { force: true });
      throw err;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private fetchOptions(onLine: (line: string) => void, namespace: string, trusted: boolean): FetchOptions {
    const o = this.options;
    return fetchOptionsFor({ blobs: o.blobs?.(), namespace, trusted, onLine, signal: this.abort.signal, uploadLimits: o.uploadLimits, untrusted: o.untrusted, knownHosts: join(this.staging, 'known_hosts'), logger: o.logger });
  }

  /**
   * Runs the build Job once and waits for it: its log lines are the progress; the packed
   * build comes back through the signed URL into the blob store. The Job, its pod and the
   * staged source go whatever happens; a failure throws with the build's output.
   */
  private async buildOnce(s: ServiceObjects, build: string, env: Record<string, string>, limits: Limits | undefined, fetched: { commit?: string; staged: string }, progress: Progress): Promise<BuildInfo> {
    const { client } = this.options;
    const transfers = this.options.transfers;
    const base = { namespace: s.namespace, service: s.name, build };
    const sourceUrl = `${this.options.gatewayUrl}/runtime/sources/${transfers.sign({ ...base, kind: 'source' }, this.timing.transferTtl)}`;
    const buildUrl = `${this.options.gatewayUrl}/runtime/builds/${transfers.sign({ ...base, kind: 'build' }, this.timing.transferTtl)}`;
    // the --env of the build, from a Secret of its own (removed with the Job)
    const envSecret = `${jobName(s.name, build)}-env`;
    const job = buildJob(s, { build, sourceUrl, buildUrl, secret: envSecret, envKeys: Object.keys(env), resources: this.buildResources(limits), deadlineSeconds: Math.ceil(this.timing.buildTimeout / 1000) });
    const k = `${s.namespace}/${s.name}/${build}`;
    let done = false;
    try {
      if (Object.keys(env).length > 0) await client.create({ ...serviceSecret(s, { build, data: env }), metadata: { name: envSecret, namespace: s.clusterNamespace, labels: { ...labels(s), [BUILD_LABEL]: build, [ROLE_LABEL]: BUILD_ROLE } } });
      progress('install', `building in the cluster (Job ${job.metadata.name})`);
      await client.create(job);
      const output = await this.watchBuild(s, job.metadata.name, progress);
      const uploaded = this.uploaded.get(k);
      if (output.failed || !uploaded) {
        const why = output.failed ?? 'the build ended without uploading its result';
        throw Object.assign(errors.BadRequest(ERROR_ID, `the build of ${s.name} failed: ${why}${output.tail ? `\n${output.tail}` : ''}`), { output: output.tail });
      }
      done = true;
      return { id: build, builtAt: new Date().toISOString(), ...(fetched.commit ? { commit: fetched.commit } : {}), artifact: uploaded.key, sha256: uploaded.sha256, entry: uploaded.entry };
    } finally {
      this.uploaded.delete(k);
      await rm(fetched.staged, { force: true });
      await client.remove('batch/v1', 'Job', job.metadata.name, s.clusterNamespace).catch((err: unknown) => this.options.logger.warn({ err }, 'could not remove a build Job'));
      // a Job deleted in the background leaves its pod to the garbage collector: removed here too
      for (const pod of await client.list('v1', 'Pod', s.clusterNamespace, `${BUILD_LABEL}=${build},${ROLE_LABEL}=build`).catch(() => [])) await client.remove('v1', 'Pod', pod.metadata.name, s.clusterNamespace).catch(() => undefined);
      if (Object.keys(env).length > 0) await client.remove('v1', 'Secret', envSecret, s.clusterNamespace).catch(() => undefined);
      if (!done) await this.dropArtifact(s.namespace, artifactKey(s.name, build));
    }
  }

  /** Follows the build Job until it completes or fails, its pod's log lines as progress. */
  private async watchBuild(s: ServiceObjects, job: string, progress: Progress): Promise<{ failed?: string; tail: string }> {
    const { client } = this.options;
    const tail: string[] = [];
    const deadline = Date.now() + this.timing.buildTimeout + 30_000;
    let logging: Promise<void> | undefined;
    const abort = new AbortController();
    const onStop = () => abort.abort();
    this.abort.signal.addEventListener('abort', onStop, { once: true });
    try {
      for (;;) {
        const j = await client.get('batch/v1', 'Job', job, s.clusterNamespace);
        if (!j) return { failed: 'its Job was deleted', tail: tail.join('\n') };
        const status = (j.status ?? {}) as { succeeded?: number; failed?: number; conditions?: { type: string; status: string; reason?: string; message?: string }[] };
        const pods = await client.list('v1', 'Pod', s.clusterNamespace, `job-name=${job}`).catch(() => [] as KubeObject[]);
        const pod = pods[0];
        if (pod && !logging && podStarted(pod)) logging = this.followBuildLog(s, pod.metadata.name, progress, tail, abort.signal);
        const complete = status.conditions?.find((c) => c.type === 'Complete' && c.status === 'True');
        const failed = status.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
        if (complete || (status.succeeded ?? 0) > 0) {
          await settle(logging, 2_000);
          return { tail: tail.join('\n') };
        }
        if (failed || (status.failed ?? 0) > 0) {
          await settle(logging, 2_000);
          const why = pod ? podError(pod) : undefined;
          return { failed: `${failed?.reason ?? 'Failed'}${failed?.message ? `: ${failed.message}` : ''}${why ? ` (${why})` : ''}`, tail: tail.slice(-40).join('\n') };
        }
        const stuck = pod ? waitingProblem(pod) : undefined;
        if (stuck) return { failed: `pod ${stuck.pod}: ${stuck.message}`, tail: tail.join('\n') };
        if (this.abort.signal.aborted) throw errors.ServiceUnavailable(ERROR_ID, 'the server is stopping');
        if (Date.now() > deadline) return { failed: `it did not finish within ${Math.round(this.timing.buildTimeout / 1000)} s`, tail: tail.slice(-40).join('\n') };
        await sleep(500, this.abort.signal);
      }
    } finally {
      abort.abort();
      this.abort.signal.removeEventListener('abort', onStop);
      await settle(logging, 1_000);
    }
  }

  private async followBuildLog(s: ServiceObjects, pod: string, progress: Progress, tail: string[], signal: AbortSignal): Promise<void> {
    try {
      for await (const l of this.options.client.logs(s.clusterNamespace, pod, { container: 'build', follow: true }, signal)) {
        const p = runnerProgress(l.line);
        tail.push(p.message);
        if (tail.length > 200) tail.shift();
        progress(p.step, p.message);
      }
    } catch {
      // the pod went: its log ends
    }
  }

  // ---- running ---------------------------------------------------------------------

  /** The Secret of a build: credentials, the signed URL of the build and its SHA-256, the --env. */
  private async writeSecret(s: ServiceObjects, info: BuildInfo, env: Record<string, string>): Promise<string> {
    const { id, secret } = await this.options.credentials(s.name, s.namespace);
    const artifactUrl = `${this.options.gatewayUrl}/runtime/artifacts/${this.options.transfers.sign({ kind: 'artifact', namespace: s.namespace, service: s.name, build: info.id }, ONE_YEAR)}`;
    const obj = serviceSecret(s, { build: info.id, data: { ...env, MICRO_AUTH_ID: id, MICRO_AUTH_SECRET: secret, MICRO_RUNNER_ARTIFACT: artifactUrl, MICRO_RUNNER_SHA256: info.sha256, MICRO_RUNNER_ENTRY: info.entry } });
    await this.options.client.apply(obj);
    return obj.metadata.name;
  }

  private deploymentOptions(s: ServiceObjects, info: BuildInfo, secret: string, env: Record<string, string>, replicas: number, limits: Limits | undefined, annotations: Record<string, string>) {
    return {
      build: info.id,
      secret,
      envKeys: Object.keys(env),
      replicas,
      server: this.options.serverAddress,
      resources: this.serviceResources(limits),
      probe: this.timing.probe,
      progressDeadlineSeconds: this.timing.progressDeadlineSeconds ?? Math.max(10, Math.ceil(this.timing.rolloutTimeout / 1000)),
      terminationGraceSeconds: this.timing.terminationGraceSeconds,
      annotations,
    };
  }

  private annotations(o: { source: string; trusted: boolean; env: Record<string, string>; createdAt: string; updatedAt: string; info: BuildInfo; secret: string }): Record<string, string> {
    const a: Record<string, string> = {
      [ANNOTATIONS.source]: o.source,
      [ANNOTATIONS.trusted]: String(o.trusted),
      // masked: the values are in the Secret only
      [ANNOTATIONS.env]: JSON.stringify(maskEnv(o.env)),
      [ANNOTATIONS.createdAt]: o.createdAt,
      [ANNOTATIONS.updatedAt]: o.updatedAt,
      [ANNOTATIONS.build]: o.info.id,
      [ANNOTATIONS.builtAt]: o.info.builtAt,
      [ANNOTATIONS.artifact]: o.info.artifact,
      [ANNOTATIONS.sha256]: o.info.sha256,
      [ANNOTATIONS.secret]: o.secret,
    };
    if (o.info.commit) a[ANNOTATIONS.commit] = o.info.commit;
    return a;
  }

  /**
   * Waits until every replica runs the Deployment's current template and is ready (the
   * readiness probe: the service answers Debug.Health), reporting each change. Fails at
   * once on what will not heal by itself (the quota refused the pods, an image that cannot
   * be pulled, a container that keeps crashing — a 400 with its exit code and last lines,
   * as the local runtime's "crashed at start"), else after the rollout bound. The pods are
   * looked at every second besides the Deployment's events: a crash loop changes no
   * Deployment.
   */
  private async rollout(s: ServiceObjects, progress: Progress, build?: string): Promise<void> {
    const { client } = this.options;
    const deadline = Date.now() + this.timing.rolloutTimeout;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timing.rolloutTimeout);
    const onStop = () => abort.abort();
    this.abort.signal.addEventListener('abort', onStop, { once: true });
    let stuck: PodProblem | undefined;
    let polling = false;
    const poll = setInterval(() => {
      if (polling || stuck) return;
      polling = true;
      void this.podProblem(s, build)
        .then((p) => {
          if (p && !stuck) {
            stuck = p;
            abort.abort();
          }
        })
        .finally(() => (polling = false));
    }, 1_000);
    let last = '';
    try {
      for await (const event of client.watch('apps/v1', 'Deployment', s.clusterNamespace, { labelSelector: serviceSelector(s), timeoutSeconds: 60 }, abort.signal)) {
        const d = event.type === 'SYNC' ? event.objects.find((o) => o.metadata.name === deploymentName(s.name)) : event.object.metadata.name === deploymentName(s.name) ? event.object : undefined;
        if (!d) continue;
        if (event.type === 'DELETED') throw errors.Conflict(ERROR_ID, `${s.name} was killed while it was starting`);
        const state = rolloutState(d);
        if (state.message !== last) {
          last = state.message;
          progress('start', state.message);
        }
        if (state.done) return;
        if (state.failed) throw errors.ServiceUnavailable(ERROR_ID, `${s.name} did not start: ${state.failed}`);
        const problem = await this.podProblem(s, build ?? (d.spec as { template?: { metadata?: { annotations?: Record<string, string> } } }).template?.metadata?.annotations?.[ANNOTATIONS.build]);
        if (problem) {
          stuck = problem;
          break;
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
      clearInterval(poll);
      this.abort.signal.removeEventListener('abort', onStop);
    }
    if (stuck) throw await this.problemError(s, stuck);
    if (this.abort.signal.aborted) throw errors.ServiceUnavailable(ERROR_ID, 'the server is stopping');
    const any = await this.podProblem(s, undefined, true);
    const why = any ? any.message : 'its instances did not become ready (the readiness probe asks its Debug.Health)';
    throw errors.Timeout(ERROR_ID, `${s.name} did not start within ${Math.round((this.timing.rolloutTimeout + Date.now() - deadline) / 1000)} s: ${why}`);
  }

  /** What keeps a new pod of a build from running, when it will not heal by itself (or, `any`, whatever is wrong). */
  private async podProblem(s: ServiceObjects, build: string | undefined, any = false): Promise<PodProblem | undefined> {
    const pods = await this.options.client.list('v1', 'Pod', s.clusterNamespace, `${serviceSelector(s)},${ROLE_LABEL}=service`).catch(() => [] as KubeObject[]);
    for (const pod of pods) {
      if (pod.metadata.deletionTimestamp) continue;
      if (build && (pod.metadata.labels?.[BUILD_LABEL] ?? pod.metadata.annotations?.[ANNOTATIONS.build] ?? build) !== build) continue;
      const fatal = waitingProblem(pod);
      if (fatal) return fatal;
      if (any) {
        const why = podError(pod);
        if (why) return { message: why, pod: pod.metadata.name };
      }
    }
    return undefined;
  }

  /** The error of a pod that will not run: a crash is the service's (400, with its last lines), anything else the cluster's (503). */
  private async problemError(s: ServiceObjects, p: PodProblem): Promise<Error> {
    if (p.exitCode === undefined) return errors.ServiceUnavailable(ERROR_ID, `${s.name} did not start: ${p.message}`);
    const lines: string[] = [];
    try {
      for await (const l of this.options.client.logs(s.clusterNamespace, p.pod, { container: 'service', previous: true, tailLines: 20 })) lines.push(l.line);
    } catch {
      // its log may be gone with it
    }
    const output = lines.join('\n').slice(-4_000);
    return errors.BadRequest(ERROR_ID, `${s.name} crashed at start: exited with code ${p.exitCode} (pod ${p.pod}, ${p.message})${output ? `\n${output}` : ''}`);
  }

  /** Puts the Deployment as it was before a failed update back and waits for it (best effort: the failure is what the caller hears). */
  private async rollBack(s: ServiceObjects, previous: KubeObject): Promise<void> {
    const { status: _status, ...rest } = previous;
    const { resourceVersion: _rv, uid: _uid, generation: _g, creationTimestamp: _c, managedFields: _m, ...metadata } = previous.metadata;
    try {
      await this.options.client.apply({ ...rest, metadata } as KubeObject);
      await this.rollout(s, () => undefined);
    } catch (err) {
      this.options.logger.error({ err, service: s.name, namespace: s.namespace }, 'could not put the previous build back after a failed update');
    }
  }

  /** Removes every object of a service (Deployment, Secrets, Jobs and their pods) and its artifacts: only objects labelled with it. */
  private async removeService(s: ServiceObjects, namespace: string): Promise<void> {
    const { client } = this.options;
    const selector = serviceSelector(s);
    const d = await client.get('apps/v1', 'Deployment', deploymentName(s.name), s.clusterNamespace);
    if (d && ours(d, namespace, s.name)) await client.remove('apps/v1', 'Deployment', d.metadata.name, s.clusterNamespace);
    for (const job of await client.list('batch/v1', 'Job', s.clusterNamespace, selector)) await client.remove('batch/v1', 'Job', job.metadata.name, s.clusterNamespace);
    for (const secret of await client.list('v1', 'Secret', s.clusterNamespace, selector)) await client.remove('v1', 'Secret', secret.metadata.name, s.clusterNamespace);
    // the pods go with their owners; removed here too so that kill does not leave them to the garbage collector
    for (const pod of await client.list('v1', 'Pod', s.clusterNamespace, selector)) await client.remove('v1', 'Pod', pod.metadata.name, s.clusterNamespace);
    await this.dropArtifacts(namespace, s.name, () => true);
  }

  /** After a successful update: the Secrets and artifacts of other builds go. */
  private async sweep(s: ServiceObjects, keep: string): Promise<void> {
    const { client } = this.options;
    for (const secret of await client.list('v1', 'Secret', s.clusterNamespace, serviceSelector(s))) {
      if (secret.metadata.labels?.[BUILD_LABEL] !== keep) await client.remove('v1', 'Secret', secret.metadata.name, s.clusterNamespace).catch(() => undefined);
    }
    await this.dropArtifacts(s.namespace, s.name, (id) => id !== keep);
  }

  private async dropArtifacts(namespace: string, name: string, drop: (build: string) => boolean): Promise<void> {
    const blobs = this.options.blobs?.();
    if (!blobs) return;
    const prefix = artifactPrefix(name);
    try {
      const listed = await blobs.list({ namespace, prefix, limit: 1000 });
      for (const b of listed) if (drop(b.key.slice(prefix.length).replace(/\.tar\.gz$/, ''))) await blobs.delete(b.key, { namespace });
    } catch (err) {
      this.options.logger.warn({ err, service: name, namespace }, 'could not delete the artifacts of a service');
    }
  }

  private async dropArtifact(namespace: string, blobKey: string): Promise<void> {
    await this.options
      .blobs?.()
      ?.delete(blobKey, { namespace })
      .catch(() => undefined);
  }

  private dropUpload(namespace: string, source: string): Promise<void> {
    return deleteUpload(this.options.blobs?.(), namespace, source, this.options.logger);
  }

  // ---- status ----------------------------------------------------------------------

  private async one(namespace: string, cns: string, name: string): Promise<RuntimeService> {
    const d = await this.options.client.get('apps/v1', 'Deployment', deploymentName(name), cns);
    if (!d || !ours(d, namespace, name)) {
      const creating = this.creating.get(key(namespace, name));
      if (creating) return { ...creating, state: this.phases.get(key(namespace, name)) ?? creating.state };
      const failed = this.failures.get(key(namespace, name));
      if (failed) return failed.service;
      throw notFound(namespace, name);
    }
    const pods = await this.options.client.list('v1', 'Pod', cns, `${serviceSelector({ namespace, name })},${ROLE_LABEL}=service`);
    return this.view(namespace, d, pods, await this.versions(namespace));
  }

  private view(namespace: string, d: KubeObject, allPods: KubeObject[], versions: Map<string, string>): RuntimeService {
    const a = d.metadata.annotations ?? {};
    const name = d.metadata.labels?.[SERVICE_LABEL] ?? '';
    const pods = allPods.filter((p) => p.metadata.labels?.[SERVICE_LABEL] === name);
    const spec = d.spec as { replicas?: number };
    const status = (d.status ?? {}) as { conditions?: Condition[] };
    const instances: RuntimeInstance[] = pods.map(instanceOf);
    const refused = status.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
    const desired = spec.replicas ?? 1;
    if (refused && pods.length < desired) instances.push({ id: `${d.metadata.name}-refused`, state: 'error', restarts: 0, lastError: `the cluster refused its pods (${refused.reason ?? 'ReplicaFailure'}): ${refused.message ?? ''}` });
    const phase = this.phases.get(key(namespace, name));
    const view: RuntimeService = {
      name,
      namespace,
      version: versions.get(name) ?? sourceRef(a[ANNOTATIONS.source] ?? '') ?? '',
      source: a[ANNOTATIONS.source] ?? '',
      state: phase ?? serviceState(instances),
      instances,
      desiredInstances: desired,
      env: parseEnv(a[ANNOTATIONS.env]),
      createdAt: a[ANNOTATIONS.createdAt] ?? String(d.metadata.creationTimestamp ?? ''),
      updatedAt: a[ANNOTATIONS.updatedAt] ?? String(d.metadata.creationTimestamp ?? ''),
    };
    const buildId = a[ANNOTATIONS.build];
    if (buildId) {
      const build: NonNullable<RuntimeService['build']> = { id: buildId };
      if (a[ANNOTATIONS.commit]) build.commit = a[ANNOTATIONS.commit];
      if (a[ANNOTATIONS.builtAt]) build.builtAt = a[ANNOTATIONS.builtAt];
      view.build = build;
    }
    const failed = this.failures.get(key(namespace, name));
    if (failed?.service.build?.error) view.build = { ...(view.build ?? { id: '' }), error: failed.service.build.error };
    return view;
  }

  private recordFailure(namespace: string, name: string, source: string, env: Record<string, string>, desired: number, err: unknown): void {
    const now = new Date().toISOString();
    const message = (err as Error).message;
    const output = (err as { output?: unknown }).output;
    const build = message.includes('build of') || typeof output === 'string';
    this.failures.set(key(namespace, name), {
      service: {
        name,
        namespace,
        version: sourceRef(source) ?? '',
        source,
        state: 'error',
        instances: build ? [] : [{ id: `${deploymentName(name)}-failed`, state: 'error', restarts: 0, lastError: message }],
        desiredInstances: desired,
        env: maskEnv(env),
        createdAt: now,
        updatedAt: now,
        ...(build ? { build: { id: '', error: typeof output === 'string' && output ? output : message } } : {}),
      },
    });
  }

  /** The versions services registered in the namespace (the registry's), by name. */
  private async versions(namespace: string): Promise<Map<string, string>> {
    const versions = new Map<string, string>();
    try {
      for (const r of await this.options.registry.listServices({ namespace })) if (r.nodes.some((n) => n.metadata?.instance)) versions.set(r.name, r.version);
    } catch {
      // status without versions rather than none
    }
    return versions;
  }

  // ---- helpers ---------------------------------------------------------------------

  private objects(namespace: string, cns: string, name: string): ServiceObjects {
    return { namespace, clusterNamespace: cns, name, image: this.image };
  }

  private stagedPath(namespace: string, build: string): string {
    return join(this.staging, namespace, `${build}.tar.gz`);
  }

  private async checkFree(namespace: string, cns: string, name: string): Promise<void> {
    const k = key(namespace, name);
    if (this.busy.has(k) && this.busy.get(k) !== 'create') throw errors.Conflict(ERROR_ID, `service ${name} is being ${this.busy.get(k)}d; try again when that is done`);
    const d = await this.options.client.get('apps/v1', 'Deployment', deploymentName(name), cns);
    if (d) {
      if (!ours(d, namespace, name)) throw errors.Conflict(ERROR_ID, `the cluster has a Deployment ${d.metadata.name} in ${cns} that micro did not make; remove it or choose another name`);
      throw errors.Conflict(ERROR_ID, `service ${name} is already running; use micro update ${name}`);
    }
  }

  private async count(cns: string): Promise<number> {
    try {
      return (await this.options.client.list('apps/v1', 'Deployment', cns, `${MANAGED_BY}=micro`)).length;
    } catch (err) {
      if (err instanceof KubeError && err.httpStatus === 404) return 0;
      throw err;
    }
  }

  private async currentEnv(s: ServiceObjects, d: KubeObject): Promise<Record<string, string>> {
    const secret = d.metadata.annotations?.[ANNOTATIONS.secret];
    const keys = Object.keys(parseEnv(d.metadata.annotations?.[ANNOTATIONS.env]));
    if (!secret || keys.length === 0) return {};
    const obj = await this.options.client.get<KubeObject & { data?: Record<string, string> }>('v1', 'Secret', secret, s.clusterNamespace);
    const env: Record<string, string> = {};
    for (const k of keys) {
      const v = obj?.data?.[k];
      if (v !== undefined) env[k] = Buffer.from(v, 'base64').toString('utf8');
    }
    return env;
  }

  private serviceResources(limits: Limits | undefined): Resources {
    const base = this.options.resources?.service ?? { memory: '512Mi', cpu: '500m' };
    return {
      memory: limits?.memoryPerInstance != null ? memoryQuantity(limits.memoryPerInstance) : base.memory,
      cpu: limits?.cpuPerInstance != null ? cpuQuantity(limits.cpuPerInstance) : base.cpu,
    };
  }

  private buildResources(limits: Limits | undefined): Resources {
    const base = this.options.resources?.build ?? { memory: '1Gi', cpu: '1' };
    // a namespace's quota bounds its builds as its instances
    return limits?.memoryPerInstance != null || limits?.cpuPerInstance != null ? this.serviceResources(limits) : base;
  }

  private checkOpen(): void {
    if (this.closed) throw errors.ServiceUnavailable(ERROR_ID, 'the runtime is not running');
  }

  private track<T>(op: Promise<T>): Promise<T> {
    return tracked(this.operations, op);
  }
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

interface ContainerStatus {
  ready?: boolean;
  restartCount?: number;
  state?: { running?: { startedAt?: string }; waiting?: { reason?: string; message?: string }; terminated?: { reason?: string; exitCode?: number; message?: string } };
  lastState?: { terminated?: { reason?: string; exitCode?: number; message?: string; finishedAt?: string } };
}

interface PodStatus {
  phase?: string;
  reason?: string;
  message?: string;
  conditions?: Condition[];
  containerStatuses?: ContainerStatus[];
}

function podStatus(pod: KubeObject): PodStatus {
  return (pod.status ?? {}) as PodStatus;
}

function podStarted(pod: KubeObject): boolean {
  const s = podStatus(pod);
  return s.phase === 'Running' || s.phase === 'Succeeded' || s.phase === 'Failed';
}

/** Waiting reasons that do not heal by themselves. */
const FATAL_WAITING = new Set(['ImagePullBackOff', 'ErrImagePull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'CrashLoopBackOff', 'RunContainerError']);

/** A pod that will not run: why, and, when its container keeps exiting, its last exit code. */
interface PodProblem {
  message: string;
  pod: string;
  exitCode?: number;
}

function waitingProblem(pod: KubeObject): PodProblem | undefined {
  for (const c of podStatus(pod).containerStatuses ?? []) {
    const w = c.state?.waiting;
    if (w?.reason && FATAL_WAITING.has(w.reason)) {
      const exitCode = w.reason === 'CrashLoopBackOff' ? c.lastState?.terminated?.exitCode : undefined;
      return { message: `${w.reason}${w.message ? `: ${w.message}` : ''}${lastExit(c)}`, pod: pod.metadata.name, ...(exitCode !== undefined ? { exitCode } : {}) };
    }
  }
  return undefined;
}

function lastExit(c: ContainerStatus): string {
  const t = c.lastState?.terminated;
  return t ? ` (last exit: ${t.reason ?? 'Error'}, code ${t.exitCode ?? '?'}${t.message ? `: ${t.message.trim().slice(-2000)}` : ''})` : '';
}

/** Why a pod is not running well, for `lastError`, or undefined. */
function podError(pod: KubeObject): string | undefined {
  const s = podStatus(pod);
  if (s.phase === 'Failed' && s.reason === 'Evicted') return `evicted: ${s.message ?? 'the node ran short of resources'}`;
  if (s.phase === 'Failed') return `failed${s.reason ? ` (${s.reason})` : ''}${s.message ? `: ${s.message}` : ''}`;
  for (const c of s.containerStatuses ?? []) {
    const w = c.state?.waiting;
    if (w?.reason && w.reason !== 'ContainerCreating' && w.reason !== 'PodInitializing') return `${w.reason}${w.message ? `: ${w.message}` : ''}${lastExit(c)}`;
    const t = c.state?.terminated;
    if (t) return `${t.reason ?? 'terminated'} with code ${t.exitCode ?? '?'}${t.message ? `: ${t.message.trim().slice(-2000)}` : ''}`;
    const last = c.lastState?.terminated;
    if (last) return `last exit: ${last.reason ?? 'Error'}, code ${last.exitCode ?? '?'}${last.message ? `: ${last.message.trim().slice(-2000)}` : ''}`;
  }
  const unschedulable = s.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unschedulable) return `not scheduled (${unschedulable.reason ?? ''}): ${unschedulable.message ?? ''}`;
  return undefined;
}

function instanceOf(pod: KubeObject): RuntimeInstance {
  const s = podStatus(pod);
  const c = s.containerStatuses?.[0];
  const ready = s.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') ?? false;
  const waiting = c?.state?.waiting?.reason;
  let state: RuntimeState;
  if (s.phase === 'Failed') state = 'error';
  else if (waiting === 'CrashLoopBackOff') state = 'crashed';
  else if (waiting && FATAL_WAITING.has(waiting)) state = 'error';
  else if (pod.metadata.deletionTimestamp) state = 'stopped';
  else if (ready) state = 'running';
  else if (s.phase === 'Succeeded') state = 'stopped';
  else state = 'starting';
  const inst: RuntimeInstance = { id: pod.metadata.name, state, restarts: c?.restartCount ?? 0 };
  if (c?.state?.running?.startedAt) inst.startedAt = new Date(c.state.running.startedAt).toISOString();
  const error = podError(pod);
  if (error) inst.lastError = error;
  return inst;
}

function serviceState(instances: RuntimeInstance[]): RuntimeState {
  if (instances.length === 0) return 'pending';
  const states = instances.map((i) => i.state);
  if (states.includes('crashed')) return 'crashed';
  if (states.includes('running')) return 'running';
  if (states.every((s) => s === 'error')) return 'error';
  return 'starting';
}

/** How far a Deployment's rollout is: done, failed for good, or a line of progress. */
function rolloutState(d: KubeObject): { done: boolean; failed?: string; message: string } {
  const spec = d.spec as { replicas?: number };
  const st = (d.status ?? {}) as { observedGeneration?: number; replicas?: number; updatedReplicas?: number; readyReplicas?: number; availableReplicas?: number; conditions?: Condition[] };
  const want = spec.replicas ?? 1;
  const generation = Number(d.metadata.generation ?? 0);
  const observed = (st.observedGeneration ?? 0) >= generation;
  const updated = st.updatedReplicas ?? 0;
  const ready = st.readyReplicas ?? 0;
  const message = `${Math.min(updated, want)}/${want} instance${want === 1 ? '' : 's'} on the new build, ${ready} ready`;
  const refused = st.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  if (refused) return { done: false, failed: `the cluster refused its pods (${refused.reason ?? 'ReplicaFailure'}): ${refused.message ?? ''}`, message };
  const deadline = st.conditions?.find((c) => c.type === 'Progressing' && c.status === 'False' && c.reason === 'ProgressDeadlineExceeded');
  if (deadline) return { done: false, failed: `its rollout made no progress: ${deadline.message ?? ''}`, message };
  const done = observed && updated >= want && ready >= want && (st.availableReplicas ?? 0) >= want && (st.replicas ?? 0) <= want;
  return { done, message };
}

function ours(d: KubeObject, namespace: string, name: string): boolean {
  const l = d.metadata.labels ?? {};
  return l[MANAGED_BY] === 'micro' && l[NAMESPACE_LABEL] === namespace && l[SERVICE_LABEL] === name;
}

/** A line of the build's log: the runner's progress (`{"step","message"}`) or the tools' output. */
function runnerProgress(line: string): { step: 'fetch' | 'install' | 'build'; message: string } {
  if (line.startsWith('{"step"')) {
    try {
      const p = JSON.parse(line) as { step?: unknown; message?: unknown };
      if ((p.step === 'fetch' || p.step === 'install' || p.step === 'build') && typeof p.message === 'string') return { step: p.step, message: p.message };
    } catch {
      // the tools' own output
    }
  }
  return { step: 'build', message: line };
}

function parseEnv(text: string | undefined): Record<string, string> {
  if (!text) return {};
  try {
    const env = JSON.parse(text) as unknown;
    return env && typeof env === 'object' && !Array.isArray(env) ? (env as Record<string, string>) : {};
  } catch {
    return {};
  }
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** 8 hex digits: a build's id, short enough for the names of its objects. */
function newBuildId(): string {
  return randomBytes(4).toString('hex');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

async function settle(p: Promise<void> | undefined, ms: number): Promise<void> {
  if (p) await Promise.race([p, new Promise((r) => setTimeout(r, ms))]);
}

/** A key file of the server for transfer tokens when MICRO_AUTH_KEY is not set (one server). */
export function transferKeyFile(home: string): Buffer {
  const dir = join(home, 'runtime');
  const file = join(dir, 'transfer.key');
  if (existsSync(file)) return readFileSync(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
  return key;
}
