import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type KubernetesObject, PatchStrategy, setHeaderOptions, type V1Deployment } from '@kubernetes/client-node';
import { type FakeKubernetes, startFakeKubernetes } from './index.js';
import { type Clients, clients, refused } from './testkit.js';

function deployment(name: string, namespace: string, image = 'web:1'): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'web', image, env: [{ name: 'A', value: '1' }] }] } },
    },
  };
}

describe('the test API server with @kubernetes/client-node', () => {
  let fake: FakeKubernetes;
  let c: Clients;
  before(async () => {
    fake = await startFakeKubernetes();
    c = clients(fake);
    await c.core.createNamespace({ body: { metadata: { name: 'acme', labels: { 'micro.dev/owner': 'alice' } } } });
  });
  after(() => fake.close());

  test('a namespace is created as a cluster creates it: labelled with its name, Active, with its default ServiceAccount', async () => {
    const ns = await c.core.readNamespace({ name: 'acme' });
    assert.equal(ns.metadata?.labels?.['kubernetes.io/metadata.name'], 'acme');
    assert.equal(ns.metadata?.labels?.['micro.dev/owner'], 'alice');
    assert.equal(ns.status?.phase, 'Active');
    assert.deepEqual(ns.spec?.finalizers, ['kubernetes']);
    assert.match(ns.metadata?.uid ?? '', /^[0-9a-f-]{36}$/);
    const sa = await c.core.readNamespacedServiceAccount({ name: 'default', namespace: 'acme' });
    assert.equal(sa.metadata?.namespace, 'acme');
    const names = (await c.core.listNamespace()).items.map((n) => n.metadata?.name);
    for (const n of ['default', 'kube-system', 'acme']) assert.ok(names.includes(n), n);
  });

  test('create, get, list, replace and delete a Secret; stringData becomes data', async () => {
    const created = await c.core.createNamespacedSecret({ namespace: 'acme', body: { metadata: { name: 's1', labels: { tier: 'a' } }, stringData: { token: 'hunter2' } } });
    assert.equal(created.type, 'Opaque');
    assert.equal(created.data?.token, Buffer.from('hunter2').toString('base64'));
    assert.equal(created.stringData, undefined);
    const rv = Number(created.metadata?.resourceVersion);
    assert.ok(rv > 0);
    const got = await c.core.readNamespacedSecret({ name: 's1', namespace: 'acme' });
    assert.equal(got.metadata?.resourceVersion, created.metadata?.resourceVersion);
    got.metadata = { ...got.metadata, labels: { tier: 'b' } };
    const replaced = await c.core.replaceNamespacedSecret({ name: 's1', namespace: 'acme', body: got });
    assert.ok(Number(replaced.metadata?.resourceVersion) > rv);
    assert.equal(replaced.metadata?.uid, created.metadata?.uid);
    assert.equal(replaced.metadata?.creationTimestamp?.toISOString(), created.metadata?.creationTimestamp?.toISOString());
    const deleted = await c.core.deleteNamespacedSecret({ name: 's1', namespace: 'acme' });
    assert.equal(deleted.status, 'Success');
    const gone = await refused(c.core.readNamespacedSecret({ name: 's1', namespace: 'acme' }));
    assert.equal(gone.code, 404);
    assert.equal(gone.reason, 'NotFound');
    assert.equal(gone.message, 'secrets "s1" not found');
    assert.deepEqual(gone.details, { name: 's1', kind: 'secrets' });
  });

  test('a stale resourceVersion is a 409 Conflict; the same name twice is a 409 AlreadyExists', async () => {
    const d = await c.apps.createNamespacedDeployment({ namespace: 'acme', body: deployment('occ', 'acme') });
    const stale = structuredClone(d);
    d.spec!.replicas = 2;
    await c.apps.replaceNamespacedDeployment({ name: 'occ', namespace: 'acme', body: d });
    stale.spec!.replicas = 3;
    const conflict = await refused(c.apps.replaceNamespacedDeployment({ name: 'occ', namespace: 'acme', body: stale }));
    assert.equal(conflict.code, 409);
    assert.equal(conflict.reason, 'Conflict');
    assert.equal(conflict.message, 'Operation cannot be fulfilled on deployments.apps "occ": the object has been modified; please apply your changes to the latest version and try again');
    assert.deepEqual(conflict.details, { name: 'occ', group: 'apps', kind: 'deployments' });
    const exists = await refused(c.apps.createNamespacedDeployment({ namespace: 'acme', body: deployment('occ', 'acme') }));
    assert.equal(exists.code, 409);
    assert.equal(exists.reason, 'AlreadyExists');
    assert.equal(exists.message, 'deployments.apps "occ" already exists');
  });

  test('bad names, bad fields and bad kinds are 422 Invalid naming the field', async () => {
    const upper = await refused(c.core.createNamespace({ body: { metadata: { name: 'Acme' } } }));
    assert.equal(upper.code, 422);
    assert.equal(upper.reason, 'Invalid');
    assert.match(upper.message ?? '', /^Namespace "Acme" is invalid: metadata.name: Invalid value: "Acme": a lowercase RFC 1123 label/);
    assert.equal(upper.details?.causes?.[0]?.field, 'metadata.name');
    const long = await refused(c.core.createNamespace({ body: { metadata: { name: 'a'.repeat(64) } } }));
    assert.match(long.message ?? '', /must be no more than 63 characters/);
    const svc = await refused(c.core.createNamespacedService({ namespace: 'acme', body: { metadata: { name: '1svc' }, spec: { ports: [{ port: 80 }] } } }));
    assert.match(svc.message ?? '', /a DNS-1035 label must consist of/);
    const noSelector = deployment('nosel', 'acme');
    noSelector.spec!.selector = { matchLabels: { app: 'other' } };
    const mismatch = await refused(c.apps.createNamespacedDeployment({ namespace: 'acme', body: noSelector }));
    assert.match(mismatch.message ?? '', /spec.template.metadata.labels: Invalid value: .*`selector` does not match template `labels`/);
    const wrongType = deployment('wt', 'acme') as unknown as { spec: { template: { spec: { containers: { name: unknown }[] } } } };
    wrongType.spec.template.spec.containers[0]!.name = 7;
    const typed = await refused(c.objects.create(wrongType as never));
    assert.equal(typed.code, 422);
    assert.match(typed.message ?? '', /spec.template.spec.containers\[0\].name: Invalid value: .*must be string/);
    const label = await refused(c.core.createNamespacedSecret({ namespace: 'acme', body: { metadata: { name: 'x', labels: { 'bad key!': 'v' } } } }));
    assert.match(label.message ?? '', /metadata.labels: Invalid value: "bad key!"/);
    const restart = deployment('never', 'acme');
    restart.spec!.template.spec!.restartPolicy = 'Never';
    assert.match((await refused(c.apps.createNamespacedDeployment({ namespace: 'acme', body: restart }))).message ?? '', /spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"/);
  });

  test('an object in a namespace that does not exist is 404 NotFound for the namespace', async () => {
    const s = await refused(c.core.createNamespacedSecret({ namespace: 'nowhere', body: { metadata: { name: 'x' } } }));
    assert.equal(s.code, 404);
    assert.equal(s.message, 'namespaces "nowhere" not found');
  });

  test('label selectors (equality, set, existence) and field selectors filter lists', async () => {
    for (const [name, labels] of [['l1', { app: 'a', tier: 'web' }], ['l2', { app: 'b', tier: 'web' }], ['l3', { app: 'c' }]] as const) {
      await c.core.createNamespacedConfigMap({ namespace: 'acme', body: { metadata: { name, labels } } });
    }
    const names = async (labelSelector?: string, fieldSelector?: string) =>
      (await c.core.listNamespacedConfigMap({ namespace: 'acme', ...(labelSelector ? { labelSelector } : {}), ...(fieldSelector ? { fieldSelector } : {}) })).items
        .map((x) => x.metadata?.name)
        .filter((n) => n?.startsWith('l'));
    assert.deepEqual(await names('tier=web'), ['l1', 'l2']);
    assert.deepEqual(await names('tier==web,app!=a'), ['l2']);
    assert.deepEqual(await names('app in (a,c)'), ['l1', 'l3']);
    assert.deepEqual(await names('app notin (a),tier'), ['l2']);
    assert.deepEqual(await names('!tier'), ['l3']);
    assert.deepEqual(await names(undefined, 'metadata.name=l2'), ['l2']);
    assert.deepEqual(await names(undefined, 'metadata.name!=l2'), ['l1', 'l3']);
    const bad = await refused(c.core.listNamespacedConfigMap({ namespace: 'acme', fieldSelector: 'spec.nodeName=x' }));
    assert.equal(bad.code, 400);
    assert.equal(bad.message, 'field label not supported: spec.nodeName');
    const badLabel = await refused(c.core.listNamespacedConfigMap({ namespace: 'acme', labelSelector: 'a in (' }));
    assert.equal(badLabel.code, 400);
  });

  test('lists are paged with limit and continue, consistently at the first page\'s resourceVersion', async () => {
    for (let i = 0; i < 5; i++) await c.core.createNamespacedSecret({ namespace: 'acme', body: { metadata: { name: `page-${i}`, labels: { paged: 'yes' } } } });
    const first = await c.core.listNamespacedSecret({ namespace: 'acme', labelSelector: 'paged=yes', limit: 2 });
    assert.equal(first.items.length, 2);
    assert.ok(first.metadata?._continue);
    await c.core.createNamespacedSecret({ namespace: 'acme', body: { metadata: { name: 'page-9', labels: { paged: 'yes' } } } });
    await c.core.deleteNamespacedSecret({ name: 'page-4', namespace: 'acme' });
    const rest = await c.core.listNamespacedSecret({ namespace: 'acme', labelSelector: 'paged=yes', limit: 10, _continue: first.metadata!._continue! });
    assert.deepEqual(rest.items.map((s) => s.metadata?.name), ['page-2', 'page-3', 'page-4']);
    assert.equal(rest.metadata?.resourceVersion, first.metadata?.resourceVersion);
  });

  test('merge, strategic merge and JSON patches', async () => {
    await c.apps.createNamespacedDeployment({ namespace: 'acme', body: deployment('patched', 'acme') });
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    let d = await c.apps.patchNamespacedDeployment({ name: 'patched', namespace: 'acme', body: { spec: { replicas: 3 }, metadata: { labels: { extra: 'x' } } } }, merge);
    assert.equal(d.spec?.replicas, 3);
    assert.deepEqual(d.metadata?.labels, { app: 'patched', extra: 'x' });
    assert.equal(d.metadata?.generation, 2);
    const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
    d = await c.apps.patchNamespacedDeployment({ name: 'patched', namespace: 'acme', body: { spec: { template: { spec: { containers: [{ name: 'web', image: 'web:2', env: [{ name: 'B', value: '2' }] }] } } } } }, strategic);
    const web = d.spec?.template.spec?.containers[0];
    assert.equal(web?.image, 'web:2');
    assert.deepEqual(web?.env?.map((e) => e.name), ['A', 'B']);
    // the client's default for patch is JSON patch
    d = await c.apps.patchNamespacedDeployment({ name: 'patched', namespace: 'acme', body: [{ op: 'replace', path: '/spec/replicas', value: 1 }, { op: 'remove', path: '/metadata/labels/extra' }] });
    assert.equal(d.spec?.replicas, 1);
    assert.deepEqual(d.metadata?.labels, { app: 'patched' });
    const failed = await refused(c.apps.patchNamespacedDeployment({ name: 'patched', namespace: 'acme', body: [{ op: 'test', path: '/spec/replicas', value: 5 }] }));
    assert.equal(failed.code, 422);
    const stale = await refused(c.apps.patchNamespacedDeployment({ name: 'patched', namespace: 'acme', body: { metadata: { resourceVersion: '1' }, spec: { replicas: 4 } } }, merge));
    assert.equal(stale.reason, 'Conflict');
    const immutable = await refused(c.apps.patchNamespacedDeployment({ name: 'patched', namespace: 'acme', body: { spec: { selector: { matchLabels: { app: 'other' } } } } }, merge));
    assert.equal(immutable.code, 422);
    assert.match(immutable.message ?? '', /field is immutable/);
  });

  test('an update that changes nothing keeps the resourceVersion; metadata changes do not bump the generation', async () => {
    const d = await c.apps.createNamespacedDeployment({ namespace: 'acme', body: deployment('noop', 'acme') });
    const same = await c.apps.replaceNamespacedDeployment({ name: 'noop', namespace: 'acme', body: d });
    assert.equal(same.metadata?.resourceVersion, d.metadata?.resourceVersion);
    same.metadata!.annotations = { note: 'x' };
    const annotated = await c.apps.replaceNamespacedDeployment({ name: 'noop', namespace: 'acme', body: same });
    assert.notEqual(annotated.metadata?.resourceVersion, d.metadata?.resourceVersion);
    assert.equal(annotated.metadata?.generation, 1);
    // the status belongs to its subresource: a client's PUT does not write it
    annotated.status = { replicas: 99 };
    const kept = await c.apps.replaceNamespacedDeployment({ name: 'noop', namespace: 'acme', body: annotated });
    assert.notEqual(kept.status?.replicas, 99);
  });

  test('defaults are filled in as a cluster fills them in', async () => {
    const d = await c.apps.createNamespacedDeployment({ namespace: 'acme', body: deployment('defaults', 'acme', 'web:latest') });
    assert.equal(d.spec?.replicas, 1);
    assert.equal(d.spec?.strategy?.type, 'RollingUpdate');
    assert.equal(d.spec?.strategy?.rollingUpdate?.maxSurge, '25%');
    assert.equal(d.spec?.revisionHistoryLimit, 10);
    assert.equal(d.spec?.progressDeadlineSeconds, 600);
    const pod = d.spec?.template.spec;
    assert.equal(pod?.restartPolicy, 'Always');
    assert.equal(pod?.terminationGracePeriodSeconds, 30);
    assert.equal(pod?.containers[0]?.imagePullPolicy, 'Always');
    assert.equal(pod?.containers[0]?.terminationMessagePath, '/dev/termination-log');
    const svc = await c.core.createNamespacedService({ namespace: 'acme', body: { metadata: { name: 'svc' }, spec: { selector: { app: 'x' }, ports: [{ port: 80 }] } } });
    assert.equal(svc.spec?.type, 'ClusterIP');
    assert.equal(svc.spec?.ports?.[0]?.protocol, 'TCP');
    assert.equal(svc.spec?.ports?.[0]?.targetPort, 80);
    assert.match(svc.spec?.clusterIP ?? '', /^10\.96\.\d+\.\d+$/);
  });

  test('the generic object API works through discovery, and unknown kinds are refused', async () => {
    const created = await c.objects.create({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'acme' }, spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } } as KubernetesObject);
    assert.equal(created.metadata?.generation, 1);
    const read = await c.objects.read({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'acme' } });
    assert.equal(read.metadata?.uid, created.metadata?.uid);
    const list = await c.objects.list('networking.k8s.io/v1', 'NetworkPolicy', 'acme');
    assert.equal(list.items.length, 1);
    await c.objects.delete(read);
    await assert.rejects(c.objects.read({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'r', namespace: 'acme' } }), /Failed to fetch resource metadata|404/);
  });

  test('requests without the bearer token are 401, and unknown paths 404, both as Status objects', async () => {
    const anon = await fetch(`${fake.url}/api/v1/namespaces`);
    assert.equal(anon.status, 401);
    assert.deepEqual(await anon.json(), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    const wrong = await fetch(`${fake.url}/api/v1/namespaces`, { headers: { Authorization: `Bearer ${fake.token}x` } });
    assert.equal(wrong.status, 401);
    const auth = { Authorization: `Bearer ${fake.token}` };
    const unknown = await fetch(`${fake.url}/apis/example.com/v1/widgets`, { headers: auth });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { kind: string }).kind, 'Status');
    const big = await fetch(`${fake.url}/api/v1/namespaces/acme/configmaps`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ metadata: { name: 'big' }, data: { x: 'y'.repeat(4 * 1024 * 1024) } }) });
    assert.equal(big.status, 413);
    const junk = await fetch(`${fake.url}/api/v1/namespaces/acme/configmaps`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: '{"metadata":' });
    assert.equal(junk.status, 400);
    assert.ok(fake.requests.some((r) => r.path === '/api/v1/namespaces' && r.status === 401));
  });

  test('objects() reads the store as it is', async () => {
    await c.core.createNamespacedServiceAccount({ namespace: 'acme', body: { metadata: { name: 'runner' }, automountServiceAccountToken: false } });
    const sas = fake.objects('v1', 'ServiceAccount', 'acme').map((s: { metadata: { name: string } }) => s.metadata.name);
    assert.deepEqual(sas.sort(), ['default', 'runner']);
    assert.throws(() => fake.objects('v1', 'Gadget'), /no v1 Gadget/);
  });
});
