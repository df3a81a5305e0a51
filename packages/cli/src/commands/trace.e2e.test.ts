import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { authApi, bearer, Client, createClient, platformClient, TokenSource, traceService, type MicroError, type SpanRecord } from '@micro/sdk';
import { micro, startServer, stopProcess, tempDir, type RunningServer } from '../testing.js';
import { traceTree } from './trace.js';

const span = (spanId: string, extra: Partial<SpanRecord> = {}): SpanRecord => ({
  traceId: 'a'.repeat(32),
  spanId,
  name: 'x.Call',
  kind: 'server',
  service: 'x',
  start: 1_000,
  duration: 2,
  status: 'ok',
  ...extra,
});

test('the tree: children under parents by start time, orphans as roots, hostile spans printed once and harmless', () => {
  const lines = traceTree([
    span('0000000000000003', { name: 'b.Call', parentSpanId: '0000000000000002', start: 1_001, duration: 0.5 }),
    span('0000000000000001', { name: 'POST /v1/a/Call', service: 'gateway', duration: 3 }),
    span('0000000000000002', { name: 'a.Call', kind: 'client', parentSpanId: '0000000000000001', start: 1_000.5, status: 'error', error: 'boom\u001b[2J' }),
    span('0000000000000004', { name: 'late', parentSpanId: 'ffffffffffffffff', start: 1_002 }),
    // a cycle of parent ids, and a span that is its own parent
    span('0000000000000005', { name: 'c1', parentSpanId: '0000000000000006', start: 1_003 }),
    span('0000000000000006', { name: 'c2\n\r', parentSpanId: '0000000000000005', start: 1_004 }),
    span('0000000000000007', { name: 'self', parentSpanId: '0000000000000007', start: 1_005 }),
  ]);
  assert.equal(lines[0], `trace ${'a'.repeat(32)}  7 spans  7.00 ms  1 failed`);
  assert.deepEqual(lines.slice(1, 4), [
    'POST /v1/a/Call [server] gateway  3.00 ms  +0.00 ms',
    '└─ a.Call [client] x  2.00 ms  +0.50 ms  ✗ boom?[2J',
    '   └─ b.Call [server] x  0.50 ms  +1.00 ms',
  ]);
  assert.equal(lines.length, 8, lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith('late ')));
  assert.ok(lines.some((l) => l.startsWith('self ')));
  // eslint-disable-next-line no-control-regex -- no control character may reach the terminal
  assert.ok(lines.every((l) => !/[\u0000-\u001f]/.test(l)));
  assert.deepEqual(traceTree([]), []);
});

/** `micro trace` against a real `micro server`: a gateway request traced through a core service. */
describe('micro trace against a running server', () => {
  let home: string;
  let server: RunningServer;
  let token: string;

  before(async () => {
    home = tempDir('micro-cli-trace-');
    server = await startServer(home, { env: { MICRO_TRACING: 'on' } });
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    token = await new TokenSource(admin, new Client({ address: server.address, namespace: 'micro', preferLocal: false })).get();
  });

  after(async () => {
    if (server) await stopProcess(server.proc);
    rmSync(home, { recursive: true, force: true });
  });

  test('micro trace <id> prints the tree of a request; micro trace lists it; bad ids are usage errors', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const res = await fetch(`${server.gateway}/v1/cache/Set`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, traceparent: `00-${traceId}-b7ad6b7169203331-01` },
      body: JSON.stringify({ key: 'k', value: 1 }),
    });
    assert.equal(res.status, 200, await res.text());
    // the server exports its spans in batches (about a second)
    let out: { code: number | null; stdout: string; stderr: string } = { code: 1, stdout: '', stderr: '' };
    for (let i = 0; i < 50; i++) {
      out = await micro(home, ['trace', traceId]);
      if (out.code === 0 && out.stdout.includes('cache.Set [server]')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(out.code, 0, out.stderr);
    const lines = out.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', new RegExp(`^trace ${traceId}  3 spans  `));
    assert.match(lines[1] ?? '', /^POST \/v1\/cache\/Set \[server\] gateway {2}[\d.]+ ms {2}\+0\.00 ms$/);
    assert.match(lines[2] ?? '', /^└─ cache\.Set \[client\] gateway /);
    assert.match(lines[3] ?? '', /^ {3}└─ cache\.Set \[server\] cache {2}[\d.]+ ms {2}\+[\d.]+ ms$/);
    const json = await micro(home, ['trace', traceId, '-o', 'json']);
    assert.equal((JSON.parse(json.stdout) as { spans: SpanRecord[] }).spans.length, 3);
    // what the dashboard reads: the same through the gateway; hostile ids are 400s there
    const api = (body: unknown) =>
      fetch(`${server.gateway}/v1/trace/Read`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    const viaGateway = await api({ traceId });
    assert.equal(viaGateway.status, 200);
    assert.equal(((await viaGateway.json()) as { spans: SpanRecord[] }).spans.length, 3);
    for (const bad of ['../../x', 'A'.repeat(32), { $gt: '' }, 'a'.repeat(10_000)]) assert.equal((await api({ traceId: bad })).status, 400, JSON.stringify(bad).slice(0, 40));
    assert.equal((await api({ traceId: 'e'.repeat(32) })).status, 404);
    assert.equal((await fetch(`${server.gateway}/v1/trace/Read`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ traceId }) })).status, 401);
    // a tenant (over RPC: the gateway does not route tenants to core services): its own
    // namespace has no such trace, naming micro is refused
    const auth = createClient(authApi, platformClient(server.address, [bearer(token)]));
    const { secret } = await auth.CreateAccount({ id: 'eve', namespace: 'tenant-e', scopes: ['dev'] });
    const eve = (await createClient(authApi, new Client({ address: server.address, namespace: 'micro', preferLocal: false })).Token({ id: 'eve', secret: secret as string, namespace: 'tenant-e' })).token;
    const asEve = createClient(traceService, platformClient(server.address, [bearer(eve)]));
    await assert.rejects(asEve.Read({ traceId }), (e: MicroError) => e.code === 404);
    await assert.rejects(asEve.Read({ traceId, namespace: 'micro' }), (e: MicroError) => e.code === 403);
    await assert.rejects(asEve.List({ namespace: 'micro' }), (e: MicroError) => e.code === 403);
    await assert.rejects(asEve.Record({ spans: [], namespace: 'micro' }), (e: MicroError) => e.code === 403);
    assert.ok(!(await asEve.List({})).traces.some((t) => t.traceId === traceId));
    const list = await micro(home, ['trace', '-o', 'json']);
    assert.ok((JSON.parse(list.stdout) as { traces: { traceId: string }[] }).traces.some((t) => t.traceId === traceId));
    const missing = await micro(home, ['trace', 'f'.repeat(32)]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no trace f{32}/);
    for (const bad of ['xyz', 'A'.repeat(32), '../../etc/passwd', 'a'.repeat(33)]) {
      const r = await micro(home, ['trace', bad]);
      assert.notEqual(r.code, 0, bad);
      assert.match(r.stderr, /32 lower-case hex digits/);
    }
    const limit = await micro(home, ['trace', '--limit', '0']);
    assert.notEqual(limit.code, 0);
    assert.match(limit.stderr, /--limit must be a whole number/);
  });

  test('a service run by the runtime exports its spans to the server: one tree with the gateway\'s', async () => {
    const work = tempDir('micro-cli-trace-src-');
    try {
      assert.equal((await micro(home, ['new', 'demo'], { cwd: work })).code, 0);
      const run = await micro(home, ['run', './demo'], { cwd: work, timeout: 120_000 });
      assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
      const traceId = '1af7651916cd43dd8448eb211c80319c';
      const call = () =>
        fetch(`${server.gateway}/v1/demo/Call`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, traceparent: `00-${traceId}-b7ad6b7169203331-01` },
          body: JSON.stringify({ name: 'x' }),
        });
      for (let i = 0; i < 100 && (await call()).status !== 200; i++) await new Promise((r) => setTimeout(r, 200));
      let lines: string[] = [];
      for (let i = 0; i < 50; i++) {
        const out = await micro(home, ['trace', traceId]);
        lines = out.stdout.trim().split('\n');
        // the service's span and the gateway's come from two processes, each exporting in batches
        if (lines.some((l) => /demo\.Call \[server\] demo /.test(l)) && lines.some((l) => /demo\.Call \[client\] gateway /.test(l))) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      // the service's span (exported by its process) sits under the gateway's client span
      const served = lines.findIndex((l) => /^ {3}└─ demo\.Call \[server\] demo {2}/.test(l));
      assert.ok(served > 0, lines.join('\n'));
      assert.match(lines[served - 1] ?? '', /^└─ demo\.Call \[client\] gateway /);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
