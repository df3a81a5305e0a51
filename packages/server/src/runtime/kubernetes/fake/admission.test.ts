import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { type FakeKubernetes, startFakeKubernetes } from './index.js';
import { type Clients, clients, RESTRICTED_CONTAINER, refused, until } from './testkit.js';

const RESTRICTED = { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' };

function pod(name: string, resources?: object, secure = true): V1Pod {
  return { metadata: { name }, spec: { containers: [{ name: 'c', image: 'i:1', ...(secure ? RESTRICTED_CONTAINER : {}), ...(resources ? { resources } : {}) }] } };
}

function deployment(name: string, replicas: number, container: object): V1Deployment {
  return { metadata: { name }, spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'i:1', ...container }] } } } };
}

describe('admission, as a cluster refuses', () => {
  let fake: FakeKubernetes;
  let c: Clients;
  before(async () => {
    fake = await startFakeKubernetes({ secondMs: 20 });
    c = clients(fake);
  });
  after(() => fake.close());

  test('Pod Security restricted refuses a root pod, naming every violation as the API server does', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'psa', labels: RESTRICTED } } });
    const root: V1Pod = { metadata: { name: 'root' }, spec: { hostNetwork: true, containers: [{ name: 'c', image: 'i:1', securityContext: { runAsUser: 0, privileged: true } }] } };
    const s = await refused(c.core.createNamespacedPod({ namespace: 'psa', body: root }));
    assert.equal(s.code, 403);
    assert.equal(s.reason, 'Forbidden');
    assert.equal(
      s.message,
      'pods "root" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), host namespaces (hostNetwork=true), privileged (container "c" must not set securityContext.privileged=true), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), runAsUser=0 (container "c" must not set runAsUser=0), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    );
    const ok = await c.core.createNamespacedPod({ namespace: 'psa', body: pod('ok') });
    assert.equal(ok.metadata?.name, 'ok');
    // pod-level settings count for every container
    const podLevel: V1Pod = { metadata: { name: 'podlevel' }, spec: { securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }, containers: [{ name: 'c', image: 'i:1', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }] } };
    await c.core.createNamespacedPod({ namespace: 'psa', body: podLevel });
    const hostPath: V1Pod = { metadata: { name: 'hp' }, spec: { volumes: [{ name: 'h', hostPath: { path: '/' } }], containers: [{ name: 'c', image: 'i:1', ...RESTRICTED_CONTAINER }] } };
    assert.match((await refused(c.core.createNamespacedPod({ namespace: 'psa', body: hostPath }))).message ?? '', /hostPath volumes \(volume "h"\), restricted volume types \(volume "h" uses restricted volume type "hostPath"\)/);
  });

  test('a Deployment whose pods PSA refuses is accepted; its ReplicaSet cannot create them and says so', async () => {
    await c.apps.createNamespacedDeployment({ namespace: 'psa', body: deployment('insecure', 1, {}) });
    const d = await until('ReplicaFailure', async () => {
      const x = await c.apps.readNamespacedDeployment({ name: 'insecure', namespace: 'psa' });
      return x.status?.conditions?.find((cd) => cd.type === 'ReplicaFailure') && x;
    });
    const failure = d.status?.conditions?.find((cd) => cd.type === 'ReplicaFailure');
    assert.equal(failure?.reason, 'FailedCreate');
    assert.match(failure?.message ?? '', /^pods "insecure-\w+-\w{5}" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
    const events = await c.core.listNamespacedEvent({ namespace: 'psa', fieldSelector: 'reason=FailedCreate' });
    assert.match(events.items[0]?.message ?? '', /^Error creating: pods "insecure-\w+-\w{5}" is forbidden: violates PodSecurity/);
    assert.equal((await c.core.listNamespacedPod({ namespace: 'psa', labelSelector: 'app=insecure' })).items.length, 0);
  });

  test('the warn mode answers a Warning header, for pods and for workloads', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'warned', labels: { 'pod-security.kubernetes.io/warn': 'restricted' } } } });
    const res = await fetch(`${fake.url}/apis/apps/v1/namespaces/warned/deployments`, { method: 'POST', headers: { Authorization: `Bearer ${fake.token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(deployment('w', 1, {})) });
    assert.equal(res.status, 201);
    assert.match(res.headers.get('warning') ?? '', /^299 - "would violate PodSecurity \\"restricted:latest\\": allowPrivilegeEscalation != false/);
  });

  test('a ResourceQuota refuses a pod over its hard limits with the "exceeded quota" message, and counts what is used', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'quota' } } });
    await c.core.createNamespacedResourceQuota({ namespace: 'quota', body: { metadata: { name: 'compute' }, spec: { hard: { pods: '2', 'requests.memory': '1Gi', 'limits.memory': '1Gi', 'requests.cpu': '1' } } } });
    const small = { requests: { memory: '256Mi', cpu: '250m' }, limits: { memory: '256Mi' } };
    await c.core.createNamespacedPod({ namespace: 'quota', body: pod('small', small, false) });
    const big = await refused(c.core.createNamespacedPod({ namespace: 'quota', body: pod('big', { requests: { memory: '2Gi', cpu: '100m' }, limits: { memory: '2Gi' } }, false) }));
    assert.equal(big.code, 403);
    assert.equal(big.message, 'pods "big" is forbidden: exceeded quota: compute, requested: limits.memory=2Gi,requests.memory=2Gi, used: limits.memory=256Mi,requests.memory=256Mi, limited: limits.memory=1Gi,requests.memory=1Gi');
    const unsaid = await refused(c.core.createNamespacedPod({ namespace: 'quota', body: pod('unsaid', undefined, false) }));
    assert.equal(unsaid.message, 'pods "unsaid" is forbidden: failed quota: compute: must specify limits.memory for: c; requests.cpu for: c; requests.memory for: c');
    const q = await until('used counted', async () => {
      const x = await c.core.readNamespacedResourceQuota({ name: 'compute', namespace: 'quota' });
      return x.status?.used?.pods === '1' && x;
    });
    assert.deepEqual(q.status?.used, { 'limits.memory': '256Mi', pods: '1', 'requests.cpu': '250m', 'requests.memory': '256Mi' });
    assert.deepEqual(q.status?.hard, { 'limits.memory': '1Gi', pods: '2', 'requests.cpu': '1', 'requests.memory': '1Gi' });
  });

  test('a Deployment scaled past its quota: the pods that fit run, the rest is a ReplicaFailure until the quota grows', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'quota2' } } });
    await c.core.createNamespacedResourceQuota({ namespace: 'quota2', body: { metadata: { name: 'pods' }, spec: { hard: { pods: '2' } } } });
    await c.apps.createNamespacedDeployment({ namespace: 'quota2', body: deployment('many', 3, {}) });
    const d = await until('ReplicaFailure', async () => {
      const x = await c.apps.readNamespacedDeployment({ name: 'many', namespace: 'quota2' });
      return x.status?.conditions?.find((cd) => cd.type === 'ReplicaFailure') && x;
    });
    assert.match(d.status?.conditions?.find((cd) => cd.type === 'ReplicaFailure')?.message ?? '', /exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2/);
    assert.equal((await c.core.listNamespacedPod({ namespace: 'quota2' })).items.length, 2);
    await c.core.replaceNamespacedResourceQuota({ name: 'pods', namespace: 'quota2', body: { metadata: { name: 'pods' }, spec: { hard: { pods: '3' } } } });
    await until('the third pod', async () => (await c.core.listNamespacedPod({ namespace: 'quota2' })).items.length === 3, 10_000);
    await until('the failure cleared', async () => !(await c.apps.readNamespacedDeployment({ name: 'many', namespace: 'quota2' })).status?.conditions?.some((cd) => cd.type === 'ReplicaFailure'));
  });

  test('object counts: count/deployments.apps and secrets', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'counts' } } });
    await c.core.createNamespacedResourceQuota({ namespace: 'counts', body: { metadata: { name: 'objects' }, spec: { hard: { 'count/deployments.apps': '1', secrets: '1' } } } });
    await c.apps.createNamespacedDeployment({ namespace: 'counts', body: deployment('one', 0, {}) });
    const two = await refused(c.apps.createNamespacedDeployment({ namespace: 'counts', body: deployment('two', 0, {}) }));
    assert.equal(two.message, 'deployments.apps "two" is forbidden: exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1');
    await c.core.createNamespacedSecret({ namespace: 'counts', body: { metadata: { name: 's1' } } });
    assert.equal((await refused(c.core.createNamespacedSecret({ namespace: 'counts', body: { metadata: { name: 's2' } } }))).code, 403);
  });

  test('a LimitRange fills in defaults and refuses what is over its max', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'limits' } } });
    await c.core.createNamespacedLimitRange({ namespace: 'limits', body: { metadata: { name: 'lr' }, spec: { limits: [{ type: 'Container', max: { memory: '1Gi' }, defaultRequest: { cpu: '100m', memory: '64Mi' }, _default: { cpu: '500m', memory: '128Mi' } }] } } });
    const p = await c.core.createNamespacedPod({ namespace: 'limits', body: pod('defaulted', undefined, false) });
    assert.deepEqual(JSON.parse(JSON.stringify(p.spec?.containers[0]?.resources)), { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } });
    assert.equal(p.status?.qosClass, 'Burstable');
    const over = await refused(c.core.createNamespacedPod({ namespace: 'limits', body: pod('over', { limits: { memory: '2Gi' } }, false) }));
    assert.equal(over.message, 'pods "over" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi');
    const lr = await c.core.readNamespacedLimitRange({ name: 'lr', namespace: 'limits' });
    assert.deepEqual(lr.spec?.limits[0]?.defaultRequest, { cpu: '100m', memory: '64Mi' });
  });

  test('a pod naming a ServiceAccount that does not exist is refused; automount off leaves no token volume', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'accounts' } } });
    const body = pod('sa');
    body.spec!.serviceAccountName = 'runner';
    const s = await refused(c.core.createNamespacedPod({ namespace: 'accounts', body }));
    assert.equal(s.message, 'pods "sa" is forbidden: error looking up service account accounts/runner: serviceaccount "runner" not found');
    await c.core.createNamespacedServiceAccount({ namespace: 'accounts', body: { metadata: { name: 'runner' }, automountServiceAccountToken: false } });
    const p = await c.core.createNamespacedPod({ namespace: 'accounts', body });
    assert.equal(p.spec?.volumes, undefined);
    assert.equal(p.spec?.serviceAccountName, 'runner');
  });

  test('requests over limits and negative quantities are 422; quantities that are not ones are 400', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'q' } } });
    const over = await refused(c.core.createNamespacedPod({ namespace: 'q', body: pod('x', { requests: { cpu: '2' }, limits: { cpu: '1' } }) }));
    assert.equal(over.code, 422);
    assert.match(over.message ?? '', /spec.containers\[0\].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1/);
    const junk = await refused(c.core.createNamespacedPod({ namespace: 'q', body: pod('y', { limits: { memory: '12 parsecs' } }) }));
    assert.equal(junk.code, 400);
    assert.match(junk.message ?? '', /quantities must match the regular expression/);
  });
});

describe('deleting a namespace', () => {
  let fake: FakeKubernetes;
  let c: Clients;
  before(async () => {
    fake = await startFakeKubernetes({ secondMs: 20 });
    c = clients(fake);
  });
  after(() => fake.close());

  test('Terminating, no new objects, everything in it deleted, then it is gone; nothing of another namespace is touched', async () => {
    for (const ns of ['doomed', 'bystander']) {
      await c.core.createNamespace({ body: { metadata: { name: ns } } });
      await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('app', 2, {}) });
      await c.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'creds' } } });
      await c.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'runner' } } });
    }
    // something that holds the namespace in Terminating until its finalizer is removed
    await c.core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'held', finalizers: ['example.com/hold'] } } });
    await until('pods', async () => (await c.core.listNamespacedPod({ namespace: 'doomed' })).items.length === 2);
    const bystander = (await c.core.listNamespacedPod({ namespace: 'bystander' })).items.map((p) => p.metadata?.uid);
    await c.core.deleteNamespace({ name: 'doomed' });
    const ns = await c.core.readNamespace({ name: 'doomed' });
    assert.equal(ns.status?.phase, 'Terminating');
    assert.ok(ns.metadata?.deletionTimestamp);
    const late = await refused(c.core.createNamespacedSecret({ namespace: 'doomed', body: { metadata: { name: 'late' } } }));
    assert.equal(late.code, 403);
    assert.equal(late.message, 'secrets "late" is forbidden: unable to create new content in namespace doomed because it is being terminated');
    assert.equal(late.details?.causes?.[0]?.reason, 'NamespaceTerminating');
    const waiting = await until('only the held object left', async () => {
      const x = await c.core.readNamespace({ name: 'doomed' });
      const remaining = x.status?.conditions?.find((cd) => cd.type === 'NamespaceContentRemaining');
      return remaining?.message === 'Some resources are remaining: configmaps has 1 resource instances' && x;
    });
    assert.equal(waiting.status?.conditions?.find((cd) => cd.type === 'NamespaceFinalizersRemaining')?.message, 'Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances');
    await c.core.patchNamespacedConfigMap({ name: 'held', namespace: 'doomed', body: [{ op: 'remove', path: '/metadata/finalizers' }] });
    await until('the namespace is gone', async () => (await refused(c.core.readNamespace({ name: 'doomed' }))).code === 404, 10_000);
    for (const [apiVersion, kind] of [['v1', 'Pod'], ['v1', 'Secret'], ['v1', 'ServiceAccount'], ['apps/v1', 'Deployment'], ['apps/v1', 'ReplicaSet'], ['v1', 'ConfigMap']] as const) {
      assert.deepEqual(fake.objects(apiVersion, kind, 'doomed'), [], kind);
    }
    assert.deepEqual((await c.core.listNamespacedPod({ namespace: 'bystander' })).items.map((p) => p.metadata?.uid), bystander);
    assert.equal((await c.core.readNamespacedSecret({ name: 'creds', namespace: 'bystander' })).metadata?.name, 'creds');
  });

  test('the system namespaces may not be deleted', async () => {
    const s = await refused(c.core.deleteNamespace({ name: 'kube-system' }));
    assert.equal(s.code, 403);
    assert.equal(s.message, 'namespaces "kube-system" is forbidden: this namespace may not be deleted');
  });
});
