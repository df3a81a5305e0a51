import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pythonClient, snakeCase, type OpenApiDocument } from './python.js';
import { startHarness, type Harness } from './testing.js';

/** Waits (bounded) until `check` holds: for effects on the service side, which come asynchronously. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), what);
}

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
  // a stream without message schemas: a server stream on a WebSocket, taking anything
  assert.match(src, /def a_stream\(self, \*\*extra: Any\) -> Iterator\[Any\]:/);
  if (noPython) return t.skip(noPython);
  const dir = mkdtempSync(join(tmpdir(), 'micro-py-odd-'));
  try {
    writeFileSync(join(dir, 'odd.py'), src);
    const r = spawnSync('python3', ['-c', 'import odd, inspect; print(sorted(n for n in dir(odd.MicroClient) if n.startswith("a_")))'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "['a_call', 'a_call_2', 'a_call_3', 'a_stream']");
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

describe('the generated Python client: streams against micro server', { skip: noPython ? `${noPython} (CI is not set)` : false }, () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    h = await startHarness();
    dir = mkdtempSync(join(tmpdir(), 'micro-py-streams-'));
    const doc = (await (await fetch(`${h.url}/openapi.json`, { headers: { authorization: `Bearer ${h.token}` } })).json()) as OpenApiDocument;
    writeFileSync(join(dir, 'micro_client.py'), pythonClient(doc));
  });
  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('server streams (SSE and WebSocket), client and bidi streams, errors, limits, and the frame layer', async () => {
    // test/check_streams.py: the script runs every case and prints the results by label
    copyFileSync(join(here, '..', 'test', 'check_streams.py'), join(dir, 'check_streams.py'));
    const r = await run('python3', ['check_streams.py', h.url, h.token], dir);
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    const is = (label: string, expected: unknown) => assert.deepEqual(got[label], expected, label);
    const kind = (label: string) => (got[label] as unknown[])[0];
    const match = (label: string, re: RegExp) => assert.match(JSON.stringify(got[label]), re, label);

    is('sse', [0, 1, 2]);
    is('ws', [0, 1, 2]);
    is('sse_any', ['Hello Q']);
    is('sse_after_break', 2);
    match('sse_invalid', /^\["MicroError",400,".*count/);
    match('sse_anonymous', /^\["MicroError",401,/);
    // the request goes as a JSON body: a nested value reaches the service's validation
    match('sse_nested', /^\["MicroError",400,".*name/);
    match('ws_anonymous', /^\["MicroError",401,/);
    match('ws_unknown', /^\["MicroError",404,".*Nope/);

    is('sum', { sum: 3.5, count: 2 });
    is('sum_generator', { sum: 499500, count: 1000 });
    is('sum_none', { sum: 0, count: 0 });
    match('sum_invalid', /^\["MicroError",400,".*x/);

    is('chat', [{ text: 'A' }, 300000, []]);
    match('chat_send_after_end', /^\["StreamClosedError",".*send after end\(\)"\]$/);
    assert.equal(kind('chat_recv_after_end'), 'StreamEnded');
    is('chat_error', [{ text: 'ONE' }, ['MicroError', 400, 'cannot answer "two"'], ['MicroError', 400, 'cannot answer "two"']]);

    match('too_large', /^\["MessageTooLarge",".*1048588 bytes is over max_message \(1048576\)/);
    assert.equal(kind('end_as_request'), 'ValueError');
    is('after_too_large', { text: 'STILL' });
    match('gateway_1009', /^\["MicroProtocolError",1009,/);
    match('closed_send', /^\["StreamClosedError",".*was closed"\]$/);
    await eventually(() => h.cancelled.includes('py-cancel'), 'close() cancels the call on the service');

    // the frame layer: fragments reassembled around a ping (answered with a masked pong), large sends fragmented
    is('fragments_and_ping', ['{"part":1}', 10, true, 'hi']);
    is('fragmented_send', [1, true, 65536, 0, 70000 - 65536]);
    // hostile frames: the right close code sent back, a MicroProtocolError with it
    for (const [label, code] of [['masked_from_server', 1002], ['huge_length', 1009], ['over_max_message', 1009], ['binary', 1003], ['bad_utf8', 1007], ['stray_continuation', 1002], ['long_control', 1002]] as const) {
      is(label, ['MicroProtocolError', code, 8, code]);
    }
    is('peer_close', [null, 1001, 'bye', 8, 1001]);
    is('dropped', [{ i: 1 }, 'MicroConnectionError']);
    is('reset_while_sending', ['MicroConnectionError', 'MicroProtocolError', 1009]);
  });

  test('the gateway going away mid-stream: MicroProtocolError 1001', async () => {
    const other = await startHarness();
    try {
      writeFileSync(join(dir, 'away.py'), [
        'import sys',
        'from micro_client import MicroClient, MicroProtocolError',
        'chat = MicroClient(sys.argv[1], token=sys.argv[2]).greeter_chat()',
        'chat.send({"text": "x"})',
        'print(chat.recv()["text"], flush=True)',
        'sys.stdin.readline()  # the test stops the server, then writes a line',
        'try:',
        '    chat.recv()',
        'except MicroProtocolError as e:',
        '    print("MicroProtocolError", e.code)',
      ].join('\n'));
      const p = spawn('python3', ['away.py', other.url, other.token], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => p.on('close', resolve));
      await new Promise<void>((resolve, reject) => {
        p.stdout.setEncoding('utf8').on('data', (d: string) => {
          stdout += d;
          if (stdout.includes('X\n')) resolve();
        });
        p.on('close', () => reject(new Error(`python3 ended early: ${stderr}`)));
      });
      await other.server.stop();
      p.stdin.end('go\n');
      assert.equal(await exited, 0, stderr);
      assert.deepEqual(stdout.trim().split('\n'), ['X', 'MicroProtocolError 1001']);
    } finally {
      await other.close();
    }
  });
});
