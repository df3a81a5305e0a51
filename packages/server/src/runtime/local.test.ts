import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  Client,
  MemoryRegistry,
  MicroError,
  RpcServer,
  Service,
  authService,
  createClient,
  createLogger,
  errors,
  registryHandlers,
  registryService,
  runtime,
  type RuntimeProgress,
  type RuntimeService,
} from '@micro/sdk';
import { processAlive as alive } from '@micro/sdk/testing';
import { LocalRuntime, type RuntimeOptions } from './local.js';
import { runtimeHandlers } from './handlers.js';
import { actingAs } from '../auth/testing.js';
import type { LogLine } from './logs.js';

/*
 * The runtime end to end: real builds (tsc), real processes, a real registry and auth
 * service over RPC that the spawned services register with. One runtime is shared by the
 * tests in order (builds are the slow part), each test leaving what the next expects.
 */

const silent = createLogger({ level: 'silent' });
const ID = 'svc-account';
const SECRET = 'svc-secret';
const root = mkdtempSync(join(tmpdir(), 'micro-runtime-'));
const home = join(root, 'home');
/** every process a test saw, killed at the end whatever happened */
const pids = new Set<number>();
const runtimes: LocalRuntime[] = [];
/** how often the runtime asked for each service's credentials */
const credentialCalls = new Map<string, number>();

interface Platform {
  registry: MemoryRegistry;
  server: RpcServer;
  address: string;
  tokens: { issued: number; refused: number };
  close(): Promise<void>;
}

/** The part of micro server the services need: the registry and auth's Token, over RPC. */
async function startPlatform(): Promise<Platform> {
  const registry = new MemoryRegistry();
  const server = new RpcServer({ logger: silent });
  const address = await server.listen('tcp://127.0.0.1:0');
  const tokens = { issued: 0, refused: 0 };
  const options = { server, namespace: 'micro', registry: new MemoryRegistry(), logger: silent };
  const reg = await new Service(registryService, registryHandlers(registry), options).start();
  const auth = await new Service(
    authService,
    {
      Token: ({ id, secret, namespace }) => {
        if (id !== ID || secret !== SECRET) {
          tokens.refused++;
          throw errors.Unauthorized('auth', 'wrong credentials');
        }
        tokens.issued++;
        return { token: `token-${tokens.issued}`, expiresAt: Math.floor(Date.now() / 1000) + 3600, account: { id, type: 'service', issuer: namespace ?? 'micro', scopes: [] } };
      },
    },
    options,
  ).start();
  return {
    registry,
    server,
    address,
    tokens,
    async close() {
      await reg.stop();
      await auth.stop();
      await server.close();
      await registry.close?.();
    },
  };
}

function runtimeOptions(platform: { registry: RuntimeOptions['registry']; address: string }, at = home): RuntimeOptions {
  return {
    home: at,
    serverAddress: platform.address,
    registry: platform.registry,
    credentials: async (service) => {
      credentialCalls.set(service, (credentialCalls.get(service) ?? 0) + 1);
      return { id: ID, secret: SECRET };
    },
    logger: silent,
    backoff: { initial: 100, max: 400 },
    timing: { startTimeout: 20_000, stopTimeout: 5_000, drainDelay: 200 },
  };
}

function newRuntime(platform: Platform): LocalRuntime {
  const rt = new LocalRuntime(runtimeOptions(platform));
  runtimes.push(rt);
  return rt;
}

// ---- fixtures --------------------------------------------------------------------------

function writeFiles(dir: string, files: Record<string, string>): string {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const pkg = (name: string) => JSON.stringify({ name, version: '0.0.1', private: true, type: 'module', dependencies: { '@micro/sdk': '0.1.0' } });
const tsconfig = JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'dist', rootDir: 'src', skipLibCheck: true },
});

/** A TypeScript service; each call takes 20 ms so that updates catch calls in flight. */
function greeterMain(version: string, extra = ''): string {
  return `import { defineService, endpoint, run, z } from '@micro/sdk';
const greeter = defineService({
  name: 'greeter',
  version: '${version}',
  endpoints: {
    Call: endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string(), pid: z.number() }), idempotent: true }),
  },
});
${extra}
await run(greeter, {
  Call: async ({ name }) => {
    await new Promise((r) => setTimeout(r, 20));
    return { message: \`\${process.env.GREETING ?? 'Hello'} \${name} from ${version}\`, pid: process.pid };
  },
});
console.log('greeter ${version} listening');
`;
}

/** A plain JavaScript service (nothing to compile) that registers under its runtime name. */
function jsMain(version: string, after = ''): string {
  return `import { defineService, endpoint, run, z } from '@micro/sdk';
const def = defineService({ name: process.env.MICRO_SERVICE_NAME, version: '${version}', endpoints: { Ping: endpoint({ request: z.object({}), response: z.object({ version: z.string() }) }) } });
await run(def, { Ping: () => ({ version: '${version}' }) });
${after}
`;
}

const greeterDir = join(root, 'src', 'greeter');
writeFiles(greeterDir, { 'package.json': pkg('@acme/greeter'), 'tsconfig.json': tsconfig, 'src/main.ts': greeterMain('1.0.0') });
// built with `npm run build` (tsc from the PATH the runtime gives), as `micro new` services are
const brokenDir = writeFiles(join(root, 'src', 'broken'), {
  'package.json': JSON.stringify({ ...JSON.parse(pkg('broken')), scripts: { build: 'tsc -p .' } }),
  'tsconfig.json': tsconfig,
  'src/main.ts': "const port: number = 'not a number';\nexport { port };\n",
});
const crasherDir = writeFiles(join(root, 'src', 'crasher'), {
  'package.json': pkg('crasher'),
  'main.js': "console.log('crasher starting');\nthrow new Error('missing config: DATABASE_URL is not set');\n",
});
const flakyDir = writeFiles(join(root, 'src', 'flaky'), {
  'package.json': pkg('flaky'),
  'main.js': jsMain('1.0.0', "setTimeout(() => { console.error('flaky giving up'); process.exit(3); }, 300);"),
});

/** A git repository: tag v1 holds version 1.0.0, the next commit 2.0.0. */
function makeRepo(): { url: string; first: string; second: string } {
  const dir = join(root, 'repo');
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.com', ...args], { cwd: dir, encoding: 'utf8' }).trim();
  writeFiles(dir, { 'package.json': pkg('gitsvc'), 'main.js': jsMain('1.0.0') });
  git('init', '--quiet', '--initial-branch=main');
  git('add', '.');
  git('commit', '--quiet', '-m', 'v1');
  git('tag', 'v1');
  const first = git('rev-parse', 'HEAD');
  writeFiles(dir, { 'main.js': jsMain('2.0.0') });
  git('commit', '--quiet', '-am', 'v2');
  return { url: pathToFileURL(dir).href, first, second: git('rev-parse', 'HEAD') };
}

// ---- helpers -----------------------------------------------------------------------------

function track(svc: RuntimeService): RuntimeService {
  for (const i of svc.instances) if (i.pid) pids.add(i.pid);
  return svc;
}

async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeout = 15_000): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function rejection(p: Promise<unknown>): Promise<MicroError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}


async function lines(rt: LocalRuntime, name: string, n = 200): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const l of rt.logs({ name, lines: n })) out.push(l);
  return out;
}

const one = (rt: LocalRuntime, name: string): RuntimeService => track(rt.readLocal({ name }).services[0] as RuntimeService);
const pidsOf = (svc: RuntimeService) => svc.instances.map((i) => i.pid).sort();

// ---- the tests -----------------------------------------------------------------------------

describe('local runtime', () => {
  let platform: Platform;
  let rt: LocalRuntime;
  let client: Client;
  const call = async () => (await client.call('greeter', 'Call', { name: 'Alice' })) as { message: string; pid: number };

  before(async () => {
    platform = await startPlatform();
    rt = newRuntime(platform);
    await rt.start();
    client = new Client({ registry: platform.registry, namespace: 'micro', preferLocal: false, timeout: 5_000 });
  });

  after(async () => {
    for (const r of runtimes) await r.stop().catch(() => undefined);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await platform?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('builds a TypeScript service from a folder and runs it: registered, callable, with its env, credentials and logs', async () => {
    const progress: RuntimeProgress[] = [];
    const svc = track(await rt.create({ source: greeterDir, instances: 2, env: { GREETING: 'Howdy', API_TOKEN: 'shh-secret' } }, (p) => progress.push(p)));
    assert.equal(svc.name, 'greeter', 'named after package.json without its scope');
    assert.equal(svc.state, 'running');
    assert.equal(svc.version, '1.0.0', 'the version it registered');
    assert.equal(svc.instances.length, 2);
    assert.ok(svc.instances.every((i) => i.state === 'running' && i.pid && i.startedAt));
    assert.deepEqual(svc.env, { GREETING: 'Howdy', API_TOKEN: '••••' });
    assert.ok(svc.build?.id && !svc.build.error, JSON.stringify(svc.build));
    const steps = new Set(progress.map((p) => p.step));
    for (const step of ['fetch', 'build', 'start'] as const) assert.ok(steps.has(step), `progress has ${step}`);
    assert.ok(progress.some((p) => p.message === 'tsc -p .'));

    const res = await call();
    assert.equal(res.message, 'Howdy Alice from 1.0.0');
    assert.ok(pidsOf(svc).includes(res.pid));
    assert.ok(platform.tokens.issued >= 2 && platform.tokens.refused === 0, 'each instance got a token with its credentials');

    const logged = await waitFor('the stdout line', async () => {
      const all = await lines(rt, 'greeter');
      return all.some((l) => l.stream === 'stdout' && l.line === 'greeter 1.0.0 listening') && all;
    });
    assert.ok(logged.some((l) => l.stream === 'runtime' && /ready/.test(l.line)));
    assert.ok(svc.instances.some((i) => logged.some((l) => l.instance === i.id)));

    // the raw secret is only in the private state file
    const state = join(home, 'runtime', 'state.json');
    assert.equal(statSync(state).mode & 0o777, 0o600);
    assert.equal(statSync(join(home, 'runtime')).mode & 0o777, 0o700);
    assert.match(readFileSync(state, 'utf8'), /shh-secret/);
    assert.equal(JSON.stringify(rt.readLocal({})).includes('shh-secret'), false);
  });

  it('refuses bad requests with clear errors and leaves running services alone', async () => {
    const before = pidsOf(one(rt, 'greeter'));
    const conflict = await rejection(rt.create({ source: greeterDir }));
    assert.equal(conflict.code, 409);
    assert.match(conflict.detail, /already running; use micro update greeter/);
    const missing = await rejection(rt.create({ source: join(root, 'no-such-service') }));
    assert.equal(missing.code, 404);
    assert.match(missing.detail, /does not exist/);
    assert.equal((await rejection(rt.create({ source: 'relative/dir' }))).code, 400);
    assert.equal((await rejection(rt.create({ source: flakyDir, instances: 65 }))).code, 400);
    assert.match((await rejection(rt.create({ source: flakyDir, env: { MICRO_SERVER: 'x' } }))).detail, /set by the runtime/);
    assert.equal((await rejection(rt.create({ source: flakyDir, namespace: '../etc' }))).code, 400);
    assert.equal((await rejection(rt.update({ name: 'nosuch' }))).code, 404);
    assert.equal((await rejection(rt.delete({ name: 'nosuch' }))).code, 404);
    assert.throws(() => rt.readLocal({ name: 'nosuch' }), (err: MicroError) => err.code === 404);
    await assert.rejects(rt.logs({ name: 'nosuch' }).next(), (err: MicroError) => err.code === 404);
    await assert.rejects(rt.logs({ name: 'greeter', since: 'yesterday' }).next(), (err: MicroError) => err.code === 400);
    assert.deepEqual(pidsOf(one(rt, 'greeter')), before);
  });

  it("shows a failed build with the compiler's message", async () => {
    const err = await rejection(rt.create({ source: brokenDir }));
    assert.equal(err.code, 400);
    assert.match(err.detail, /npm run build failed/);
    assert.match(err.detail, /src\/main\.ts\(1,7\): error TS2322: Type 'string' is not assignable to type 'number'/);
    const svc = one(rt, 'broken');
    assert.equal(svc.state, 'error');
    assert.match(svc.build?.error ?? '', /TS2322/);
    assert.deepEqual(svc.instances, []);
    assert.equal((await call()).message, 'Howdy Alice from 1.0.0', 'nothing else was disturbed');
  });

  it('reports a service that crashes at start with the end of its stderr', async () => {
    const err = await rejection(rt.create({ source: crasherDir }));
    assert.equal(err.code, 400);
    assert.match(err.detail, /crasher crashed at start: exited with code 1/);
    assert.match(err.detail, /missing config: DATABASE_URL is not set/);
    const svc = one(rt, 'crasher');
    assert.equal(svc.state, 'error');
    assert.match(svc.instances[0]?.lastError ?? '', /DATABASE_URL/);
    assert.equal(svc.instances[0]?.pid, undefined);
    // a new micro run of a service that failed replaces it (here: fails the same way)
    assert.equal((await rejection(rt.create({ source: crasherDir }))).code, 400);
  });

  it('restarts a service that keeps crashing, with backoff, counting restarts', async () => {
    const first = track(await rt.create({ source: flakyDir }));
    assert.equal(first.state, 'running');
    const svc = await waitFor('two restarts', () => {
      const s = one(rt, 'flaky');
      return (s.instances[0]?.restarts ?? 0) >= 2 && s;
    });
    const inst = svc.instances[0];
    assert.match(inst?.lastError ?? '', /exited with code 3/);
    assert.match(inst?.lastError ?? '', /flaky giving up/);
    assert.equal(credentialCalls.get('flaky'), 1, 'restarts reuse the credentials of the instance');
    const log = await lines(rt, 'flaky');
    const delays = log.filter((l) => l.stream === 'runtime' && l.line.startsWith('restarting in')).map((l) => Number(/(\d+) ms/.exec(l.line)?.[1]));
    assert.deepEqual(delays.slice(0, 3), [100, 200, 400].slice(0, Math.min(3, delays.length)), 'the delay doubles');
    await rt.delete({ name: 'flaky' });
    assert.equal(rt.readLocal({}).services.some((s) => s.name === 'flaky'), false);
    assert.throws(() => rt.readLocal({ name: 'flaky' }), (err: MicroError) => err.code === 404);
    assert.ok((await lines(rt, 'flaky')).length > 0, 'the log of a killed service stays');
  });

  it('updates a service instance by instance while calls keep succeeding', async () => {
    const before = one(rt, 'greeter');
    writeFiles(greeterDir, { 'src/main.ts': greeterMain('2.0.0') });
    let calling = true;
    let ok = 0;
    const failures: unknown[] = [];
    const callers = Array.from({ length: 4 }, async () => {
      while (calling) {
        try {
          await call();
          ok++;
        } catch (err) {
          failures.push(err);
        }
      }
    });
    const progress: RuntimeProgress[] = [];
    const after = track(await rt.update({ name: 'greeter' }, (p) => progress.push(p)));
    await new Promise((r) => setTimeout(r, 200));
    calling = false;
    await Promise.all(callers);
    assert.deepEqual(failures, [], 'no call failed during the update');
    assert.ok(ok > 20, `${ok} calls made during the update`);
    assert.equal(after.version, '2.0.0');
    assert.notEqual(after.build?.id, before.build?.id);
    assert.equal(after.instances.length, 2);
    for (const pid of pidsOf(after)) assert.ok(!pidsOf(before).includes(pid), 'every instance was replaced');
    for (const pid of pidsOf(before)) assert.equal(alive(pid as number), false, 'old instances stopped');
    assert.ok(progress.some((p) => /instance 1\/2/.test(p.message)) && progress.some((p) => /instance 2\/2/.test(p.message)));
    assert.equal((await call()).message, 'Howdy Alice from 2.0.0');
    assert.ok(readdirSync(join(home, 'runtime', 'builds', 'micro', 'greeter')).length <= 2, 'old builds are removed');
  });

  it('keeps the old instances when an update does not build or does not start', async () => {
    const before = pidsOf(one(rt, 'greeter'));
    writeFiles(greeterDir, { 'src/main.ts': greeterMain('3.0.0', "const n: number = 'three';") });
    const err = await rejection(rt.update({ name: 'greeter' }));
    assert.match(err.detail, /TS2322/);
    const svc = one(rt, 'greeter');
    assert.deepEqual(pidsOf(svc), before);
    assert.equal(svc.state, 'running');
    assert.match(svc.build?.error ?? '', /TS2322/);
    assert.equal((await call()).message, 'Howdy Alice from 2.0.0');

    // a release that builds but crashes at start: the first new instance fails, nothing changes
    writeFiles(greeterDir, { 'src/main.ts': greeterMain('3.0.0', "throw new Error('bad release');") });
    const crash = await rejection(rt.update({ name: 'greeter' }));
    assert.equal(crash.code, 400);
    assert.match(crash.detail, /crashed at start/);
    assert.match(crash.detail, /bad release/);
    const still = one(rt, 'greeter');
    assert.deepEqual(pidsOf(still), before);
    assert.equal(still.build?.id, svc.build?.id);
    assert.match(still.build?.error ?? '', /did not start/);
    assert.equal((await call()).message, 'Howdy Alice from 2.0.0');
    writeFiles(greeterDir, { 'src/main.ts': greeterMain('2.0.0') });
  });

  it('runs git sources at a tag and at a commit', async () => {
    const repo = makeRepo();
    const [v1, v2] = await Promise.all([rt.create({ source: `${repo.url}@v1`, name: 'gitv1' }), rt.create({ source: `${repo.url}@${repo.second}`, name: 'gitv2' })]);
    track(v1);
    track(v2);
    assert.equal(v1.version, '1.0.0');
    assert.equal(v1.build?.commit, repo.first);
    assert.equal(v2.version, '2.0.0');
    assert.equal(v2.build?.commit, repo.second);
    const ping = new Client({ registry: platform.registry, namespace: 'micro', preferLocal: false });
    assert.deepEqual(await ping.call('gitv1', 'Ping', {}), { version: '1.0.0' });
    const bad = await rejection(rt.create({ source: `${repo.url}@no-such-ref`, name: 'gitbad' }));
    assert.equal(bad.code, 400);
    assert.match(bad.detail, /no branch, tag or commit "no-such-ref"/);
  });

  it('brings services back after a stop and a new start, rebuilding a build that is gone', async () => {
    const before = one(rt, 'greeter');
    const gitBefore = one(rt, 'gitv1');
    await rt.stop();
    for (const pid of [...pidsOf(before), ...pidsOf(gitBefore)]) assert.equal(alive(pid as number), false, 'stop() stops every instance');
    rmSync(join(home, 'runtime', 'builds', 'micro', 'gitv1'), { recursive: true });

    rt = newRuntime(platform);
    await rt.start();
    const back = await waitFor('greeter and gitv1 running again', () => {
      const g = one(rt, 'greeter');
      const v = one(rt, 'gitv1');
      return g.state === 'running' && g.instances.length === 2 && v.state === 'running' && ([g, v] as const);
    });
    assert.equal(back[0].build?.id, before.build?.id, 'greeter came back from its build');
    assert.notEqual(back[1].build?.id, gitBefore.build?.id, 'gitv1 was built again');
    assert.equal(back[1].build?.commit, gitBefore.build?.commit);
    assert.equal((await call()).message, 'Howdy Alice from 2.0.0');
    assert.equal(one(rt, 'broken').state, 'error', 'failed services are still listed as failed');
    assert.equal(one(rt, 'crasher').state, 'error');
  });

  it('stops instances left by a server that died, and only those', async () => {
    // a process the state says is an instance, and that is one (its environment says so)
    const stale = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { env: { MICRO_RUNTIME_INSTANCE: 'greeter-stale' }, stdio: 'ignore' });
    // a process whose pid is recorded, but that is someone else's (a reused pid)
    const stranger = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    for (const c of [stale, stranger]) pids.add(c.pid as number);
    await rt.stop();
    const file = join(home, 'runtime', 'state.json');
    const state = JSON.parse(readFileSync(file, 'utf8')) as { services: { name: string; processes: object[] }[] };
    const greeter = state.services.find((s) => s.name === 'greeter');
    greeter?.processes.push({ id: 'greeter-stale', pid: stale.pid, restarts: 0 }, { id: 'greeter-other', pid: stranger.pid, restarts: 0 });
    writeFileSync(file, JSON.stringify(state));

    rt = newRuntime(platform);
    await rt.start();
    await waitFor('the stale instance stopped', () => stale.exitCode !== null || stale.signalCode !== null);
    assert.equal(alive(stranger.pid as number), true, 'a process that is not ours is left alone');
    stranger.kill('SIGKILL');
    await waitFor('greeter running', () => one(rt, 'greeter').state === 'running');
  });

  it('brings services back after kill -9 of the server', async () => {
    // the "server" is a child process running a runtime; its registry is ours, over RPC
    const serverHome = join(root, 'home-child');
    const script = join(root, 'child-server.mjs');
    const sdkUrl = import.meta.resolve('@micro/sdk');
    const runtimeUrl = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'local.js')).href;
    writeFileSync(
      script,
      `import { Client, RemoteRegistry, createLogger } from ${JSON.stringify(sdkUrl)};
import { LocalRuntime } from ${JSON.stringify(runtimeUrl)};
const [address, home, source] = process.argv.slice(2);
const registry = new RemoteRegistry(new Client({ address, namespace: 'micro', preferLocal: false }));
const rt = new LocalRuntime({ home, serverAddress: address, registry, credentials: async () => ({ id: '${ID}', secret: '${SECRET}' }), logger: createLogger({ level: 'silent' }) });
await rt.start();
const svc = await rt.create({ source, name: 'survivor' });
process.stdout.write(JSON.stringify(svc.instances.map((i) => i.pid)) + '\\n');
setInterval(() => {}, 1000);
`,
    );
    const source = writeFiles(join(root, 'src', 'survivor'), { 'package.json': pkg('survivor'), 'main.js': jsMain('1.0.0') });
    const child = spawn(process.execPath, [script, platform.address, serverHome, source], { stdio: ['ignore', 'pipe', 'inherit'] });
    pids.add(child.pid as number);
    const firstLine = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0] as string);
      });
      child.once('exit', (code) => reject(new Error(`child server exited with ${code}`)));
    });
    const oldPids = JSON.parse(firstLine) as number[];
    for (const p of oldPids) pids.add(p);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const revived = new LocalRuntime(runtimeOptions(platform, serverHome));
    runtimes.push(revived);
    await revived.start();
    const svc = await waitFor('survivor running again', () => {
      const s = track(revived.readLocal({ name: 'survivor' }).services[0] as RuntimeService);
      return s.state === 'running' && s;
    });
    for (const p of oldPids) {
      await waitFor(`old instance ${p} gone`, () => !alive(p));
      assert.ok(!pidsOf(svc).includes(p));
    }
    const ping = new Client({ registry: platform.registry, namespace: 'micro', preferLocal: false });
    assert.deepEqual(await ping.call('survivor', 'Ping', {}), { version: '1.0.0' });
    await revived.stop();
  });

  it('serves the runtime contract over RPC: progress streams, errors, logs', async () => {
    // served as micro server serves it, to an admin (the token check itself is tested with the server)
    const asAdmin = actingAs({ id: 'admin', type: 'admin', issuer: 'micro', scopes: ['admin'] });
    const served = await new Service(runtime, runtimeHandlers(rt), { server: platform.server, namespace: 'micro', registry: new MemoryRegistry(), logger: silent, middleware: [asAdmin] }).start();
    const api = createClient(runtime, new Client({ address: platform.address, namespace: 'micro', preferLocal: false, timeout: 30_000 }));
    try {
      const source = writeFiles(join(root, 'src', 'echoer'), { 'package.json': pkg('echoer'), 'main.js': jsMain('1.0.0', "console.log('echoer up');") });
      const progress: RuntimeProgress[] = [];
      for await (const p of api.Create({ source, env: { DB_PASSWORD: 'pw' } })) progress.push(p);
      const done = progress.at(-1);
      assert.equal(done?.step, 'done');
      assert.equal(done?.service?.state, 'running');
      assert.equal(done?.service?.env.DB_PASSWORD, '••••');
      assert.ok(progress.some((p) => p.step === 'fetch') && progress.some((p) => p.step === 'start'));
      track(done?.service as RuntimeService);

      const { services } = await api.Read({});
      assert.ok(services.some((s) => s.name === 'echoer' && s.state === 'running'));

      const failed: RuntimeProgress[] = [];
      const err = await rejection(
        (async () => {
          for await (const p of api.Create({ source: crasherDir })) failed.push(p);
        })(),
      );
      assert.equal(err.code, 400);
      assert.match(err.detail, /crashed at start/);
      assert.ok(failed.some((p) => p.step === 'fetch'), 'progress came before the error');

      // a follower sees lines as they come: here the runtime's own line about the kill
      const follow = api.Logs({ name: 'echoer', lines: 0, follow: true });
      const seen = (async () => {
        for await (const l of follow) if (/micro kill echoer/.test(l.line)) return l;
        return undefined;
      })();
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(await api.Delete({ name: 'echoer' }), {});
      assert.equal((await seen)?.stream, 'runtime');
      follow.cancel();
      const history: string[] = [];
      for await (const l of api.Logs({ name: 'echoer', lines: 50 })) history.push(l.line);
      assert.ok(history.includes('echoer up'), 'the stdout of the killed service is still there');
      assert.equal((await rejection(api.Read({ name: 'echoer' }))).code, 404);
      assert.equal((await rejection(api.Update({ name: 'echoer' }).next())).code, 404);
    } finally {
      await served.stop();
    }
  });

  it('kills a service: its instances stop, it is forgotten, its log stays', async () => {
    const svc = one(rt, 'greeter');
    await rt.delete({ name: 'greeter' });
    for (const pid of pidsOf(svc)) assert.equal(alive(pid as number), false);
    assert.equal(existsSync(join(home, 'runtime', 'builds', 'micro', 'greeter')), false);
    assert.equal(rt.readLocal({}).services.some((s) => s.name === 'greeter'), false);
    assert.ok((await lines(rt, 'greeter')).some((l) => /micro kill greeter/.test(l.line)));
    assert.equal(JSON.parse(readFileSync(join(home, 'runtime', 'state.json'), 'utf8')).services.some((s: { name: string }) => s.name === 'greeter'), false);
  });
});
