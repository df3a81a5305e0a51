import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import { MicroError } from '@micro/sdk';

/**
 * The generic Kubernetes client of the runtime: create-or-replace, get, list, delete,
 * watch and pod logs of plain JSON objects, on `@kubernetes/client-node`'s `KubeConfig`
 * (kubeconfig files, in-cluster ServiceAccounts, client certificates, exec plugins and
 * token refresh: the parts one must not write again).
 *
 * The requests themselves are made here, as raw JSON, rather than through
 * `KubernetesObjectApi`: that one turns objects into typed models (timestamps become Date
 * objects, fields it does not know are dropped on the way in) and asks the discovery API
 * for each new kind; the runtime uses a dozen built-in kinds whose paths are fixed
 * (`RESOURCES`), and compares what it wrote with what it reads.
 *
 * Every call retries what is worth retrying — 429 (after its Retry-After), 5xx, a refused
 * or reset connection, an API server slower than `timeout` — with a bounded backoff, and
 * ends in a `KubeError` saying what the API server answered and what to do.
 */

export interface KubeMetadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
  ownerReferences?: unknown[];
  [k: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: KubeMetadata;
  [k: string]: unknown;
}

/** What a watch reports: the objects as listed (at its start and after each relist), then each change. */
export type WatchEvent<T extends KubeObject = KubeObject> = { type: 'SYNC'; objects: T[] } | { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: T };

export interface WatchOptions {
  labelSelector?: string;
  /** seconds the server keeps one watch request open before the client opens the next (default 300) */
  timeoutSeconds?: number;
}

export interface LogOptions {
  container?: string;
  follow?: boolean;
  tailLines?: number;
  /** RFC 3339 */
  sinceTime?: string;
  /** the previous (terminated) container's log */
  previous?: boolean;
}

/** One line of a pod's log, with the time the kubelet took it at. */
export interface PodLogLine {
  time: string;
  line: string;
}

export interface KubeClient {
  /** the API server's URL (for messages) */
  readonly server: string;
  /** creates the object, or, when it exists, replaces it with this one (keeping resourceVersion; a 409 Conflict is retried on a fresh read) */
  apply<T extends KubeObject>(obj: T): Promise<T>;
  /** creates the object; a 409 AlreadyExists is a KubeError */
  create<T extends KubeObject>(obj: T): Promise<T>;
  get<T extends KubeObject>(apiVersion: string, kind: string, name: string, namespace?: string): Promise<T | undefined>;
  list<T extends KubeObject>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<T[]>;
  /** deletes (propagationPolicy Background); a 404 is not an error */
  remove(apiVersion: string, kind: string, name: string, namespace?: string): Promise<void>;
  /**
   * The objects of a kind, then their changes, until `signal` aborts. A watch whose
   * resourceVersion expired (410 Gone) lists again (a `SYNC` event) and goes on from there;
   * a dropped connection is watched again from the last version seen.
   */
  watch<T extends KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, options: WatchOptions, signal: AbortSignal): AsyncGenerator<WatchEvent<T>>;
  /** A pod's log lines; with `follow`, until the container ends or `signal` aborts. */
  logs(namespace: string, pod: string, options: LogOptions, signal?: AbortSignal): AsyncGenerator<PodLogLine>;
}

export interface KubeClientOptions {
  /** attempts of a call before it fails (default 5) */
  attempts?: number;
  /** backoff between attempts in ms: doubles from `initial` up to `max` (default 200 and 5,000); a Retry-After is honoured up to `max` */
  backoff?: { initial?: number; max?: number };
  /** ms an answer may take before the request counts as failed (default 15,000; watches and followed logs excepted) */
  timeout?: number;
}

/** An answer of the API server (or its absence) the runtime could not get past. */
export class KubeError extends MicroError {
  constructor(
    code: number,
    detail: string,
    /** the API server's HTTP status; undefined when none came (refused, timed out) */
    readonly httpStatus: number | undefined,
    /** the Status object's reason (AlreadyExists, Conflict, Invalid, Forbidden, Expired …) */
    readonly reason: string | undefined,
  ) {
    super('kubernetes', code, detail);
    this.name = 'KubeError';
  }
}

interface Resource {
  plural: string;
  namespaced: boolean;
}

/** The kinds the runtime and the tenant namespaces use, by `apiVersion/kind`. */
export const RESOURCES: Readonly<Record<string, Resource>> = {
  'v1/Namespace': { plural: 'namespaces', namespaced: false },
  'v1/ServiceAccount': { plural: 'serviceaccounts', namespaced: true },
  'v1/Secret': { plural: 'secrets', namespaced: true },
  'v1/ConfigMap': { plural: 'configmaps', namespaced: true },
  'v1/ResourceQuota': { plural: 'resourcequotas', namespaced: true },
  'v1/LimitRange': { plural: 'limitranges', namespaced: true },
  'v1/Pod': { plural: 'pods', namespaced: true },
  'v1/Service': { plural: 'services', namespaced: true },
  'v1/Event': { plural: 'events', namespaced: true },
  'apps/v1/Deployment': { plural: 'deployments', namespaced: true },
  'apps/v1/ReplicaSet': { plural: 'replicasets', namespaced: true },
  'batch/v1/Job': { plural: 'jobs', namespaced: true },
  'networking.k8s.io/v1/NetworkPolicy': { plural: 'networkpolicies', namespaced: true },
  'rbac.authorization.k8s.io/v1/Role': { plural: 'roles', namespaced: true },
  'rbac.authorization.k8s.io/v1/RoleBinding': { plural: 'rolebindings', namespaced: true },
};

/** The API path of a kind's collection, or of one object when `name` is given. */
export function resourcePath(apiVersion: string, kind: string, namespace?: string, name?: string): string {
  const r = RESOURCES[`${apiVersion}/${kind}`];
  if (!r) throw new Error(`the runtime does not know the Kubernetes kind ${apiVersion} ${kind}`);
  if (r.namespaced && !namespace) throw new Error(`${kind} is namespaced: a namespace is needed`);
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = r.namespaced ? `/namespaces/${encodeURIComponent(namespace as string)}` : '';
  return `${base}${ns}/${r.plural}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}

/**
 * A client of the cluster a kubeconfig file names (its current context), or, without one,
 * of the cluster this process runs in (the pod's ServiceAccount).
 */
export function kubeClient(kubeconfig?: string, options: KubeClientOptions = {}): KubeClient {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromCluster();
  return new HttpKubeClient(kc, options);
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A failure worth another attempt, and how long to wait before it (ms; undefined: the backoff's). */
class Retryable extends Error {
  constructor(
    readonly final: KubeError,
    readonly after: number | undefined,
  ) {
    super(final.message);
  }
}

const MAX_BODY = 64 * 1024 * 1024;

class HttpKubeClient implements KubeClient {
  readonly server: string;
  private readonly attempts: number;
  private readonly initial: number;
  private readonly max: number;
  private readonly timeout: number;
  private agent: http.Agent | undefined;

  constructor(
    private readonly kc: KubeConfig,
    options: KubeClientOptions,
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new KubeError(503, 'the kubeconfig names no current cluster (its current-context)', undefined, undefined);
    this.server = cluster.server.replace(/\/+$/, '');
    this.attempts = options.attempts ?? 5;
    this.initial = options.backoff?.initial ?? 200;
    this.max = options.backoff?.max ?? 5_000;
    this.timeout = options.timeout ?? 15_000;
  }

  async apply<T extends KubeObject>(obj: T): Promise<T> {
    const { apiVersion, kind, metadata } = obj;
    for (let round = 0; ; round++) {
      const current = await this.get<T>(apiVersion, kind, metadata.name, metadata.namespace);
      try {
        if (!current) return await this.create(obj);
        const next = { ...obj, metadata: { ...obj.metadata, resourceVersion: current.metadata.resourceVersion } };
        return await this.json<T>('PUT', resourcePath(apiVersion, kind, metadata.namespace, metadata.name), next, describe(obj));
      } catch (err) {
        // someone else wrote it between the read and the write (or created it): read again
        if (err instanceof KubeError && err.httpStatus === 409 && round < this.attempts) continue;
        throw err;
      }
    }
  }

  create<T extends KubeObject>(obj: T): Promise<T> {
    return this.json<T>('POST', resourcePath(obj.apiVersion, obj.kind, obj.metadata.namespace), obj, describe(obj));
  }

  async get<T extends KubeObject>(apiVersion: string, kind: string, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.json<T>('GET', resourcePath(apiVersion, kind, namespace, name), undefined, `${kind} ${namespace ? `${namespace}/` : ''}${name}`);
    } catch (err) {
      if (err instanceof KubeError && err.httpStatus === 404) return undefined;
      throw err;
    }
  }

  async list<T extends KubeObject>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<T[]> {
    return (await this.listWithVersion<T>(apiVersion, kind, namespace, labelSelector)).items;
  }

  private async listWithVersion<T extends KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, labelSelector: string | undefined): Promise<{ items: T[]; resourceVersion: string }> {
    const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    const list = await this.json<{ items?: T[]; metadata?: { resourceVersion?: string } }>('GET', `${resourcePath(apiVersion, kind, namespace)}${query}`, undefined, `the ${kind}s${namespace ? ` of ${namespace}` : ''}`);
    // the items of a list carry no apiVersion and kind
    const items = (list.items ?? []).map((item) => ({ ...item, apiVersion, kind }));
    return { items, resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  async remove(apiVersion: string, kind: string, name: string, namespace?: string): Promise<void> {
    try {
      await this.json('DELETE', resourcePath(apiVersion, kind, namespace, name), { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' }, `${kind} ${namespace ? `${namespace}/` : ''}${name}`);
    } catch (err) {
      if (err instanceof KubeError && err.httpStatus === 404) return;
      throw err;
    }
  }

  async *watch<T extends KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, options: WatchOptions, signal: AbortSignal): AsyncGenerator<WatchEvent<T>> {
    let version: string | undefined;
    let failures = 0;
    while (!signal.aborted) {
      if (version === undefined) {
        const listed = await this.listWithVersion<T>(apiVersion, kind, namespace, options.labelSelector);
        version = listed.resourceVersion;
        yield { type: 'SYNC', objects: listed.items };
      }
      const params = new URLSearchParams({ watch: 'true', resourceVersion: version, allowWatchBookmarks: 'true', timeoutSeconds: String(options.timeoutSeconds ?? 300) });
      if (options.labelSelector) params.set('labelSelector', options.labelSelector);
      let expired = false;
      try {
        for await (const event of this.watchOnce(`${resourcePath(apiVersion, kind, namespace)}?${params}`, signal)) {
          failures = 0;
          const object = event.object as T & { code?: number };
          if (event.type === 'ERROR') {
            // an expired resourceVersion: the history the server keeps no longer reaches it
            if (object.code === 410) {
              expired = true;
              break;
            }
            throw new KubeError(503, `the watch of ${kind}s ended with an error: ${(object as { message?: string }).message ?? JSON.stringify(object)}`, object.code, undefined);
          }
          if (object?.metadata?.resourceVersion) version = object.metadata.resourceVersion;
          if (event.type === 'BOOKMARK') continue;
          if (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED') yield { type: event.type, object: { ...object, apiVersion, kind } };
        }
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof KubeError && err.httpStatus === 410) expired = true;
        else if (err instanceof Retryable && ++failures < this.attempts) await sleep(err.after ?? this.backoff(failures), signal);
        else throw err instanceof Retryable ? err.final : err;
      }
      if (expired) version = undefined;
    }
  }

  /** One watch request: its events until the server ends it. */
  private async *watchOnce(path: string, signal: AbortSignal): AsyncGenerator<{ type: string; object: unknown }> {
    const res = await this.open('GET', path, signal, 'a watch');
    try {
      for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
        if (!line.trim()) continue;
        let event: { type: string; object: unknown };
        try {
          event = JSON.parse(line) as { type: string; object: unknown };
        } catch {
          throw new KubeError(502, `the API server at ${this.server} sent a watch event that is not JSON: ${line.slice(0, 200)}`, undefined, undefined);
        }
        yield event;
      }
    } finally {
      res.destroy();
    }
  }

  async *logs(namespace: string, pod: string, options: LogOptions, signal?: AbortSignal): AsyncGenerator<PodLogLine> {
    const params = new URLSearchParams({ timestamps: 'true' });
    if (options.container) params.set('container', options.container);
    if (options.follow) params.set('follow', 'true');
    if (options.tailLines !== undefined) params.set('tailLines', String(options.tailLines));
    if (options.sinceTime) params.set('sinceTime', options.sinceTime);
    if (options.previous) params.set('previous', 'true');
    const path = `${resourcePath('v1', 'Pod', namespace, pod)}/log?${params}`;
    const res = await this.withRetries(() => this.open('GET', path, signal, `the log of pod ${namespace}/${pod}`));
    try {
      for await (const raw of createInterface({ input: res, crlfDelay: Infinity })) {
        const space = raw.indexOf(' ');
        const time = space > 0 ? raw.slice(0, space) : '';
        // RFC 3339 with nanoseconds, as the kubelet writes it
        if (/^\d{4}-\d\d-\d\dT/.test(time)) yield { time: new Date(time).toISOString(), line: raw.slice(space + 1) };
        else yield { time: new Date().toISOString(), line: raw };
      }
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    } finally {
      res.destroy();
    }
  }

  // ---- requests ---------------------------------------------------------------------

  /** A request with a JSON answer, retried as the class comment says. */
  private json<T>(method: string, path: string, body: unknown, what: string): Promise<T> {
    return this.withRetries(async () => {
      const answer = await this.send(method, path, body, what);
      if (answer.status >= 200 && answer.status < 300) {
        try {
          return JSON.parse(answer.body.toString('utf8')) as T;
        } catch {
          throw new KubeError(502, `the API server at ${this.server} answered ${method} ${path} with something that is not JSON`, answer.status, undefined);
        }
      }
      throw this.failure(answer, method, what);
    });
  }

  private async withRetries<T>(attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof Retryable)) throw err;
        if (n >= this.attempts) throw err.final;
        await sleep(Math.min(this.max, err.after ?? this.backoff(n)));
      }
    }
  }

  private backoff(n: number): number {
    return Math.min(this.max, this.initial * 2 ** (n - 1));
  }

  /** The error an unsuccessful answer becomes: a Retryable for 429 and 5xx. */
  private failure(answer: Answer, method: string, what: string): Error {
    const status = statusOf(answer);
    const said = status.message ? `: ${status.message}` : '';
    const code = answer.status;
    if (code === 429 || code >= 500) {
      const retryAfter = Number(answer.headers['retry-after']);
      const after = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : undefined;
      const detail =
        code === 429
          ? `the Kubernetes API server at ${this.server} kept throttling the runtime (429 Too Many Requests) after ${this.attempts} attempts${said}; try again in a while, or raise the API server's limits (API Priority and Fairness) for micro's ServiceAccount`
          : `the Kubernetes API server at ${this.server} answered ${method} of ${what} with ${code} ${http.STATUS_CODES[code] ?? ''} ${this.attempts} times${said}; check the cluster's control plane`;
      return new Retryable(new KubeError(503, detail, code, status.reason), after);
    }
    if (code === 401) return new KubeError(503, `the Kubernetes API server at ${this.server} did not accept the runtime's credentials (401)${said}; check MICRO_KUBECONFIG or the pod's ServiceAccount token`, code, status.reason);
    if (code === 403 && /exceeded quota|forbidden: exceeded/i.test(status.message ?? '')) return new KubeError(403, `the cluster refused ${what}: its namespace's quota is used up${said}`, code, status.reason);
    if (code === 403) return new KubeError(403, `the Kubernetes API server refused ${method} of ${what} (403)${said}; micro's ServiceAccount may lack the RBAC rights the runtime needs (see deploy/)`, code, status.reason);
    if (code === 404) return new KubeError(404, `${what} does not exist in the cluster${said}`, code, status.reason);
    if (code === 409) return new KubeError(409, `${what}: ${status.reason === 'AlreadyExists' ? 'it exists already' : 'it was changed meanwhile'}${said}`, code, status.reason);
    if (code === 410) return new KubeError(503, `${what}: the version asked for has expired (410 Gone)${said}`, code, status.reason);
    if (code === 400 || code === 422) return new KubeError(400, `the cluster refused ${what} as invalid${said}`, code, status.reason);
    return new KubeError(502, `the Kubernetes API server answered ${method} of ${what} with ${code}${said}`, code, status.reason);
  }

  /** How the request is made: the kubeconfig's TLS, credentials (refreshed as it says) and proxy. */
  private async requestOptions(method: string, timeout: number | undefined): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    // one agent for every request: its connections are kept alive (TLS once)
    this.agent ??= opts.agent as http.Agent;
    const headers: http.OutgoingHttpHeaders = { ...(opts.headers as http.OutgoingHttpHeaders), accept: 'application/json' };
    const out: https.RequestOptions = { method, headers, agent: this.agent };
    if (opts.auth) out.auth = opts.auth;
    if (timeout !== undefined) out.timeout = timeout;
    return out;
  }

  /** One request with a whole (bounded) answer; a refused, reset or too slow one is Retryable. */
  private async send(method: string, path: string, body: unknown, what: string): Promise<Answer> {
    const opts = await this.requestOptions(method, this.timeout);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (data) Object.assign(opts.headers as http.OutgoingHttpHeaders, { 'content-type': 'application/json', 'content-length': data.length });
    return new Promise<Answer>((resolve, reject) => {
      const req = this.transport().request(`${this.server}${path}`, opts, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY) req.destroy(new Error(`an answer larger than ${MAX_BODY} bytes`));
          else chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (err) => reject(this.unreachable(err, what)));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(this.unreachable(err, what)));
      req.end(data);
    });
  }

  /** A streamed answer (a watch, a followed log): its response once its status is 200. */
  private async open(method: string, path: string, signal: AbortSignal | undefined, what: string): Promise<http.IncomingMessage> {
    const opts = await this.requestOptions(method, undefined);
    if (signal) opts.signal = signal;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = this.transport().request(`${this.server}${path}`, opts, resolve);
      // no answer at all within the timeout: the API server is not there
      const timer = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })), this.timeout);
      req.on('response', () => clearTimeout(timer));
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(signal?.aborted ? err : this.unreachable(err, what));
      });
      req.end();
    });
    if (res.statusCode === 200) return res;
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    throw this.failure({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }, method, what);
  }

  private transport(): typeof http | typeof https {
    return this.server.startsWith('https:') ? https : http;
  }

  private unreachable(err: Error & { code?: string }, what: string): Retryable {
    const how = err.code === 'ETIMEDOUT' ? `did not answer within ${this.timeout / 1000} s` : `could not be reached (${err.code ?? err.message})`;
    return new Retryable(new KubeError(503, `the Kubernetes API server at ${this.server} ${how} for ${what}, ${this.attempts} times; check that the cluster runs and that MICRO_KUBECONFIG (or the pod's ServiceAccount) points at it`, undefined, undefined), undefined);
  }
}

/** The Status object of an error answer (what the API server says went wrong). */
function statusOf(answer: Answer): { message?: string; reason?: string } {
  try {
    const s = JSON.parse(answer.body.toString('utf8')) as { kind?: string; message?: unknown; reason?: unknown };
    return { ...(typeof s.message === 'string' ? { message: s.message.slice(0, 2000) } : {}), ...(typeof s.reason === 'string' ? { reason: s.reason } : {}) };
  } catch {
    const text = answer.body.toString('utf8').trim().slice(0, 500);
    return text ? { message: text } : {};
  }
}

function describe(obj: KubeObject): string {
  return `${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata.name}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
