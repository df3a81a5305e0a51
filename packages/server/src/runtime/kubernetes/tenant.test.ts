import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MicroError } from '@micro/sdk';
import { BUILT_IN_DEFAULTS } from '../../quota/limits.js';
import type { KubeObject } from './client.js';
import { bytesQuantity, countQuantity, cpuQuantity } from './quantity.js';
import { validateObject } from './schema.js';
import { checkTenantQuota, MIN_MEMORY, tenantObjects, tenantSpecFrom, type TenantQuota } from './tenant.js';

const MiB = 1024 * 1024;
const quota: TenantQuota = { services: 5, instancesPerService: 2, memoryPerInstance: 256 * MiB, cpuPerInstance: 500 };
const unlimited: TenantQuota = { services: null, instancesPerService: null, memoryPerInstance: null, cpuPerInstance: null };

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the tests read nested fields of plain JSON objects
type Json = any;

function find(objects: KubeObject[], kind: string, name: string): KubeObject & { spec?: Json } {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is made`);
  return o as KubeObject & { spec?: Json };
}

function badRequest(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (err: unknown) => err instanceof MicroError && err.code === 400 && pattern.test(err.detail));
}

test('quantities are written as the API server writes them back', () => {
  assert.equal(cpuQuantity(500), '500m');
  assert.equal(cpuQuantity(1000), '1');
  assert.equal(cpuQuantity(1500), '1500m');
  assert.equal(cpuQuantity(1_000_000), '1k');
  assert.equal(cpuQuantity(0), '0');
  assert.equal(bytesQuantity(512 * MiB), '512Mi');
  assert.equal(bytesQuantity(1536 * 1024), '1536Ki');
  assert.equal(bytesQuantity(3 * 1024 * MiB), '3Gi');
  assert.equal(bytesQuantity(1000), '1k');
  assert.equal(bytesQuantity(1_500_000), '1500k');
  assert.equal(bytesQuantity(1023), '1023');
  assert.equal(bytesQuantity(0), '0');
  assert.equal(countQuantity(40), '40');
  assert.equal(countQuantity(1000), '1k');
  assert.throws(() => countQuantity(-1), RangeError);
  assert.throws(() => countQuantity(1.5), RangeError);
  assert.throws(() => countQuantity(2 ** 60), RangeError);
});

test('every object of a namespace is valid against the Kubernetes schemas, and all are in its cluster namespace', () => {
  for (const q of [quota, unlimited, { ...unlimited, services: 0 }, { services: 0, instancesPerService: 0, memoryPerInstance: MIN_MEMORY, cpuPerInstance: 1 }]) {
    const objects = tenantObjects('acme', { owner: 'cus_1', plan: 'developer', quota: q });
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`),
      ['Namespace/micro-acme', 'ServiceAccount/micro-service', 'ServiceAccount/default', 'NetworkPolicy/default-deny', 'NetworkPolicy/allow-same-namespace', 'NetworkPolicy/allow-dns', 'NetworkPolicy/allow-platform', 'NetworkPolicy/allow-from-platform', 'NetworkPolicy/allow-build-egress', 'LimitRange/micro-limits', 'ResourceQuota/micro-quota'],
    );
    for (const o of objects) {
      validateObject(o);
      assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'micro');
      assert.equal(o.metadata.labels?.['micro.dev/namespace'], 'acme');
      if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'micro-acme');
    }
  }
});

test('the Namespace: owner and plan labels, Pod Security restricted', () => {
  const [ns] = tenantObjects('acme', { owner: 'alice@example.com', plan: 'team', quota });
  const labels = ns?.metadata.labels ?? {};
  assert.match(labels['micro.dev/owner'] ?? '', /^sha256\.[0-9a-f]{48}$/);
  assert.equal(labels['micro.dev/plan'], 'team');
  for (const mode of ['enforce', 'audit', 'warn']) {
    assert.equal(labels[`pod-security.kubernetes.io/${mode}`], 'restricted');
    assert.equal(labels[`pod-security.kubernetes.io/${mode}-version`], 'latest');
  }
  const [unknown] = tenantObjects('acme', { quota });
  assert.equal(unknown?.metadata.labels?.['micro.dev/owner'], '');
  assert.equal(unknown?.metadata.labels?.['micro.dev/plan'], '');
});

test('ServiceAccounts mount no token', () => {
  const objects = tenantObjects('acme', { quota });
  for (const name of ['micro-service', 'default']) assert.equal(find(objects, 'ServiceAccount', name).automountServiceAccountToken, false);
});

test('the ResourceQuota and LimitRange follow the namespace quota', () => {
  const objects = tenantObjects('acme', { quota }, { diskPerContainer: 2 * 1024 * MiB });
  // 5 services × (2 instances + 1 surge or build) = 15 pods of 256 MiB and 500m
  assert.deepEqual(find(objects, 'ResourceQuota', 'micro-quota').spec.hard, {
    pods: '15',
    'requests.memory': '3840Mi',
    'limits.memory': '3840Mi',
    'requests.cpu': '7500m',
    'limits.cpu': '7500m',
    'count/deployments.apps': '5',
    'count/jobs.batch': '10',
    'count/secrets': '20',
    'count/configmaps': '6',
    'count/services': '5',
    persistentvolumeclaims: '0',
    'services.nodeports': '0',
    'services.loadbalancers': '0',
  });
  const most = { memory: '256Mi', cpu: '500m', 'ephemeral-storage': '2Gi' };
  assert.deepEqual(find(objects, 'LimitRange', 'micro-limits').spec.limits, [{ type: 'Container', max: most, default: most, defaultRequest: most }]);
  // unlimited (namespace micro): only what no namespace may have
  const free = tenantObjects('micro', { quota: unlimited }, { diskPerContainer: 1024 * MiB });
  assert.deepEqual(find(free, 'ResourceQuota', 'micro-quota').spec.hard, { persistentvolumeclaims: '0', 'services.nodeports': '0', 'services.loadbalancers': '0' });
  assert.deepEqual(find(free, 'LimitRange', 'micro-limits').spec.limits[0].max, { 'ephemeral-storage': '1Gi' });
  // the built-in defaults map too
  const defaults = tenantObjects('acme', { quota: { ...BUILT_IN_DEFAULTS } });
  assert.equal(find(defaults, 'ResourceQuota', 'micro-quota').spec.hard['limits.memory'], '50Gi');
});

test('the NetworkPolicies: deny all, then same namespace, DNS, the platform, and the internet for builds only', () => {
  const objects = tenantObjects('acme', { quota }, { systemNamespace: 'platform-x' });
  const deny = find(objects, 'NetworkPolicy', 'default-deny').spec;
  assert.deepEqual(deny, { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
  const same = find(objects, 'NetworkPolicy', 'allow-same-namespace').spec;
  assert.deepEqual(same.ingress, [{ from: [{ podSelector: {} }] }]);
  assert.deepEqual(same.egress, [{ to: [{ podSelector: {} }] }]);
  const dns = find(objects, 'NetworkPolicy', 'allow-dns').spec;
  assert.deepEqual(dns.egress[0].to, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }]);
  assert.deepEqual(dns.egress[0].ports, [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }]);
  const platform = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'platform-x' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'micro-server' } } };
  const out = find(objects, 'NetworkPolicy', 'allow-platform').spec;
  assert.deepEqual(out.egress, [{ to: [platform], ports: [{ protocol: 'TCP', port: 8080 }, { protocol: 'TCP', port: 8081 }] }]);
  assert.deepEqual(out.policyTypes, ['Egress']);
  const into = find(objects, 'NetworkPolicy', 'allow-from-platform').spec;
  assert.deepEqual(into.ingress, [{ from: [platform] }]);
  assert.deepEqual(into.podSelector, { matchExpressions: [{ key: 'micro.dev/role', operator: 'NotIn', values: ['build'] }] });
  const build = find(objects, 'NetworkPolicy', 'allow-build-egress').spec;
  assert.deepEqual(build.podSelector, { matchLabels: { 'micro.dev/role': 'build' } });
  assert.deepEqual(build.egress[0].to[0].ipBlock, { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10'] });
  assert.equal(build.egress[0].to[1].ipBlock.cidr, '::/0');
  assert.deepEqual(build.egress[0].ports.map((p: { port: number }) => p.port), [80, 443, 22, 9418]);
  assert.equal(find(tenantObjects('acme', { quota }), 'NetworkPolicy', 'allow-platform').spec.egress[0].to[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name'], 'micro-system');
});

test('quotas the cluster would refuse are a 400 naming the key, before anything', () => {
  badRequest(() => checkTenantQuota({ ...quota, services: -1 }), /^quota: services must be a whole number from 0, or null \(unlimited\), not -1/);
  badRequest(() => checkTenantQuota({ ...quota, instancesPerService: 1.5 }), /instancesPerService must be a whole number/);
  badRequest(() => checkTenantQuota({ ...quota, memoryPerInstance: '1Gi' }), /memoryPerInstance must be a whole number from 0, or null \(unlimited\), not "1Gi"/);
  badRequest(() => checkTenantQuota({ ...quota, cpuPerInstance: Number.NaN }), /cpuPerInstance must be a whole number/);
  badRequest(() => checkTenantQuota({ ...quota, memoryPerInstance: 0 }), /memoryPerInstance 0 bytes is less than the 32 MiB a service needs to start/);
  badRequest(() => checkTenantQuota({ ...quota, memoryPerInstance: MIN_MEMORY - 1 }), /less than the 32 MiB/);
  badRequest(() => checkTenantQuota({ ...quota, cpuPerInstance: 0 }), /cpuPerInstance 0 millicores: no pod could run/);
  badRequest(() => checkTenantQuota({ ...quota, services: 2 ** 50, instancesPerService: 2 ** 50 }), /more pods than a cluster quota can hold/);
  badRequest(() => checkTenantQuota({ ...quota, memoryPerInstance: 2 ** 50, services: 100 }), /memoryPerInstance 1125899906842624 for 300 pods .* is more than a cluster quota can hold/);
  badRequest(() => checkTenantQuota(null), /quota: must be an object/);
  badRequest(() => tenantObjects('acme', { quota: { ...quota, services: -5 } }), /services/);
  badRequest(() => tenantObjects('Acme', { quota }), /^namespace: "Acme" has upper-case letters/);
  assert.deepEqual(checkTenantQuota({ services: 0, instancesPerService: 0, memoryPerInstance: null, cpuPerInstance: null }), { services: 0, instancesPerService: 0, memoryPerInstance: null, cpuPerInstance: null });
  assert.throws(() => tenantObjects('acme', { quota }, { diskPerContainer: 10 }), /the disk of a container must be at least 1 MiB/);
});

test('the spec of a namespace from the quotas: the limits in force, the plan and its payer', async () => {
  const quotas = {
    plan: async (ns: string) => (ns === 'acme' ? { id: 'team', name: 'Team', limits: {}, ownersSetLimits: true, owner: 'cus_1' } : undefined),
    limits: async () => ({ ...BUILT_IN_DEFAULTS, services: 3 }),
  };
  assert.deepEqual(await tenantSpecFrom(quotas, 'acme'), { owner: 'cus_1', plan: 'team', quota: { services: 3, instancesPerService: 4, memoryPerInstance: 512 * MiB, cpuPerInstance: 1000 } });
  assert.deepEqual(await tenantSpecFrom(quotas, 'other'), { quota: { services: 3, instancesPerService: 4, memoryPerInstance: 512 * MiB, cpuPerInstance: 1000 } });
  assert.deepEqual(await tenantSpecFrom(undefined, 'acme'), { quota: unlimited });
});
