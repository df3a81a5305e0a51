import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineService, endpoint, endpointRecord, serverStream, z, type RuntimeService, type ServiceRecord } from '@micro/sdk';
import { scaffold, identifier } from './commands/new.js';
import { parseEnv, resolveSource, statusRow, STATUS_HEADERS } from './commands/runtime.js';
import { commandName, endpointHelp, matchEndpoint, serviceHelp, takeEndpoint } from './endpoints.js';
import { Home } from './config.js';
import { CliContext } from './context.js';
import { main } from './main.js';
import { formatTable } from './output.js';

function tempDir(t: { after: (fn: () => void) => void }, prefix = 'micro-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const def = defineService({
  name: 'greeter',
  version: '2.0.0',
  description: 'Says hello',
  endpoints: {
    Call: endpoint({ description: 'One greeting', request: z.object({ name: z.string().describe('who') }), response: z.object({ message: z.string() }) }),
    'Greeter.Hello': endpoint({ request: z.object({ n: z.number().int() }), response: z.object({}) }),
    Stream: serverStream({ request: z.object({ count: z.number() }), response: z.object({ message: z.string() }) }),
  },
});
const record: ServiceRecord = {
  name: def.name,
  version: def.version,
  namespace: 'micro',
  description: def.description,
  endpoints: Object.entries(def.endpoints).map(([n, e]) => endpointRecord(n, e)),
  nodes: [],
};

test('endpoints are found from what people type', () => {
  const eps = record.endpoints;
  assert.equal(matchEndpoint(eps, 'call')?.name, 'Call');
  assert.equal(matchEndpoint(eps, 'Call')?.name, 'Call');
  assert.equal(matchEndpoint(eps, 'CALL')?.name, 'Call');
  assert.equal(matchEndpoint(eps, 'greeter.hello')?.name, 'Greeter.Hello');
  assert.equal(matchEndpoint(eps, 'nope'), undefined);
  assert.deepEqual(takeEndpoint(eps, ['greeter', 'hello']).endpoint?.name, 'Greeter.Hello');
  assert.deepEqual(takeEndpoint(eps, ['call', 'extra']), { endpoint: eps[0], rest: ['extra'] });
  assert.equal(commandName('Greeter.Hello'), 'greeter hello');
});

test('service and endpoint help list the endpoints with their fields and kinds', () => {
  const help = serviceHelp([record]);
  assert.match(help, /Usage: micro greeter <endpoint>/);
  assert.match(help, /Says hello \(greeter 2\.0\.0, namespace micro\)/);
  assert.match(help, /^ {2}call {2}One greeting$/m);
  assert.match(help, /--name +string +who \(required\)/);
  assert.match(help, /^ {2}greeter hello$/m);
  assert.match(help, /--n +integer/);
  assert.match(help, /stream {2}\(server stream\)/);
  const one = endpointHelp(record, record.endpoints[0]!);
  assert.match(one, /Usage: micro greeter call/);
  assert.match(one, /Returns: message \(string\)/);
  assert.doesNotMatch(one, /--count/);
});

test('micro run sends absolute paths for local folders, the rest as given', (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'svc'));
  assert.equal(resolveSource('./svc', dir), join(dir, 'svc'));
  assert.equal(resolveSource('svc', dir), join(dir, 'svc'));
  assert.equal(resolveSource('./svc@v1.2', dir), `${join(dir, 'svc')}@v1.2`);
  assert.equal(resolveSource('https://github.com/micro/services@main', dir), 'https://github.com/micro/services@main');
  assert.equal(resolveSource('github.com/micro/services/helloworld', dir), 'github.com/micro/services/helloworld');
  assert.throws(() => resolveSource('./missing', dir), /no such folder: .*missing — give the folder of a service/);
});

test('--env pairs', () => {
  assert.deepEqual({ ...parseEnv(['A=1', 'B=x=y', 'EMPTY=']) }, { A: '1', B: 'x=y', EMPTY: '' });
  assert.equal(parseEnv([]), undefined);
  for (const bad of ['A', '=1', '1A=2', 'A-B=1']) assert.throws(() => parseEnv([bad]), /--env takes KEY=VALUE/);
  // a variable named __proto__ is a name like any other
  assert.equal(Object.keys(parseEnv(['__proto__=x'])!).length, 1);
});

test('micro status rows', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  const svc: RuntimeService = {
    name: 'greeter',
    namespace: 'micro',
    version: '2.0.0',
    source: '/src/greeter',
    state: 'running',
    desiredInstances: 3,
    env: {},
    createdAt: '2024-05-01T11:00:00Z',
    updatedAt: '2024-05-01T11:00:00Z',
    instances: [
      { id: 'a', pid: 101, state: 'running', startedAt: '2024-05-01T11:55:00Z', restarts: 1 },
      { id: 'b', pid: 102, state: 'running', startedAt: '2024-05-01T11:58:00Z', restarts: 0 },
      { id: 'c', pid: 103, state: 'crashed', restarts: 4, lastError: 'exit 1\nError: boom' },
    ],
  };
  const row = statusRow(svc, now);
  assert.deepEqual(row, ['greeter', '2.0.0', '/src/greeter', 'running', '2/3', '101,+2', '5m0s', '5', 'exit 1']);
  assert.match(formatTable(STATUS_HEADERS, [row]), /^NAME +VERSION +SOURCE +STATE +INSTANCES +PID +UPTIME +RESTARTS +LAST ERROR\n/);
});

test('micro new scaffolds a service and refuses bad names and non-empty folders', (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'user-profile');
  const res = scaffold('user-profile', target, { link: false });
  assert.deepEqual(res.files.sort(), ['README.md', 'package.json', 'src/definition.ts', 'src/handlers.test.ts', 'src/handlers.ts', 'src/main.ts', 'tsconfig.json']);
  const pkg = JSON.parse(readFileSync(join(target, 'package.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(pkg.name, 'user-profile');
  assert.equal(pkg.type, 'module');
  assert.deepEqual(pkg.dependencies, { '@micro/sdk': '0.1.0' });
  assert.equal((pkg.scripts as Record<string, string>).build, 'tsc -p .');
  assert.match(readFileSync(join(target, 'src/definition.ts'), 'utf8'), /export const userProfile = defineService\(\{\n {2}name: 'user-profile'/);
  assert.match(readFileSync(join(target, 'README.md'), 'utf8'), /micro run \.\/user-profile/);

  assert.throws(() => scaffold('user-profile', target, { link: false }), /exists and is not empty/);
  for (const bad of ['Bad', '1abc', 'a b', '../x', '', 'x'.repeat(129), 'a--b']) assert.throws(() => scaffold(bad, join(dir, 'other'), { link: false }), /invalid service name/);
  writeFileSync(join(dir, 'file'), 'x');
  assert.throws(() => scaffold('file', join(dir, 'file'), { link: false }), /is not a folder/);
  // an existing empty folder is fine
  mkdirSync(join(dir, 'empty'));
  scaffold('empty', join(dir, 'empty'), { link: false });
  assert.ok(readdirSync(join(dir, 'empty')).includes('package.json'));
});

test('identifiers of scaffolded definitions avoid what the files already use', () => {
  assert.equal(identifier('greeter'), 'greeter');
  assert.equal(identifier('user-profile'), 'userProfile');
  assert.equal(identifier('a.b_c'), 'aBC');
  assert.equal(identifier('handlers'), 'handlersService');
  assert.equal(identifier('new'), 'newService');
});

test('unknown commands fail with a suggestion, without a server', async (t) => {
  const home = tempDir(t, 'micro-cli-home-');
  const out: string[] = [];
  const err: string[] = [];
  const ctx = new CliContext(new Home(home), { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, stdin: process.stdin });
  assert.equal(await main(['servics'], ctx), 1);
  assert.match(err.join(''), /unknown command 'servics' \(Did you mean services\?\)/);
  err.length = 0;
  assert.equal(await main(['NotAService'], ctx), 1);
  assert.match(err.join(''), /unknown command 'NotAService'/);
  err.length = 0;
  assert.equal(await main(['helloworld', 'call'], ctx), 1);
  assert.match(err.join(''), /'helloworld' is not a command .* no micro server is running for this MICRO_HOME — start one with `micro server`/);
  err.length = 0;
  assert.equal(await main(['services'], ctx), 1);
  assert.match(err.join(''), /^no micro server is running for this MICRO_HOME — start one with `micro server`\n$/);
  err.length = 0;
  assert.equal(await main(['status', '--bogus'], ctx), 1);
  assert.match(err.join(''), /unknown option '--bogus'/);
  assert.equal(await main(['--version'], ctx), 0);
  assert.match(out.join(''), /^\d+\.\d+\.\d+\n$/);
});
