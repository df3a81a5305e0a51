import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectRefused, expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

/**
 * The app service on a real micro server: a web app fetched from git (a local repository
 * served by a stand-in `ssh` on PATH, as runtime/git.test.ts does, so no network is
 * needed), built and run by the runtime in the tenant's sandbox (root and bwrap, as in CI;
 * elsewhere these tests skip, saying why), reached through the gateway's /app/ proxy.
 */
const canSandbox = process.getuid?.() === 0 && spawnSync('bwrap', ['--version']).status === 0;
const required = process.env.CI === 'true' || process.env.MICRO_REQUIRE_ENGINES === '1';
if (!canSandbox && required) throw new Error('the app tests run sandboxed in CI: they need root and bwrap');
const skip = canSandbox ? false : 'apps run in the sandbox: this machine has no root or no bwrap';

/** A web app that shows what it was given and what its sandbox lets it do. */
const server = (version: number) => `
import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
http.createServer(async (req, res) => {
  console.log('request ' + req.method + ' ' + req.url);
  const u = new URL(req.url, 'http://app');
  let body = '';
  for await (const c of req) body += c;
  const out = { version: ${version}, greeting: process.env.GREETING ?? '', port: process.env.PORT, path: req.url, method: req.method, body, headers: req.headers,
    micro: Object.keys(process.env).filter((k) => k.startsWith('MICRO_')) };
  const port = u.searchParams.get('connect');
  if (port) out.connect = await new Promise((r) => { const s = net.connect(Number(port), '127.0.0.1'); s.on('connect', () => { s.destroy(); r('reached'); }); s.on('error', (e) => r(e.code)); });
  const file = u.searchParams.get('read');
  if (file) { try { readFileSync(file); out.read = 'read'; } catch (e) { out.read = e.code; } }
  res.setHeader('set-cookie', 'micro-token=planted; Path=/');
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(out));
}).listen(Number(process.env.PORT));
`;

const REPO = 'git@git.example.test:web.git';

describe('app', { skip }, () => {
  let p: Platform;
  let dir: string;
  let git: (...args: string[]) => void;
  let savedPath: string | undefined;

  before(async (t) => {
    dir = mkdtempSync(join(tmpdir(), 'micro-app-'));
    const repo = join(dir, 'web');
    mkdirSync(repo);
    git = (...args: string[]) => void execFileSync('git', ['-C', repo, '-c', 'user.email=a@b', '-c', 'user.name=a', ...args]);
    git('init', '-q', '-b', 'main');
    writeFileSync(join(repo, 'package.json'), JSON.stringify({ name: 'web', private: true, type: 'module', main: 'server.js' }));
    writeFileSync(join(repo, 'server.js'), server(1));
    git('add', '-A');
    git('commit', '-q', '-m', 'v1');
    // a branch whose app never listens
    git('checkout', '-q', '-b', 'quiet');
    writeFileSync(join(repo, 'server.js'), "console.log('working, not listening'); setInterval(() => {}, 1000);\n");
    git('commit', '-q', '-am', 'quiet');
    git('checkout', '-q', 'main');
    // the "network": an ssh that serves the repository to whatever host git names
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'ssh'), `#!/bin/sh\nexec git-upload-pack '${repo}'\n`);
    chmodSync(join(dir, 'bin', 'ssh'), 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${join(dir, 'bin')}:${process.env.PATH}`;
    process.env.MICRO_APP_MAX = '4';
    const resolver = async (host: string) => (host === 'git.example.test' ? ['93.184.215.14'] : []);
    p = (await startPlatform(t as never, { services: [service], runtime: { timing: { startTimeout: 8_000 }, untrusted: { resolver } } })) as Platform;
  });
  after(async () => {
    await p?.close();
    process.env.PATH = savedPath;
    delete process.env.MICRO_APP_MAX;
    rmSync(dir, { recursive: true, force: true });
  });

  const ok = async (key: string, endpoint: string, body: unknown) => {
    const r = await p.call(key, 'app', endpoint, body);
    assert.equal(r.status, 200, `${endpoint}: ${JSON.stringify(r.body)}`);
    await expectShape('app', endpoint, r.body);
    return r.body;
  };
  const refused = async (key: string, endpoint: string, body: unknown, status: number, detail: RegExp) => expectRefused(await p.call(key, 'app', endpoint, body), status, detail, 'app');
  const visit = (path: string, init: RequestInit = {}) => fetch(`${p.url}${path}`, { redirect: 'manual', ...init });

  it('lists its regions', async () => {
    assert.deepEqual((await ok(p.a.key, 'Regions', {})).regions, ['local']);
  });

  it('refuses wrong, missing, oversized and hostile input', async () => {
    const k = p.a.key;
    await refused(k, 'Run', { repo: REPO }, 400, /Missing name/);
    await refused(k, 'Run', { name: 'x' }, 400, /Missing repo/);
    for (const name of ['../etc', 'Upper', 'a--b', 'end-', 'x'.repeat(64), 'a;rm -rf', 'app/x', '1abc']) await refused(k, 'Run', { name, repo: REPO }, 400, /not an app name/);
    await refused(k, 'Run', { name: 'x'.repeat(2000), repo: REPO }, 400, /name/);
    for (const repo of ['/etc', 'file:///etc', '../web', 'http://git.example.test/web.git', 'https://git.example.test/web.git@main', 'https://a.test/x y', `https://a.test/${'x'.repeat(1100)}`]) {
      await refused(k, 'Run', { name: 'x', repo }, 400, /repo/);
    }
    await refused(k, 'Run', { name: 'x', repo: 'https://127.0.0.1/web.git' }, 403, /not a public address/);
    for (const branch of ['../main', '-x', 'a..b', 'a b', 'x.lock']) await refused(k, 'Run', { name: 'x', repo: REPO, branch }, 400, /branch/);
    for (const port of [-1, 65536, 1.5]) await refused(k, 'Run', { name: 'x', repo: REPO, port }, 400, /port/);
    await refused(k, 'Run', { name: 'x', repo: REPO, path: 'sub/dir' }, 400, /path/);
    await refused(k, 'Run', { name: 'x', repo: REPO, region: 'mars' }, 400, /region "mars"/);
    await refused(k, 'Run', { name: 'x', repo: REPO, env_vars: { MICRO_SERVER: 'tcp://evil' } }, 400, /MICRO_/);
    await refused(k, 'Run', { name: 'x', repo: REPO, env_vars: { PORT: '1' } }, 400, /PORT/);
    await refused(k, 'Run', { name: 'x', repo: REPO, env_vars: { 'A=B': '1' } }, 400, /env_vars/);
    await refused(k, 'Get', { name: 'nothing' }, 404, /no app named nothing/);
    await refused(k, 'Logs', { name: 'nothing', logs_type: 'x' }, 400, /logs_type/);
    await refused(k, 'Resolve', {}, 400, /Missing id/);
    await refused(k, 'Update', { name: 'nothing' }, 404, /no app named/);
    // nothing was kept of any of it
    assert.deepEqual((await ok(k, 'List', {})).services, []);
  });

  it('runs an app from git, serves it through the gateway, updates it, shows its logs and deletes it', async () => {
    const k = p.a.key;
    const run = (await ok(k, 'Run', { name: 'web', repo: REPO, env_vars: { GREETING: 'hi' } })).service;
    assert.equal(run.status, 'running', run.status);
    assert.equal(run.port, 8080);
    assert.equal(run.url, `${process.env.MICRO_PUBLIC_URL || 'http://127.0.0.1:8080'}/app/tenant-a/web/`);
    assert.deepEqual(run.env_vars, { GREETING: 'hi' });
    await refused(k, 'Run', { name: 'web', repo: REPO }, 409, /exists/);

    // through the gateway, with the caller's credentials held back
    const res = await visit('/app/tenant-a/web/hello?x=1', { method: 'POST', body: 'some body', headers: { authorization: `Bearer ${k}`, cookie: 'micro-token=secret', 'micro-namespace': 'micro', 'x-custom': 'kept' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('set-cookie'), null, "the app's cookie does not reach the gateway's origin");
    assert.match(res.headers.get('content-security-policy') ?? '', /^sandbox /);
    assert.doesNotMatch(res.headers.get('content-security-policy') ?? '', /allow-same-origin/);
    const seen = (await res.json()) as { version: number; greeting: string; port: string; path: string; method: string; body: string; headers: Record<string, string>; micro: string[] };
    assert.equal(seen.version, 1);
    assert.equal(seen.greeting, 'hi');
    assert.equal(seen.port, '8080');
    assert.equal(seen.path, '/hello?x=1');
    assert.equal(seen.method, 'POST');
    assert.equal(seen.body, 'some body');
    assert.equal(seen.headers['x-custom'], 'kept');
    assert.equal(seen.headers['x-forwarded-prefix'], '/app/tenant-a/web');
    for (const h of ['authorization', 'cookie', 'micro-namespace']) assert.equal(seen.headers[h], undefined, `${h} reached the app`);
    assert.deepEqual(seen.micro, [], 'the app holds none of the platform credentials');
    // without its slash: redirected to it, so the app's relative links work
    const bare = await visit('/app/tenant-a/web?y=2');
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.get('location'), '/app/tenant-a/web/?y=2');

    // its sandbox: no network beyond its own (not the gateway), none of the server's secrets
    const port = new URL(p.url).port;
    const probe = (await (await visit(`/app/tenant-a/web/?connect=${port}&read=/etc/shadow`)).json()) as { connect: string; read: string };
    assert.notEqual(probe.connect, 'reached');
    assert.notEqual(probe.read, 'read');

    const logs = (await ok(k, 'Logs', { name: 'web' })).logs as string;
    assert.match(logs, /request POST \/hello\?x=1/);
    assert.doesNotMatch((await ok(k, 'Logs', { name: 'web', logs_type: 'build' })).logs, /request POST/);

    // Update: the branch's latest commit, with new env_vars, replaces the running app
    writeFileSync(join(dir, 'web', 'server.js'), server(2));
    git('commit', '-q', '-am', 'v2');
    await ok(k, 'Update', { name: 'web', env_vars: { GREETING: 'hello again' } });
    const v2 = (await (await visit('/app/tenant-a/web/')).json()) as { version: number; greeting: string };
    assert.deepEqual([v2.version, v2.greeting], [2, 'hello again']);
    // an update whose app crashes at start answers why and leaves the running one serving
    writeFileSync(join(dir, 'web', 'server.js'), "throw new Error('broken v3');\n");
    git('commit', '-q', '-am', 'v3');
    await refused(k, 'Update', { name: 'web' }, 400, /broken v3/);
    assert.equal(((await (await visit('/app/tenant-a/web/')).json()) as { version: number }).version, 2);
    writeFileSync(join(dir, 'web', 'server.js'), server(2));
    git('commit', '-q', '-am', 'v2 again');
    const status = (await ok(k, 'Status', { name: 'web' })).service;
    assert.equal(status.status, 'running');
    assert.deepEqual(status.env_vars, { GREETING: 'hello again' });
    assert.equal((await ok(k, 'Resolve', { id: status.id })).url, status.url);
    assert.deepEqual(((await ok(k, 'List', {})).services as { name: string }[]).map((s) => s.name), ['web']);

    await ok(k, 'Delete', { name: 'web' });
    assert.equal((await visit('/app/tenant-a/web/')).status, 404);
    await refused(k, 'Get', { name: 'web' }, 404, /no app named web/);
  });

  it('shows an app that does not listen on $PORT as an error, and the platform goes on', async () => {
    const k = p.a.key;
    await ok(k, 'Run', { name: 'web', repo: REPO });
    const quiet = (await ok(k, 'Run', { name: 'quiet', repo: REPO, branch: 'quiet' })).service;
    assert.match(quiet.status, /^error: app-quiet did not answer HTTP on \$PORT \(8080\) within 8 s/);
    assert.match((await ok(k, 'Status', { name: 'quiet' })).service.status, /did not answer HTTP/);
    assert.match((await ok(k, 'Logs', { name: 'quiet' })).logs, /working, not listening/);
    const gone = await visit('/app/tenant-a/quiet/');
    assert.equal(gone.status, 404);
    assert.match(((await gone.json()) as { detail: string }).detail, /no app named quiet is running/);
    // the other app and other tenants are unaffected
    assert.equal((await visit('/app/tenant-a/web/')).status, 200);
    assert.deepEqual((await ok(p.b.key, 'List', {})).services, []);
    // Run again after a failure is allowed (it replaces the failed one); it fails the same way
    assert.match((await ok(k, 'Run', { name: 'quiet', repo: REPO, branch: 'quiet' })).service.status, /^error: /);
    await ok(k, 'Delete', { name: 'quiet' });
  });

  it("keeps tenants apart: b cannot reach or alter a's app by its name, its id or its path", async () => {
    const a = p.a.key;
    const b = p.b.key;
    const web = (await ok(a, 'Get', { name: 'web' })).service;
    await refused(b, 'Get', { name: 'web' }, 404, /no app named web/);
    await refused(b, 'Status', { name: 'web' }, 404, /no app named web/);
    await refused(b, 'Logs', { name: 'web' }, 404, /no app named web/);
    await refused(b, 'Update', { name: 'web', env_vars: { GREETING: 'pwned' } }, 404, /no app named web/);
    await refused(b, 'Delete', { name: 'web' }, 404, /no app named web/);
    await refused(b, 'Resolve', { id: web.id }, 404, /no app with id/);
    assert.deepEqual((await ok(b, 'List', {})).services, []);
    // by path: only its own namespace's apps are found under it, whatever the path says
    for (const path of ['/app/tenant-b/web/', '/app/tenant-a/Web/', '/app/tenant-a/app-web/', '/app//web/', '/app/tenant-a%2Fweb/x/', '/app/micro/app/']) {
      const r = await visit(path, { headers: { authorization: `Bearer ${b}` } });
      assert.equal(r.status, 404, `${path}: ${r.status}`);
    }
    // nor can b point the proxy at anything but its own sandbox's sockets: the registry refuses the node
    const port = new URL(p.url).port;
    for (const address of [`tcp://127.0.0.1:${port}`, 'tcp://127.0.0.1:5432', 'unix:///etc/passwd']) {
      const node = { id: 'evil', address, metadata: { protocol: 'http' } };
      const r = await p.call(b, 'registry', 'Register', { service: { name: 'app-evil', version: 'app', endpoints: [], nodes: [node] }, ttl: 30 });
      assert.equal(r.status, 403, `${address}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await visit('/app/tenant-b/evil/')).status, 404);
    // a's app answers as it did: b's attempts changed nothing
    assert.equal(((await (await visit('/app/tenant-a/web/')).json()) as { greeting: string }).greeting, '');
    await ok(a, 'Delete', { name: 'web' });
  });

  it('the runtime: an admin of micro runs an app outside the sandbox (a free port of the host, a TCP bridge); asTenant takes trust away', async () => {
    const repo = join(dir, 'web');
    const frames = await p.stream(p.adminToken, 'runtime', 'Create', { source: repo, name: 'app-plain', app: { port: 8080 }, env: { GREETING: 'micro' } }, { timeout: 60_000 }).frames;
    const done = frames.at(-1) as { step?: string; service?: { state: string; app?: { port: number } } };
    assert.equal(done.step, 'done', JSON.stringify(frames.at(-1)));
    assert.equal(done.service?.state, 'running');
    assert.deepEqual(done.service?.app, { port: 8080 });
    const seen = (await (await visit('/app/micro/plain/')).json()) as { greeting: string; port: string; micro: string[] };
    assert.equal(seen.greeting, 'micro');
    assert.notEqual(seen.port, '8080', 'outside a sandbox the app is given a free port');
    assert.deepEqual(seen.micro, []);
    assert.equal((await p.call(p.adminToken, 'runtime', 'Delete', { name: 'app-plain' })).status, 200);
    assert.equal((await visit('/app/micro/plain/')).status, 404);
    // the same folder, for a tenant (asTenant): a path of the server's machine is refused
    const [refusal] = await p.stream(p.adminToken, 'runtime', 'Create', { source: repo, name: 'app-x', namespace: 'tenant-a', app: { port: 8080 }, asTenant: true }).frames;
    assert.equal(refusal.error?.code, 403, JSON.stringify(refusal));
  });

  it('reserves a name for an hour, within the namespace bound', async () => {
    const r = (await ok(p.a.key, 'Reserve', { name: 'later' })).reservation;
    assert.equal(r.name, 'later');
    assert.ok(Date.parse(r.expires) - Date.parse(r.created) === 3_600_000);
    assert.equal((await ok(p.a.key, 'Reserve', { name: 'later' })).reservation.token, r.token);
    assert.notEqual((await ok(p.b.key, 'Reserve', { name: 'later' })).reservation.token, r.token);
    for (let i = 0; i < 3; i++) await ok(p.b.key, 'Reserve', { name: `r${i}` });
    await refused(p.b.key, 'Reserve', { name: 'r4' }, 403, /4 apps and reservations/);
    await refused(p.b.key, 'Run', { name: 'r5', repo: REPO }, 403, /4 apps and reservations/);
  });
});
