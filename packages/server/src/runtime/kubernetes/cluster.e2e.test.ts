import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authApi, bearer, Client, createClient, registryService, TokenSource } from '@micro/sdk';
import { contractService, writeSource } from '../contract.js';
import { freePort } from './testing.js';

/*
 * The end-to-end lane on a real cluster: both images built with docker, the platform
 * deployed from deploy/ (the small overlay), then with the CLI as a developer uses it:
 * micro run → a call through the gateway → micro update with calls going on (none fails)
 * → micro kill; and a connection from another tenant's namespace to the service's pod
 * refused by the NetworkPolicies (the same connection from its own namespace succeeds).
 *
 * Runs only when MICRO_TEST_KUBECONFIG names a kubeconfig; otherwise it skips and says why
 * (in CI too: no cluster runs there). How to start one: README.md of this folder,
 * "The end-to-end lane". Settings:
 * - MICRO_TEST_KUBECONFIG: the cluster (its current context)
 * - MICRO_TEST_KIND: a kind cluster's name: the images are loaded into it (`kind load`)
 * - MICRO_TEST_REGISTRY: else a registry prefix the cluster pulls from: the images are pushed there
 * - MICRO_TEST_KEEP=1: leave the platform deployed afterwards (to look at it)
 */

const KUBECONFIG = process.env.MICRO_TEST_KUBECONFIG ?? '';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../..');
const CLI = join(ROOT, 'packages', 'cli', 'bin', 'micro.js');
const SYSTEM = 'micro-system';

function skipReason(): string | undefined {
  if (!KUBECONFIG) return 'MICRO_TEST_KUBECONFIG is not set: the end-to-end lane needs a real cluster (see kubernetes/README.md, "The end-to-end lane", to start one with kind or k3s)';
  if (!existsSync(KUBECONFIG)) return `MICRO_TEST_KUBECONFIG=${KUBECONFIG} does not exist`;
  if (!process.env.MICRO_TEST_KIND && !process.env.MICRO_TEST_REGISTRY) return 'set MICRO_TEST_KIND (a kind cluster to load the images into) or MICRO_TEST_REGISTRY (a registry the cluster pulls from)';
  for (const f of ['deploy/server.Dockerfile', 'deploy/runner.Dockerfile', 'deploy/kubernetes/overlays/small/kustomization.yaml']) {
    if (!existsSync(join(ROOT, f))) return `${f} is missing: the lane deploys the platform from deploy/`;
  }
  return undefined;
}

async function run(cmd: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, KUBECONFIG, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout ?? 600_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${err.slice(-4000)}\n${out.slice(-2000)}`));
    });
    child.stdin.end(options.input ?? '');
  });
}

const kubectl = (args: string[], input?: string) => run('kubectl', args, input === undefined ? {} : { input });

/** `kubectl port-forward` of a Service's port to a free local port, until killed. */
async function portForward(service: string, port: number): Promise<{ port: number; child: ChildProcess }> {
  const local = await freePort();
  const child = spawn('kubectl', ['-n', SYSTEM, 'port-forward', `svc/${service}`, `${local}:${port}`], { env: { ...process.env, KUBECONFIG }, stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`port-forward of ${service} did not start`)), 30_000);
    child.stdout.on('data', (c: Buffer) => {
      if (c.toString().includes('Forwarding from')) {
        clearTimeout(timer);
        ok();
      }
    });
    child.on('close', (code) => fail(new Error(`port-forward of ${service} ended with ${code}`)));
  });
  return { port: local, child };
}

/** A pod in a tenant namespace, restricted as Pod Security wants it, that connects to `address` and says whether it could. */
function probePod(name: string, namespace: string, image: string, host: string, port: number): string {
  const script = `const s=require('net').connect(${port},${JSON.stringify(host)});s.setTimeout(5000);s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('timeout',()=>{console.log('timeout');process.exit(0)});s.on('error',(e)=>{console.log('error '+e.code);process.exit(0)});`;
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/name': 'e2e-probe' } },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{ name: 'probe', image, command: ['node', '-e', script], securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }, resources: { requests: { memory: '64Mi', cpu: '50m' }, limits: { memory: '64Mi', cpu: '50m' } } }],
    },
  });
}

const reason = skipReason();
if (reason) process.stdout.write(`# cluster.e2e: skipped: ${reason}\n`);

describe('the Kubernetes runtime on a real cluster', { skip: reason }, () => {
  const tag = `e2e-${randomBytes(3).toString('hex')}`;
  const registry = process.env.MICRO_TEST_REGISTRY ? `${process.env.MICRO_TEST_REGISTRY.replace(/\/$/, '')}/` : '';
  const serverImage = `${registry}micro/server:${tag}`;
  const runnerImage = `${registry}micro/runner:${tag}`;
  const work = mkdtempSync(join(tmpdir(), 'micro-k8s-e2e-'));
  const cliEnv = { HOME: work, MICRO_HOME: join(work, '.micro'), MICRO_LOG_LEVEL: 'warn' };
  const forwards: ChildProcess[] = [];
  let rendered = '';
  let gateway = '';
  let token = '';
  let rpc: Client;
  const micro = (args: string[], input?: string) => run(process.execPath, [CLI, ...args], { env: cliEnv, timeout: 900_000, ...(input === undefined ? {} : { input }) });

  before(async () => {
    // 1. the images
    await run('docker', ['build', '-f', 'deploy/server.Dockerfile', '-t', serverImage, '.'], { timeout: 1_800_000 });
    await run('docker', ['build', '-f', 'deploy/runner.Dockerfile', '-t', runnerImage, '.'], { timeout: 1_800_000 });
    if (process.env.MICRO_TEST_KIND) await run('kind', ['load', 'docker-image', serverImage, runnerImage, '--name', process.env.MICRO_TEST_KIND], { timeout: 900_000 });
    else for (const image of [serverImage, runnerImage]) await run('docker', ['push', image], { timeout: 900_000 });
    // 2. the platform: the small overlay with these images
    rendered = (await kubectl(['kustomize', 'deploy/kubernetes/overlays/small']))
      .replace(/image: (?:\S+\/)?micro\/server:\S+/g, `image: ${serverImage}`)
      .replace(/(name: MICRO_RUNNER_IMAGE\s*\n\s*value: )\S+/g, `$1${runnerImage}`);
    await kubectl(['apply', '-f', 'deploy/kubernetes/base/namespace.yaml']);
    const secret = (n: number) => randomBytes(n).toString('hex');
    const secretYaml = await kubectl(['-n', SYSTEM, 'create', 'secret', 'generic', 'micro-secrets', `--from-literal=auth-key=${secret(32)}`, `--from-literal=postgres-password=${secret(24)}`, `--from-literal=redis-password=${secret(24)}`, '--dry-run=client', '-o', 'yaml']);
    await kubectl(['apply', '-f', '-'], secretYaml);
    await kubectl(['apply', '-f', '-'], rendered);
    await run('kubectl', ['-n', SYSTEM, 'rollout', 'status', 'deploy/micro-server', '--timeout=15m'], { timeout: 960_000 });
    // 3. the CLI and the gateway, through port-forwards
    const server = await portForward('micro-server', 8081);
    const gw = await portForward('micro-gateway', 8080);
    forwards.push(server.child, gw.child);
    gateway = `http://127.0.0.1:${gw.port}`;
    const adminSecret = await kubectl(['-n', SYSTEM, 'exec', 'deploy/micro-server', '--', 'node', '-e', "process.stdout.write(require('/var/lib/micro/server/admin.json').secret)"]);
    await micro(['env', 'add', 'e2e', `127.0.0.1:${server.port}`]);
    await micro(['env', 'set', 'e2e']);
    await micro(['login', '--id', 'admin', '--secret', '-'], adminSecret);
    const creds = { id: 'admin', secret: adminSecret, namespace: 'micro' };
    const plain = new Client({ address: `tcp://127.0.0.1:${server.port}`, namespace: 'micro', preferLocal: false });
    token = (await createClient(authApi, plain).Token(creds)).token;
    rpc = new Client({ address: `tcp://127.0.0.1:${server.port}`, namespace: 'micro', preferLocal: false, middleware: [bearer(new TokenSource(creds, plain))] });
  });

  after(async () => {
    for (const ns of ['micro-e2e-a', 'micro-e2e-b']) await kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']).catch(() => undefined);
    if (!process.env.MICRO_TEST_KEEP && rendered) await kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], rendered).catch(() => undefined);
    for (const f of forwards) f.kill();
    rmSync(work, { recursive: true, force: true });
  });

  async function call(namespace: string): Promise<{ status: number; body: { version?: string } }> {
    const res = await fetch(`${gateway}/v1/hello/Call`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'micro-namespace': namespace }, body: '{}' });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as { version?: string } };
  }

  it('micro run builds in the cluster and starts the service; it answers through the gateway', async () => {
    const src = writeSource(join(work, 'hello'), contractService('hello', 'v1'));
    await micro(['run', src, '--namespace', 'e2e-a', '--instances', '2']);
    await micro(['run', src, '--namespace', 'e2e-b']);
    const r = await call('e2e-a');
    assert.equal(r.status, 200);
    assert.equal(r.body.version, 'v1');
    const status = await micro(['status', '--namespace', 'e2e-a']);
    assert.match(status, /hello/);
  });

  it('micro update rolls it with calls going on, none failing', async () => {
    writeSource(join(work, 'hello'), contractService('hello', 'v2'));
    let stop = false;
    const failed: number[] = [];
    let total = 0;
    const calling = (async () => {
      while (!stop) {
        const r = await call('e2e-a').catch(() => ({ status: 0, body: {} }));
        total++;
        if (r.status !== 200) failed.push(r.status);
      }
    })();
    await micro(['update', 'hello', '--namespace', 'e2e-a']);
    stop = true;
    await calling;
    assert.deepEqual(failed, [], `${failed.length} of ${total} calls failed`);
    assert.equal((await call('e2e-a')).body.version, 'v2');
  });

  it("another tenant's pod cannot connect to the service's pod; a pod of its own namespace can", async () => {
    const { services } = await createClient(registryService, rpc).ListServices({ namespace: 'e2e-a' });
    const address = services.find((s) => s.name === 'hello')?.nodes[0]?.address ?? '';
    const m = /^tcp:\/\/(.+):(\d+)$/.exec(address);
    assert.ok(m, `the pod's address in the registry: ${address}`);
    const [host, port] = [m[1] as string, Number(m[2])];
    const probe = async (namespace: string): Promise<string> => {
      const name = `probe-${randomBytes(3).toString('hex')}`;
      await kubectl(['apply', '-f', '-'], probePod(name, namespace, runnerImage, host, port));
      await run('kubectl', ['-n', namespace, 'wait', `pod/${name}`, '--for=jsonpath={.status.phase}=Succeeded', '--timeout=120s'], { timeout: 150_000 });
      const out = (await kubectl(['-n', namespace, 'logs', name])).trim();
      await kubectl(['-n', namespace, 'delete', 'pod', name, '--wait=false']);
      return out;
    };
    assert.equal(await probe('micro-e2e-a'), 'connected', 'the probe works: its own namespace reaches the service');
    assert.match(await probe('micro-e2e-b'), /^(timeout|error ECONNREFUSED|error ETIMEDOUT|error EHOSTUNREACH)$/, 'another namespace does not');
  });

  it('micro kill removes it; nothing of it is left in the cluster', async () => {
    await micro(['kill', 'hello', '--namespace', 'e2e-a']);
    await micro(['kill', 'hello', '--namespace', 'e2e-b']);
    const left = await kubectl(['-n', 'micro-e2e-a', 'get', 'deployments,jobs,secrets', '-l', 'micro.dev/service=hello', '-o', 'name']);
    assert.equal(left.trim(), '');
    assert.equal((await call('e2e-a')).status, 404);
  });
});
