import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { Client, RemoteBlobStore, type ClientMiddleware } from '@micro/sdk';
import { micro, natsPlatform, ok, post, startServer, stopProcess, tempDir, until } from './testing.js';

/**
 * Deleting a customer purges the namespaces it alone owned, on a running micro server: two
 * customers fill their namespaces with data of every kind (a service started by `micro
 * run`, store records, blobs, config with a secret, events, cache keys, rules, API keys);
 * the staff delete one; then nothing of it can be read by any means — the admin of micro
 * naming the namespace gets nothing, its old tokens, refresh tokens and API keys are
 * refused — and everything of the other is intact. The same on the nats profile.
 */

function withToken(token: string): ClientMiddleware {
  return (req, next) => {
    req.metadata = { ...req.metadata, authorization: `Bearer ${token}` };
    return next(req);
  };
}

/** The code of the last mail the outbox holds for `email`. */
function codeIn(home: string, email: string): string | undefined {
  let dir: string[];
  try {
    dir = readdirSync(join(home, 'outbox')).filter((f) => f.endsWith('.eml')).sort().reverse();
  } catch {
    return undefined;
  }
  for (const f of dir) {
    const text = readFileSync(join(home, 'outbox', f), 'utf8');
    if (!text.includes(`To: ${email}`)) continue;
    return /code is:\s*([0-9]{6})/.exec(text.replace(/=\r?\n/g, ''))?.[1];
  }
  return undefined;
}

const canSandbox = process.getuid?.() === 0 && spawnSync('bwrap', ['--version']).status === 0;
const SANDBOX_ENV: Record<string, string> = { MICRO_RUNTIME_SANDBOX: canSandbox ? 'on' : 'off' };

interface Tenant {
  email: string;
  namespace: string;
  customer: string;
  token: string;
  refreshToken: string;
  apiKey: string;
}

async function purgeScenario(t: test.TestContext, env: Record<string, string>, label: string): Promise<void> {
  const home = tempDir(`micro-purge-${label}-`);
  const work = tempDir(`micro-purge-${label}-src-`);
  const server = await startServer(home, { timeout: 60_000, env: { ...SANDBOX_ENV, ...env } });
  t.after(async () => {
    await stopProcess(server.proc);
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  const gw = server.gateway;
  const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const adminToken = ok(await post(gw, '/v1/auth/Token', { ...admin, namespace: 'micro' })).token as string;
  const asAdmin = (path: string, body: unknown) => post(gw, path, body, adminToken);
  const blobs = (token: string) => new RemoteBlobStore(new Client({ address: server.address, namespace: 'micro', preferLocal: false, middleware: [withToken(token)] }));
  assert.equal((await micro(home, ['new', 'demo'], { cwd: work })).code, 0);

  /** A customer signed up through signup, whose namespace holds data of every kind. */
  const customer = async (email: string, namespace: string): Promise<Tenant> => {
    ok(await asAdmin('/v1/signup/Invite', { email }));
    ok(await post(gw, '/v1/signup/SendCode', { email }));
    const code = await until(`the code mailed to ${email}`, 10_000, async () => codeIn(home, email));
    const password = `${namespace}-password-1`;
    const session = ok(await post(gw, '/v1/signup/CompleteSignup', { email, code, password, namespace }));
    const token = session.token as string;
    const customerId = ((ok(await asAdmin('/v1/signup/ReadCustomer', { email })).customer as { id: string }).id);
    // a service, started by the customer with micro run
    const login = await micro(home, ['login', '--id', email, '--secret', '-', '--namespace', namespace], { input: `${password}\n` });
    assert.equal(login.code, 0, login.stderr);
    const run = await micro(home, ['run', './demo'], { cwd: work, env, timeout: 180_000 });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.equal((await micro(home, ['logout'])).code, 0);
    ok(await post(gw, '/v1/store/Write', { record: { key: 'secret-plan', value: { of: namespace } } }, token));
    ok(await post(gw, '/v1/store/Write', { record: { key: 'other', value: 1 }, database: 'db2', table: 't2' }, token));
    await blobs(token).put('photo.jpg', Buffer.from(`the photo of ${namespace}`));
    ok(await post(gw, '/v1/config/Set', { path: 'db.password', value: `pw-of-${namespace}`, secret: true }, token));
    ok(await post(gw, '/v1/config/Set', { path: 'site.name', value: namespace }, token));
    ok(await post(gw, '/v1/events/Publish', { topic: 'orders', payload: { of: namespace } }, token));
    ok(await post(gw, '/v1/cache/Set', { key: 'session:1', value: namespace }, token));
    ok(await post(gw, '/v1/auth/CreateRule', { id: 'demo-for-all', resource: 'service:demo:*', scope: '*', access: 'granted', priority: 5 }, token));
    const key = ok(await post(gw, '/v1/auth/CreateKey', { name: 'ci' }, token));
    return { email, namespace, customer: customerId, token, refreshToken: session.refreshToken as string, apiKey: key.key as string };
  };

  const a = await customer('alice@example.com', 'alice-corp');
  const b = await customer('bob@example.com', 'bob-corp');

  /** What the admin of micro reads of a namespace, by every means, as counts. */
  const seen = async (ns: string) => {
    const count = async (path: string, body: unknown, field: string) => ((ok(await asAdmin(path, { ...(body as object), namespace: ns }))[field] as unknown[] | undefined) ?? []).length;
    const config = ok(await asAdmin('/v1/config/Get', { path: '', namespace: ns, secrets: true })).value;
    return {
      records: (await count('/v1/store/Read', { key: 'secret-plan' }, 'records')) + (await count('/v1/store/Read', { key: 'other', database: 'db2', table: 't2' }, 'records')),
      databases: await count('/v1/store/Databases', {}, 'databases'),
      blobs: (await blobs(adminToken).list({ namespace: ns })).length,
      config: config === undefined || config === null ? 0 : Object.keys(config as object).length,
      topics: await count('/v1/events/Topics', {}, 'topics'),
      cacheKeys: await count('/v1/cache/ListKeys', {}, 'keys'),
      services: await count('/v1/registry/ListServices', {}, 'services'),
      running: await count('/v1/runtime/Read', {}, 'services'),
      accounts: await count('/v1/auth/ListAccounts', {}, 'accounts'),
      keys: await count('/v1/auth/ListKeys', {}, 'keys'),
      rules: await count('/v1/auth/ListRules', {}, 'rules'),
    };
  };
  const before = await seen(a.namespace);
  for (const [what, n] of Object.entries(before)) assert.ok(n > 0, `${what} of ${a.namespace} are there before: ${JSON.stringify(before)}`);
  const bBefore = await seen(b.namespace);
  const bUsage = ok(await asAdmin('/v1/quota/Read', { namespace: b.namespace })).usage;

  await t.test('a tenant cannot reach the purge: signup refuses DeleteCustomer to anyone but staff', async () => {
    for (const token of [b.token, a.token, undefined]) {
      const r = await post(gw, '/v1/signup/DeleteCustomer', { id: a.customer }, token);
      assert.ok(r.status === 401 || r.status === 403, JSON.stringify(r));
    }
    assert.ok((await seen(a.namespace)).records > 0);
  });

  await t.test('DeleteCustomer purges the namespace: nothing of it can be read by any means', async () => {
    const deleted = ok(await asAdmin('/v1/signup/DeleteCustomer', { id: a.customer }));
    assert.deepEqual(deleted.deletedNamespaces, [a.namespace]);
    const after = await seen(a.namespace);
    assert.deepEqual(after, Object.fromEntries(Object.keys(before).map((k) => [k, 0])), JSON.stringify(after));
    // the service's process is gone and its blob (the upload) and logs with it
    const status = await micro(home, ['status', '--namespace', a.namespace, '-o', 'json']);
    assert.deepEqual(JSON.parse(status.stdout || '[]'), [], status.stderr);
    assert.deepEqual(readdirSync(join(home, 'logs')).filter((d) => d === a.namespace), []);
    const direct = await post(gw, '/v1/config/Get', { path: 'db.password', namespace: a.namespace, secrets: true }, adminToken);
    assert.equal(direct.body.value, undefined, JSON.stringify(direct.body));
    await assert.rejects(async () => {
      for await (const _ of blobs(adminToken).get('photo.jpg', { namespace: a.namespace })) void _;
    }, /not found/);
    // usage counters are gone with the data: nothing is billed to a deleted namespace
    const usage = ok(await asAdmin('/v1/quota/Read', { namespace: a.namespace })).usage as Record<string, number>;
    assert.deepEqual(Object.values(usage).filter((n) => n !== 0), [], JSON.stringify(usage));
  });

  await t.test("the deleted customer's token, refresh token, API key and password are refused", async () => {
    for (const path of ['/v1/store/Read', '/v1/config/Get', '/v1/cache/ListKeys', '/v1/events/Topics', '/v1/auth/ListKeys']) {
      const r = await post(gw, path, path === '/v1/store/Read' ? { key: 'secret-plan' } : {}, a.token);
      assert.equal(r.status, 401, `${path}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await post(gw, '/v1/auth/Token', { apiKey: a.apiKey })).status, 401);
    assert.equal((await post(gw, '/v1/auth/Refresh', { refreshToken: a.refreshToken })).status, 401);
    assert.equal((await post(gw, '/v1/signup/Login', { email: a.email, password: `${a.namespace}-password-1` })).status, 401);
    assert.equal((await post(gw, '/v1/auth/Login', { id: a.email, password: `${a.namespace}-password-1`, namespace: a.namespace })).status, 401);
    const demo = await post(gw, `/v1/demo/Call`, { name: 'x' }, a.token);
    assert.equal(demo.status, 401, JSON.stringify(demo.body));
  });

  await t.test('the other customer keeps everything, and deleting again is safe', async () => {
    assert.deepEqual(await seen(b.namespace), bBefore);
    // requestsPerMonth counts b's own calls, made by this test meanwhile: its data is what must not change
    const stored = (usage: Record<string, number>) => ({ ...usage, requestsPerMonth: undefined });
    assert.deepEqual(stored(ok(await asAdmin('/v1/quota/Read', { namespace: b.namespace })).usage as Record<string, number>), stored(bUsage as Record<string, number>));
    const secret = ok(await asAdmin('/v1/config/Get', { path: 'db.password', namespace: b.namespace, secrets: true }));
    assert.equal(secret.value, `pw-of-${b.namespace}`);
    const chunks: Buffer[] = [];
    for await (const c of blobs(b.token).get('photo.jpg')) chunks.push(Buffer.from(c));
    assert.equal(Buffer.concat(chunks).toString(), `the photo of ${b.namespace}`);
    assert.equal(ok(await post(gw, '/v1/store/Read', { key: 'secret-plan' }, b.token)).records instanceof Array, true);
    assert.equal(ok(await post(gw, '/v1/auth/Token', { apiKey: b.apiKey })).token !== undefined, true);
    const call = await until('the demo of bob-corp answers', 30_000, async () => {
      const r = await post(gw, '/v1/demo/Call', { name: 'Bob' }, b.token);
      return r.status === 200 ? r : undefined;
    });
    assert.deepEqual(call.body, { message: 'Hello Bob' });
    // a retry redoes the purge and finds nothing more to delete
    assert.deepEqual(ok(await asAdmin('/v1/signup/DeleteCustomer', { id: a.customer })).deletedNamespaces, [a.namespace]);
    assert.deepEqual(await seen(b.namespace), bBefore);
  });

  await micro(home, ['kill', 'demo', '--namespace', b.namespace], { env }).catch(() => undefined);
}

test('deleting a customer purges its namespace (local profile)', { timeout: 600_000 }, async (t) => {
  await purgeScenario(t, {}, 'local');
});

test('deleting a customer purges its namespace (nats profile: PostgreSQL, JetStream, Redis)', { timeout: 600_000 }, async (t) => {
  const platform = await natsPlatform(t, 'purge');
  if (!platform) return;
  t.after(() => platform.drop());
  await purgeScenario(t, platform.env, 'nats');
});
