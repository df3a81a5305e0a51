import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pythonClient, snakeCase, type OpenApiDocument } from './python.js';
import { startHarness, type Harness } from './testing.js';

/** A child process without blocking this one (it serves the gateway the child calls). */
function run(cmd: string, args: string[], cwd?: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => p.kill(), 30_000);
    p.on('error', reject);
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

const here = dirname(fileURLToPath(import.meta.url));
const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const noPython = python.error || python.status !== 0 ? 'python3 is not on the PATH' : undefined;
if (noPython && process.env.CI) throw new Error(`${noPython}, and CI must run the Python client test`);

test('snake_case of operation ids', () => {
  assert.equal(snakeCase('greeter.Call'), 'greeter_call');
  assert.equal(snakeCase('registry.ListServices'), 'registry_list_services');
  assert.equal(snakeCase('greeter.Greeter.Hello'), 'greeter_greeter_hello');
  assert.equal(snakeCase('my-svc.HTTPGet'), 'my_svc_http_get');
});

test('odd names: keywords, clashes, quotes in descriptions give valid Python', (t) => {
  const doc: OpenApiDocument = {
    openapi: '3.1.0',
    info: { title: 'Odd """ API \\' },
    paths: {
      '/v1/a/Call': { post: { operationId: 'a.Call', summary: 'ends with a quote"', requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { from: { type: 'string', description: 'a """ quote \\ and \u2028' }, 'x-y': { type: 'integer' }, self: { type: 'boolean' }, extra: { type: 'array', items: { type: 'string' } } }, required: ['from'] } } } } } },
      '/v1/a-/Call': { post: { operationId: 'a-.Call', summary: 'same name' } },
      '/v1/a/call': { post: { operationId: 'a.call', summary: 'same name again' } },
      '/v1/a/Stream': { get: { operationId: 'a.Stream', 'x-micro-stream': 'server' } },
    },
  };
  const src = pythonClient(doc);
  assert.match(src, /def a_call(_\d)?\(self, \*, from_: str, x_y: int = UNSET, self_: bool = UNSET, extra_: list\[str\] = UNSET, \*\*extra: Any\)/);
  assert.match(src, /def a_call_2\(/);
  assert.match(src, /def a_call_3\(/);
  assert.doesNotMatch(src, /a_stream/);
  if (noPython) return t.skip(noPython);
  const dir = mkdtempSync(join(tmpdir(), 'micro-py-odd-'));
  try {
    writeFileSync(join(dir, 'odd.py'), src);
    const r = spawnSync('python3', ['-c', 'import odd, inspect; print(sorted(n for n in dir(odd.MicroClient) if n.startswith("a_")))'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "['a_call', 'a_call_2', 'a_call_3']");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('the generated Python client against micro server', { skip: noPython ? `${noPython} (CI is not set)` : false }, () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    if (noPython) console.log(`# skipped the Python client test: ${noPython}`);
    h = await startHarness();
    dir = mkdtempSync(join(tmpdir(), 'micro-py-'));
  });
  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('gen-python fetches /openapi.json with a token; the module calls endpoints and raises MicroError', async () => {
    // the CLI, as a user runs it: node dist/gen-python.js <url> --token T > micro_client.py
    const gen = await run(process.execPath, [join(here, 'gen-python.js'), `${h.url}/openapi.json`, '--token', h.token]);
    assert.equal(gen.status, 0, gen.stderr);
    writeFileSync(join(dir, 'micro_client.py'), gen.stdout);
    // the same module as the library function makes it
    const doc = (await (await fetch(`${h.url}/openapi.json`, { headers: { authorization: `Bearer ${h.token}` } })).json()) as OpenApiDocument;
    assert.equal(pythonClient(doc), gen.stdout);
    assert.match(gen.stdout, /def greeter_call\(self, \*, name: str, times: int = UNSET, from_: str = UNSET, \*\*extra: Any\) -> dict\[str, Any\]:/);
    assert.match(gen.stdout, /name \(str\): who to greet/);
    writeFileSync(
      join(dir, 'check.py'),
      [
        'import sys, json',
        'from micro_client import MicroClient, MicroError, MicroConnectionError',
        'c = MicroClient(sys.argv[1], token=sys.argv[2])',
        'print(json.dumps(c.greeter_call(name="Alice")))',
        'print(json.dumps(c.greeter_call(name="Al", times=2, from_="Py")))',
        'print(json.dumps(c.greeter_greeter_hello(name="Bo")))',
        'print(json.dumps(c.greeter_nested(user={"name": "x", "address": {"city": "Oslo"}})["city"]))',
        'print(json.dumps(c.call("greeter", "Greeter.Hello", {"name": "Cy"})))',
        'try:',
        '    c.greeter_call(name=5)',
        'except MicroError as e:',
        '    print("MicroError", e.code, e.status, e.id, "|", e.detail)',
        'try:',
        '    MicroClient(sys.argv[1]).greeter_call(name="x")',
        'except MicroError as e:',
        '    print("MicroError", e.code, e.status)',
        'try:',
        '    MicroClient(sys.argv[1], token=lambda: sys.argv[2], timeout=0.3).greeter_slow(ms=3000)',
        'except MicroConnectionError as e:',
        '    print("MicroConnectionError", "timed out" in str(e))',
        'print(MicroClient.greeter_call.__doc__.splitlines()[0])',
      ].join('\n'),
    );
    const r = await run('python3', ['check.py', h.url, h.token], dir);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], '{"message": "Hello Alice"}');
    assert.equal(lines[1], '{"message": "Hello AlHello Al from Py"}');
    assert.equal(lines[2], '{"message": "Hi Bo"}');
    assert.equal(lines[3], '"Oslo"');
    assert.equal(lines[4], '{"message": "Hi Cy"}');
    assert.match(lines[5] ?? '', /^MicroError 400 Bad Request \S+ \| .*name/);
    assert.equal(lines[6], 'MicroError 401 Unauthorized');
    assert.equal(lines[7], 'MicroConnectionError True');
    assert.equal(lines[8], 'Returns a greeting');
  });

  test('gen-python: usage and clear errors', () => {
    const none = spawnSync(process.execPath, [join(here, 'gen-python.js')], { encoding: 'utf8' });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /usage: micro-gen-python/);
    const anonymous = spawnSync(process.execPath, [join(here, 'gen-python.js'), join(dir, 'missing.json')], { encoding: 'utf8' });
    assert.equal(anonymous.status, 1);
    assert.match(anonymous.stderr, /cannot read .*missing\.json/);
  });
});
