import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createLogger, MicroError } from '@micro/sdk';
import type { Limits } from '../../quota/limits.js';
import type { NamespacePlan } from '../../quota/quotas.js';
import type { NamespaceSource } from '../runtime.js';
import { kubeClient, type KubeClient, type KubeObject } from './client.js';
import { startFakeKubernetes, type FakeKubernetes } from './fake/index.js';
import { until } from './fake/testkit.js';
import { reconcileFromEnv } from './index.js';
import { TenantReconciler } from './reconcile.js';
import { TenantNamespaces, type TenantQuota } from './tenant.js';

/**
 * The hook and the reconcile of the cluster namespaces against the test API server (fake/):
 * a change ensures at once from the quotas as they are now, a cluster that is down delays it
 * (never fails the caller) until the retry, a pass makes what the platform has and removes
 * what it deleted, and nothing touches a cluster namespace that is not the named one's.
 */

const MiB = 1024 * 1024;
const silent = createLogger({ level: 'silent' });

let fake: FakeKubernetes;
let client: KubeClient;
/** what the quotas say of each namespace now: the test changes it as the platform would */
const plans = new Map<string, NamespacePlan>();
const quotas = new Map<string, TenantQuota>();
const quotaSource = {
  plan: (namespace: string) => Promise.resolve(plans.get(namespace)),
  limits: (namespace: string) => Promise.resolve((quotas.get(namespace) ?? { services: 2, instancesPerService: 1, memoryPerInstance: 128 * MiB, cpuPerInstance: 100 }) as Limits),
};

/** the platform's namespaces as signup would give them */
class Source implements NamespaceSource {
  readonly live = new Set<string>();
  readonly gone = new Set<string>();
  async *active() {
    yield* [...this.live].sort();
  }
  deleted(namespace: string) {
    return Promise.resolve(this.gone.has(namespace));
  }
}

function tenantsOn(prefix = 'micro-'): TenantNamespaces {
  return new TenantNamespaces({ client, prefix, quotas: quotaSource, pollMs: 10, removeTimeoutMs: 2_000, diskPerContainer: 256 * MiB });
}

function namespaceObject(name: string): KubeObject | undefined {
  return fake.objects('v1', 'Namespace').find((n) => n.metadata.name === name);
}

function quotaOf(cns: string): Record<string, string> | undefined {
  return (fake.objects('v1', 'ResourceQuota', cns).find((q) => q.metadata.name === 'micro-quota')?.spec as { hard: Record<string, string> } | undefined)?.hard;
}

/** resourceVersions of every object a cluster namespace holds */
function versions(cns: string): string {
  const all = [namespaceObject(cns), ...['ServiceAccount', 'ResourceQuota', 'LimitRange'].flatMap((k) => fake.objects('v1', k, cns)), ...fake.objects('networking.k8s.io/v1', 'NetworkPolicy', cns)];
  return JSON.stringify(all.map((o) => `${o?.kind}/${o?.metadata.name}@${o?.metadata.resourceVersion}`).sort());
}

before(async () => {
  fake = await startFakeKubernetes({ onError: () => undefined });
  client = kubeClient(fake.kubeconfig, { attempts: 2, backoff: { initial: 5, max: 10 }, timeout: 2_000 });
});

after(() => fake.close());

beforeEach(() => {
  plans.clear();
  quotas.clear();
});

describe('the hook', () => {
  test('changed ensures the namespace from the quotas as they are now: owner, plan, quota; a plan or quota change is written over', async (t) => {
    const r = new TenantReconciler(tenantsOn(), silent, { intervalMs: 3_600_000 });
    r.start();
    t.after(() => r.stop());
    plans.set('hook-a', { id: 'community', name: 'Community', limits: {}, ownersSetLimits: false, owner: 'cus_0hooka' });
    quotas.set('hook-a', { services: 2, instancesPerService: 1, memoryPerInstance: 128 * MiB, cpuPerInstance: 100 });
    await r.changed('hook-a');
    const ns = namespaceObject('micro-hook-a');
    assert.ok(ns, 'the cluster namespace is made');
    assert.equal(ns.metadata.labels?.['micro.dev/owner'], 'cus_0hooka');
    assert.equal(ns.metadata.labels?.['micro.dev/plan'], 'community');
    assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    assert.equal(quotaOf('micro-hook-a')?.pods, '4');
    assert.equal(fake.objects('networking.k8s.io/v1', 'NetworkPolicy', 'micro-hook-a').length, 6);

    // the plan changes: another plan id, more services
    plans.set('hook-a', { id: 'developer', name: 'Developer', limits: {}, ownersSetLimits: true, owner: 'cus_0hooka' });
    quotas.set('hook-a', { services: 5, instancesPerService: 2, memoryPerInstance: 256 * MiB, cpuPerInstance: 500 });
    await r.changed('hook-a');
    assert.equal(namespaceObject('micro-hook-a')?.metadata.labels?.['micro.dev/plan'], 'developer');
    assert.deepEqual([quotaOf('micro-hook-a')?.pods, quotaOf('micro-hook-a')?.['limits.memory']], ['15', '3840Mi']);

    // nothing changed: nothing is written
    const before = versions('micro-hook-a');
    await r.changed('hook-a');
    assert.equal(versions('micro-hook-a'), before);
    assert.deepEqual(r.pending(), []);
  });

  test('a cluster that is down: changed resolves (the caller never fails), and the retry makes the namespace once it is up', async (t) => {
    const r = new TenantReconciler(tenantsOn(), silent, { intervalMs: 3_600_000, retryMs: 50 });
    r.start();
    t.after(() => r.stop());
    const up = fake.fault({ down: true });
    try {
      await r.changed('hook-down');
      assert.equal(namespaceObject('micro-hook-down'), undefined);
      assert.deepEqual(r.pending().map((p) => p.namespace), ['hook-down']);
    } finally {
      up();
    }
    await until('the retry made the namespace', () => namespaceObject('micro-hook-down') && quotaOf('micro-hook-down'));
    await until('nothing is pending', () => r.pending().length === 0);
  });

  test('a namespace the source says was deleted is left alone: a late change does not bring back what the purge removed', async (t) => {
    const r = new TenantReconciler(tenantsOn(), silent, { intervalMs: 3_600_000 });
    const source = new Source();
    source.gone.add('hook-gone');
    r.setSource(source);
    r.start();
    t.after(() => r.stop());
    const start = fake.requests.length;
    await r.changed('hook-gone');
    assert.equal(namespaceObject('micro-hook-gone'), undefined);
    assert.deepEqual(fake.requests.slice(start), [], 'not one request');
  });

  test('before start and after stop it does nothing (the first pass at start makes what was missed)', async () => {
    const r = new TenantReconciler(tenantsOn(), silent, { intervalMs: 3_600_000 });
    await r.changed('hook-early');
    assert.equal(namespaceObject('micro-hook-early'), undefined);
    const source = new Source();
    source.live.add('hook-early');
    r.setSource(source);
    r.start();
    await until('the first pass made it', () => namespaceObject('micro-hook-early'));
    await r.stop();
    await r.changed('hook-late');
    assert.equal(namespaceObject('micro-hook-late'), undefined);
  });

  test('a failed ensure waits retryMs, twice as long after each failure, at most the interval', async (t) => {
    let clock = 1_000_000;
    let fails = true;
    const failing = {
      ensure: async (namespace: string) => {
        if (fails) throw new MicroError('runtime', 503, 'the API server is away', 'Service Unavailable');
        return { name: `micro-${namespace}`, created: true, changed: ['Namespace/x'] };
      },
      remove: () => Promise.resolve('absent' as const),
      list: () => Promise.resolve([]),
    };
    const r = new TenantReconciler(failing, silent, { intervalMs: 100_000, retryMs: 15_000 }, () => clock);
    r.start();
    t.after(() => r.stop());
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      await r.changed('backoff');
      const [p] = r.pending();
      assert.equal(p?.attempts, i + 1);
      waits.push((p?.at ?? 0) - clock);
      clock += 1;
    }
    assert.deepEqual(waits, [15_000, 30_000, 60_000, 100_000, 100_000]);
    fails = false;
    await r.changed('backoff');
    assert.deepEqual(r.pending(), [], 'a success forgets the failures');
  });

  test('a name the cluster cannot hold is not retried', async (t) => {
    const r = new TenantReconciler(tenantsOn(), silent, { intervalMs: 3_600_000, retryMs: 20 });
    r.start();
    t.after(() => r.stop());
    const start = fake.requests.length;
    await r.changed('Upper.Case');
    assert.deepEqual(r.pending(), []);
    assert.deepEqual(fake.requests.slice(start), []);
  });
});

describe('a pass', () => {
  test('makes every active namespace, repairs drift, removes the deleted ones; unknown, foreign and look-alike namespaces stay', async () => {
    const tenants = tenantsOn();
    const source = new Source();
    // made and then deleted on the platform (its purge's cluster step failed, say)
    await tenants.ensure('pass-old', { quota: { services: 1, instancesPerService: 1, memoryPerInstance: 64 * MiB, cpuPerInstance: 10 } });
    source.gone.add('pass-old');
    // a namespace signup does not know (made with micro auth): its cluster namespace stays
    await tenants.ensure('pass-auth', { quota: { services: 1, instancesPerService: 1, memoryPerInstance: 64 * MiB, cpuPerInstance: 10 } });
    // another platform on the same cluster (prefix other-) whose namespace has the deleted one's name
    await tenantsOn('other-').ensure('pass-old', { quota: { services: 1, instancesPerService: 1, memoryPerInstance: 64 * MiB, cpuPerInstance: 10 } });
    // a namespace made by hand with micro's labels on a look-alike name
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'micro-pass-old-x', labels: { 'app.kubernetes.io/managed-by': 'micro', 'micro.dev/namespace': 'pass-old' } } });
    source.live.add('pass-a').add('pass-b');
    // drift: a policy of pass-b's removed by hand after its namespace was made
    await tenants.ensure('pass-b');
    await client.remove('networking.k8s.io/v1', 'NetworkPolicy', 'default-deny', 'micro-pass-b');

    const r = new TenantReconciler(tenants, silent, { intervalMs: 3_600_000 });
    r.setSource(source);
    const report = await r.run();
    assert.equal(report.ensured, 2);
    assert.deepEqual(report.changed, ['pass-a', 'pass-b']);
    assert.deepEqual(report.removed, ['pass-old']);
    assert.deepEqual(report.failed, []);
    assert.ok(namespaceObject('micro-pass-a'));
    assert.ok(fake.objects('networking.k8s.io/v1', 'NetworkPolicy', 'micro-pass-b').some((p) => p.metadata.name === 'default-deny'), 'the drift is put right');
    await until('micro-pass-old is gone', () => !namespaceObject('micro-pass-old'));
    assert.ok(namespaceObject('micro-pass-auth'), 'a namespace signup does not know stays');
    assert.ok(namespaceObject('other-pass-old'), "another platform's stays");
    assert.ok(namespaceObject('micro-pass-old-x'), 'a look-alike stays');

    // a second pass writes nothing
    const [a, b] = [versions('micro-pass-a'), versions('micro-pass-b')];
    const again = await r.run();
    assert.deepEqual([again.changed, again.removed, again.failed], [[], [], []]);
    assert.deepEqual([versions('micro-pass-a'), versions('micro-pass-b')], [a, b]);
  });

  test('the loop passes at start and then every interval; a cluster down for a pass is caught up by the next', async (t) => {
    const source = new Source();
    source.live.add('loop-a');
    const up = fake.fault({ down: true });
    const r = new TenantReconciler(tenantsOn(), silent, { intervalMs: 100, retryMs: 20 });
    r.setSource(source);
    r.start();
    t.after(() => r.stop());
    await until('a pass failed on the cluster that is down', () => r.pending().some((p) => p.namespace === 'loop-a'));
    up();
    await until('loop-a is made', () => namespaceObject('micro-loop-a'));
    source.live.add('loop-b');
    await until('a later pass made loop-b', () => namespaceObject('micro-loop-b'));
  });

  test('two nodes told of one namespace at once (the nats profile): one cluster namespace, every object once; their passes then write nothing', async (t) => {
    const source = new Source();
    source.live.add('twin');
    const nodes = [new TenantReconciler(tenantsOn(), silent, { intervalMs: 3_600_000 }), new TenantReconciler(tenantsOn(), silent, { intervalMs: 3_600_000 })];
    for (const n of nodes) {
      n.setSource(source);
      n.start();
      t.after(() => n.stop());
    }
    await Promise.all(nodes.map((n) => n.changed('twin')));
    assert.ok(namespaceObject('micro-twin'));
    assert.equal(fake.objects('networking.k8s.io/v1', 'NetworkPolicy', 'micro-twin').length, 6);
    assert.equal(fake.objects('v1', 'ResourceQuota', 'micro-twin').length, 1);
    assert.deepEqual(nodes.flatMap((n) => n.pending()), []);
    const before = versions('micro-twin');
    const start = fake.requests.length;
    await Promise.all(nodes.map((n) => n.run()));
    assert.equal(versions('micro-twin'), before);
    assert.deepEqual(fake.requests.slice(start).filter((r) => r.method !== 'GET'), []);
  });

  test('list: the namespaces micro made with this prefix only', async () => {
    const tenants = tenantsOn('list-');
    await tenants.ensure('one', { quota: { services: 1, instancesPerService: 1, memoryPerInstance: 64 * MiB, cpuPerInstance: 10 } });
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'list-two', labels: { 'app.kubernetes.io/managed-by': 'micro', 'micro.dev/namespace': 'three' } } });
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'list-four', labels: { 'micro.dev/namespace': 'four' } } });
    assert.deepEqual(await tenants.list(), ['one']);
  });
});

test('MICRO_KUBERNETES_RECONCILE: seconds from 1 to 86400, else what to write', () => {
  assert.deepEqual(reconcileFromEnv({}), {});
  assert.deepEqual(reconcileFromEnv({ MICRO_KUBERNETES_RECONCILE: '' }), {});
  assert.deepEqual(reconcileFromEnv({ MICRO_KUBERNETES_RECONCILE: '30' }), { intervalMs: 30_000 });
  for (const bad of ['0', '-5', '1.5', 'ten', '86401', '1e9']) {
    assert.throws(() => reconcileFromEnv({ MICRO_KUBERNETES_RECONCILE: bad }), /MICRO_KUBERNETES_RECONCILE must be the seconds between two reconciles of the cluster namespaces, a whole number from 1 to 86400/);
  }
});
