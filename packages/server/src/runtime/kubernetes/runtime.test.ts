import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { create as createTar } from 'tar';
import { bearer, Client, createClient, registryService, RemoteBlobStore, TokenSource } from '@micro/sdk';
import { validateObject } from './schema.js';
import { progressOf, serviceFiles, startCluster, type Cluster } from './testing.js';

/*
 * KubernetesRuntime end to end against the fake API server: a real micro server with
 * MICRO_RUNTIME=kubernetes, the fake's kubelet running the runner's build Job and the
 * service's pods as local processes, the service registering with the server and called
 * through its gateway. The tests run in order, each leaving what the next expects.
 */

const NS = 'acme';
const CNS = 'micro-acme';

describe('KubernetesRuntime against the fake cluster: run, call, status, logs, update, kill', () => {
  let c: Cluster;
  let src: string;
  /** requests before the first tenant operation (the start's check of the cluster) */
  let startRequests = 0;

  before(async () => {
    c = await startCluster();
    startRequests = c.fake.requests.length;
    src = c.source('hello', serviceFiles('hello', 'v1'));
  });

  after(async () => {
    await c?.close();
  });

  function every(kind: [string, string]) {
    return c.fake.objects(kind[0], kind[1], CNS);
  }

  it('micro run builds once in a Job and starts the Deployment; the service is called through the gateway', async () => {
    // status while it is made: building, then starting, as locally
    const states = new Set<string>();
    let creating = true;
    const watching = (async () => {
      while (creating) {
        const [svc] = (await c.rt.Read({ namespace: NS })).services;
        if (svc) states.add(svc.state);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const { steps, error } = await progressOf(c.rt.Create({ source: src, namespace: NS, instances: 2 }));
    creating = false;
    await watching;
    assert.equal(error, undefined, `${error?.message}\n${steps.map((s) => `${s.step}: ${s.message}`).join('\n')}`);
    assert.ok(states.has('building') && states.has('starting'), `status during the run: ${[...states].join(', ')}`);
    const done = steps.at(-1);
    assert.equal(done?.step, 'done');
    assert.equal(done?.service?.name, 'hello');
    assert.ok(steps.some((s) => /building in the cluster/.test(s.message)), 'the build is reported');
    assert.ok(steps.some((s) => /uploaded the build/.test(s.message)), "the build Job's log lines are the progress");
    assert.ok(steps.some((s) => /2\/2 instances on the new build, 2 ready/.test(s.message)), 'the rollout is reported');

    // the build Job and its pod are gone; one Secret of the build; the Deployment
    assert.deepEqual(every(['batch/v1', 'Job']), []);
    assert.deepEqual(every(['v1', 'Pod']).filter((p: { metadata: { labels?: Record<string, string> } }) => p.metadata.labels?.['micro.dev/role'] === 'build'), []);
    const [d] = every(['apps/v1', 'Deployment']);
    assert.equal(d.metadata.name, 'svc-hello');
    assert.equal(d.spec.replicas, 2);
    assert.equal(every(['v1', 'Secret']).filter((s: { metadata: { labels?: Record<string, string> } }) => s.metadata.labels?.['micro.dev/service'] === 'hello').length, 1);

    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = await c.call(NS, 'hello', 'Call', { name: `n${i}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const body = r.body as { version: string; instance: string };
      assert.equal(body.version, 'v1');
      seen.add(body.instance);
    }
    const pods = every(['v1', 'Pod']).map((p: { metadata: { name: string } }) => p.metadata.name);
    for (const instance of seen) assert.ok(pods.includes(instance), `the call was answered by pod ${instance}`);
  });

  it('every object the runtime made in the cluster passes the Kubernetes API schemas', () => {
    const kinds: [string, string][] = [
      ['v1', 'Namespace'],
      ['v1', 'ServiceAccount'],
      ['v1', 'Secret'],
      ['apps/v1', 'Deployment'],
      ['networking.k8s.io/v1', 'NetworkPolicy'],
      ['v1', 'ResourceQuota'],
      ['v1', 'LimitRange'],
    ];
    let n = 0;
    for (const [apiVersion, kind] of kinds) {
      for (const obj of kind === 'Namespace' ? c.fake.objects(apiVersion, kind).filter((x: { metadata: { name: string } }) => x.metadata.name === CNS) : c.fake.objects(apiVersion, kind, CNS)) {
        if (obj.metadata.labels?.['app.kubernetes.io/managed-by'] !== 'micro') continue;
        const { status: _status, ...spec } = obj;
        assert.doesNotThrow(() => validateObject({ apiVersion, kind, ...spec }), `${kind} ${obj.metadata.name}`);
        n++;
      }
    }
    assert.ok(n >= 8, `${n} objects checked`);
  });

  it('micro status reads the Deployment and its pods', async () => {
    const { services } = await c.rt.Read({ namespace: NS });
    assert.equal(services.length, 1);
    const s = services[0];
    assert.equal(s?.name, 'hello');
    assert.equal(s?.state, 'running');
    assert.equal(s?.desiredInstances, 2);
    assert.equal(s?.instances.length, 2);
    for (const i of s?.instances ?? []) {
      assert.equal(i.state, 'running');
      assert.equal(i.restarts, 0);
      assert.ok(i.startedAt);
    }
    assert.equal(s?.version, 'v1');
    assert.ok(s?.build?.id);
    const [one] = (await c.rt.Read({ name: 'hello', namespace: NS })).services;
    assert.deepEqual(one?.instances.map((i) => i.id).sort(), s?.instances.map((i) => i.id).sort());
  });

  it("a tenant's service may register only its own pods' addresses", async () => {
    const creds = { ...(await c.server.serviceCredentials('hello', NS)), namespace: NS };
    const plain = new Client({ address: c.server.address, namespace: 'micro', preferLocal: false });
    const registry = createClient(registryService, new Client({ address: c.server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(new TokenSource(creds, plain))] }));
    const node = (address: string) => ({ name: 'hello', version: 'forged', endpoints: [], nodes: [{ id: `forged-${address.length}`, address, metadata: {} }] });
    // another tenant's pod, the platform's engines, a unix socket: refused
    for (const address of ['tcp://10.244.3.7:8080', 'tcp://127.0.0.2:6379', 'unix:///var/run/micro.sock', 'tcp://[fd00::1]:80']) {
      await assert.rejects(registry.Register({ service: node(address), namespace: NS }), (err: Error & { code?: number }) => {
        assert.equal(err.code, 403, `${address}: ${err.message}`);
        assert.match(err.message, /may not serve from/);
        return true;
      });
    }
    // its pods' address (the fake's pods are all at 127.0.0.1): allowed, then taken away again
    const own = node('tcp://127.0.0.1:1');
    await registry.Register({ service: own, namespace: NS });
    await registry.Deregister({ service: own, namespace: NS });
  });

  it('micro logs reads the pods, and -f follows new lines', async () => {
    const lines: string[] = [];
    for await (const l of c.rt.Logs({ name: 'hello', namespace: NS, lines: 100 })) lines.push(l.line);
    assert.ok(lines.some((l) => l.includes('hello v1 up')), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('"who":"n3"')), 'the calls logged');

    const followed: string[] = [];
    const stream = c.rt.Logs({ name: 'hello', namespace: NS, follow: true, lines: 1 });
    const reading = (async () => {
      for await (const l of stream) {
        followed.push(l.line);
        if (l.line.includes('"who":"followed"')) break;
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    const r = await c.call(NS, 'hello', 'Call', { name: 'followed' });
    assert.equal(r.status, 200);
    await Promise.race([reading, new Promise((_, reject) => setTimeout(() => reject(new Error(`no followed line: ${followed.join('\n')}`)), 15_000))]);
  });

  it('micro update rolls to the new build while calls go on, and none fails', async () => {
    c.source('hello', serviceFiles('hello', 'v2'));
    const before = (await c.rt.Read({ name: 'hello', namespace: NS })).services[0];
    let stop = false;
    const results: { status: number; version?: string }[] = [];
    const calling = (async () => {
      while (!stop) {
        const r = await c.call(NS, 'hello', 'Call', { name: 'during' }).catch((err: Error) => ({ status: 0, body: err.message }));
        results.push({ status: r.status, version: (r.body as { version?: string }).version });
        if (r.status !== 200) results.push({ status: r.status, version: JSON.stringify(r.body) });
      }
    })();
    // logs -f from before the update: the new pods join it
    const followed: string[] = [];
    const abort = new AbortController();
    const following = (async () => {
      for await (const l of c.rt.Logs({ name: 'hello', namespace: NS, follow: true, lines: 1 }, { signal: abort.signal })) {
        followed.push(l.line);
        if (l.line.includes('hello v2 up')) return;
      }
    })().catch((err: Error) => (abort.signal.aborted ? undefined : Promise.reject(err)));
    const { steps, error } = await progressOf(c.rt.Update({ name: 'hello', namespace: NS }));
    await Promise.race([following, new Promise((r) => setTimeout(r, 10_000))]);
    abort.abort();
    assert.ok(followed.some((l) => l.includes('hello v2 up')), `logs -f saw the new pods: ${followed.slice(-5).join('\n')}`);
    // calls go on a little after the rollout, as old pods finish draining
    await new Promise((r) => setTimeout(r, 1_000));
    stop = true;
    await calling;
    assert.equal(error, undefined, `${error?.message}\n${steps.map((s) => s.message).join('\n')}`);
    assert.ok(steps.some((s) => /rolling 2 instances of hello to build/.test(s.message)));
    const failed = results.filter((r) => r.status !== 200);
    assert.deepEqual(failed, [], `${failed.length} of ${results.length} calls failed`);
    assert.ok(results.some((r) => r.version === 'v1') && results.some((r) => r.version === 'v2'), 'calls were answered by both builds');
    const r = await c.call(NS, 'hello', 'Call');
    assert.equal((r.body as { version: string }).version, 'v2');
    const after = (await c.rt.Read({ name: 'hello', namespace: NS })).services[0];
    assert.notEqual(after?.build?.id, before?.build?.id);
    assert.equal(after?.state, 'running');
    // the previous build's Secret went
    const secrets = every(['v1', 'Secret']).filter((s: { metadata: { labels?: Record<string, string> } }) => s.metadata.labels?.['micro.dev/service'] === 'hello');
    assert.equal(secrets.length, 1);
    assert.equal(secrets[0].metadata.labels['micro.dev/build'], after?.build?.id);
  });

  it('an uploaded folder (what the CLI sends from another machine) runs; kill deletes the upload and the builds', async () => {
    const dir = c.source('uploaded', serviceFiles('uploaded', 'v1'));
    const chunks: Buffer[] = [];
    for await (const chunk of createTar({ gzip: true, cwd: dir, portable: true }, ['.']) as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
    const key = `runtime/uploads/${randomBytes(16).toString('hex')}/uploaded.tar.gz`;
    const blobs = new RemoteBlobStore(c.admin, { namespace: NS });
    await blobs.put(key, Buffer.concat(chunks));
    const { steps, error } = await progressOf(c.rt.Create({ source: `upload:${key}`, namespace: NS }));
    assert.equal(error, undefined, `${error?.message}\n${steps.map((x) => x.message).join('\n')}`);
    const r = await c.call(NS, 'uploaded', 'Call');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await c.rt.Delete({ name: 'uploaded', namespace: NS });
    assert.deepEqual((await blobs.list({ prefix: 'runtime/uploads/' })).map((b) => b.key), [], 'the upload went with the service');
    assert.deepEqual((await blobs.list({ prefix: 'runtime/builds/uploaded/' })).map((b) => b.key), [], 'and its builds');
  });

  it('micro kill removes the Deployment, its pods and Secrets; nothing of the service is left', async () => {
    // a logs -f of the service ends once it is killed
    const following = (async () => {
      for await (const _ of c.rt.Logs({ name: 'hello', namespace: NS, follow: true, lines: 1 })) void _;
      return 'ended';
    })();
    await new Promise((r) => setTimeout(r, 300));
    await c.rt.Delete({ name: 'hello', namespace: NS });
    assert.equal(await Promise.race([following, new Promise((r) => setTimeout(() => r('still following'), 20_000))]), 'ended');
    const left = () => [...every(['apps/v1', 'Deployment']), ...every(['batch/v1', 'Job']), ...every(['v1', 'Secret']).filter((s: { metadata: { labels?: Record<string, string> } }) => s.metadata.labels?.['micro.dev/service'])];
    assert.deepEqual(left(), []);
    // pods end within their grace period
    const deadline = Date.now() + 15_000;
    while (every(['v1', 'Pod']).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(every(['v1', 'Pod']).map((p: { metadata: { name: string } }) => p.metadata.name), []);
    await assert.rejects(c.rt.Read({ name: 'hello', namespace: NS }), /not found|404/i);
    assert.deepEqual((await c.rt.Read({ namespace: NS })).services, []);
    const r = await c.call(NS, 'hello', 'Call');
    assert.equal(r.status, 404);
  });

  it('the purge of a namespace removes its services and then its cluster namespace', async () => {
    const { error } = await progressOf(c.rt.Create({ source: c.source('doomed', serviceFiles('doomed', 'v1')), namespace: 'gone' }));
    assert.equal(error, undefined, error?.message);
    assert.equal(c.fake.objects('v1', 'Namespace').filter((n: { metadata: { name: string } }) => n.metadata.name === 'micro-gone').length, 1);
    const report = await c.server.purgeNamespace('gone');
    assert.deepEqual(report.purged.slice(0, 2), ['runtime', 'kubernetes']);
    assert.deepEqual(c.fake.objects('v1', 'Namespace').filter((n: { metadata: { name: string } }) => n.metadata.name === 'micro-gone'), []);
    assert.deepEqual(c.fake.objects('apps/v1', 'Deployment', 'micro-gone'), []);
    assert.deepEqual((await c.rt.Read({ namespace: 'gone' })).services, []);
  });

  it('every request of the tenant operations was for its own cluster namespace', () => {
    const paths = c.fake.requests.slice(startRequests).map((r) => r.path.split('?')[0] as string);
    const own = (ns: string, p: string) => p.includes(`/namespaces/${ns}/`) || p.endsWith(`/namespaces/${ns}`);
    // namespace `gone` is the purge test's own
    const foreign = paths.filter((p) => !(own(CNS, p) || own('micro-gone', p) || p === '/api/v1/namespaces'));
    assert.deepEqual([...new Set(foreign)], []);
  });
});
