import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

/**
 * The function service on a real micro server: functions built and run by the runtime in
 * the tenant's sandbox (root and bwrap, as in CI; elsewhere these tests skip, saying why).
 */
const canSandbox = process.getuid?.() === 0 && spawnSync('bwrap', ['--version']).status === 0;
const required = process.env.CI === 'true' || process.env.MICRO_REQUIRE_ENGINES === '1';
if (!canSandbox && required) throw new Error('the function tests run sandboxed in CI: they need root and bwrap');
const skip = canSandbox ? false : 'functions run in the sandbox: this machine has no root or no bwrap';

/** One function that shows what its sandbox lets it do. */
const SOURCE = `
import { readdirSync } from 'node:fs';
export default async function (req) {
  console.log('called with ' + JSON.stringify(req));
  if (req.loop) for (;;) {}
  if (req.allocate) { const a = []; for (;;) a.push(new Array(1e6).fill(Math.random())); }
  if (req.throw) throw new Error(req.throw);
  if (req.list) { try { return { files: readdirSync(req.list) }; } catch (e) { return { error: e.code }; } }
  if (req.connect) { try { await fetch(req.connect); return { reached: true }; } catch (e) { return { error: String(e.cause?.code ?? e.message) }; } }
  if (req.scalar) return 42;
  return { hello: req.name ?? 'world', version: 1 };
}
`;

describe('function', { skip }, () => {
  let p: Platform;
  before(async (t) => {
    // short limits so that the tests see them act: a 2 s call, 2 s of idleness
    process.env.MICRO_FUNCTION_TIMEOUT = '2';
    process.env.MICRO_FUNCTION_IDLE = '2';
    process.env.MICRO_FUNCTION_MAX = '5';
    p = (await startPlatform(t as never, { services: [service] })) as Platform;
  });
  after(async () => {
    await p?.close();
    delete process.env.MICRO_FUNCTION_TIMEOUT;
    delete process.env.MICRO_FUNCTION_IDLE;
    delete process.env.MICRO_FUNCTION_MAX;
  });

  const ok = async (key: string, endpoint: string, body: unknown) => {
    const r = await p.call(key, 'function', endpoint, body);
    assert.equal(r.status, 200, `${endpoint}: ${JSON.stringify(r.body)}`);
    await expectShape('function', endpoint, r.body);
    return r.body;
  };
  const refused = async (key: string, endpoint: string, body: unknown, status: number, detail: RegExp) => {
    const r = await p.call(key, 'function', endpoint, body);
    assert.equal(r.status, status, `${endpoint} ${JSON.stringify(body).slice(0, 100)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.id, 'function');
    assert.match(r.body.detail, detail);
  };

  it('lists its regions and runtimes', async () => {
    assert.deepEqual((await ok(p.a.key, 'Regions', {})).regions, ['local']);
    assert.deepEqual((await ok(p.a.key, 'Runtimes', {})).runtimes, ['nodejs20', 'typescript']);
  });

  it('refuses wrong, missing, oversized and hostile input', async () => {
    const k = p.a.key;
    await refused(k, 'Deploy', { source: SOURCE }, 400, /Missing name/);
    await refused(k, 'Deploy', { name: 'x' }, 400, /Missing source/);
    for (const name of ['../etc', 'Upper', 'a--b', 'end-', 'x'.repeat(64), 'a;rm -rf', 'fn/x', '1abc']) await refused(k, 'Deploy', { name, source: SOURCE }, 400, /not a function name/);
    await refused(k, 'Deploy', { name: 'big', source: 'x'.repeat(256 * 1024 + 1) }, 400, /source/);
    await refused(k, 'Deploy', { name: 'x', source: SOURCE, runtime: 'python3' }, 400, /runtime "python3" is not one of nodejs20, typescript/);
    await refused(k, 'Deploy', { name: 'x', source: SOURCE, region: 'mars' }, 400, /region "mars"/);
    await refused(k, 'Deploy', { name: 'x', source: SOURCE, repo: 'https://github.com/a/b' }, 400, /repo:/);
    await refused(k, 'Deploy', { name: 'x', source: SOURCE, entrypoint: 'a.b()' }, 400, /entrypoint/);
    await refused(k, 'Deploy', { name: 'x', source: SOURCE, env_vars: { MICRO_SERVER: 'tcp://evil' } }, 400, /MICRO_/);
    await refused(k, 'Deploy', { name: 'x', source: SOURCE, envVars: { 'A=B': '1' } }, 400, /environment variable name/);
    await refused(k, 'Call', { name: 'nothing' }, 404, /no function named nothing/);
    await refused(k, 'Describe', {}, 400, /Missing name/);
    await refused(k, 'Logs', { name: 'nothing', logs_type: 'x' }, 400, /logs_type/);
    await refused(k, 'Proxy', {}, 400, /Missing id/);
    await refused(k, 'Proxy', { id: 'feedbeef' }, 404, /no function with id/);
    const anonymous = await p.call(undefined, 'function', 'List', {});
    assert.equal(anonymous.status, 401);
  });

  it('deploys from source, calls, updates, logs and deletes', async () => {
    const k = p.a.key;
    const deployed = (await ok(k, 'Deploy', { name: 'hello', source: SOURCE, env_vars: { GREETING: 'hi' } })).function;
    assert.equal(deployed.status, 'running');
    assert.equal(deployed.name, 'hello');
    assert.deepEqual(deployed.env_vars, { GREETING: 'hi' });
    assert.match(deployed.url, /\/v1\/fn-hello\/Call$/);
    assert.deepEqual((await ok(k, 'Call', { name: 'hello', request: { name: 'Ada' } })).response, { hello: 'Ada', version: 1 });
    assert.deepEqual((await ok(k, 'Call', { name: 'hello', request: { scalar: true } })).response, { result: 42 });
    await refused(k, 'Deploy', { name: 'hello', source: SOURCE }, 409, /use Update/);
    await refused(k, 'Call', { name: 'hello', request: { throw: 'no luck' } }, 500, /the function threw Error: no luck/);

    await ok(k, 'Update', { name: 'hello', source: SOURCE.replace('version: 1', 'version: 2') });
    assert.deepEqual((await ok(k, 'Call', { name: 'hello', request: {} })).response, { hello: 'world', version: 2 });
    // a source that does not start leaves the running one as it was
    await refused(k, 'Update', { name: 'hello', source: 'export default (' }, 400, /SyntaxError/);
    assert.deepEqual((await ok(k, 'Call', { name: 'hello', request: {} })).response, { hello: 'world', version: 2 });

    const logs = (await ok(k, 'Logs', { name: 'hello' })).logs as string;
    assert.match(logs, /called with \{"name":"Ada"\}/);
    assert.doesNotMatch((await ok(k, 'Logs', { name: 'hello', logs_type: 'build' })).logs, /called with/);
    const listed = (await ok(k, 'List', {})).functions;
    assert.deepEqual(listed.map((f: { name: string }) => f.name), ['hello']);
    assert.equal((await ok(k, 'Proxy', { id: deployed.id })).url, deployed.url);

    await ok(k, 'Delete', { name: 'hello' });
    await refused(k, 'Describe', { name: 'hello' }, 404, /no function named hello/);
    await refused(k, 'Call', { name: 'hello' }, 404, /no function named hello/);
    assert.deepEqual((await ok(k, 'List', {})).functions, []);
  });

  it('shows a build error as the status, with the compiler\'s message', async () => {
    const k = p.a.key;
    const ts = (await ok(k, 'Deploy', { name: 'typed', runtime: 'typescript', source: 'export default (req: { n: number }) => ({ double: req.n * 2 })' })).function;
    assert.equal(ts.status, 'running');
    assert.deepEqual((await ok(k, 'Call', { name: 'typed', request: { n: 21 } })).response, { double: 42 });
    const broken = (await ok(k, 'Deploy', { name: 'broken', runtime: 'typescript', source: 'export default (req) => { return req.n +* 2 }' })).function;
    assert.match(broken.status, /^error: .*error TS1109: Expression expected/s);
    assert.match((await ok(k, 'Describe', { name: 'broken' })).function.status, /^error: /);
    await refused(k, 'Call', { name: 'broken' }, 400, /error TS1109/);
    const js = (await ok(k, 'Deploy', { name: 'badjs', source: 'export default function (' })).function;
    assert.match(js.status, /^error: .*SyntaxError/s);
    const noEntry = (await ok(k, 'Deploy', { name: 'noentry', source: 'export const other = () => 1', entrypoint: 'main' })).function;
    assert.match(noEntry.status, /the module has no function named main \(its exported functions: other\)/);
    for (const name of ['typed', 'broken', 'badjs', 'noentry']) await ok(k, 'Delete', { name });
  });

  it('stops a call that loops forever or allocates without end; the sandbox holds the rest', async () => {
    const k = p.a.key;
    await ok(k, 'Deploy', { name: 'hostile', source: SOURCE });
    await refused(k, 'Call', { name: 'hostile', request: { loop: true } }, 504, /ran longer than its limit of 2 s and was stopped/);
    assert.deepEqual((await ok(k, 'Call', { name: 'hostile', request: { name: 'after' } })).response, { hello: 'after', version: 1 });
    await refused(k, 'Call', { name: 'hostile', request: { allocate: true } }, 500, /more than its memory limit of 128 MiB/);
    assert.deepEqual((await ok(k, 'Call', { name: 'hostile', request: {} })).response, { hello: 'world', version: 1 });
    // the server's home and the data of other tenants are not in its file system
    // (its own build folder is mounted at its path under the home: only that path shows)
    assert.deepEqual((await ok(k, 'Call', { name: 'hostile', request: { list: p.home } })).response, { files: ['runtime'] });
    assert.deepEqual((await ok(k, 'Call', { name: 'hostile', request: { list: `${p.home}/server` } })).response, { error: 'ENOENT' });
    assert.deepEqual((await ok(k, 'Call', { name: 'hostile', request: { list: `${p.home}/runtime/builds` } })).response, { files: ['tenant-a'] });
    assert.ok(!((await ok(k, 'Call', { name: 'hostile', request: { list: '/etc' } })).response.files as string[]).includes('shadow'));
    // and no socket of the host: not the gateway
    const connect = (await ok(k, 'Call', { name: 'hostile', request: { connect: `${p.url}/v1/function/Regions` } })).response;
    assert.notEqual(connect.reached, true);
    assert.match(connect.error as string, /ECONNREFUSED|ENETUNREACH|EADDRNOTAVAIL/);
    // the platform is fine
    assert.deepEqual((await ok(p.b.key, 'Regions', {})).regions, ['local']);
    await ok(k, 'Delete', { name: 'hostile' });
  });

  it('scales an idle function to zero and wakes it on the next call (concurrent calls share one start)', async () => {
    const k = p.a.key;
    await ok(k, 'Deploy', { name: 'sleepy', source: SOURCE });
    let status = '';
    for (let i = 0; i < 100 && status !== 'idle'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await ok(k, 'Describe', { name: 'sleepy' })).function.status;
    }
    assert.equal(status, 'idle');
    const answers = await Promise.all([1, 2, 3].map((n) => ok(k, 'Call', { name: 'sleepy', request: { name: `c${n}` } })));
    assert.deepEqual(answers.map((a) => a.response.hello), ['c1', 'c2', 'c3']);
    assert.equal((await ok(k, 'Describe', { name: 'sleepy' })).function.status, 'running');
    const starts = ((await ok(k, 'Logs', { name: 'sleepy', logs_type: 'build' })).logs as string).split('\n').filter((l) => /start/i.test(l));
    assert.ok(starts.length > 0);
    await ok(k, 'Delete', { name: 'sleepy' });
  });

  it("keeps tenants apart: b cannot reach a's function by its name or its id", async () => {
    const a = p.a.key;
    const b = p.b.key;
    const fn = (await ok(a, 'Deploy', { name: 'mine', source: SOURCE })).function;
    for (const endpoint of ['Describe', 'Call', 'Update', 'Delete', 'Logs']) await refused(b, endpoint, { name: 'mine', source: SOURCE }, 404, /no function named mine/);
    await refused(b, 'Proxy', { id: fn.id }, 404, /no function with id/);
    assert.deepEqual((await ok(b, 'List', {})).functions, []);
    // b's own function of the same name is b's: a's answers stay a's
    await ok(b, 'Deploy', { name: 'mine', source: SOURCE.replace("'world'", "'b'") });
    assert.equal((await ok(b, 'Call', { name: 'mine', request: {} })).response.hello, 'b');
    assert.equal((await ok(a, 'Call', { name: 'mine', request: {} })).response.hello, 'world');
    await ok(b, 'Delete', { name: 'mine' });
    assert.equal((await ok(a, 'Call', { name: 'mine', request: {} })).response.hello, 'world');
    await ok(a, 'Delete', { name: 'mine' });
  });

  it('reserves a name for an hour', async () => {
    const r = (await ok(p.a.key, 'Reserve', { name: 'later' })).reservation;
    assert.equal(r.name, 'later');
    assert.equal(Date.parse(r.expires) - Date.parse(r.created), 3_600_000);
    assert.equal((await ok(p.a.key, 'Reserve', { name: 'later' })).reservation.token, r.token);
    assert.notEqual((await ok(p.b.key, 'Reserve', { name: 'later' })).reservation.token, r.token);
    // reservations count with functions towards the namespace's bound (5 here)
    const c = await p.tenant('tenant-c');
    for (let i = 0; i < 5; i++) await ok(c.key, 'Reserve', { name: `r${i}` });
    await refused(c.key, 'Reserve', { name: 'r5' }, 403, /5 functions and reservations/);
    await refused(c.key, 'Deploy', { name: 'r6', source: SOURCE }, 403, /5 functions and reservations/);
    await ok(c.key, 'Reserve', { name: 'r0' }); // renewing one is not another
  });
});
