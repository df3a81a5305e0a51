import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { micro, startServer, started, stopProcess, tempDir, type Result, type RunningServer } from './testing.js';
import { valueAddServices } from './services.js';
import {
  Client,
  RemoteRegistry,
  Service,
  TokenSource,
  bearer,
  CORE_SERVICES,
  isPublicService,
  clientStream,
  defineService,
  endpoint,
  platformClient,
  serverStream,
  z,
} from '@micro/sdk';

/** The `micro` command against a real `micro server` (helpers in testing.ts). */

// A service with every kind of field and endpoint the CLI must handle.
const greeter = defineService({
  name: 'greeter',
  version: '1.2.0',
  description: 'Greets people',
  endpoints: {
    Call: endpoint({ description: 'Returns a greeting', request: z.object({ name: z.string().min(1).describe('who to greet') }), response: z.object({ message: z.string() }) }),
    Echo: endpoint({
      request: z.object({
        count: z.number().int(),
        ratio: z.number().optional(),
        loud: z.boolean().optional(),
        tags: z.array(z.string()).optional(),
        options: z.object({ prefix: z.string(), repeat: z.number().int().optional() }).optional(),
        labels: z.record(z.string(), z.string()).optional(),
      }),
      response: z.object({ echo: z.unknown() }),
    }),
    Stream: serverStream({ request: z.object({ name: z.string(), count: z.number().int().min(1).max(100) }), response: z.object({ message: z.string(), index: z.number() }) }),
    Sum: clientStream({ request: z.object({ n: z.number() }), response: z.object({ total: z.number() }) }),
  },
});

describe('micro against a running server', () => {
  let home: string;
  let server: RunningServer;
  let svc: Service | undefined;
  let registry: RemoteRegistry;

  before(async () => {
    home = tempDir('micro-cli-e2e-');
    server = await startServer(home, { env: { MICRO_SERVICES: 'all' } });
    // the test process plays a service registered with the server, as `micro run` would start one
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string; namespace: string };
    const tokens = new TokenSource(admin, new Client({ address: server.address, namespace: 'micro', preferLocal: false }));
    registry = new RemoteRegistry(platformClient(server.address, [bearer(tokens)]));
    svc = new Service(
      greeter,
      {
        Call: ({ name }) => ({ message: `Hello ${name}` }),
        Echo: (req) => ({ echo: req }),
        async *Stream({ name, count }) {
          for (let index = 0; index < count; index++) yield { message: `Hello ${name}`, index };
        },
        async Sum(reqs) {
          let total = 0;
          for await (const { n } of reqs) total += n;
          return { total };
        },
      },
      { registry, address: 'tcp://127.0.0.1:0', namespace: 'micro' },
    );
    await svc.start();
  });

  after(async () => {
    await svc?.stop();
    if (server) await stopProcess(server.proc);
    rmSync(home, { recursive: true, force: true });
  });

  test('micro server says where it listens and keeps its files in the home', () => {
    assert.match(server.output(), /listening on tcp:\/\/127\.0\.0\.1:\d+ \(RPC\)/);
    assert.match(server.output(), new RegExp(`home: +${home}`));
    assert.equal(statSync(join(home, 'server', 'admin.json')).mode & 0o777, 0o600);
  });

  test('a second micro server on the same home is refused; the first keeps serving', async () => {
    const second = await micro(home, ['server', '--address', 'tcp://127.0.0.1:0']);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /already running on .* \(pid \d+/);
    assert.equal(server.proc.exitCode, null);
    const services = await micro(home, ['services']);
    assert.equal(services.code, 0, services.stderr);
    assert.match(services.stdout, /greeter/);
  });

  test('micro services: a table for people, JSON for programs', async () => {
    const text = await micro(home, ['services']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^NAME +VERSION +NODES +ENDPOINTS\n/);
    assert.match(text.stdout, /^greeter +1\.2\.0 +1 +Call, Echo, Stream, Sum$/m);
    const json = await micro(home, ['services', '--output', 'json']);
    const records = JSON.parse(json.stdout) as { name: string; endpoints: unknown[]; metadata?: Record<string, string> }[];
    // the four of its definition, and Debug.Health and Debug.Metrics that every service answers
    assert.ok(records.some((r) => r.name === 'greeter' && r.endpoints.length === 6));
    // micro server with the platform layer hosts exactly the services the SDK sends general tokens to
    const core = records.filter((r) => !isPublicService(r));
    assert.deepEqual(core.map((r) => r.name).filter((n) => n !== 'greeter').sort(), [...CORE_SERVICES].sort());
    // and beside them the value-add services, public: they take tokens scoped to them
    const shared = records.filter(isPublicService).map((r) => r.name);
    assert.deepEqual(shared.sort(), (await valueAddServices()).map((h) => h.def.name).sort());
    for (const name of shared) assert.ok(!CORE_SERVICES.has(name), `${name} is not a core service`);
  });

  test('micro call and micro stream take a JSON request', async () => {
    const call = await micro(home, ['call', 'greeter', 'Call', '{"name":"Alice"}']);
    assert.equal(call.code, 0, call.stderr);
    assert.deepEqual(JSON.parse(call.stdout), { message: 'Hello Alice' });
    assert.equal(call.stdout, '{\n  "message": "Hello Alice"\n}\n', 'pretty for people');
    const stream = await micro(home, ['stream', 'greeter', 'Stream', '{"name":"Bob","count":3}', '--output', 'json']);
    assert.equal(stream.code, 0, stream.stderr);
    assert.deepEqual(stream.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown), [0, 1, 2].map((index) => ({ message: 'Hello Bob', index })));
    const bad = await micro(home, ['call', 'greeter', 'Call', '{name}']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /the request is not valid JSON .* single quotes/);
  });

  test('dynamic commands: flags typed from the schema', async () => {
    const call = await micro(home, ['greeter', 'call', '--name=Alice', '--output', 'json']);
    assert.equal(call.code, 0, call.stderr);
    assert.equal(call.stdout, '{"message":"Hello Alice"}\n');
    const echo = await micro(home, ['greeter', 'echo', '--count=3', '--ratio', '0.5', '--loud', '--tags=a', '--tags=b', '--options_prefix=>', '--options_repeat=2', '--labels_env=prod', '-o', 'json']);
    assert.equal(echo.code, 0, echo.stderr);
    assert.deepEqual(JSON.parse(echo.stdout), { echo: { count: 3, ratio: 0.5, loud: true, tags: ['a', 'b'], options: { prefix: '>', repeat: 2 }, labels: { env: 'prod' } } });
    const stream = await micro(home, ['greeter', 'stream', '--name=Bob', '--count=2', '-o', 'json']);
    assert.equal(stream.stdout, '{"message":"Hello Bob","index":0}\n{"message":"Hello Bob","index":1}\n');
  });

  test('a client stream reads one JSON request per line of stdin', async () => {
    const sum = await micro(home, ['greeter', 'sum', '-o', 'json'], { input: '{"n":1}\n{"n":2}\n\n{"n":3.5}\n' });
    assert.equal(sum.code, 0, sum.stderr);
    assert.deepEqual(JSON.parse(sum.stdout), { total: 6.5 });
    const bad = await micro(home, ['greeter', 'sum'], { input: '{"n":1}\nnot json\n' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /line 2 of stdin is not JSON/);
  });

  test('wrong field types, unknown flags and invalid requests fail with the field named', async () => {
    const wrongType = await micro(home, ['greeter', 'echo', '--count=three']);
    assert.equal(wrongType.code, 1);
    assert.match(wrongType.stderr, /--count must be an integer, not "three"/);
    const unknown = await micro(home, ['greeter', 'call', '--nmae=x']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown flag --nmae \(did you mean --name\?\) — see `micro greeter call --help`/);
    // validated by the service: its 400 names the field
    const invalid = await micro(home, ['greeter', 'call', '--name=']);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /name/);
    assert.equal(invalid.stdout, '');
  });

  test('micro <service> --help lists endpoints and fields; <endpoint> --help one endpoint', async () => {
    const help = await micro(home, ['greeter', '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /Greets people \(greeter 1\.2\.0, namespace micro\)/);
    assert.match(help.stdout, /^ {2}call {2}Returns a greeting$/m);
    assert.match(help.stdout, /--name +string +who to greet \(required\)/);
    assert.match(help.stdout, /--options_prefix +string/);
    assert.match(help.stdout, /--tags +string\[\]/);
    assert.match(help.stdout, /stream {2}\(server stream\)/);
    const one = await micro(home, ['greeter', 'echo', '--help']);
    assert.equal(one.code, 0);
    assert.match(one.stdout, /Usage: micro greeter echo/);
    assert.match(one.stdout, /--count +integer +\(required\)/);
    assert.doesNotMatch(one.stdout, /who to greet/);
  });

  test('unknown services, endpoints and commands: a clear message and a non-zero exit', async () => {
    const noService = await micro(home, ['nosuch', 'call']);
    assert.equal(noService.code, 1);
    assert.match(noService.stderr, /unknown command or service 'nosuch': no service of that name in namespace micro — see `micro --help` and `micro services`/);
    const typo = await micro(home, ['servics']);
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /unknown command 'servics' \(Did you mean services\?\)/);
    const call = await micro(home, ['call', 'nosuch', 'Call']);
    assert.equal(call.code, 1);
    assert.match(call.stderr, /service nosuch not found in namespace micro — see `micro services`/);
    const noEndpoint = await micro(home, ['greeter', 'cal']);
    assert.equal(noEndpoint.code, 1);
    assert.match(noEndpoint.stderr, /service greeter has no endpoint "cal" \(did you mean "call"\?\) — endpoints: call, echo, stream, sum, debug health/);
  });

  test('login, env and logout: credentials in MICRO_HOME with mode 0600', async () => {
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { secret: string };
    let env = await micro(home, ['env', '-o', 'json']);
    assert.deepEqual((JSON.parse(env.stdout) as { name: string; via: string }[]).map((e) => [e.name, e.via]), [['local', 'admin']]);

    const refused = await micro(home, ['login', '--id', 'admin', '--secret', 'wrong']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /local refused the id and secret of admin .* check them and run `micro login` again/);
    assert.doesNotMatch(refused.stderr + refused.stdout, /wrong/);

    const ok = await micro(home, ['login', '--id', 'admin', '--secret', '-'], { input: `${admin.secret}\n` });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /logged in to local as admin \(namespace micro\)/);
    assert.ok(!ok.stdout.includes(admin.secret) && !ok.stderr.includes(admin.secret), 'the secret is never printed');
    const creds = join(home, 'credentials', 'local.json');
    assert.equal(statSync(creds).mode & 0o777, 0o600);
    assert.equal(statSync(join(home, 'credentials')).mode & 0o777, 0o700);
    env = await micro(home, ['env']);
    assert.match(env.stdout, /^\* +local +127\.0\.0\.1:\d+ +admin$/m);
    assert.ok(!env.stdout.includes(admin.secret));

    const noTty = await micro(home, ['login', '--id', 'admin']);
    assert.equal(noTty.code, 1);
    assert.match(noTty.stderr, /give the secret with --secret, or --secret - to read it from stdin/);

    const out = await micro(home, ['logout']);
    assert.equal(out.code, 0);
    assert.match(out.stdout, /logged out of local/);
    assert.equal(existsSync(creds), false);
  });

  test('remote environments: not logged in, and no server at the address', async () => {
    assert.equal((await micro(home, ['env', 'add', 'other', server.address])).code, 0);
    const notLoggedIn = await micro(home, ['services'], { env: { MICRO_ENV: 'other' } });
    assert.equal(notLoggedIn.code, 1);
    assert.match(notLoggedIn.stderr, /^not logged in to other — run `micro login`\n$/);

    assert.equal((await micro(home, ['env', 'add', 'dead', '127.0.0.1:1'])).code, 0);
    assert.equal((await micro(home, ['env', 'set', 'dead'])).code, 0);
    const dead = await micro(home, ['services']);
    assert.equal(dead.code, 1);
    assert.match(dead.stderr, /^no server at 127\.0\.0\.1:1 — check the address of environment dead with `micro env`, or start a server with `micro server`\n$/);
    const list = await micro(home, ['env']);
    assert.match(list.stdout, /^\* +dead +127\.0\.0\.1:1 +\(not logged in\)$/m);
    assert.equal((await micro(home, ['env', 'rm', 'dead'])).code, 0);
    assert.equal((await micro(home, ['env', 'rm', 'other'])).code, 0);
    const back = await micro(home, ['services']);
    assert.equal(back.code, 0, back.stderr);
  });
});

test('micro server stops cleanly on SIGTERM and SIGINT, and then commands say how to start one', async (t) => {
  const home = tempDir('micro-cli-e2e-stop-');
  t.after(() => rmSync(home, { recursive: true, force: true }));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const server = await startServer(home);
    assert.equal(await stopProcess(server.proc, signal), 0);
    assert.match(server.output(), /micro server stopped/);
    assert.equal(existsSync(join(home, 'server', 'server.json')), false);
  }
  const after = await micro(home, ['services']);
  assert.equal(after.code, 1);
  assert.equal(after.stderr, 'no micro server is running for this MICRO_HOME — start one with `micro server`\n');
});

test('micro new scaffolds a service whose test passes as it is', async (t) => {
  const dir = tempDir('micro-cli-e2e-new-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const made = await micro(dir, ['new', 'demo'], { cwd: dir });
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /created demo\/ with package\.json, tsconfig\.json, src\/definition\.ts/);
  assert.match(made.stdout, /micro run \.\/demo/);
  const again = await micro(dir, ['new', 'demo'], { cwd: dir });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /exists and is not empty — choose another name/);
  const bad = await micro(dir, ['new', 'Demo!'], { cwd: dir });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid service name "Demo!"/);

  // npm test: tsc through the linked TypeScript, then node --test on dist/
  const res = await new Promise<Result>((resolve) => {
    // without NODE_TEST_CONTEXT: the scaffold's node --test is a run of its own, not our child
    const env: NodeJS.ProcessEnv = { ...process.env, MICRO_LOG_LEVEL: 'silent', MICRO_HOME: dir };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn('npm', ['test', '--silent'], { cwd: join(dir, 'demo'), env });
    started.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => {
      started.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
  assert.match(res.stdout, /# pass 1/);
  assert.ok(existsSync(join(dir, 'demo', 'dist', 'main.js')));
});

describe('micro run and the runtime commands', () => {
  let home: string;
  let work: string;
  let server: RunningServer;

  before(async () => {
    home = tempDir('micro-cli-e2e-run-');
    work = tempDir('micro-cli-e2e-src-');
    server = await startServer(home);
    for (const name of ['demo', 'broken']) assert.equal((await micro(home, ['new', name], { cwd: work })).code, 0);
    // a type error: the build must fail and say where
    writeFileSync(join(work, 'broken', 'src', 'handlers.ts'), readFileSync(join(work, 'broken', 'src', 'handlers.ts'), 'utf8').replace('`Hello ${name}`', '42'));
  });

  after(async () => {
    if (server) await stopProcess(server.proc);
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('micro run ./demo (a relative path) shows progress, then status, call, logs, update and kill work', async () => {
    const run = await micro(home, ['run', './demo', '--env', 'MICRO_LOG_LEVEL=info'], { cwd: work, timeout: 120_000 });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /^• fetching /m);
    assert.match(run.stdout, /^• starting 1 instance/m);
    assert.match(run.stdout, /^demo is running \(namespace micro\): 1\/1 instance running$/m);
    assert.match(run.stdout, /micro demo --help/);

    const status = await micro(home, ['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^NAME +VERSION +SOURCE +STATE +INSTANCES +PID +UPTIME +RESTARTS +LAST ERROR\n/);
    assert.match(status.stdout, new RegExp(`^demo +\\S+ +${join(work, 'demo')} +running +1/1 +\\d+ +\\d+s +0$`, 'm'));
    const json = await micro(home, ['status', 'demo', '--output', 'json']);
    const services = JSON.parse(json.stdout) as { name: string; state: string; source: string }[];
    assert.deepEqual(services.map((s) => [s.name, s.state, s.source]), [['demo', 'running', join(work, 'demo')]]);

    // the instance registers itself just after it starts: give it a moment
    let call: Result | undefined;
    for (let i = 0; i < 50; i++) {
      call = await micro(home, ['demo', 'call', '--name=Alice', '-o', 'json']);
      if (call.code === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(call?.code, 0, call?.stderr);
    assert.equal(call?.stdout, '{"message":"Hello Alice"}\n');
    const stream = await micro(home, ['demo', 'stream', '--name=Bob', '--count=2', '-o', 'json']);
    assert.equal(stream.stdout, '{"message":"Hello Bob","index":0}\n{"message":"Hello Bob","index":1}\n');

    const logs = await micro(home, ['logs', 'demo', '-n', '50']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /service demo started/);
    const logsJson = await micro(home, ['logs', 'demo', '--since', '1h', '-o', 'json']);
    assert.ok(logsJson.stdout.trim().split('\n').every((l) => typeof (JSON.parse(l) as { line: unknown }).line === 'string'));
    const badSince = await micro(home, ['logs', 'demo', '--since', 'yesterday']);
    assert.equal(badSince.code, 1);
    assert.match(badSince.stderr, /--since must be an ISO time/);

    const update = await micro(home, ['update', 'demo'], { timeout: 120_000 });
    assert.equal(update.code, 0, `${update.stdout}\n${update.stderr}`);
    assert.match(update.stdout, /^demo is updated \(namespace micro\): 1\/1 instance running$/m);

    const kill = await micro(home, ['kill', 'demo']);
    assert.equal(kill.code, 0, kill.stderr);
    assert.match(kill.stdout, /stopped demo/);
    const gone = await micro(home, ['status', 'demo']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /the runtime runs no service demo in namespace micro — see `micro status`/);
    const killAgain = await micro(home, ['kill', 'demo']);
    assert.equal(killAgain.code, 1);
  });

  test('a build failure prints the compiler output and exits 1', async () => {
    const run = await micro(home, ['run', './broken'], { cwd: work, timeout: 120_000 });
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout + run.stderr, /src\/handlers\.ts.*error TS\d+/);
    assert.match(run.stderr, /the build failed — fix what is reported above and run `micro run \.\/broken` again/);
  });

  test('micro run of a folder that does not exist says so before calling the server', async () => {
    const run = await micro(home, ['run', './nowhere'], { cwd: work });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /no such folder: .*nowhere — give the folder of a service/);
  });
});
