import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiServer, DeleteOptions } from './apiserver.js';
import type { Clock } from './clock.js';
import { APPLY_PATCH, applyPatch, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH } from './patch.js';
import type { Resource } from './resources.js';
import { apiGroup, findResource, groupList, groupVersions, resourceList } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { badRequest, faultStatus, methodNotAllowed, pathNotFound, StatusError, unauthorized } from './status.js';
import type { KObj, Pod } from './types.js';
import { isObject } from './types.js';
import { Watch } from './watch.js';

/**
 * The HTTP face of the fake: the REST paths of the API (`/api/v1/namespaces/{ns}/pods/{name}`,
 * `/apis/apps/v1/...`, the legacy `/watch/` paths), discovery, bearer-token authentication,
 * request bodies bounded as the API server bounds them, injected faults, and every error as a
 * Status.
 */

/** the API server's limit on a request body */
export const MAX_BODY = 3 * 1024 * 1024;
/** the minimum request timeout of a watch, as the API server's default `--min-request-timeout` */
const WATCH_TIMEOUT_S = 1800;

export interface FaultRule {
  method?: string;
  path?: RegExp;
  status?: number;
  delayMs?: number;
  times?: number;
  down?: boolean;
  /** the Retry-After of a 429 or 503 (default 1) */
  retryAfterSeconds?: number;
}

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
}

/** how `pods/{name}/log` is answered (the kubelet's part) */
export interface LogServer {
  serve(pod: Pod, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): void;
}

interface Target {
  resource: Resource;
  namespace?: string;
  name?: string;
  sub?: string;
  watch: boolean;
}

export class HttpApi {
  readonly faults: FaultRule[] = [];
  readonly requests: RequestRecord[] = [];
  private readonly watches = new Set<Watch>();

  constructor(
    private readonly api: ApiServer,
    private readonly clock: Clock,
    private readonly token: string,
    private readonly logs: LogServer,
    private readonly address: () => string,
  ) {}

  /** the request handler of the node:http server */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.serve(req, res).catch((err: unknown) => this.fail(req, res, err));
  };

  closeWatches(): void {
    for (const w of this.watches) w.close();
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://fake');
    const fault = this.takeFault(method, url.pathname + url.search);
    if (fault?.delayMs) await this.sleep(fault.delayMs, req);
    if (fault?.status) throw faultStatus(fault.status, fault.retryAfterSeconds);
    if (!this.authorized(req)) throw unauthorized();
    if (this.discovery(method, url, res)) return;
    const target = this.route(url);
    await this.dispatch(method, target, url.searchParams, req, res);
  }

  /** the first rule matching the request, counted */
  private takeFault(method: string, path: string): FaultRule | undefined {
    const rule = this.faults.find((f) => !f.down && (!f.method || f.method.toUpperCase() === method) && (!f.path || f.path.test(path)));
    if (!rule) return undefined;
    if (rule.times !== undefined && --rule.times <= 0) this.faults.splice(this.faults.indexOf(rule), 1);
    return rule;
  }

  private sleep(ms: number, req: IncomingMessage): Promise<void> {
    return new Promise((resolve) => {
      const cancel = this.clock.after(ms, resolve);
      req.once('close', () => {
        cancel();
        resolve();
      });
    });
  }

  private authorized(req: IncomingMessage): boolean {
    const given = Buffer.from(req.headers.authorization ?? '');
    const want = Buffer.from(`Bearer ${this.token}`);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  // ---- discovery -------------------------------------------------------------------------

  private discovery(method: string, url: URL, res: ServerResponse): boolean {
    const p = url.pathname.replace(/\/+$/, '') || '/';
    if (method !== 'GET') return false;
    if (['/healthz', '/livez', '/readyz'].includes(p)) {
      this.record('GET', url, 200);
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('ok');
      return true;
    }
    const doc = this.discoveryDoc(p);
    if (!doc) return false;
    this.send(res, 'GET', url, 200, doc);
    return true;
  }

  private discoveryDoc(p: string): object | undefined {
    if (p === '/version') return { major: '1', minor: '32', gitVersion: 'v1.32.0-fake', gitCommit: 'fake', gitTreeState: 'clean', buildDate: '2024-12-11T00:00:00Z', goVersion: 'go1.23.3', compiler: 'gc', platform: 'linux/amd64' };
    if (p === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.address() }] };
    if (p === '/apis') return groupList();
    const m = /^\/(?:api\/(v1)|apis\/([a-z0-9.-]+)(?:\/(v[a-z0-9]+))?)$/.exec(p);
    if (!m) return undefined;
    if (m[1]) return resourceList('', 'v1');
    const group = m[2] as string;
    if (!m[3]) return groupVersions().some((g) => g.group === group) ? apiGroup(group, 'v1') : undefined;
    return resourceList(group, m[3]);
  }

  // ---- routing ---------------------------------------------------------------------------

  private route(url: URL): Target {
    const fail = () => pathNotFound(url.pathname);
    let segs: string[];
    try {
      segs = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      throw fail();
    }
    let group: string;
    let rest: string[];
    if (segs[0] === 'api' && segs[1] === 'v1') [group, rest] = ['', segs.slice(2)];
    else if (segs[0] === 'apis' && segs.length >= 3) [group, rest] = [segs[1] as string, segs.slice(3)];
    else throw fail();
    const version = segs[0] === 'api' ? 'v1' : (segs[2] as string);
    const watch = rest[0] === 'watch';
    if (watch) rest = rest.slice(1);
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && findResource(group, version, rest[2] as string)?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const resource = findResource(group, version, rest[0] ?? '');
    if (!resource || rest.length > 3) throw fail();
    const [, name, sub] = rest;
    if (namespace !== undefined && !resource.namespaced) throw fail();
    if (resource.namespaced && namespace === undefined && name !== undefined) throw fail();
    if (sub !== undefined && !resource.subresources.includes(sub)) throw fail();
    return { resource, namespace, name, sub, watch };
  }

  private async dispatch(method: string, t: Target, q: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const warnings: string[] = [];
    const dryRun = q.get('dryRun') === 'All';
    const { resource: r, namespace: ns, name, sub } = t;
    if (t.watch || (method === 'GET' && !name && isTrue(q.get('watch')))) return this.watch(t, q, url, res);
    if (method === 'GET' && sub === 'log') return this.log(t, q, url, req, res);
    if (method === 'GET') {
      if (!name) return this.sendList(res, url, r, ns, q);
      const obj = this.api.get(r, ns, name);
      return this.send(res, method, url, 200, sub === 'scale' ? this.api.scaleOf(r, obj) : obj);
    }
    const body = method === 'DELETE' ? await this.optionalBody(req) : await this.body(req);
    if (method === 'POST' && !name) return this.send(res, method, url, 201, this.api.create(r, ns, body, { dryRun, warnings }), warnings);
    if (method === 'POST' && sub === 'eviction') return this.evict(t, body, url, res);
    if (!name) {
      if (method === 'DELETE') return this.deleteCollection(t, q, body, url, res);
      throw methodNotAllowed();
    }
    if (method === 'PUT') return this.send(res, method, url, 200, this.put(t, body, dryRun, warnings), warnings);
    if (method === 'PATCH') return this.send(res, method, url, 200, this.patch(t, req, body, dryRun, warnings), warnings);
    if (method === 'DELETE' && !sub) return this.delete(t, q, body, url, res);
    throw methodNotAllowed();
  }

  private put(t: Target, body: unknown, dryRun: boolean, warnings: string[]): object {
    const { resource: r, namespace: ns, name = '', sub } = t;
    if (sub === 'scale') return this.api.scaleOf(r, this.scale(t, body, dryRun));
    if (sub === 'finalize') return this.api.update(r, ns, name, body, { dryRun, warnings }, 'finalize');
    if (sub && sub !== 'status') throw methodNotAllowed();
    return this.api.update(r, ns, name, body, { dryRun, warnings }, sub);
  }

  private patch(t: Target, req: IncomingMessage, body: unknown, dryRun: boolean, warnings: string[]): object {
    const { resource: r, namespace: ns, name = '', sub } = t;
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    if (type === APPLY_PATCH) throw new StatusError(415, 'UnsupportedMediaType', `server-side apply (${APPLY_PATCH}) is not implemented by the test API server; use ${STRATEGIC_PATCH}, ${MERGE_PATCH} or ${JSON_PATCH}`);
    if (sub === 'scale') {
      const scale = this.api.scaleOf(r, this.api.get(r, ns, name));
      return this.api.scaleOf(r, this.scale(t, applyPatch(type, scale, body), dryRun));
    }
    if (sub && sub !== 'status') throw methodNotAllowed();
    return this.api.patch(r, ns, name, type, body, { dryRun, warnings }, sub);
  }

  /** `/scale`: the replicas of a Deployment or ReplicaSet, with the Scale's resourceVersion as precondition */
  private scale(t: Target, body: unknown, dryRun: boolean): KObj {
    const { resource: r, namespace: ns, name = '' } = t;
    const replicas = isObject(body) && isObject(body.spec) ? body.spec.replicas : undefined;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw new StatusError(422, 'Invalid', `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas ?? null)}: must be greater than or equal to 0`);
    }
    const obj = this.api.get(r, ns, name);
    const rv = isObject(body) && isObject(body.metadata) ? body.metadata.resourceVersion : undefined;
    (obj.spec as { replicas?: number }).replicas = replicas;
    if (typeof rv === 'string' && rv) obj.metadata.resourceVersion = rv;
    return this.api.update(r, ns, name, obj, { dryRun });
  }

  private deleteOptions(q: URLSearchParams, body: unknown): DeleteOptions {
    const b = (isObject(body) ? body : {}) as DeleteOptions & { dryRun?: unknown };
    const o: DeleteOptions = {};
    const grace = q.get('gracePeriodSeconds') ?? b.gracePeriodSeconds;
    if (grace !== undefined && grace !== null) {
      const n = Number(grace);
      if (!Number.isInteger(n)) throw badRequest(`gracePeriodSeconds: invalid value ${JSON.stringify(grace)}`);
      o.gracePeriodSeconds = Math.max(0, n);
    }
    const policy = q.get('propagationPolicy') ?? b.propagationPolicy;
    if (policy) o.propagationPolicy = String(policy);
    const orphan = q.get('orphanDependents') ?? b.orphanDependents;
    if (orphan !== undefined && orphan !== null) o.orphanDependents = String(orphan) === 'true';
    if (isObject(b.preconditions)) o.preconditions = b.preconditions;
    o.dryRun = q.get('dryRun') === 'All' || (Array.isArray(b.dryRun) && b.dryRun.includes('All'));
    return o;
  }

  private delete(t: Target, q: URLSearchParams, body: unknown, url: URL, res: ServerResponse): void {
    const warnings: string[] = [];
    const { resource: r, namespace: ns, name = '' } = t;
    const { object, gone } = this.api.delete(r, ns, name, { ...this.deleteOptions(q, body), warnings });
    if (!gone || r.returnsDeleted) return this.send(res, 'DELETE', url, 200, object, warnings);
    const details = { name, ...(r.group ? { group: r.group } : {}), kind: r.plural, uid: object.metadata.uid };
    this.send(res, 'DELETE', url, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details }, warnings);
  }

  private deleteCollection(t: Target, q: URLSearchParams, body: unknown, url: URL, res: ServerResponse): void {
    const { resource: r, namespace: ns } = t;
    const opts = this.deleteOptions(q, body);
    const list = this.api.list(r, ns, { labels: parseLabelSelector(q.get('labelSelector')), fields: parseFieldSelector(q.get('fieldSelector'), r.fields) });
    const items: KObj[] = [];
    for (const o of list.items) {
      try {
        items.push(this.api.delete(r, o.metadata.namespace, o.metadata.name, opts).object);
      } catch (err) {
        if (!(err instanceof StatusError && err.code === 404)) throw err;
      }
    }
    this.send(res, 'DELETE', url, 200, { kind: `${r.kind}List`, apiVersion: r.apiVersion, metadata: { resourceVersion: String(this.api.store.rv) }, items: items.map(listItem) });
  }

  /** `POST pods/{name}/eviction`: a graceful delete, answered with 201 Success */
  private evict(t: Target, body: unknown, url: URL, res: ServerResponse): void {
    const { resource: r, namespace: ns, name = '' } = t;
    const opts = isObject(body) && isObject(body.deleteOptions) ? this.deleteOptions(new URLSearchParams(), body.deleteOptions) : {};
    this.api.delete(r, ns, name, opts);
    this.send(res, 'POST', url, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
  }

  private sendList(res: ServerResponse, url: URL, r: Resource, ns: string | undefined, q: URLSearchParams): void {
    const limit = q.get('limit');
    if (limit !== null && !/^\d+$/.test(limit)) throw badRequest(`limit: invalid value ${JSON.stringify(limit)}`);
    const filtered = Boolean(q.get('labelSelector') || q.get('fieldSelector'));
    const list = this.api.list(r, ns, {
      labels: parseLabelSelector(q.get('labelSelector')),
      fields: parseFieldSelector(q.get('fieldSelector'), r.fields),
      filtered,
      ...(limit && Number(limit) > 0 ? { limit: Number(limit) } : {}),
      ...(q.get('continue') ? { continueToken: q.get('continue') as string } : {}),
      ...(q.get('resourceVersion') !== null ? { resourceVersion: q.get('resourceVersion') as string } : {}),
      ...(q.get('resourceVersionMatch') ? { resourceVersionMatch: q.get('resourceVersionMatch') as string } : {}),
    });
    const metadata: Record<string, unknown> = { resourceVersion: list.resourceVersion };
    if (list.continueToken) metadata.continue = list.continueToken;
    if (list.remainingItemCount !== undefined) metadata.remainingItemCount = list.remainingItemCount;
    this.send(res, 'GET', url, 200, { kind: `${r.kind}List`, apiVersion: r.apiVersion, metadata, items: list.items.map(listItem) });
  }

  private watch(t: Target, q: URLSearchParams, url: URL, res: ServerResponse): void {
    const { resource: r, namespace, name } = t;
    let fieldText = q.get('fieldSelector') ?? '';
    if (name) fieldText = [fieldText, `metadata.name=${name}`].filter(Boolean).join(',');
    const fields = parseFieldSelector(fieldText, r.fields);
    const labels = parseLabelSelector(q.get('labelSelector'));
    const timeout = q.get('timeoutSeconds');
    const initial = q.get('sendInitialEvents');
    if (initial === 'true' && (q.get('resourceVersionMatch') !== 'NotOlderThan' || !isTrue(q.get('allowWatchBookmarks')))) {
      throw new StatusError(422, 'Invalid', 'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan and allowWatchBookmarks is set to true');
    }
    this.record('GET', url, 200);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked', 'Audit-Id': randomUUID() });
    res.flushHeaders();
    const w = new Watch(this.api.store, this.clock, res, {
      resource: r,
      ...(namespace ? { namespace } : {}),
      labels,
      fields,
      ...(q.get('resourceVersion') !== null ? { resourceVersion: q.get('resourceVersion') as string } : {}),
      ...(initial !== null ? { sendInitialEvents: initial === 'true' } : {}),
      bookmarks: isTrue(q.get('allowWatchBookmarks')),
      timeoutMs: (timeout && /^\d+$/.test(timeout) ? Number(timeout) : WATCH_TIMEOUT_S) * 1000,
      bookmarkMs: this.clock.seconds(60),
    });
    this.watches.add(w);
    res.on('close', () => this.watches.delete(w));
    w.start();
  }

  private log(t: Target, q: URLSearchParams, url: URL, req: IncomingMessage, res: ServerResponse): void {
    const pod = this.api.get(t.resource, t.namespace, t.name ?? '') as Pod;
    res.once('finish', () => this.record('GET', url, res.statusCode));
    this.logs.serve(pod, q, req, res);
  }

  // ---- bodies and answers -----------------------------------------------------------------

  private async body(req: IncomingMessage): Promise<unknown> {
    const type = (req.headers['content-type'] ?? 'application/json').split(';')[0]?.trim() ?? '';
    if (!/^application\/(json|[a-z-]+\+json)$/.test(type) && type !== APPLY_PATCH) {
      throw new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, ${JSON_PATCH}, ${MERGE_PATCH}, ${STRATEGIC_PATCH}`);
    }
    const text = await readBody(req);
    try {
      return JSON.parse(text);
    } catch (err) {
      throw badRequest(`the body of the request could not be decoded as JSON: ${(err as Error).message}`);
    }
  }

  private async optionalBody(req: IncomingMessage): Promise<unknown> {
    const text = await readBody(req);
    if (!text.trim()) return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw badRequest(`the body of the request could not be decoded as JSON: ${(err as Error).message}`);
    }
  }

  private record(method: string, url: URL, status: number): void {
    this.requests.push({ method, path: url.pathname + url.search, status });
  }

  private send(res: ServerResponse, method: string, url: URL, status: number, body: unknown, warnings: string[] = []): void {
    this.record(method, url, status);
    const headers: Record<string, string | string[]> = { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Audit-Id': randomUUID() };
    if (warnings.length) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
    res.writeHead(status, headers).end(JSON.stringify(body));
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const e = err instanceof StatusError ? err : new StatusError(500, 'InternalError', `Internal error occurred: ${(err as Error)?.message ?? String(err)}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.record(req.method ?? 'GET', url, e.code);
    res.writeHead(e.code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', ...e.headers }).end(JSON.stringify(e.status()));
  }
}

function isTrue(v: string | null): boolean {
  return v === 'true' || v === '1';
}

/** items of a list carry no kind or apiVersion (the list says them), as the API server writes them */
function listItem(o: KObj): object {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new StatusError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${MAX_BODY}`));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
