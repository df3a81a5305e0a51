import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type KubernetesObject, ListWatch, type V1ConfigMap } from '@kubernetes/client-node';
import { type FakeKubernetes, startFakeKubernetes } from './index.js';
import { type Clients, clients, until } from './testkit.js';

interface Seen {
  type: string;
  name?: string;
  rv?: string;
  code?: number;
  reason?: string;
  value?: string;
}

/** a watch collecting its events, and how it ended */
async function watching(c: Clients, path: string, query: Record<string, string | number | boolean | undefined>) {
  const events: Seen[] = [];
  let ended: unknown = undefined;
  let done = false;
  const controller = await c.watch.watch(
    path,
    query,
    (type, obj: { metadata?: { name?: string; resourceVersion?: string }; code?: number; reason?: string; data?: Record<string, string> }) => {
      events.push({ type, name: obj.metadata?.name, rv: obj.metadata?.resourceVersion, code: obj.code, reason: obj.reason, value: obj.data?.v });
    },
    (err) => {
      ended = err;
      done = true;
    },
  );
  return { events, controller, ended: () => ended, done: () => done };
}

describe('watches', () => {
  let fake: FakeKubernetes;
  let c: Clients;
  before(async () => {
    fake = await startFakeKubernetes({ history: 50, secondMs: 20 });
    c = clients(fake);
    await c.core.createNamespace({ body: { metadata: { name: 'w' } } });
  });
  after(() => fake.close());

  test('a watch from a resourceVersion sees every later change, in order, with increasing versions', async () => {
    const first = await c.core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'before' }, data: { v: '0' } } });
    await c.core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'a' }, data: { v: '1' } } });
    const w = await watching(c, '/api/v1/namespaces/w/configmaps', { resourceVersion: first.metadata?.resourceVersion });
    await c.core.replaceNamespacedConfigMap({ name: 'a', namespace: 'w', body: { metadata: { name: 'a' }, data: { v: '2' } } });
    await c.core.deleteNamespacedConfigMap({ name: 'a', namespace: 'w' });
    await c.core.createNamespacedConfigMap({ namespace: 'other-ns-does-not-exist', body: { metadata: { name: 'x' } } }).catch(() => {});
    await until('three events', () => w.events.length >= 3);
    w.controller.abort();
    assert.deepEqual(
      w.events.map((e) => [e.type, e.name, e.value]),
      [
        ['ADDED', 'a', '1'],
        ['MODIFIED', 'a', '2'],
        ['DELETED', 'a', '2'],
      ],
    );
    const rvs = w.events.map((e) => Number(e.rv));
    assert.deepEqual(rvs, [...rvs].sort((x, y) => x - y));
    assert.ok(rvs[0]! > Number(first.metadata?.resourceVersion));
  });

  test('a watch without a resourceVersion starts with the current objects as ADDED', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'w2' } } });
    await c.core.createNamespacedSecret({ namespace: 'w2', body: { metadata: { name: 's' } } });
    const w = await watching(c, '/api/v1/namespaces/w2/secrets', {});
    await until('the ADDED', () => w.events.length >= 1);
    await c.core.createNamespacedSecret({ namespace: 'w2', body: { metadata: { name: 't' } } });
    await until('the second ADDED', () => w.events.length >= 2);
    w.controller.abort();
    assert.deepEqual(w.events.map((e) => [e.type, e.name]), [['ADDED', 's'], ['ADDED', 't']]);
  });

  test('after compact() a watch from an older resourceVersion gets an ERROR event with 410 Expired, and ends', async () => {
    const cm = await c.core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'old' } } });
    fake.compact();
    const w = await watching(c, '/api/v1/namespaces/w/configmaps', { resourceVersion: cm.metadata?.resourceVersion });
    await until('the end of the watch', () => w.done());
    assert.equal(w.events.length, 1);
    assert.equal(w.events[0]?.type, 'ERROR');
    assert.equal(w.events[0]?.code, 410);
    assert.equal(w.events[0]?.reason, 'Expired');
    // a list from a forgotten version is 410 too; from now it is fine
    const status = await fetch(`${fake.url}/api/v1/namespaces/w/configmaps?resourceVersion=${cm.metadata?.resourceVersion}&resourceVersionMatch=Exact`, { headers: { Authorization: `Bearer ${fake.token}` } });
    assert.equal(status.status, 410);
  });

  test('a history of `history` changes: older watches expire by themselves', async () => {
    const cm = await c.core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'churn' }, data: { v: '0' } } });
    for (let i = 1; i <= 60; i++) await c.core.replaceNamespacedConfigMap({ name: 'churn', namespace: 'w', body: { metadata: { name: 'churn' }, data: { v: String(i) } } });
    const w = await watching(c, '/api/v1/namespaces/w/configmaps', { resourceVersion: cm.metadata?.resourceVersion });
    await until('the end of the watch', () => w.done());
    assert.equal(w.events[0]?.code, 410);
  });

  test('an object relabelled out of a watch\'s selector is DELETED for it, and relabelled in is ADDED', async () => {
    const w = await watching(c, '/api/v1/namespaces/w/configmaps', { labelSelector: 'watched=yes' });
    await c.core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'sel', labels: { watched: 'yes' } } } });
    await c.core.replaceNamespacedConfigMap({ name: 'sel', namespace: 'w', body: { metadata: { name: 'sel', labels: { watched: 'no' } } } });
    await c.core.replaceNamespacedConfigMap({ name: 'sel', namespace: 'w', body: { metadata: { name: 'sel', labels: { watched: 'yes' } } } });
    await c.core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'unwatched' } } });
    await until('three events', () => w.events.length >= 3);
    w.controller.abort();
    assert.deepEqual(w.events.map((e) => [e.type, e.name]), [['ADDED', 'sel'], ['DELETED', 'sel'], ['ADDED', 'sel']]);
  });

  test('timeoutSeconds ends the stream; bookmarks come when asked for', async () => {
    const t0 = Date.now();
    const w = await watching(c, '/api/v1/namespaces/w/configmaps', { timeoutSeconds: 1, allowWatchBookmarks: true, resourceVersion: '0' });
    await until('the end of the watch', () => w.done(), 5000);
    assert.ok(Date.now() - t0 >= 900);
    // secondMs 20: a bookmark each 1.2 s of real time
    assert.ok(w.events.every((e) => e.type === 'ADDED' || e.type === 'BOOKMARK'));
  });

  test('sendInitialEvents streams the state, then a bookmark marking its end', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'w3' } } });
    await c.core.createNamespacedSecret({ namespace: 'w3', body: { metadata: { name: 'one' } } });
    const res = await fetch(`${fake.url}/api/v1/namespaces/w3/secrets?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1`, { headers: { Authorization: `Bearer ${fake.token}` } });
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: { metadata: { name?: string; annotations?: Record<string, string> } } });
    assert.equal(lines[0]?.type, 'ADDED');
    assert.equal(lines[0]?.object.metadata.name, 'one');
    assert.equal(lines[1]?.type, 'BOOKMARK');
    assert.equal(lines[1]?.object.metadata.annotations?.['k8s.io/initial-events-end'], 'true');
    const refused = await fetch(`${fake.url}/api/v1/namespaces/w3/secrets?watch=1&sendInitialEvents=true`, { headers: { Authorization: `Bearer ${fake.token}` } });
    assert.equal(refused.status, 422);
  });

  test('the client\'s informer lists, watches, and relists after a 410', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'inf' } } });
    const path = '/api/v1/namespaces/inf/configmaps';
    const informer = new ListWatch<V1ConfigMap>(path, c.watch, () => c.core.listNamespacedConfigMap({ namespace: 'inf' }), false);
    const added: string[] = [];
    informer.on('add', (o: KubernetesObject) => added.push(o.metadata?.name ?? ''));
    // as the client's documentation says: an informer whose connection failed is started again
    let restarts = 0;
    informer.on('error', () => {
      restarts += 1;
      setTimeout(() => void informer.start().catch(() => {}), 50);
    });
    await informer.start();
    await c.core.createNamespacedConfigMap({ namespace: 'inf', body: { metadata: { name: 'first' } } });
    await until('the informer sees the first', () => informer.list('inf').some((o) => o.metadata?.name === 'first'));
    fake.compact();
    // break its watch: it comes back from a version that is now forgotten, gets 410, and lists again
    const restore = fake.fault({ down: true });
    await new Promise((r) => setTimeout(r, 100));
    restore();
    await c.core.createNamespacedConfigMap({ namespace: 'inf', body: { metadata: { name: 'second' } } });
    await until('the informer sees the second', () => informer.list('inf').some((o) => o.metadata?.name === 'second'), 15_000);
    await informer.stop();
    assert.ok(added.includes('first') && added.includes('second'));
    assert.ok(restarts >= 1);
    // it listed again after its watch from a forgotten version was refused
    assert.ok(fake.requests.filter((r) => r.path === '/api/v1/namespaces/inf/configmaps').length >= 2);
  });
});
