import { randomUUID } from 'node:crypto';
import { admitUpdate, mutateCreate, validateCreate } from './admission.js';
import type { Clock } from './clock.js';
import { applyDefaults } from './defaults.js';
import { applyPatch } from './patch.js';
import type { Resource } from './resources.js';
import { resourceOf } from './resources.js';
import { type FieldMatcher, type Matcher, selectorText } from './selectors.js';
import { alreadyExists, badRequest, conflict, expired, forbidden, invalid, notFound, StatusError } from './status.js';
import { keyOf, type Store } from './store.js';
import type { Job, KObj, LabelSelector, Pod } from './types.js';
import { clone, deepEqual, isObject, podTerminal, randomSuffix, timestamp } from './types.js';
import { schemaErrors, semanticErrors, validate, validateUpdate } from './validation.js';

/**
 * The API server's verbs without HTTP: create, get, list, update, patch, delete, with what a
 * real one does on each (defaults, validation, admission, optimistic concurrency, graceful
 * and cascading deletion, no-op updates that change nothing). The HTTP layer and the
 * controllers both go through it, so a ReplicaSet's pods meet the same admission as a client's.
 */

export interface WriteOptions {
  dryRun?: boolean;
  /** filled with the response's Warning headers */
  warnings?: string[];
}

export interface DeleteOptions extends WriteOptions {
  propagationPolicy?: string;
  gracePeriodSeconds?: number;
  orphanDependents?: boolean;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface ListOptions {
  labels?: Matcher;
  fields?: FieldMatcher;
  /** a selector was given: lists with selectors do not count the remaining items */
  filtered?: boolean;
  limit?: number;
  continueToken?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

export interface ListResult {
  items: KObj[];
  resourceVersion: string;
  continueToken?: string;
  remainingItemCount?: number;
}

/** the namespaces the API server will not delete */
const PROTECTED = new Set(['default', 'kube-system', 'kube-public']);
const NS = resourceOf('v1', 'Namespace') as Resource;
const SA = resourceOf('v1', 'ServiceAccount') as Resource;
const CM = resourceOf('v1', 'ConfigMap') as Resource;

/** a fixed, fake cluster CA: what `kube-root-ca.crt` holds (it signs nothing) */
const FAKE_CA = '-----BEGIN CERTIFICATE-----\nZmFrZSBjbHVzdGVyIENBOiB0aGUgdGVzdCBBUEkgc2VydmVyIHNpZ25zIG5vdGhpbmc=\n-----END CERTIFICATE-----\n';

export class ApiServer {
  private nextClusterIp = 10;

  constructor(
    readonly store: Store,
    readonly clock: Clock,
  ) {}

  // ---- reads -----------------------------------------------------------------------------

  get(r: Resource, namespace: string | undefined, name: string): KObj {
    const obj = this.store.get(r, namespace, name);
    if (!obj) throw notFound(r, name);
    return obj;
  }

  list(r: Resource, namespace: string | undefined, o: ListOptions = {}): ListResult {
    const { rv, start } = this.listPoint(o);
    const all = rv === undefined ? this.store.list(r, namespace) : this.store.listAt(r, namespace, rv);
    const at = rv ?? this.store.rv;
    const matching = all.filter((x) => (!o.labels || o.labels(x.metadata.labels ?? {})) && (!o.fields || o.fields(x)));
    const rest = start ? matching.filter((x) => keyOf(x.metadata.namespace, x.metadata.name) > start) : matching;
    if (!o.limit || rest.length <= o.limit) return { items: rest, resourceVersion: String(at) };
    const items = rest.slice(0, o.limit);
    const last = items[items.length - 1] as KObj;
    const continueToken = Buffer.from(JSON.stringify({ rv: at, start: keyOf(last.metadata.namespace, last.metadata.name) })).toString('base64url');
    return { items, resourceVersion: String(at), continueToken, ...(o.filtered ? {} : { remainingItemCount: rest.length - items.length }) };
  }

  /** the revision a list reads at, and where a continued list starts */
  private listPoint(o: ListOptions): { rv?: number; start?: string } {
    if (o.continueToken) {
      let token: { rv?: unknown; start?: unknown };
      try {
        token = JSON.parse(Buffer.from(o.continueToken, 'base64url').toString());
      } catch {
        throw badRequest('continue key is not valid: illegal base64 data');
      }
      if (typeof token.rv !== 'number' || typeof token.start !== 'string') throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
      try {
        this.store.since(token.rv);
      } catch {
        throw expired('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      }
      return { rv: token.rv, start: token.start };
    }
    if (!o.resourceVersion || o.resourceVersion === '0') return {};
    const rv = Number(o.resourceVersion);
    if (!/^\d+$/.test(o.resourceVersion)) throw badRequest(`resourceVersion: Invalid value: "${o.resourceVersion}": must be a numeric string`);
    if (rv > this.store.rv) throw new StatusError(504, 'Timeout', `Too large resource version: ${rv}, current: ${this.store.rv}`, { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 });
    return o.resourceVersionMatch === 'Exact' ? { rv } : {};
  }

  // ---- create ----------------------------------------------------------------------------

  create(r: Resource, namespace: string | undefined, body: unknown, opts: WriteOptions = {}): KObj {
    const obj = this.decode(r, body);
    const m = obj.metadata;
    if (r.namespaced) {
      if (m.namespace && namespace && m.namespace !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      m.namespace = namespace ?? m.namespace;
    } else delete m.namespace;
    if (m.resourceVersion) throw new StatusError(500, 'InternalError', 'resourceVersion should not be set on objects to be created');
    if (!m.name && m.generateName) m.name = `${String(m.generateName).slice(0, 58)}${randomSuffix()}`;
    if (!m.name) throw invalid(r, '', [{ type: 'Required', field: 'metadata.name', detail: 'name or generateName is required' }]);
    // the order of a real API server: decode, default, mutating admission, prepare, validate, validating admission, store
    const decoding = schemaErrors(obj);
    if (decoding.length) throw invalid(r, m.name, decoding);
    applyDefaults(r, obj);
    const admission = { store: this.store, warnings: opts.warnings ?? [] };
    mutateCreate(admission, r, obj);
    this.prepareCreate(r, obj);
    const errors = semanticErrors(r, obj);
    if (errors.length) throw invalid(r, m.name, errors);
    validateCreate(admission, r, obj);
    if (this.store.peek(r, m.namespace, m.name)) throw alreadyExists(r, m.name);
    if (opts.dryRun) return obj;
    const stored = this.store.create(r, obj);
    if (r.kind === 'Namespace') this.namespaceCreated(stored);
    return stored;
  }

  /** the body as an object of `r`: kind and apiVersion checked (or filled in), metadata present */
  private decode(r: Resource, body: unknown): KObj {
    if (!isObject(body)) throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(body)?.slice(0, 200)}'`);
    const obj = clone(body) as KObj;
    obj.apiVersion ??= r.apiVersion;
    obj.kind ??= r.kind;
    if (obj.apiVersion !== r.apiVersion) throw badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${r.apiVersion})`);
    if (obj.kind !== r.kind) throw badRequest(`the kind in the data (${String(obj.kind)}) does not match the expected kind (${r.kind})`);
    if (!isObject(obj.metadata)) obj.metadata = {} as KObj['metadata'];
    return obj;
  }

  /** what the API server sets on a new object, whatever the client sent */
  private prepareCreate(r: Resource, obj: KObj): void {
    const m = obj.metadata;
    m.uid = randomUUID();
    m.creationTimestamp = timestamp(this.clock.now());
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    delete m.selfLink;
    delete m.managedFields;
    if (r.generation) m.generation = 1;
    else delete m.generation;
    if (r.subresources.includes('status')) delete obj.status;
    if (r.kind === 'Pod') obj.status = { phase: 'Pending', qosClass: qosClass(obj as Pod) };
    if (r.kind === 'Namespace') obj.status = { phase: 'Active' };
    if (r.kind === 'Job') this.jobSelector(obj as Job);
    if (r.kind === 'Service') this.allocateIp(obj);
    if (r.kind === 'Pod') (obj.spec as { priority?: number }).priority ??= 0;
  }

  /** a Job's pods are selected by its uid, as the API server generates it */
  private jobSelector(job: Job): void {
    if (!isObject(job.spec) || (job.spec as { manualSelector?: boolean }).manualSelector) return;
    const uid = job.metadata.uid as string;
    const labels = { 'batch.kubernetes.io/controller-uid': uid, 'batch.kubernetes.io/job-name': job.metadata.name, 'controller-uid': uid, 'job-name': job.metadata.name };
    job.spec.selector = { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
    if (isObject(job.spec.template)) {
      job.spec.template.metadata = { ...job.spec.template.metadata, labels: { ...job.spec.template.metadata?.labels, ...labels } };
    }
  }

  private allocateIp(svc: KObj): void {
    const spec = (isObject(svc.spec) ? svc.spec : (svc.spec = {})) as { clusterIP?: string; clusterIPs?: string[]; type?: string };
    if (spec.type === 'ExternalName' || spec.clusterIP === 'None') return;
    if (!spec.clusterIP) {
      const n = this.nextClusterIp++;
      spec.clusterIP = `10.96.${Math.floor(n / 250)}.${(n % 250) + 1}`;
    }
    spec.clusterIPs = [spec.clusterIP];
  }

  /** what the namespace controllers make in every new namespace: its default ServiceAccount and the CA bundle */
  private namespaceCreated(ns: KObj): void {
    const namespace = ns.metadata.name;
    const meta = (name: string) => ({ name, namespace, uid: randomUUID(), creationTimestamp: timestamp(this.clock.now()) });
    this.store.create(SA, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta('default') });
    this.store.create(CM, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { ...meta('kube-root-ca.crt'), annotations: { 'kubernetes.io/description': 'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.' } }, data: { 'ca.crt': FAKE_CA } });
  }

  // ---- update and patch ------------------------------------------------------------------

  update(r: Resource, namespace: string | undefined, name: string, body: unknown, opts: WriteOptions = {}, sub?: string): KObj {
    const next = this.decode(r, body);
    if (next.metadata.name && next.metadata.name !== name) throw badRequest(`the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`);
    if (r.namespaced && next.metadata.namespace && next.metadata.namespace !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    const old = this.store.get(r, namespace, name);
    if (!old) throw notFound(r, name);
    return this.write(r, old, next, opts, sub);
  }

  patch(r: Resource, namespace: string | undefined, name: string, type: string, patch: unknown, opts: WriteOptions = {}, sub?: string): KObj {
    const old = this.store.get(r, namespace, name);
    if (!old) throw notFound(r, name);
    const next = applyPatch(type, old, patch);
    if (!isObject(next)) throw badRequest('the patch made the object something other than a JSON object');
    const obj = this.decode(r, next);
    if (obj.metadata.name !== name) throw badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    if (r.namespaced && obj.metadata.namespace !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    return this.write(r, old, obj, opts, sub);
  }

  /** the common part of update and patch: preconditions, what may not change, validation */
  private write(r: Resource, old: KObj, next: KObj, opts: WriteOptions, sub?: string): KObj {
    const m = next.metadata;
    if (m.resourceVersion && m.resourceVersion !== old.metadata.resourceVersion) throw conflict(r, old.metadata.name);
    if (m.uid && m.uid !== old.metadata.uid) throw conflict(r, old.metadata.name, `Precondition failed: UID in precondition: ${m.uid}, UID in object meta: ${old.metadata.uid}`);
    const obj = sub === 'status' ? { ...old, status: next.status } : sub === 'finalize' ? this.finalizers(old, next) : this.keepSystemFields(r, old, next);
    applyDefaults(r, obj);
    if (r.kind === 'Service') this.keepClusterIp(obj, old);
    const errors = [...validate(r, obj), ...validateUpdate(r, obj, old)];
    if (errors.length) throw invalid(r, old.metadata.name, errors);
    admitUpdate({ store: this.store, warnings: opts.warnings ?? [] }, r, obj);
    if (r.generation && !deepEqual(obj.spec, old.spec)) obj.metadata.generation = (old.metadata.generation ?? 0) + 1;
    obj.metadata.resourceVersion = old.metadata.resourceVersion;
    if (deepEqual(obj, old) || opts.dryRun) return obj;
    const stored = this.store.update(r, obj);
    return this.finalizeIfDone(r, stored) ?? stored;
  }

  private keepSystemFields(r: Resource, old: KObj, next: KObj): KObj {
    const m = next.metadata;
    const o = old.metadata;
    m.name = o.name;
    if (r.namespaced) m.namespace = o.namespace;
    m.uid = o.uid;
    m.creationTimestamp = o.creationTimestamp;
    for (const f of ['deletionTimestamp', 'deletionGracePeriodSeconds', 'generation'] as const) {
      if (o[f] === undefined) delete m[f];
      else (m as unknown as Record<string, unknown>)[f] = o[f];
    }
    delete m.managedFields;
    // the status has its own subresource: the main resource never writes it
    if (r.subresources.includes('status')) {
      if (old.status === undefined) delete next.status;
      else next.status = old.status;
    }
    return next;
  }

  /** `namespaces/{name}/finalize`: only the namespace's spec.finalizers change */
  private finalizers(old: KObj, next: KObj): KObj {
    const finalizers = (next.spec as { finalizers?: string[] } | undefined)?.finalizers ?? [];
    return { ...old, spec: { ...(old.spec as object), finalizers } };
  }

  private keepClusterIp(obj: KObj, old: KObj): void {
    const spec = obj.spec as { clusterIP?: string; clusterIPs?: string[] };
    const was = old.spec as { clusterIP?: string; clusterIPs?: string[] };
    if (!spec.clusterIP && was.clusterIP) {
      spec.clusterIP = was.clusterIP;
      spec.clusterIPs = was.clusterIPs;
    }
  }

  /** an object being deleted whose last finalizer went is removed */
  private finalizeIfDone(r: Resource, obj: KObj): KObj | undefined {
    const m = obj.metadata;
    if (!m.deletionTimestamp || (m.finalizers ?? []).length > 0) return undefined;
    if (r.kind === 'Pod' && !podTerminal(obj as Pod) && (obj.spec as { nodeName?: string }).nodeName && (m.deletionGracePeriodSeconds ?? 0) > 0) return undefined;
    if (r.kind === 'Namespace' && ((obj.spec as { finalizers?: string[] } | undefined)?.finalizers ?? []).length > 0) return undefined;
    return this.store.remove(r, m.namespace, m.name);
  }

  // ---- delete ----------------------------------------------------------------------------

  /** deletes an object; `gone` says whether it is gone now (or only marked for deletion) */
  delete(r: Resource, namespace: string | undefined, name: string, o: DeleteOptions = {}): { object: KObj; gone: boolean } {
    const old = this.store.get(r, namespace, name);
    if (!old) throw notFound(r, name);
    const pre = o.preconditions ?? {};
    if (pre.uid && pre.uid !== old.metadata.uid) throw conflict(r, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) throw conflict(r, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    if (r.kind === 'Namespace' && PROTECTED.has(name)) throw forbidden(r, name, 'this namespace may not be deleted');
    const policy = this.policy(r, o);
    if (o.dryRun) return { object: old, gone: false };
    if (r.kind === 'Namespace') return { object: this.terminateNamespace(old), gone: false };
    if (r.kind === 'Pod') {
      const graceful = this.gracefulPod(old as Pod, o.gracePeriodSeconds);
      if (graceful) return { object: graceful, gone: false };
    }
    const finalizers = [...(old.metadata.finalizers ?? [])];
    if (policy === 'Foreground' && !finalizers.includes('foregroundDeletion')) finalizers.push('foregroundDeletion');
    if (policy === 'Orphan' && !finalizers.includes('orphan')) finalizers.push('orphan');
    if (finalizers.length === 0) return { object: this.store.remove(r, namespace, name) as KObj, gone: true };
    if (old.metadata.deletionTimestamp && deepEqual(finalizers, old.metadata.finalizers)) return { object: old, gone: false };
    old.metadata.finalizers = finalizers;
    old.metadata.deletionTimestamp ??= timestamp(this.clock.now());
    old.metadata.deletionGracePeriodSeconds ??= 0;
    if (r.generation) old.metadata.generation = (old.metadata.generation ?? 0) + 1;
    return { object: this.store.update(r, old), gone: false };
  }

  private policy(r: Resource, o: DeleteOptions): string {
    if (o.propagationPolicy !== undefined && o.orphanDependents !== undefined) {
      throw invalid({ group: '', plural: 'deleteoptions', kind: 'DeleteOptions' }, '', [{ type: 'Invalid', field: 'propagationPolicy', value: o.propagationPolicy, detail: 'orphanDependents and deletionPropagation cannot be both set' }]);
    }
    if (o.propagationPolicy !== undefined && !['Foreground', 'Background', 'Orphan'].includes(o.propagationPolicy)) {
      throw invalid({ group: '', plural: 'deleteoptions', kind: 'DeleteOptions' }, '', [{ type: 'NotSupported', field: 'propagationPolicy', value: o.propagationPolicy, detail: 'supported values: "Foreground", "Background", "Orphan"' }]);
    }
    if (o.propagationPolicy) return o.propagationPolicy;
    if (o.orphanDependents !== undefined) return o.orphanDependents ? 'Orphan' : 'Background';
    if (r.orphanByDefault) {
      o.warnings?.push('child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning');
      return 'Orphan';
    }
    return 'Background';
  }

  private terminateNamespace(ns: KObj): KObj {
    if (ns.metadata.deletionTimestamp) return ns;
    ns.metadata.deletionTimestamp = timestamp(this.clock.now());
    ns.metadata.deletionGracePeriodSeconds = 0;
    ns.status = { ...(ns.status as object), phase: 'Terminating' };
    return this.store.update(NS, ns);
  }

  /** a running pod is deleted gracefully: marked, and removed when the kubelet has stopped it */
  private gracefulPod(pod: Pod, requested: number | undefined): KObj | undefined {
    const grace = requested ?? pod.spec.terminationGracePeriodSeconds ?? 30;
    if (grace <= 0 || !pod.spec.nodeName || podTerminal(pod)) return undefined;
    const m = pod.metadata;
    if (m.deletionTimestamp && (m.deletionGracePeriodSeconds ?? 0) <= grace) return pod;
    m.deletionTimestamp = timestamp(this.clock.now() + this.clock.seconds(grace));
    m.deletionGracePeriodSeconds = grace;
    return this.store.update(resourceOf('v1', 'Pod') as Resource, pod);
  }

  /** removes an object now, whatever its finalizers (the kubelet's last word on a pod, the namespace controller's) */
  removeNow(r: Resource, namespace: string | undefined, name: string): KObj | undefined {
    return this.store.remove(r, namespace, name);
  }

  // ---- for controllers -------------------------------------------------------------------

  /** replaces an object's status as a controller does (no change: no write) */
  writeStatus(r: Resource, obj: KObj, status: unknown): KObj | undefined {
    const cur = this.store.get(r, obj.metadata.namespace, obj.metadata.name);
    if (!cur || cur.metadata.uid !== obj.metadata.uid) return undefined;
    if (deepEqual(cur.status, status)) return cur;
    cur.status = status;
    return this.store.update(r, cur);
  }

  /** changes an object's metadata or spec as a controller does (read, change, write; no change: no write) */
  modify(r: Resource, obj: KObj, change: (o: KObj) => void): KObj | undefined {
    const cur = this.store.get(r, obj.metadata.namespace, obj.metadata.name);
    if (!cur || cur.metadata.uid !== obj.metadata.uid) return undefined;
    const next = clone(cur);
    change(next);
    if (deepEqual(next, cur)) return cur;
    if (r.generation && !deepEqual(next.spec, cur.spec)) next.metadata.generation = (cur.metadata.generation ?? 0) + 1;
    const stored = this.store.update(r, next);
    return this.finalizeIfDone(r, stored) ?? stored;
  }

  /** the Scale of a Deployment or ReplicaSet (`/scale`) */
  scaleOf(r: Resource, obj: KObj): object {
    const m = obj.metadata;
    const spec = obj.spec as { replicas?: number; selector?: LabelSelector };
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, creationTimestamp: m.creationTimestamp },
      spec: { replicas: spec.replicas ?? 0 },
      status: { replicas: (obj.status as { replicas?: number } | undefined)?.replicas ?? 0, selector: selectorText(spec.selector) },
    };
  }
}

function qosClass(pod: Pod): string {
  const containers = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  const has = (k: 'requests' | 'limits') => containers.some((c) => Object.keys(c.resources?.[k] ?? {}).length > 0);
  if (!has('requests') && !has('limits')) return 'BestEffort';
  const guaranteed = containers.every((c) => ['cpu', 'memory'].every((res) => c.resources?.limits?.[res] !== undefined && String(c.resources?.requests?.[res] ?? c.resources?.limits?.[res]) === String(c.resources?.limits?.[res])));
  return guaranteed ? 'Guaranteed' : 'Burstable';
}
