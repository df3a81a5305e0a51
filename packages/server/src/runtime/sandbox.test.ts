import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { authService, bearer, Client, createClient, createLogger, runtime, TokenSource, type RuntimeService } from '@micro/sdk';
import { engineUrl, privateNats, privateRedis, testPrefix } from '@micro/sdk/testing';
import { MicroServer } from '../server.js';
import { dropSchema } from '../auth/testing.js';

/*
 * Tenant services attack the machine for real, against a running micro server: they try
 * to read its secrets, other namespaces' folders and /proc, to write outside their
 * folder, to reach loopback ports and another namespace's socket, to fork and allocate
 * past their limits, and their npm postinstall script tries the same at build time.
 * Each attack reports what it got through an endpoint; the test fails if one got through.
 * Controls (its own folder, its /tmp, the server's unix socket) show the probe works.
 */

const ci = process.env.CI === 'true' || process.env.MICRO_REQUIRE_ENGINES === '1';
const why = process.getuid?.() !== 0 ? 'not root' : spawnSync('bwrap', ['--version']).status !== 0 ? 'bwrap is not installed' : undefined;
if (why && ci) throw new Error(`sandbox tests need root and bwrap in CI: ${why}`);
if (why) console.log(`# skipping the sandbox tests: ${why}`);

const silent = createLogger({ level: 'silent' });
const MiB = 1024 * 1024;
const LIMITS = { memory: 96 * MiB, pids: 64 };
/** the neighbour's folder may hold this much */
const DISK = 4 * MiB;

/** What the probe tries; the test writes it into the source, so the postinstall script sees it too. */
interface Targets {
  read: string[];
  write: string[];
  tcp: string[];
  unix: string[];
  /** must work: its own folder, its /tmp, the server's socket */
  control: { read: string; write: string[]; unix: string };
}

interface Report {
  uid: number;
  env: string[];
  read: Record<string, string>;
  write: Record<string, string>;
  tcp: Record<string, string>;
  unix: Record<string, string>;
  procPids: string[];
  /** soft:hard RLIMIT_NOFILE */
  nofile: string;
  control: { read: string; write: Record<string, string>; unix: string; self?: string };
}

const ATTACK = `import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
const tryConnect = (opts) => new Promise((resolve) => {
  const s = connect(opts);
  const timer = setTimeout(() => { s.destroy(); resolve('TIMEOUT'); }, 2000);
  s.once('connect', () => { clearTimeout(timer); s.destroy(); resolve('CONNECTED'); });
  s.once('error', (e) => { clearTimeout(timer); resolve(e.code); });
});
const read = (p) => { try { if (statSync(p).isDirectory()) readdirSync(p); else readFileSync(p); return 'READ'; } catch (e) { return e.code; } };
const write = (p) => { try { writeFileSync(p, 'pwned'); return 'WROTE'; } catch (e) { return e.code; } };
export async function attack(dir) {
  const t = JSON.parse(readFileSync(dir + '/targets.json', 'utf8'));
  const r = { uid: process.getuid(), env: Object.keys(process.env), read: {}, write: {}, tcp: {}, unix: {}, procPids: [], control: { write: {} } };
  for (const p of t.read) r.read[p] = read(p);
  for (const p of t.write) r.write[p] = write(p);
  for (const a of t.tcp) { const [host, port] = a.split(':'); r.tcp[a] = await tryConnect({ host, port: Number(port) }); }
  for (const p of t.unix) r.unix[p] = await tryConnect({ path: p });
  r.procPids = readdirSync('/proc').filter((x) => /^\\d+$/.test(x));
  r.nofile = /^Max open files\\s+(\\d+)\\s+(\\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.slice(1).join(':');
  r.control.read = read(t.control.read);
  for (const p of t.control.write) r.control.write[p] = write(p);
  r.control.unix = await tryConnect({ path: t.control.unix });
  // services of its namespace reach it: its own socket, in the folder they share
  if (process.env.MICRO_SERVICE_ADDRESS) r.control.self = await tryConnect({ path: process.env.MICRO_SERVICE_ADDRESS.slice('unix://'.length) });
  return r;
}
`;

const MAIN = `import { readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { defineService, endpoint, run, z } from '@micro/sdk';
import { attack } from './attack.js';
const dir = process.cwd();
const def = defineService({ name: process.env.MICRO_SERVICE_NAME, version: '1.0.0', endpoints: {
  Probe: endpoint({ request: z.object({}), response: z.object({ live: z.string(), build: z.string() }) }),
  Fork: endpoint({ request: z.object({ n: z.number() }), response: z.object({ started: z.number(), failed: z.number() }) }),
  Hog: endpoint({ request: z.object({ mib: z.number() }), response: z.object({ ok: z.boolean() }) }),
  Fill: endpoint({ request: z.object({ mib: z.number() }), response: z.object({ ok: z.boolean() }) }),
} });
const kept = [];
await run(def, {
  Probe: async () => ({ live: JSON.stringify(await attack(dir)), build: readFileSync(dir + '/build-report.json', 'utf8') }),
  Fork: async ({ n }) => {
    const results = await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
      const c = spawn('sleep', ['3'], { stdio: 'ignore' });
      c.once('spawn', () => resolve(c));
      c.once('error', () => resolve(undefined));
    })));
    for (const c of results) c?.kill('SIGKILL');
    return { started: results.filter(Boolean).length, failed: results.filter((c) => !c).length };
  },
  // the file is written after the answer: the disk check may stop the service at once,
  // and the call must not race it
  Fill: async ({ mib }) => {
    setTimeout(() => writeFileSync(dir + '/filler', Buffer.alloc(mib * ${MiB}, 1)), 50);
    return { ok: true };
  },
  Hog: async ({ mib }) => {
    for (let i = 0; i < mib; i++) kept.push(Buffer.alloc(${MiB}, i));
    return { ok: true };
  },
});
`;

/** A tenant service with a local dependency, so that npm install (and its postinstall) runs. */
function prober(dir: string, name: string, targets: Targets): string {
  const files: Record<string, string> = {
    'package.json': JSON.stringify({ name, version: '1.0.0', private: true, type: 'module', scripts: { postinstall: 'node postinstall.js' }, dependencies: { '@micro/sdk': '0.1.0', leftpad: 'file:./leftpad' } }),
    'leftpad/package.json': JSON.stringify({ name: 'leftpad', version: '1.0.0', main: 'index.js' }),
    'leftpad/index.js': 'module.exports = (s) => s;\n',
    'attack.js': ATTACK,
    'postinstall.js': "import { writeFileSync } from 'node:fs';\nimport { attack } from './attack.js';\nwriteFileSync('build-report.json', JSON.stringify(await attack(process.cwd())));\n",
    'main.js': MAIN,
    'targets.json': JSON.stringify(targets),
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('sandboxed tenant services', { skip: why }, () => {
  const root = mkdtempSync(join(tmpdir(), 'micro-sandbox-'));
  const home = join(root, 'home');
  let server: MicroServer;
  let api: ReturnType<typeof createClient<typeof runtime>>;
  let token: string;
  let listener: Server;
  let listenerPort = 0;
  const services: RuntimeService[] = [];

  async function call<T>(namespace: string, service: string, endpoint: string, body: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${server.gatewayUrl}/v1/${service}/${endpoint}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'micro-namespace': namespace, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  async function create(namespace: string, source: string): Promise<RuntimeService> {
    let last: RuntimeService | undefined;
    for await (const p of api.Create({ source, namespace })) if (p.service) last = p.service;
    assert.ok(last, 'Create answered the service');
    services.push(last);
    return last;
  }

  async function status(namespace: string, name: string): Promise<RuntimeService> {
    const { services: found } = await api.Read({ name, namespace });
    return found[0] as RuntimeService;
  }

  before(async () => {
    listener = createServer((s) => s.destroy());
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    listenerPort = (listener.address() as { port: number }).port;
    server = new MicroServer({
      home,
      address: 'tcp://127.0.0.1:0',
      gateway: 'tcp://127.0.0.1:0',
      logger: silent,
      runtime: { backoff: { initial: 200, max: 1_000 }, timing: { startTimeout: 30_000, stopTimeout: 3_000, drainDelay: 100 } },
      sandbox: { mode: 'on', limitsFor: (ns) => (ns === 'acme' ? LIMITS : { disk: DISK }), diskCheckEvery: 200 },
    });
    await server.start();
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const plain = new Client({ address: server.address, namespace: 'micro', preferLocal: false });
    token = (await createClient(authService, plain).Token(admin)).token;
    const client = new Client({ address: server.address, namespace: 'micro', preferLocal: false, timeout: 120_000, middleware: [bearer(new TokenSource(admin, plain))] });
    api = createClient(runtime, client);
  });

  after(async () => {
    for (const s of services) await api.Delete({ name: s.name, namespace: s.namespace }).catch(() => undefined);
    await server?.stop();
    listener?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('keeps a tenant away from the server\'s files, other namespaces, /proc and loopback, at run and at build time', async () => {
    const globex = await create('globex', prober(join(root, 'src', 'globex'), 'neighbour', emptyTargets()));
    assert.equal(globex.state, 'running');
    const globexBuild = join(home, 'runtime', 'builds', 'globex', 'neighbour');
    const globexBuildDir = join(globexBuild, readdirSync(globexBuild)[0] as string);
    const rpcPort = new URL(server.address.replace('tcp:', 'http:')).port;
    const gatewayPort = new URL(server.gatewayUrl as string).port;
    const ids = () => JSON.parse(readFileSync(join(home, 'runtime', 'sandbox-ids.json'), 'utf8')) as Record<string, number>;
    const socketOf = (ns: string) => (server.sandbox as NonNullable<typeof server.sandbox>).socketDir(ns);
    const neighbourSocket = join(socketOf('globex'), readdirSync(socketOf('globex')).find((f) => f.endsWith('.sock')) as string);

    const acmeSrc = join(root, 'src', 'acme');
    const targets: Targets = {
      read: [
        join(home, 'server', 'admin.json'),
        join(home, 'server', 'jwt-keys.json'),
        join(home, 'server', 'config-secret.key'),
        join(home, 'server'),
        join(home, 'data', 'auth.db'),
        join(home, 'runtime', 'state.json'),
        join(home, 'logs'),
        globexBuildDir,
        join(globexBuildDir, 'main.js'),
        '/proc/1/environ',
        `/proc/${process.pid}/environ`,
        '/root',
        '/etc/shadow',
      ],
      write: [join(home, 'pwned'), join(home, 'server', 'pwned'), join(globexBuildDir, 'pwned'), '/usr/pwned', '/pwned', join(dirname(acmeSrc), 'pwned')],
      tcp: [`127.0.0.1:${rpcPort}`, `127.0.0.1:${gatewayPort}`, `127.0.0.1:${listenerPort}`, '127.0.0.1:5432', '127.0.0.1:6379', '127.0.0.1:4222'],
      unix: [neighbourSocket],
      control: { read: 'package.json', write: ['own-file', '/tmp/own-file'], unix: (server.sandbox?.serverAddress ?? '').slice('unix://'.length) },
    };
    const acme = await create('acme', prober(acmeSrc, 'prober', targets));
    assert.equal(acme.state, 'running');
    const res = await call<{ live: string; build: string }>('acme', 'prober', 'Probe', {});
    assert.equal(res.status, 200, JSON.stringify(res.body));
    if (process.env.MICRO_SANDBOX_TEST_VERBOSE) console.log(res.body.live, res.body.build);
    for (const [when, report] of [['run', JSON.parse(res.body.live)], ['build', JSON.parse(res.body.build)]] as [string, Report][]) {
      assert.equal(report.control.read, 'READ', `${when}: the probe reads its own folder`);
      assert.deepEqual(Object.values(report.control.write), ['WROTE', 'WROTE'], `${when}: it writes its own folder and /tmp`);
      assert.equal(report.uid, ids().acme, `${when}: it runs as the uid of its namespace`);
      assert.notEqual(report.uid, 0);
      for (const [p, got] of Object.entries(report.read)) assert.notEqual(got, 'READ', `${when}: it read ${p}`);
      for (const [p, got] of Object.entries(report.write)) assert.notEqual(got, 'WROTE', `${when}: it wrote ${p}`);
      for (const [a, got] of Object.entries(report.tcp)) assert.notEqual(got, 'CONNECTED', `${when}: it reached ${a}`);
      assert.ok(report.procPids.length <= 4, `${when}: it sees only its own processes in /proc (${report.procPids.join(', ')})`);
      assert.ok(!report.env.includes('MICRO_HOME'), `${when}: no MICRO_HOME in its environment`);
      assert.equal(report.nofile, '1024:1024', `${when}: open files are bounded (MICRO_SANDBOX_NOFILE's default)`);
      assert.ok(!report.env.some((k) => /POSTGRES|REDIS|NATS|AUTH_KEY/.test(k)), `${when}: no engine URLs or server keys`);
    }
    const live = JSON.parse(res.body.live) as Report;
    assert.equal(live.control.unix, 'CONNECTED', 'it reaches the server through its socket');
    assert.equal(live.control.self, 'CONNECTED', 'its namespace\'s socket folder is reachable from its sandbox');
    for (const [p, got] of Object.entries(live.unix)) assert.notEqual(got, 'CONNECTED', `it reached another namespace's socket ${p}`);
    assert.notEqual(ids().globex, ids().acme, 'each namespace has its own uid');
    assert.ok(!existsSync(join(home, 'pwned')) && !existsSync(join(globexBuildDir, 'pwned')));
  });

  it('bounds the processes a tenant may start', async () => {
    const res = await call<{ started: number; failed: number }>('acme', 'prober', 'Fork', { n: 150 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(res.body.failed > 0 && res.body.started < LIMITS.pids, `started ${res.body.started} of 150 with a limit of ${LIMITS.pids}`);
  });

  it('stops a tenant over its memory limit, restarts it and says why in status', async () => {
    const res = await call<unknown>('acme', 'prober', 'Hog', { mib: 400 });
    assert.notEqual(res.status, 200, 'allocating 400 MiB within 96 MiB failed');
    const svc = await waitFor('a restart after the OOM kill', async () => {
      const s = await status('acme', 'prober');
      return s.instances[0]?.restarts && s.instances[0].state === 'running' ? s : undefined;
    });
    assert.match(svc.instances[0]?.lastError ?? '', /stopped: over its memory limit of 96 MiB/);
    const again = await call<{ live: string }>('acme', 'prober', 'Probe', {});
    assert.equal(again.status, 200, 'it serves again after the restart');
  });

  it('stops a tenant whose folder grows past its disk limit, with the reason in status', async () => {
    const res = await call<unknown>('globex', 'neighbour', 'Fill', { mib: 8 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const svc = await waitFor('the disk check to stop it', async () => {
      const s = await status('globex', 'neighbour');
      return /disk limit/.test(s.instances[0]?.lastError ?? '') ? s : undefined;
    });
    assert.match(svc.instances[0]?.lastError ?? '', /stopped: its folder uses more than its disk limit of 4 MiB/);
  });

  it('removes an instance\'s cgroups when it ends', async () => {
    const groups = join('/sys/fs/cgroup/pids/micro', server.sandbox?.tag ?? '', 'acme');
    const group = readdirSync(groups, { withFileTypes: true }).find((d) => d.isDirectory() && d.name.startsWith('prober-'));
    assert.ok(group, 'the instance has a group');
    // CPU: one core (MICRO_SANDBOX_CPU's default) as a CFS quota
    const cpu = join('/sys/fs/cgroup/cpu/micro', server.sandbox?.tag ?? '', 'acme', group.name);
    assert.equal(readFileSync(join(cpu, 'cpu.cfs_quota_us'), 'utf8').trim(), readFileSync(join(cpu, 'cpu.cfs_period_us'), 'utf8').trim());
    await api.Delete({ name: 'prober', namespace: 'acme' });
    // the stop was graceful: SIGTERM reached the service inside (SIGTERM to bwrap would kill it)
    const log: string[] = [];
    for await (const l of api.Logs({ name: 'prober', namespace: 'acme', lines: 20 })) log.push(l.line);
    assert.ok(log.some((l) => /stopped \(exited with code 0\)/.test(l)), log.join('\n'));
    // a group is removed once the kernel has reaped its last process
    await waitFor('the cgroups removed', async () => (readdirSync(groups, { withFileTypes: true }).some((d) => d.isDirectory()) ? undefined : true));
  });
});

describe('a server that cannot sandbox', { skip: process.getuid?.() !== 0 ? 'not root' : undefined }, () => {
  /** Starts a server whose PATH has no bwrap (it looks for bwrap, setpriv and prlimit there). */
  async function withoutBwrap<T>(mode: 'auto' | 'on', fn: (server: MicroServer, home: string) => Promise<T>): Promise<T> {
    const home = mkdtempSync(join(tmpdir(), 'micro-nosandbox-'));
    const path = process.env.PATH;
    process.env.PATH = join(home, 'bin');
    const server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: false, logger: silent, sandbox: { mode } });
    try {
      await server.start().finally(() => (process.env.PATH = path));
      return await fn(server, home);
    } finally {
      process.env.PATH = path;
      await server.stop();
      rmSync(home, { recursive: true, force: true });
    }
  }

  it('refuses micro run of other namespaces with the reason, and still runs micro\'s', async () => {
    await withoutBwrap('auto', async (server, home) => {
      assert.match(server.sandbox?.unavailable ?? '', /bwrap is not installed/);
      const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
      const plain = new Client({ address: server.address, namespace: 'micro', preferLocal: false });
      const api = createClient(runtime, new Client({ address: server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(new TokenSource(admin, plain))] }));
      const source = join(home, 'nothing-here');
      const err = await (async () => {
        for await (const p of api.Create({ source, namespace: 'acme' })) void p;
      })().then(
        () => undefined,
        (e: { code: number; detail: string }) => e,
      );
      assert.equal(err?.code, 503);
      assert.match(err?.detail ?? '', /cannot sandbox services \(bwrap is not installed.*namespace acme.*MICRO_RUNTIME_SANDBOX=off/);
      // micro is not sandboxed: its request gets as far as the source (which does not exist)
      const micro = await (async () => {
        for await (const p of api.Create({ source, namespace: 'micro' })) void p;
      })().then(
        () => undefined,
        (e: { code: number; detail: string }) => e,
      );
      assert.ok(micro && micro.code !== 503 && !/cannot sandbox/.test(micro.detail), `micro's run failed for its source, not the sandbox: ${micro?.detail}`);
    });
  });

  it('does not start with MICRO_RUNTIME_SANDBOX=on', async () => {
    await assert.rejects(
      withoutBwrap('on', async () => undefined),
      /MICRO_RUNTIME_SANDBOX=on but this server cannot sandbox services: bwrap is not installed/,
    );
  });
});

describe('sandboxed tenant services on the nats profile', { skip: why }, () => {
  it('get the node\'s unix RPC socket and never the engines\' URLs or ports', { timeout: 240_000 }, async (t) => {
    const postgres = await engineUrl(t, 'postgres');
    if (!postgres) return;
    const nats = await privateNats(t);
    const redis = await privateRedis(t);
    const prefix = testPrefix('sandbox');
    const env: Record<string, string> = { MICRO_PROFILE: 'nats', MICRO_NATS_URL: nats.url, MICRO_POSTGRES_URL: postgres, MICRO_REDIS_URL: redis.url, MICRO_PREFIX: prefix, MICRO_AUTH_KEY: 'k'.repeat(48) };
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    const root = mkdtempSync(join(tmpdir(), 'micro-sandbox-nats-'));
    const home = join(root, 'home');
    // the server reads its profile from the environment at start
    Object.assign(process.env, env);
    const server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: 'tcp://127.0.0.1:0', logger: silent, sandbox: { mode: 'on' } });
    t.after(async () => {
      await server.stop();
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
      await dropSchema(postgres, prefix).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    });
    await server.start();
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const plain = new Client({ address: server.address, namespace: 'micro', preferLocal: false });
    const token = (await createClient(authService, plain).Token(admin)).token;
    const api = createClient(runtime, new Client({ address: server.address, namespace: 'micro', preferLocal: false, timeout: 120_000, middleware: [bearer(new TokenSource(admin, plain))] }));
    const port = (url: string) => new URL(url).port;
    const targets: Targets = {
      read: [join(home, 'server', 'admin.json')],
      write: [],
      tcp: [`127.0.0.1:${port(nats.url)}`, `127.0.0.1:${port(redis.url)}`, `127.0.0.1:${port(postgres) || '5432'}`],
      unix: [],
      control: { read: 'package.json', write: [], unix: (server.sandbox?.serverAddress ?? '').slice('unix://'.length) },
    };
    const src = prober(join(root, 'src', 'acme'), 'prober', targets);
    for await (const p of api.Create({ source: src, namespace: 'acme' })) void p;
    const res = await fetch(`${server.gatewayUrl}/v1/prober/Probe`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'micro-namespace': 'acme', 'content-type': 'application/json' },
      body: '{}',
    });
    const body = (await res.json()) as { live: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    const live = JSON.parse(body.live) as Report;
    assert.equal(live.control.unix, 'CONNECTED', 'it reaches the node through its unix socket');
    assert.equal(live.control.self, 'CONNECTED');
    for (const k of ['MICRO_NATS_URL', 'MICRO_PROFILE', 'MICRO_PREFIX', 'MICRO_POSTGRES_URL', 'MICRO_REDIS_URL', 'MICRO_AUTH_KEY']) assert.ok(!live.env.includes(k), `no ${k} in its environment`);
    for (const [a, got] of Object.entries(live.tcp)) assert.notEqual(got, 'CONNECTED', `it reached the engine at ${a}`);
    for (const [p, got] of Object.entries(live.read)) assert.notEqual(got, 'READ', `it read ${p}`);
    await api.Delete({ name: 'prober', namespace: 'acme' });
  });
});

function emptyTargets(): Targets {
  return { read: [], write: [], tcp: [], unix: [], control: { read: 'package.json', write: [], unix: '/nonexistent' } };
}
