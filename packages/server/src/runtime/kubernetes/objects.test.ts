import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildJob, serviceDeployment, serviceSecret, SECRET_KEYS } from './objects.js';
import { validateObject } from './schema.js';
import { Transfers, type TransferStore } from './transfer.js';
import { runtimeKind } from './kind.js';
import { kubernetesRuntimeFromEnv } from './index.js';
import { MemoryRegistry, createLogger } from '@micro/sdk';

const s = { namespace: 'acme', clusterNamespace: 'micro-acme', name: 'hello', image: 'micro/runner:latest' };
const resources = { memory: '256Mi', cpu: '250m' };

type Container = { securityContext: Record<string, unknown>; command: string[]; env: { name: string; value?: string; valueFrom?: unknown }[]; readinessProbe?: { exec: { command: string[] } } };
type PodSpec = { securityContext: Record<string, unknown>; automountServiceAccountToken: boolean; serviceAccountName: string; containers: Container[]; volumes: unknown[] };

function restricted(spec: PodSpec): void {
  assert.equal(spec.automountServiceAccountToken, false);
  assert.equal(spec.serviceAccountName, 'micro-service');
  assert.deepEqual(spec.securityContext.seccompProfile, { type: 'RuntimeDefault' });
  assert.equal(spec.securityContext.runAsNonRoot, true);
  for (const c of spec.containers) {
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
  }
}

test('the Job, Secret and Deployment of a service pass the API schemas and the restricted Pod Security Standard', () => {
  const job = buildJob(s, { build: 'ab12cd34', sourceUrl: 'http://gw/runtime/sources/t', buildUrl: 'http://gw/runtime/builds/t', secret: 'svc-hello-bab12cd34-env', envKeys: ['NPM_CONFIG_REGISTRY'], resources, deadlineSeconds: 900 });
  const secret = serviceSecret(s, { build: 'ab12cd34', data: { MICRO_AUTH_ID: 'id', MICRO_AUTH_SECRET: 'x' } });
  const deployment = serviceDeployment(s, { build: 'ab12cd34', secret: 'svc-hello-ab12cd34', envKeys: ['GREETING'], replicas: 2, server: 'tcp://micro-server.micro-system.svc.cluster.local:8081', resources, probe: { periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 }, progressDeadlineSeconds: 180, terminationGraceSeconds: 30, annotations: { 'micro.dev/source': 'upload:x' } });
  for (const obj of [job, secret, deployment]) validateObject(obj);
  assert.equal(job.metadata.name, 'svc-hello-bab12cd34');
  assert.ok(job.metadata.name.length <= 63);
  const jobSpec = job.spec as { backoffLimit: number; activeDeadlineSeconds: number; template: { metadata: { labels: Record<string, string> }; spec: PodSpec & { restartPolicy: string } } };
  assert.equal(jobSpec.backoffLimit, 0);
  assert.equal(jobSpec.activeDeadlineSeconds, 900);
  assert.equal(jobSpec.template.metadata.labels['micro.dev/role'], 'build');
  restricted(jobSpec.template.spec);
  // the build gets the service's --env, never its credentials
  const buildEnv = jobSpec.template.spec.containers[0]?.env.map((e) => e.name) ?? [];
  assert.ok(buildEnv.includes('NPM_CONFIG_REGISTRY'));
  assert.ok(!buildEnv.some((n) => n.startsWith('MICRO_AUTH')));
  const d = deployment.spec as { replicas: number; strategy: unknown; template: { spec: PodSpec } };
  assert.equal(d.replicas, 2);
  assert.deepEqual(d.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
  restricted(d.template.spec);
  const container = d.template.spec.containers[0] as Container;
  assert.deepEqual(container.command, ['node', '/micro/runner.js', 'run']);
  assert.deepEqual(container.readinessProbe?.exec.command, ['node', '/micro/runner.js', 'ready']);
  const names = container.env.map((e) => e.name);
  for (const k of [...SECRET_KEYS, 'GREETING', 'MICRO_SERVER', 'MICRO_POD_NAME', 'MICRO_POD_IP']) assert.ok(names.includes(k), k);
  // credentials only by reference to the Secret, never in the Deployment
  assert.ok(!JSON.stringify(deployment).includes('"x"'));
  for (const obj of [job, secret, deployment]) assert.deepEqual({ ...obj.metadata.labels, 'micro.dev/role': undefined, 'micro.dev/build': undefined }, { 'app.kubernetes.io/managed-by': 'micro', 'micro.dev/namespace': 'acme', 'micro.dev/service': 'hello', 'micro.dev/role': undefined, 'micro.dev/build': undefined });
});

async function serveTransfers(t: test.TestContext, transfers: Transfers): Promise<{ url: string; kept: Buffer[] }> {
  const kept: Buffer[] = [];
  const store: TransferStore = {
    async *source() {
      yield Buffer.from('source bytes');
    },
    async build(_claim, data) {
      for await (const chunk of data) kept.push(Buffer.from(chunk));
    },
    async *artifact() {
      yield Buffer.from('artifact bytes');
    },
  };
  const server: Server = createServer((req, res) => {
    transfers.serve(req, res, (req.url ?? '').replace(/^\/runtime\//, ''), store).catch((err: { code?: number; message: string }) => {
      res.writeHead(err.code ?? 500);
      res.end(err.message);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/runtime`, kept };
}

test('transfer URLs: a source once, a build once and within its bound, an artifact again and again; forged, altered, expired, reused and misused tokens are 403', async (t) => {
  let now = 1_000_000;
  const transfers = new Transfers({ secret: 'a key of at least sixteen characters', now: () => now, maxBytes: 1024 });
  const { url, kept } = await serveTransfers(t, transfers);
  const claim = { namespace: 'acme', service: 'hello', build: 'ab12cd34' };
  const source = transfers.sign({ ...claim, kind: 'source' }, 60_000);
  const first = await fetch(`${url}/sources/${source}`);
  assert.equal(first.status, 200);
  assert.equal(await first.text(), 'source bytes');
  const again = await fetch(`${url}/sources/${source}`);
  assert.equal(again.status, 403);
  assert.match(await again.text(), /used already/);
  // a source token cannot upload a build, nor read an artifact
  const other = transfers.sign({ ...claim, kind: 'source' }, 60_000);
  assert.match(await (await fetch(`${url}/builds/${other}`, { method: 'PUT', body: 'x', headers: { 'micro-entry': 'dist/main.js' } })).text(), /for a source, not a build/);
  assert.equal((await fetch(`${url}/artifacts/${other}`)).status, 403);
  // altered: the claim names another tenant
  const [body, mac] = transfers.sign({ ...claim, kind: 'artifact' }, 60_000).split('.') as [string, string];
  const forged = Buffer.from(Buffer.from(body, 'base64url').toString().replace('acme', 'evil')).toString('base64url');
  assert.match(await (await fetch(`${url}/artifacts/${forged}.${mac}`)).text(), /not signed by this platform/);
  assert.equal((await fetch(`${url}/artifacts/garbage`)).status, 403);
  const signedElsewhere = new Transfers({ secret: 'another key of sixteen characters' }).sign({ ...claim, kind: 'artifact' }, 60_000);
  assert.equal((await fetch(`${url}/artifacts/${signedElsewhere}`)).status, 403);
  // an artifact token serves every start of a pod
  const artifact = transfers.sign({ ...claim, kind: 'artifact' }, 60_000);
  for (let i = 0; i < 3; i++) assert.equal(await (await fetch(`${url}/artifacts/${artifact}`)).text(), 'artifact bytes');
  now += 61_000;
  assert.match(await (await fetch(`${url}/artifacts/${artifact}`)).text(), /expired/);
  // a build: the entry file must be a relative path inside the build; the body within the bound
  const put = (token: string, data: string, entry = 'dist/main.js') => fetch(`${url}/builds/${token}`, { method: 'PUT', body: data, headers: { 'micro-entry': entry } });
  assert.equal((await put(transfers.sign({ ...claim, kind: 'build' }, 60_000), 'y', '../../etc/passwd')).status, 400);
  assert.equal((await put(transfers.sign({ ...claim, kind: 'build' }, 60_000), 'z'.repeat(2048))).status, 413);
  const build = transfers.sign({ ...claim, kind: 'build' }, 60_000);
  assert.equal((await put(build, 'packed')).status, 204);
  assert.equal(Buffer.concat(kept).toString(), 'packed');
  assert.equal((await put(build, 'packed again')).status, 403);
  assert.equal((await fetch(`${url}/builds/${build}`)).status, 405);
  assert.equal((await fetch(`${url}/elsewhere/x`)).status, 404);
});

test('MICRO_RUNTIME and the settings of the Kubernetes runtime: wrong values stop the server with what to write; a cluster out of reach fails its start', async (t) => {
  assert.equal(runtimeKind({}), 'local');
  assert.equal(runtimeKind({ MICRO_RUNTIME: 'kubernetes' }), 'kubernetes');
  assert.throws(() => runtimeKind({ MICRO_RUNTIME: 'docker' }), /MICRO_RUNTIME must be local or kubernetes, not "docker"/);
  const base = { home: '/nonexistent', registry: new MemoryRegistry(), credentials: async () => ({ id: 'a', secret: 'b' }), logger: createLogger({ level: 'silent' }) };
  assert.throws(() => kubernetesRuntimeFromEnv(base, { MICRO_KUBERNETES_GATEWAY: 'gw:8080' }), /needs MICRO_KUBERNETES_SERVER: host:port of micro server's RPC/);
  assert.throws(() => kubernetesRuntimeFromEnv(base, { MICRO_KUBERNETES_SERVER: 'x:8081', MICRO_KUBERNETES_GATEWAY: 'http://gw' }), /MICRO_KUBERNETES_GATEWAY/);
  assert.throws(() => kubernetesRuntimeFromEnv(base, { MICRO_KUBERNETES_SERVER: 'x:8081', MICRO_KUBERNETES_GATEWAY: 'gw:8080', MICRO_KUBECONFIG: '/nonexistent/kubeconfig', MICRO_AUTH_KEY: 'k'.repeat(32) }), /the kubeconfig \/nonexistent\/kubeconfig could not be read/);
  // a port nothing listens on: the start says the cluster cannot be reached
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const dir = mkdtempSync(join(tmpdir(), 'kube-runtime-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }], users: [{ name: 'u', user: { token: 't' } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x' }));
  const rt = kubernetesRuntimeFromEnv({ ...base, home: dir, clientOptions: { attempts: 2, backoff: { initial: 5, max: 10 } } }, { MICRO_KUBERNETES_SERVER: 'x:8081', MICRO_KUBERNETES_GATEWAY: 'gw:8080', MICRO_KUBECONFIG: kubeconfig });
  await assert.rejects(rt.start(), /MICRO_RUNTIME=kubernetes: the Kubernetes API server at http:\/\/127.0.0.1:\d+ could not be reached \(ECONNREFUSED\)/);
  await assert.rejects(rt.create({ source: 'upload:x' }), /the runtime is not running/);
});
