import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { micro, post, startServer, stopProcess, tempDir, until, type Http, type RunningServer } from './testing.js';

/*
 * `micro run ./services/<name>`: a value-add service of this repository run as any
 * service, by a tenant (uploaded, built and run in its sandbox; @micro/sdk and
 * @micro/services-kit provided by the runtime, the tests left out of the build) and by an
 * admin of micro (the folder, unsandboxed). Either serves its own namespace. The server hosts none of them
 * (MICRO_SERVICES=none), so an answer at the gateway comes from the instance `micro run`
 * started, and stops when `micro kill` stops it.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const canSandbox = process.getuid?.() === 0 && spawnSync('bwrap', ['--version']).status === 0;
if (!canSandbox && (process.env.CI === 'true' || process.env.MICRO_REQUIRE_ENGINES === '1')) throw new Error('this test runs tenants sandboxed in CI: it needs root and bwrap');

let home: string;
let server: RunningServer;

before(async () => {
  home = tempDir('micro-run-services-e2e-');
  server = await startServer(home, { env: { MICRO_RUNTIME_SANDBOX: canSandbox ? 'on' : 'off' } });
});

after(async () => {
  if (server) await stopProcess(server.proc);
  rmSync(home, { recursive: true, force: true });
});

async function succeeds(args: string[], options: { input?: string; timeout?: number } = {}): Promise<string> {
  const r = await micro(home, args, { cwd: root, ...options });
  assert.equal(r.code, 0, `micro ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** An account of `namespace` (created by the local admin), logged in, with an API key of its own. */
async function tenant(id: string, namespace: string): Promise<string> {
  await succeeds(['logout']);
  const { secret } = JSON.parse(await succeeds(['auth', 'create', 'account', id, '--namespace', namespace, '--scopes', 'admin', '-o', 'json'])) as { secret: string };
  await succeeds(['login', '--id', id, '--secret', '-', '--namespace', namespace], { input: `${secret}\n` });
  return (await succeeds(['auth', 'create', 'key', 'app'])).trim();
}

const call = (path: string, body: unknown, key: string): Promise<Http> => post(server.gateway, `/v1/${path}`, body, key);

/** The service's status as `micro status` shows it to the logged-in account. */
async function status(name: string): Promise<{ name: string; namespace: string; source: string; state: string }> {
  const [svc] = JSON.parse(await succeeds(['status', name, '-o', 'json'])) as { name: string; namespace: string; source: string; state: string }[];
  assert.ok(svc, `micro status ${name}`);
  return svc;
}

/** Waits until calls of `path` with `key` find no service (404): the instance that answered is gone. */
function gone(path: string, key: string): Promise<true> {
  return until(`${path} answers 404`, 20_000, async () => ((await call(path, {}, key)).status === 404 ? true : undefined));
}

const titles = (r: Http) => ((r.body as { notes?: { title: string }[] }).notes ?? []).map((n) => n.title);

test('micro run ./services/<name> runs a value-add service in a tenant namespace (sandboxed) and in micro', { timeout: 600_000 }, async () => {
  const rivalKey = await tenant('eve', 'rival');
  const acmeKey = await tenant('ada', 'acme');

  // the tenant uploads the folders; the runtime builds them in its sandbox
  for (const name of ['id', 'notes']) {
    const out = await succeeds(['run', `./services/${name}`], { timeout: 240_000 });
    assert.match(out, new RegExp(`^• uploading ${join(root, 'services', name)} `, 'm'));
    assert.match(out, /tsc -p tsconfig\.build\.json/, 'compiled without the tests');
    assert.match(out, new RegExp(`^${name} is running \\(namespace acme\\): 1/1 instance running$`, 'm'));
    const svc = await status(name);
    assert.deepEqual([svc.name, svc.namespace, svc.state], [name, 'acme', 'running']);
    assert.match(svc.source, new RegExp(`^upload:runtime/uploads/[0-9a-f]{32}/${name}\\.tar\\.gz$`));
  }
  const id = await call('id/Generate', { type: 'uuid' }, acmeKey);
  assert.equal(id.status, 200, JSON.stringify(id.body));
  assert.match(String(id.body.id), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal((await call('notes/Create', { title: 'acme note', text: 'kept by the tenant' }, acmeKey)).status, 200);
  assert.deepEqual(titles(await call('notes/List', {}, acmeKey)), ['acme note']);
  // another tenant does not reach the tenant's services
  assert.equal((await call('notes/List', {}, rivalKey)).status, 404);

  // the answers came from those instances: killed, nothing answers
  for (const name of ['id', 'notes']) await succeeds(['kill', name]);
  await gone('id/Generate', acmeKey);
  await gone('notes/List', acmeKey);

  // an admin of micro runs the folders themselves (unsandboxed); such a service serves its own namespace, micro
  await succeeds(['logout']);
  const adminKey = (await succeeds(['auth', 'create', 'key', 'app'])).trim();
  for (const name of ['id', 'notes']) {
    const out = await succeeds(['run', `./services/${name}`], { timeout: 240_000 });
    assert.match(out, new RegExp(`^${name} is running \\(namespace micro\\): 1/1 instance running$`, 'm'));
    const svc = await status(name);
    assert.deepEqual([svc.name, svc.namespace, svc.source, svc.state], [name, 'micro', join(root, 'services', name), 'running']);
  }
  assert.equal((await call('notes/Create', { title: 'micro note' }, adminKey)).status, 200);
  assert.deepEqual(titles(await call('notes/List', {}, adminKey)), ['micro note']);
  // it is public, so tenants' calls reach it, but its account acts in micro only: no tenant's data (the hosted services are the platform's way to serve them)
  const theirs = await call('notes/List', {}, acmeKey);
  assert.equal(theirs.status, 403);
  assert.match(String(theirs.body.detail), /account service:notes of namespace micro may not act in namespace acme/);
  const uuid = await call('id/Generate', { type: 'uuid' }, rivalKey);
  assert.equal(uuid.status, 200, JSON.stringify(uuid.body));
  assert.notEqual(uuid.body.id, id.body.id);

  for (const name of ['id', 'notes']) await succeeds(['kill', name]);
  await gone('id/Generate', rivalKey);
  await gone('notes/List', adminKey);
});
