import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MicroError } from '@micro/sdk';
import { purgeNamespace } from '../../purge/index.js';
import { kubeClient, type KubeClient, type KubeObject } from './client.js';
import { startFakeKubernetes, type FakeKubernetes } from './fake/index.js';
import { validateObject } from './schema.js';
import { TenantNamespaces, type TenantQuota, type TenantSpec } from './tenant.js';

/**
 * The tenant namespaces against the test API server (fake/): what ensure makes as read
 * back, that it converges and writes nothing when all is right, that remove takes all,
 * that no namespace's calls touch another's, and failures of the API server.
 */

const MiB = 1024 * 1024;
const quota: TenantQuota = { services: 5, instancesPerService: 2, memoryPerInstance: 256 * MiB, cpuPerInstance: 500 };
const spec: TenantSpec = { owner: 'cus_0acme', plan: 'developer', quota };
const KINDS = [
  ['v1', 'ServiceAccount'],
  ['networking.k8s.io/v1', 'NetworkPolicy'],
  ['v1', 'LimitRange'],
  ['v1', 'ResourceQuota'],
  ['v1', 'ConfigMap'],
] as const;

let fake: FakeKubernetes;
let client: KubeClient;
let tenants: TenantNamespaces;

before(async () => {
  fake = await startFakeKubernetes();
  // few, quick retries: the failures below are meant to outlast them
  client = kubeClient(fake.kubeconfig, { attempts: 3, backoff: { initial: 5, max: 20 }, timeout: 2_000 });
  tenants = new TenantNamespaces({ client, pollMs: 20, removeTimeoutMs: 3_000, diskPerContainer: 1024 * MiB });
});

after(() => fake.close());

/** every object of a cluster namespace, `Kind/name` → resourceVersion */
function versions(cns: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const ns of fake.objects('v1', 'Namespace').filter((n) => n.metadata.name === cns)) out.set(`Namespace/${cns}`, ns.metadata.resourceVersion);
  for (const [apiVersion, kind] of KINDS) for (const o of fake.objects(apiVersion, kind, cns)) out.set(`${kind}/${o.metadata.name}`, o.metadata.resourceVersion);
  return out;
}

/**
 * What micro wrote of a cluster namespace's objects: each object without its status and
 * resourceVersion (the cluster's controllers write a ResourceQuota's status on their own
 * time, which is no call of micro's)
 */
function contents(cns: string): Map<string, string> {
  const out = new Map<string, string>();
  const strip = (o: { metadata: Record<string, unknown>; status?: unknown }) => JSON.stringify({ ...o, status: undefined, metadata: { ...o.metadata, resourceVersion: undefined } });
  for (const ns of fake.objects('v1', 'Namespace').filter((n) => n.metadata.name === cns)) out.set(`Namespace/${cns}`, strip(ns));
  for (const [apiVersion, kind] of KINDS) for (const o of fake.objects(apiVersion, kind, cns)) out.set(`${kind}/${o.metadata.name}`, strip(o));
  return out;
}

/** the requests made while `fn` ran */
async function requestsOf<T>(fn: () => Promise<T>): Promise<{ result: T; requests: FakeKubernetes['requests'] }> {
  const start = fake.requests.length;
  const result = await fn();
  return { result, requests: fake.requests.slice(start) };
}

/** whether a request path is of cluster namespace `cns` only (its objects, or the Namespace itself) */
function ofNamespace(path: string, cns: string): boolean {
  const p = path.split('?')[0] as string;
  if (p === '/api/v1/namespaces') return true; // creating a Namespace posts to the collection
  return p === `/api/v1/namespaces/${cns}` || new RegExp(`^/apis?/(?:[a-z0-9.-]+/)?v1/namespaces/${cns}/`).test(p);
}

async function rejects(p: Promise<unknown>, code: number, pattern: RegExp): Promise<MicroError> {
  let caught: unknown;
  await p.catch((err: unknown) => (caught = err));
  assert.ok(caught instanceof MicroError, `a MicroError, not ${String(caught)}`);
  assert.equal(caught.code, code, caught.detail);
  assert.match(caught.detail, pattern);
  return caught;
}

describe('ensure', () => {
  test('makes the namespace and its objects, as read back from the API server', async () => {
    const report = await tenants.ensure('acme', spec);
    assert.equal(report.name, 'micro-acme');
    assert.equal(report.created, true);
    assert.equal(report.changed.length, 11);
    const [ns] = fake.objects('v1', 'Namespace').filter((n) => n.metadata.name === 'micro-acme');
    assert.ok(ns);
    validateObject(ns);
    assert.equal(ns.metadata.labels['micro.dev/owner'], 'cus_0acme');
    assert.equal(ns.metadata.labels['micro.dev/plan'], 'developer');
    assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
    const sas = fake.objects('v1', 'ServiceAccount', 'micro-acme');
    assert.deepEqual(sas.map((s) => [s.metadata.name, s.automountServiceAccountToken]).sort(), [['default', false], ['micro-service', false]]);
    const policies = fake.objects('networking.k8s.io/v1', 'NetworkPolicy', 'micro-acme');
    assert.deepEqual(policies.map((p) => p.metadata.name).sort(), ['allow-build-egress', 'allow-dns', 'allow-from-platform', 'allow-platform', 'allow-same-namespace', 'default-deny']);
    const [rq] = fake.objects('v1', 'ResourceQuota', 'micro-acme');
    assert.equal(rq.spec.hard.pods, '15');
    assert.equal(rq.spec.hard['limits.memory'], '3840Mi');
    const [lr] = fake.objects('v1', 'LimitRange', 'micro-acme');
    assert.equal(lr.spec.limits[0].max.memory, '256Mi');
    for (const [apiVersion, kind] of KINDS) for (const o of fake.objects(apiVersion, kind, 'micro-acme')) validateObject({ apiVersion, kind, ...o });
  });

  test('a second ensure writes nothing: it only reads, and every object stays as it was', async () => {
    await tenants.ensure('steady', spec);
    const before = contents('micro-steady');
    const { result, requests } = await requestsOf(() => tenants.ensure('steady', spec));
    assert.deepEqual(result, { name: 'micro-steady', created: false, changed: [] });
    assert.deepEqual(contents('micro-steady'), before);
    assert.deepEqual([...new Set(requests.map((r) => r.method))], ['GET'], 'reads only');
  });

  test('a changed quota updates the ResourceQuota and LimitRange, and nothing else', async () => {
    await tenants.ensure('grow', spec);
    const before = versions('micro-grow');
    const report = await tenants.ensure('grow', { ...spec, quota: { ...quota, services: 10, memoryPerInstance: 512 * MiB } });
    assert.deepEqual(report.changed.sort(), ['LimitRange/micro-limits', 'ResourceQuota/micro-quota']);
    const [rq] = fake.objects('v1', 'ResourceQuota', 'micro-grow');
    assert.equal(rq.spec.hard.pods, '30');
    assert.equal(rq.spec.hard['limits.memory'], '15Gi');
    assert.equal(fake.objects('v1', 'LimitRange', 'micro-grow')[0].spec.limits[0].max.memory, '512Mi');
    const after = versions('micro-grow');
    for (const [k, v] of before) if (!/^(ResourceQuota|LimitRange)\//.test(k)) assert.equal(after.get(k), v, `${k} unchanged`);
    // a change of plan relabels the Namespace
    const relabel = await tenants.ensure('grow', { ...spec, plan: 'team', quota: { ...quota, services: 10, memoryPerInstance: 512 * MiB } });
    assert.deepEqual(relabel.changed, ['Namespace/micro-grow']);
  });

  test('what was changed by hand is put back, and policies and quotas that are not micro\'s go', async () => {
    await tenants.ensure('tamper', spec);
    const ns = (await client.get<KubeObject>('v1', 'Namespace', 'micro-tamper')) as KubeObject;
    await client.apply({ ...ns, metadata: { ...ns.metadata, labels: { ...ns.metadata.labels, 'pod-security.kubernetes.io/enforce': 'privileged', 'team.example/keep': 'yes' } } });
    const deny = (await client.get<KubeObject>('networking.k8s.io/v1', 'NetworkPolicy', 'default-deny', 'micro-tamper')) as KubeObject;
    await client.apply({ ...deny, spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [{}], egress: [{}] } });
    await client.remove('v1', 'ServiceAccount', 'micro-service', 'micro-tamper');
    await client.apply({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'allow-all', namespace: 'micro-tamper' }, spec: { podSelector: {}, ingress: [{}], egress: [{}], policyTypes: ['Ingress', 'Egress'] } });
    await client.apply({ apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'starve', namespace: 'micro-tamper' }, spec: { hard: { pods: '0' } } });
    const report = await tenants.ensure('tamper', spec);
    assert.deepEqual(report.changed.sort(), ['-NetworkPolicy/allow-all', '-ResourceQuota/starve', 'Namespace/micro-tamper', 'NetworkPolicy/default-deny', 'ServiceAccount/micro-service']);
    const back = (await client.get<KubeObject>('v1', 'Namespace', 'micro-tamper')) as KubeObject;
    assert.equal(back.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    assert.equal(back.metadata.labels?.['team.example/keep'], 'yes', 'labels others added stay');
    assert.deepEqual(fake.objects('networking.k8s.io/v1', 'NetworkPolicy', 'micro-tamper').find((p) => p.metadata.name === 'default-deny').spec, { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    assert.deepEqual(fake.objects('v1', 'ResourceQuota', 'micro-tamper').map((q) => q.metadata.name), ['micro-quota']);
    assert.deepEqual((await tenants.ensure('tamper', spec)).changed, []);
  });

  test('a name or quota the cluster would refuse is a 400 before any request', async () => {
    const { requests } = await requestsOf(async () => {
      await rejects(tenants.ensure('Acme', spec), 400, /^namespace: "Acme" has upper-case letters/);
      await rejects(tenants.ensure('a.b', spec), 400, /has "\."/);
      await rejects(tenants.ensure('x'.repeat(58), spec), 400, /more than 57/);
      await rejects(tenants.ensure('system', spec), 400, /micro-system, which is the cluster's or the platform's own/);
      await rejects(tenants.ensure('ok', { ...spec, quota: { ...quota, memoryPerInstance: 0 } }), 400, /^quota: memoryPerInstance 0 bytes/);
      await rejects(tenants.ensure('ok', { ...spec, quota: { ...quota, services: -1 } }), 400, /^quota: services must be a whole number/);
      await rejects(tenants.ensure('ok', { ...spec, quota: { ...quota, cpuPerInstance: 0 } }), 400, /cpuPerInstance 0/);
    });
    assert.deepEqual(requests, []);
  });

  test('a quota the cluster rejects: a clear error, and nothing is left', async () => {
    const clear = fake.fault({ method: 'POST', path: /\/namespaces\/micro-rejected\/resourcequotas/, status: 422 });
    try {
      await rejects(tenants.ensure('rejected', spec), 400, /^the cluster namespace micro-rejected could not be prepared \(ResourceQuota\/micro-quota\): the cluster refused .*; the namespace this call made was deleted again: nothing is left/);
    } finally {
      clear();
    }
    await waitGone('micro-rejected');
    assert.equal((await tenants.ensure('rejected', spec)).created, true, 'a later ensure makes it');
  });
});

/** clears a `down` fault and waits until the API server answers again */
async function up(clear: () => void): Promise<void> {
  clear();
  await client.get('v1', 'Namespace', 'default');
}

async function waitGone(cns: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (!fake.objects('v1', 'Namespace').some((n) => n.metadata.name === cns)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`${cns} is still there`);
}

describe('the API server failing', () => {
  test('down during ensure: a 503 saying so; a later ensure converges', async () => {
    const clear = fake.fault({ down: true });
    try {
      await rejects(tenants.ensure('outage', spec), 503, /^the cluster namespace micro-outage could not be prepared \(Namespace\/micro-outage\): the Kubernetes API server at .* could not be reached/);
    } finally {
      await up(clear);
    }
    const report = await tenants.ensure('outage', spec);
    assert.equal(report.created, true);
    assert.equal(report.changed.length, 11);
  });

  test('failing half-way through a new namespace: it is deleted again', async () => {
    const clear = fake.fault({ method: 'POST', path: /\/namespaces\/micro-halfway\/networkpolicies/, status: 500 });
    try {
      await rejects(tenants.ensure('halfway', spec), 503, /\(NetworkPolicy\/default-deny\): .*500.*; the namespace this call made was deleted again: nothing is left/);
    } finally {
      clear();
    }
    await waitGone('micro-halfway');
    assert.equal((await tenants.ensure('halfway', spec)).changed.length, 11);
  });

  test('failing half-way and unable to clean up: the error says so, and the next ensure completes it', async () => {
    const clears = [fake.fault({ method: 'POST', path: /\/namespaces\/micro-stuck\/limitranges/, status: 503 }), fake.fault({ method: 'DELETE', path: /\/namespaces\/micro-stuck$/, status: 503 })];
    try {
      await rejects(tenants.ensure('stuck', spec), 503, /\(LimitRange\/micro-limits\).*; the namespace this call made could not be deleted either \(.*\): the next ensure completes it, the purge removes it/);
    } finally {
      for (const c of clears) c();
    }
    const report = await tenants.ensure('stuck', spec);
    assert.equal(report.created, false);
    assert.deepEqual(report.changed.sort(), ['LimitRange/micro-limits', 'ResourceQuota/micro-quota']);
  });

  test('failing while a namespace that runs is updated: what was done stays, the next ensure completes it', async () => {
    await tenants.ensure('running', spec);
    // more memory: the LimitRange is written, then the ResourceQuota fails
    const bigger = { ...spec, quota: { ...quota, services: 7, memoryPerInstance: 384 * MiB } };
    const clear = fake.fault({ method: 'PUT', path: /\/namespaces\/micro-running\/resourcequotas\//, status: 503 });
    try {
      await rejects(tenants.ensure('running', bigger), 503, /\(ResourceQuota\/micro-quota\): .*answered PUT of ResourceQuota micro-running\/micro-quota with 503.*; what was done stays, and the next ensure completes it$/);
    } finally {
      clear();
    }
    assert.ok(fake.objects('v1', 'Namespace').some((n) => n.metadata.name === 'micro-running'), 'never deleted');
    assert.equal(fake.objects('v1', 'LimitRange', 'micro-running')[0].spec.limits[0].max.memory, '384Mi', 'what was done stays');
    assert.deepEqual((await tenants.ensure('running', bigger)).changed, ['ResourceQuota/micro-quota']);
    assert.equal(fake.objects('v1', 'ResourceQuota', 'micro-running')[0].spec.hard['count/deployments.apps'], '7');
  });

  test('429s and 409s within the client\'s retries pass; beyond them, a clear error', async () => {
    let clear = fake.fault({ path: /micro-busy/, status: 429, times: 2, retryAfterSeconds: 0 });
    assert.equal((await tenants.ensure('busy', spec)).created, true);
    clear();
    clear = fake.fault({ method: 'PUT', path: /micro-busy\/resourcequotas/, status: 409, times: 1 });
    assert.deepEqual((await tenants.ensure('busy', { ...spec, quota: { ...quota, services: 6 } })).changed, ['ResourceQuota/micro-quota']);
    clear();
    clear = fake.fault({ path: /micro-busy/, status: 429, retryAfterSeconds: 0 });
    try {
      await rejects(tenants.ensure('busy', { ...spec, quota: { ...quota, services: 8 } }), 503, /kept throttling the runtime \(429 Too Many Requests\)/);
    } finally {
      clear();
    }
    clear = fake.fault({ method: 'PUT', path: /micro-busy\/resourcequotas/, status: 409 });
    try {
      await rejects(tenants.ensure('busy', { ...spec, quota: { ...quota, services: 8 } }), 409, /ResourceQuota\/micro-quota/);
    } finally {
      clear();
    }
    assert.deepEqual((await tenants.ensure('busy', { ...spec, quota: { ...quota, services: 8 } })).changed, ['ResourceQuota/micro-quota']);
  });

  test('several nodes ensuring one namespace at once agree on the same objects', async () => {
    const other = new TenantNamespaces({ client: kubeClient(fake.kubeconfig, { backoff: { initial: 5, max: 20 } }), diskPerContainer: 1024 * MiB });
    const results = await Promise.allSettled([tenants.ensure('race', spec), other.ensure('race', spec), tenants.ensure('race', spec)]);
    for (const r of results) assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String(r.reason) : '');
    assert.deepEqual((await tenants.ensure('race', spec)).changed, []);
    assert.equal(fake.objects('networking.k8s.io/v1', 'NetworkPolicy', 'micro-race').length, 6);
  });
});

describe('tenants kept apart', () => {
  test('look-alike names each get their own namespace, and the calls of one never touch another\'s', async () => {
    const names = ['twin', 'micro-twin', 'twin--x', 'twin-x'];
    for (const n of names) {
      const { requests } = await requestsOf(() => tenants.ensure(n, spec));
      const foreign = requests.filter((r) => !ofNamespace(r.path, `micro-${n}`));
      assert.deepEqual(foreign, [], `ensure(${n}) stays in micro-${n}`);
      assert.ok(requests.some((r) => r.method === 'POST' && r.path.startsWith('/api/v1/namespaces')));
    }
    const before = new Map(names.slice(1).map((n) => [n, contents(`micro-${n}`)]));
    const { result, requests } = await requestsOf(() => tenants.remove('twin'));
    assert.equal(result, 'gone');
    assert.deepEqual(requests.filter((r) => !ofNamespace(r.path, 'micro-twin')), []);
    for (const n of names.slice(1)) assert.deepEqual(contents(`micro-${n}`), before.get(n), `micro-${n} untouched`);
  });

  test('a cluster namespace of the name that micro did not make for this namespace is neither used nor deleted', async () => {
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'micro-foreign', labels: { team: 'ops' } } });
    // one that claims to be micro's, but for another platform namespace
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'micro-forged', labels: { 'app.kubernetes.io/managed-by': 'micro', 'micro.dev/namespace': 'acme' } } });
    const { requests } = await requestsOf(async () => {
      await rejects(tenants.ensure('foreign', spec), 409, /^the cluster namespace micro-foreign exists and was not made by micro for namespace foreign/);
      await rejects(tenants.ensure('forged', spec), 409, /micro-forged exists and was not made by micro for namespace forged/);
      await rejects(tenants.remove('foreign'), 409, /neither uses nor deletes it/);
      await rejects(tenants.remove('forged'), 409, /neither uses nor deletes it/);
    });
    assert.deepEqual([...new Set(requests.map((r) => r.method))], ['GET']);
    // nothing of micro's in it (the cluster's own default ServiceAccount is there)
    assert.deepEqual(fake.objects('v1', 'ServiceAccount', 'micro-foreign').map((a) => a.metadata.name), ['default']);
    assert.deepEqual(fake.objects('networking.k8s.io/v1', 'NetworkPolicy', 'micro-foreign'), []);
    assert.equal(fake.objects('v1', 'Namespace').find((n) => n.metadata.name === 'micro-foreign').metadata.labels['pod-security.kubernetes.io/enforce'], undefined);
    assert.ok(fake.objects('v1', 'Namespace').some((n) => n.metadata.name === 'micro-forged'));
  });
});

describe('remove', () => {
  test('deletes the namespace and everything in it; again: absent', async () => {
    await tenants.ensure('leaving', spec);
    await client.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'data', namespace: 'micro-leaving' }, data: { a: 'b' } });
    assert.equal(await tenants.remove('leaving'), 'gone');
    assert.ok(!fake.objects('v1', 'Namespace').some((n) => n.metadata.name === 'micro-leaving'));
    for (const [apiVersion, kind] of KINDS) assert.deepEqual(fake.objects(apiVersion, kind, 'micro-leaving'), [], kind);
    assert.equal(await tenants.remove('leaving'), 'absent');
    await rejects(tenants.remove('Leaving'), 400, /upper-case/);
  });

  test('says terminating while the cluster still removes what was in it; ensure meanwhile is a 409', async () => {
    await tenants.ensure('slow', spec);
    await client.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'held', namespace: 'micro-slow', finalizers: ['example.com/hold'] } });
    const quick = new TenantNamespaces({ client, pollMs: 20, removeTimeoutMs: 300 });
    assert.equal(await quick.remove('slow'), 'terminating');
    await rejects(tenants.ensure('slow', spec), 409, /micro-slow is being deleted; try again once it is gone/);
    const held = (await client.get<KubeObject>('v1', 'ConfigMap', 'held', 'micro-slow')) as KubeObject;
    await client.apply({ ...held, metadata: { ...held.metadata, finalizers: [] } });
    // the namespace controller may finish before this looks
    assert.match(await tenants.remove('slow'), /^(gone|absent)$/);
    await waitGone('micro-slow');
  });

  test('the purge step removes a namespace\'s cluster namespace', async () => {
    await tenants.ensure('purged', spec);
    assert.deepEqual(await purgeNamespace('purged', [tenants.purgeStep()]), { namespace: 'purged', purged: ['kubernetes'] });
    assert.ok(!fake.objects('v1', 'Namespace').some((n) => n.metadata.name === 'micro-purged'));
    const clear = fake.fault({ down: true });
    try {
      await rejects(purgeNamespace('other', [tenants.purgeStep()]), 503, /the purge of namespace other is not complete \(kubernetes: the cluster namespace micro-other could not be removed: .*could not be reached.*; remove it again\); purge it again/);
    } finally {
      await up(clear);
    }
  });
});
