import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger } from '@micro/sdk';
import { freePort } from '@micro/sdk/testing';
import { MicroServer } from '@micro/server';
import { startFakeKubernetes, type FakeKubernetes } from '@micro/server/testing';
import { PlatformHub } from '../hub.js';
import { MemoryMailer } from '../mail/mailer.js';
import { billingCoreService } from '../plans/index.js';
import { signupCoreService } from './index.js';

/*
 * A customer's namespace in the cluster, made by the platform (runtime/kubernetes/README.md
 * "When"): micro server with MICRO_RUNTIME=kubernetes on the test API server, and the
 * platform's signup and billing. Signing up makes the cluster namespace (owner and plan
 * labels, quota, policies, restricted pods); a plan or quota change is written over it;
 * deleting the customer removes it; a cluster that is down does not fail a signup, and the
 * reconcile makes the namespace once it is up; a stranger cannot make the hook touch
 * another customer's cluster namespace.
 */

const silent = createLogger({ level: 'silent' });
const ENV = ['MICRO_RUNTIME', 'MICRO_KUBECONFIG', 'MICRO_KUBERNETES_SERVER', 'MICRO_KUBERNETES_GATEWAY'] as const;
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));

let fake: FakeKubernetes;
let server: MicroServer;
let home: string;
let gw: string;
let admin: string;
const mailer = new MemoryMailer();

async function post(path: string, body: unknown, token?: string) {
  const res = await fetch(`${gw}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function signUp(email: string, namespace: string): Promise<string> {
  assert.equal((await post('/v1/signup/Invite', { email }, admin)).status, 200);
  assert.equal((await post('/v1/signup/SendCode', { email })).status, 200);
  const code = /code is:\s*([0-9]{6})/.exec(mailer.lastTo(email)?.text ?? '')?.[1];
  const done = await post('/v1/signup/CompleteSignup', { email, code, password: 'correct horse battery', namespace });
  assert.equal(done.status, 200, JSON.stringify(done.json));
  return done.json.token as string;
}

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Obj = { kind: string; metadata: { name: string; resourceVersion: string; labels?: Record<string, string> }; spec?: { hard?: Record<string, string> } };

const namespaceOf = (cns: string): Obj | undefined => (fake.objects('v1', 'Namespace') as Obj[]).find((n) => n.metadata.name === cns);
const hardOf = (cns: string): Record<string, string> | undefined => (fake.objects('v1', 'ResourceQuota', cns) as Obj[]).find((q) => q.metadata.name === 'micro-quota')?.spec?.hard;

/** resourceVersion of every object of a cluster namespace: equal before and after means nothing was written */
function versions(cns: string): string {
  const objs = [namespaceOf(cns), ...['ServiceAccount', 'ResourceQuota', 'LimitRange'].flatMap((k) => fake.objects('v1', k, cns) as Obj[]), ...(fake.objects('networking.k8s.io/v1', 'NetworkPolicy', cns) as Obj[])];
  return JSON.stringify(objs.map((o) => `${o?.kind}/${o?.metadata.name}@${o?.metadata.resourceVersion}`).sort());
}

/** the pods a namespace's ResourceQuota allows for its limits: services × (instancesPerService + 1) */
async function podsFor(namespace: string): Promise<string> {
  const read = await post('/v1/quota/Read', { namespace }, admin);
  const limits = read.json.limits as { services: number; instancesPerService: number };
  return String(limits.services * (limits.instancesPerService + 1));
}

before(async () => {
  fake = await startFakeKubernetes({ onError: () => undefined });
  home = mkdtempSync(join(tmpdir(), 'micro-signup-k8s-'));
  process.env.MICRO_RUNTIME = 'kubernetes';
  process.env.MICRO_KUBECONFIG = fake.kubeconfig;
  process.env.MICRO_KUBERNETES_SERVER = `127.0.0.1:${await freePort()}`;
  process.env.MICRO_KUBERNETES_GATEWAY = `127.0.0.1:${await freePort()}`;
  const hub = new PlatformHub();
  server = await new MicroServer({
    home,
    address: 'tcp://127.0.0.1:0',
    gateway: `127.0.0.1:${await freePort()}`,
    gatewayRate: false,
    logger: silent,
    coreServices: [signupCoreService({ hub, mailer }), billingCoreService({ hub })],
    // a pass every second and a failed ensure tried again after 100 ms: the test waits for them
    kubernetes: { clientOptions: { attempts: 2, backoff: { initial: 10, max: 20 }, timeout: 3_000 }, reconcile: { intervalMs: 1_000, retryMs: 100 } },
  }).start();
  gw = server.gatewayUrl as string;
  const adminFile = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  admin = (await post('/v1/auth/Token', adminFile)).json.token as string;
});

after(async () => {
  await server?.stop();
  await fake?.close();
  rmSync(home, { recursive: true, force: true });
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

test('signup makes the cluster namespace: owner and plan labels, quota from the plan, policies, restricted pods', async () => {
  await signUp('acme@example.com', 'acme');
  const ns = await until('micro-acme', () => hardOf('micro-acme') && namespaceOf('micro-acme'));
  const customer = (await post('/v1/signup/ReadCustomer', { email: 'acme@example.com' }, admin)).json.customer as { id: string };
  assert.equal(ns.metadata.labels?.['micro.dev/owner'], customer.id);
  assert.equal(ns.metadata.labels?.['micro.dev/plan'], 'community');
  assert.equal(ns.metadata.labels?.['micro.dev/namespace'], 'acme');
  assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
  assert.equal(hardOf('micro-acme')?.pods, await podsFor('acme'));
  assert.equal(hardOf('micro-acme')?.persistentvolumeclaims, '0');
  assert.deepEqual((fake.objects('networking.k8s.io/v1', 'NetworkPolicy', 'micro-acme') as Obj[]).map((p) => p.metadata.name).sort(), ['allow-build-egress', 'allow-dns', 'allow-from-platform', 'allow-platform', 'allow-same-namespace', 'default-deny']);
  assert.ok((fake.objects('v1', 'ServiceAccount', 'micro-acme') as Obj[]).some((a) => a.metadata.name === 'micro-service'));
  assert.ok((fake.objects('v1', 'LimitRange', 'micro-acme') as Obj[]).some((l) => l.metadata.name === 'micro-limits'));
});

test('a plan change rewrites the plan label and the quota; a quota set by the staff rewrites the quota', async () => {
  await until('micro-acme', () => hardOf('micro-acme'));
  const communityPods = hardOf('micro-acme')?.pods;
  const changed = await post('/v1/billing/ChangePlan', { customer: 'acme@example.com', plan: 'developer' }, admin);
  assert.equal(changed.status, 200, JSON.stringify(changed.json));
  const pods = await podsFor('acme');
  assert.notEqual(pods, communityPods, 'Developer has other limits than Community');
  await until('the developer plan in the cluster', () => namespaceOf('micro-acme')?.metadata.labels?.['micro.dev/plan'] === 'developer' && hardOf('micro-acme')?.pods === pods);

  const set = await post('/v1/quota/Set', { namespace: 'acme', limits: { services: 3 } }, admin);
  assert.equal(set.status, 200, JSON.stringify(set.json));
  await until('the quota set in the cluster', () => hardOf('micro-acme')?.['count/deployments.apps'] === '3');
  assert.equal(hardOf('micro-acme')?.pods, await podsFor('acme'));
});

test("a stranger cannot make the hook touch another customer's cluster namespace, nor get one of a look-alike name", async () => {
  await until('micro-acme', () => hardOf('micro-acme'));
  const before = versions('micro-acme');
  const start = fake.requests.length;
  // a look-alike name: its own cluster namespace, never acme's
  const mallory = await signUp('mallory@example.com', 'acme-x');
  await until('micro-acme-x', () => hardOf('micro-acme-x'));
  assert.equal(namespaceOf('micro-acme-x')?.metadata.labels?.['micro.dev/namespace'], 'acme-x');
  // changing acme's limits, or its plan, is refused before anything reaches the runtime
  for (const [path, body] of [
    ['/v1/quota/Set', { namespace: 'acme', limits: { services: 100, memoryPerInstance: 4_294_967_296 } }],
    ['/v1/billing/ChangePlan', { customer: 'acme@example.com', plan: 'community' }],
  ] as const) {
    const r = await post(path, body, mallory);
    assert.ok(r.status === 403 || r.status === 401, `${path}: ${r.status} ${JSON.stringify(r.json)}`);
  }
  // the reconcile passes meanwhile only read acme's objects: not one write, not one change
  await new Promise((r) => setTimeout(r, 1_200));
  const writes = fake.requests.slice(start).filter((q) => q.method !== 'GET' && /\/namespaces\/micro-acme(?:\/|$)/.test(q.path.split('?')[0] as string));
  assert.deepEqual(writes, []);
  assert.equal(versions('micro-acme'), before);
});

test('a cluster that is down does not fail a signup: the namespace is made once it is up', async () => {
  const up = fake.fault({ down: true });
  try {
    await signUp('late@example.com', 'latecomer');
    assert.equal(namespaceOf('micro-latecomer'), undefined);
  } finally {
    up();
  }
  const ns = await until('micro-latecomer', () => hardOf('micro-latecomer') && namespaceOf('micro-latecomer'));
  assert.equal(ns.metadata.labels?.['micro.dev/plan'], 'community');
});

test('deleting the customer removes its cluster namespace; one the purge could not remove goes at the next pass', async () => {
  await until('micro-acme', () => hardOf('micro-acme'));
  const deleted = await post('/v1/signup/DeleteCustomer', { email: 'acme@example.com' }, admin);
  assert.equal(deleted.status, 200, JSON.stringify(deleted.json));
  assert.deepEqual(deleted.json.deletedNamespaces, ['acme']);
  await until('micro-acme gone', () => !namespaceOf('micro-acme'));
  assert.ok(namespaceOf('micro-acme-x'), 'the look-alike stays');

  await until('micro-latecomer', () => hardOf('micro-latecomer'));
  const refuse = fake.fault({ method: 'DELETE', path: /^\/api\/v1\/namespaces\/micro-latecomer(?:\?|$)/, status: 500 });
  try {
    const failed = await post('/v1/signup/DeleteCustomer', { email: 'late@example.com' }, admin);
    assert.equal(failed.status, 503, JSON.stringify(failed.json));
    assert.match(String(failed.json.detail), /kubernetes: .*micro-latecomer/);
    assert.ok(namespaceOf('micro-latecomer'));
  } finally {
    refuse();
  }
  await until('micro-latecomer removed by the reconcile', () => !namespaceOf('micro-latecomer'));
  assert.ok(namespaceOf('micro-acme-x'));
});
