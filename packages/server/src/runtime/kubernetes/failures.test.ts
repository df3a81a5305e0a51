import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, quotaService } from '@micro/sdk';
import { kubeClient, type KubeObject } from './client.js';
import { progressOf, RUNNER_IMAGE, serviceFiles, startCluster, type Cluster } from './testing.js';

/*
 * The Bad input list of the Kubernetes runtime, against the fake cluster with a real micro
 * server: names the cluster cannot have, quotas refused by micro or by the cluster, an API
 * server that is down, slow or answers 409/410/429/5xx during run, update and kill, a
 * service that never becomes ready, a pod evicted — each a clear error in the stream and
 * in `micro status`, nothing left behind, and nothing of another namespace touched.
 */

const MiB = 1024 * 1024;

type Obj = { metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> } };

describe('KubernetesRuntime: bad input and a failing cluster', () => {
  let c: Cluster;
  /** what namespace `other` holds in the cluster before the tests, and how far the requests had got */
  let otherBefore: string;
  let requestsBefore = 0;

  function objectsOf(cns: string): Obj[] {
    const kinds: [string, string][] = [
      ['apps/v1', 'Deployment'],
      ['apps/v1', 'ReplicaSet'],
      ['batch/v1', 'Job'],
      ['v1', 'Pod'],
      ['v1', 'Secret'],
      ['v1', 'ServiceAccount'],
      ['networking.k8s.io/v1', 'NetworkPolicy'],
      ['v1', 'ResourceQuota'],
      ['v1', 'LimitRange'],
    ];
    return kinds.flatMap(([v, k]) => (c.fake.objects(v, k, cns) as Obj[]).map((o) => ({ ...o, kind: k })));
  }

  /** the service's objects (labelled with it) left in its cluster namespace */
  function leftOf(cns: string, name: string): string[] {
    return objectsOf(cns)
      .filter((o) => o.metadata.labels?.['micro.dev/service'] === name || o.metadata.name.startsWith(`svc-${name}-`) || o.metadata.name === `svc-${name}`)
      .map((o) => `${(o as { kind?: string }).kind}/${o.metadata.name}`);
  }

  async function waitGone(cns: string, name: string): Promise<string[]> {
    const deadline = Date.now() + 15_000;
    while (leftOf(cns, name).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return leftOf(cns, name);
  }

  function snapshot(cns: string): string {
    return JSON.stringify(
      objectsOf(cns)
        .map((o) => `${(o as { kind?: string }).kind}/${o.metadata.name}@${o.metadata.resourceVersion}`)
        .sort(),
    );
  }

  before(async () => {
    c = await startCluster({ timing: { rolloutTimeout: 12_000 } });
    const { error } = await progressOf(c.rt.Create({ source: c.source('bystander', serviceFiles('bystander', 'v1')), namespace: 'other' }));
    assert.equal(error, undefined, error?.message);
    // the bystander's pod settles (its status stops changing) before the snapshot
    await new Promise((r) => setTimeout(r, 1_500));
    otherBefore = snapshot('micro-other');
    requestsBefore = c.fake.requests.length;
  });

  after(async () => {
    await c?.close();
  });

  it('names the cluster cannot have are a 400 naming the rule, before any request', async () => {
    const src = c.source('hello', serviceFiles('hello', 'v1'));
    const n = c.fake.requests.length;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ namespace: 'Acme' }, /namespace: "Acme" has upper-case letters; a namespace run on Kubernetes must be a DNS-1123 label/],
      [{ namespace: 'a.b' }, /namespace: "a\.b".*DNS-1123 label/],
      [{ namespace: 'x'.repeat(60) }, /at most 57 characters/],
      // the runtime contract's own rule (the SDK's schema) comes first
      [{ namespace: 'acme', name: 'Hello' }, /name: lower-case letters/],
      // what the contract allows and Kubernetes does not
      [{ namespace: 'acme', name: 'my_service' }, /my_service/],
      [{ namespace: 'acme', name: 'my.service' }, /my\.service/],
      [{ namespace: 'acme', name: `s${'x'.repeat(47)}` }, /47/],
    ];
    for (const [req, message] of cases) {
      const { error } = await progressOf(c.rt.Create({ source: src, ...req }));
      assert.ok(error, `${JSON.stringify(req)} was accepted`);
      assert.equal((error as { code?: number }).code, 400, `${JSON.stringify(req)}: ${error.message}`);
      assert.match(error.message, message);
    }
    assert.equal(c.fake.requests.length, n, 'no request reached the cluster');
  });

  it('a quota no pod could run in is a 400 naming the key; nothing is made in the cluster', async () => {
    await createClient(quotaService, c.admin).Set({ namespace: 'tiny', limits: { memoryPerInstance: 16 * MiB } });
    const { error } = await progressOf(c.rt.Create({ source: c.source('hello', serviceFiles('hello', 'v1')), namespace: 'tiny' }));
    assert.equal((error as { code?: number } | undefined)?.code, 400, error?.message);
    assert.match(error?.message ?? '', /memoryPerInstance .* no pod could run/);
    assert.deepEqual(objectsOf('micro-tiny'), []);
    assert.equal(c.fake.objects('v1', 'Namespace').filter((n: Obj) => n.metadata.name === 'micro-tiny').length, 0);
    // the staged source went too
    const staging = join(c.root, 'home', 'runtime', 'kubernetes', 'tiny');
    assert.ok(!existsSync(staging) || readdirSync(staging).length === 0);
  });

  it('pods the cluster quota refuses: a clear error at once, in the stream and in micro status, nothing left', async () => {
    // a cluster administrator narrows the namespace's quota once micro has made it
    const kc = kubeClient(c.fake.kubeconfig);
    let narrowed = false;
    const narrowing = (async () => {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const q = await kc.get<KubeObject & { spec: { hard: Record<string, string> } }>('v1', 'ResourceQuota', 'micro-quota', 'micro-acme');
        if (q && c.fake.objects('batch/v1', 'Job', 'micro-acme').length > 0) {
          await kc.apply({ ...q, spec: { hard: { ...q.spec.hard, pods: '1' } } });
          narrowed = true;
          return;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const { steps, error } = await progressOf(c.rt.Create({ source: c.source('greedy', serviceFiles('greedy', 'v1')), namespace: 'acme', instances: 2 }));
    await narrowing;
    assert.ok(narrowed, 'the quota was narrowed during the build');
    assert.ok(error, 'the create failed');
    assert.match(error.message, /greedy did not start: the cluster refused its pods.*exceeded quota/s, `${error.message}\n${steps.map((s) => s.message).join('\n')}`);
    assert.deepEqual(await waitGone('micro-acme', 'greedy'), []);
    const [s] = (await c.rt.Read({ name: 'greedy', namespace: 'acme' })).services;
    assert.equal(s?.state, 'error');
    assert.match(s?.instances[0]?.lastError ?? '', /refused its pods.*exceeded quota/s);
    // the next run puts micro's quota back (ensure), and kill forgets the failure
    await c.rt.Delete({ name: 'greedy', namespace: 'acme' });
    await assert.rejects(c.rt.Read({ name: 'greedy', namespace: 'acme' }), /not found/i);
  });

  it('an API server answering 429, 5xx, slowly, and watches from expired versions (410): retried, the run succeeds', async () => {
    const removers = [
      c.fake.fault({ method: 'POST', path: /\/deployments$/, status: 429, times: 2, retryAfterSeconds: 0 }),
      c.fake.fault({ method: 'GET', path: /\/pods\?/, status: 503, times: 3 }),
      c.fake.fault({ method: 'GET', path: /\/deployments\/svc-flaky$/, delayMs: 4_000, times: 1 }),
      c.fake.fault({ method: 'POST', path: /\/secrets$/, status: 500, times: 1 }),
    ];
    // the watch history is forgotten again and again: each watch of the rollout may get 410
    const compacting = setInterval(() => c.fake.compact(), 150);
    try {
      const { steps, error } = await progressOf(c.rt.Create({ source: c.source('flaky', serviceFiles('flaky', 'v1')), namespace: 'acme' }));
      assert.equal(error, undefined, `${error?.message}\n${steps.map((s) => s.message).join('\n')}`);
    } finally {
      clearInterval(compacting);
      for (const r of removers) r();
    }
    const statuses = c.fake.requests.map((r) => r.status);
    for (const code of [429, 503, 500]) assert.ok(statuses.includes(code), `the fake answered ${code}`);
    assert.ok(c.fake.requests.some((r) => r.status === 410 || /watch=true/.test(r.path)), 'the rollout was watched');
    const r = await c.call('acme', 'flaky', 'Call');
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });

  it('an API server failing for good during run: the error says what it answered, nothing is left', async () => {
    const remove = c.fake.fault({ method: 'POST', path: /\/deployments$/, status: 500 });
    let result;
    try {
      result = await progressOf(c.rt.Create({ source: c.source('broken', serviceFiles('broken', 'v1')), namespace: 'acme' }));
    } finally {
      remove();
    }
    assert.ok(result.error, 'the create failed');
    assert.match(result.error.message, /500/);
    assert.deepEqual(await waitGone('micro-acme', 'broken'), []);
    const [s] = (await c.rt.Read({ name: 'broken', namespace: 'acme' })).services;
    assert.equal(s?.state, 'error');
    assert.match(s?.instances[0]?.lastError ?? '', /500/);
    await c.rt.Delete({ name: 'broken', namespace: 'acme' });
  });

  it('an update meeting a 409 Conflict on the Deployment and a 429: retried on a fresh read, the update succeeds', async () => {
    const before = (await c.rt.Read({ name: 'flaky', namespace: 'acme' })).services[0];
    const n = c.fake.requests.length;
    const removers = [c.fake.fault({ method: 'PUT', path: /\/deployments\/svc-flaky$/, status: 409, times: 1 }), c.fake.fault({ method: 'POST', path: /\/secrets$/, status: 429, times: 1, retryAfterSeconds: 0 })];
    try {
      const { steps, error } = await progressOf(c.rt.Update({ name: 'flaky', namespace: 'acme' }));
      assert.equal(error, undefined, `${error?.message}\n${steps.map((s) => s.message).join('\n')}`);
    } finally {
      for (const r of removers) r();
    }
    const seen = c.fake.requests.slice(n);
    assert.ok(seen.some((r) => r.method === 'PUT' && r.status === 409) && seen.some((r) => r.status === 429), 'the faults were met');
    const after = (await c.rt.Read({ name: 'flaky', namespace: 'acme' })).services[0];
    assert.notEqual(after?.build?.id, before?.build?.id);
    assert.equal((await c.call('acme', 'flaky', 'Call')).status, 200);
  });

  it('an update whose Job cannot be made, and one whose build never becomes ready, leave the previous build serving', async () => {
    const before = (await c.rt.Read({ name: 'flaky', namespace: 'acme' })).services[0];
    const remove = c.fake.fault({ method: 'POST', path: /\/jobs$/, status: 503 });
    const failed = await progressOf(c.rt.Update({ name: 'flaky', namespace: 'acme' }));
    remove();
    assert.ok(failed.error);
    assert.match(failed.error.message, /503/);
    assert.equal((await c.call('acme', 'flaky', 'Call')).status, 200);

    // v2 never registers: its readiness probe never passes, the rollout is undone
    c.source('flaky', { 'main.js': 'setInterval(() => {}, 1000);\n' });
    const stuck = await progressOf(c.rt.Update({ name: 'flaky', namespace: 'acme' }));
    assert.ok(stuck.error, 'the update failed');
    assert.match(stuck.error.message, /did not start within \d+ s: .*ready/);
    assert.ok(stuck.steps.some((s) => /putting build .* back/.test(s.message)));
    const r = await c.call('acme', 'flaky', 'Call');
    assert.equal(r.status, 200);
    assert.equal((r.body as { version: string }).version, 'v1');
    const after = (await c.rt.Read({ name: 'flaky', namespace: 'acme' })).services[0];
    assert.equal(after?.build?.id, before?.build?.id);
    // one Secret: the previous build's
    assert.deepEqual(
      (c.fake.objects('v1', 'Secret', 'micro-acme') as Obj[]).filter((s) => s.metadata.labels?.['micro.dev/service'] === 'flaky').map((s) => s.metadata.labels?.['micro.dev/build']),
      [before?.build?.id],
    );
  });

  it('a service that never becomes ready: a clear error in the stream and in micro status, nothing left', async () => {
    const { steps, error } = await progressOf(c.rt.Create({ source: c.source('stuck', { 'package.json': JSON.stringify({ name: 'stuck', type: 'module', main: 'main.js' }), 'main.js': 'setInterval(() => {}, 1000);\n' }), namespace: 'acme' }));
    assert.ok(error, 'the create failed');
    assert.match(error.message, /stuck did not start within \d+ s: .*(ready|Debug\.Health)/, `${error.message}\n${steps.map((s) => s.message).join('\n')}`);
    assert.deepEqual(await waitGone('micro-acme', 'stuck'), []);
    const [s] = (await c.rt.Read({ name: 'stuck', namespace: 'acme' })).services;
    assert.equal(s?.state, 'error');
    assert.match(s?.instances[0]?.lastError ?? '', /did not start/);
    await c.rt.Delete({ name: 'stuck', namespace: 'acme' });
  });

  it('a pod evicted for memory: micro status says so', async () => {
    const [pod] = (c.fake.objects('v1', 'Pod', 'micro-acme') as Obj[]).filter((p) => p.metadata.labels?.['micro.dev/service'] === 'flaky');
    assert.ok(pod);
    c.fake.evict('micro-acme', pod.metadata.name, 'The node was low on resource: memory. Container service was using 300Mi, request is 256Mi.');
    const deadline = Date.now() + 10_000;
    let lastError = '';
    while (Date.now() < deadline) {
      const [s] = (await c.rt.Read({ name: 'flaky', namespace: 'acme' })).services;
      lastError = s?.instances.find((i) => i.id === pod.metadata.name)?.lastError ?? '';
      if (lastError) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(lastError, /^evicted: The node was low on resource: memory/);
  });

  it('kill with the API server answering 503, then down: retried, then a clear error; killed once it is back', async () => {
    const flaky = c.fake.fault({ method: 'DELETE', status: 503, times: 2 });
    await c.rt.Delete({ name: 'flaky', namespace: 'acme' });
    flaky();
    assert.deepEqual(await waitGone('micro-acme', 'flaky'), []);

    const { error } = await progressOf(c.rt.Create({ source: c.source('last', serviceFiles('last', 'v1')), namespace: 'acme' }));
    assert.equal(error, undefined, error?.message);
    const down = c.fake.fault({ down: true });
    try {
      await assert.rejects(c.rt.Delete({ name: 'last', namespace: 'acme' }), (err: Error & { code?: number }) => {
        assert.equal(err.code, 503, err.message);
        assert.match(err.message, /could not be reached|ECONNREFUSED|ECONNRESET/);
        return true;
      });
    } finally {
      down();
    }
    await c.rt.Delete({ name: 'last', namespace: 'acme' });
    assert.deepEqual(await waitGone('micro-acme', 'last'), []);
  });

  it('another namespace was not touched: its objects are as they were, and no request changed anything of it', () => {
    assert.equal(snapshot('micro-other'), otherBefore);
    const foreign = c.fake.requests.slice(requestsBefore).filter((r) => r.path.includes('micro-other'));
    // the only requests naming it: reads of its pods' addresses, for its own service's registry heart-beats (addressAllowed)
    assert.deepEqual(
      foreign.filter((r) => !(r.method === 'GET' && r.path.startsWith('/api/v1/namespaces/micro-other/pods?'))).map((r) => `${r.method} ${r.path}`),
      [],
    );
  });
});

describe('KubernetesRuntime: a runner image the cluster cannot pull', () => {
  let c: Cluster;

  before(async () => {
    c = await startCluster({ badImages: [RUNNER_IMAGE] });
  });

  after(async () => {
    await c?.close();
  });

  it('the build fails at once saying so, in the stream and in micro status; nothing is left', async () => {
    const { steps, error } = await progressOf(c.rt.Create({ source: c.source('hello', serviceFiles('hello', 'v1')), namespace: 'acme' }));
    assert.ok(error, 'the create failed');
    // the kubelet says ErrImagePull with the registry's answer, then ImagePullBackOff: either may be seen first
    assert.match(error.message, /the build of hello failed: pod svc-hello-b\w+-\w+: (ErrImagePull: .*pull access denied|ImagePullBackOff: Back-off pulling image "micro\/runner:test")/, `${error.message}\n${steps.map((s) => s.message).join('\n')}`);
    const left = ['batch/v1/Job', 'v1/Pod', 'v1/Secret', 'apps/v1/Deployment'].flatMap((k) => {
      const i = k.lastIndexOf('/');
      return (c.fake.objects(k.slice(0, i), k.slice(i + 1), 'micro-acme') as Obj[]).filter((o) => o.metadata.labels?.['micro.dev/service'] === 'hello').map((o) => `${k} ${o.metadata.name}`);
    });
    // pods of a deleted Job go in the background: give them their grace period
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (c.fake.objects('v1', 'Pod', 'micro-acme') as Obj[]).length > 0) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(left.filter((l) => !l.startsWith('v1/Pod')), []);
    assert.deepEqual((c.fake.objects('v1', 'Pod', 'micro-acme') as Obj[]).map((p) => p.metadata.name), []);
    const [s] = (await c.rt.Read({ name: 'hello', namespace: 'acme' })).services;
    assert.equal(s?.state, 'error');
    assert.match(s?.build?.error ?? '', /pull access denied|Back-off pulling image/);
  });
});
