import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { WebSocket } from 'ws';
import { bidiStream, clientStream, defineService, endpoint, errors, serverStream, Service, ServiceAuth, z } from '@micro/sdk';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { Gateway, type GatewayOptions } from './gateway.js';
import { http, raw } from './testing.js';

const streamer = defineService({
  name: 'streamer',
  version: '1.0.0',
  endpoints: {
    Echo: endpoint({ request: z.object({ s: z.string() }), response: z.object({ s: z.string() }), readonly: true }),
    Count: serverStream({ request: z.object({ n: z.number() }), response: z.object({ i: z.number() }), readonly: true }),
    Forever: serverStream({ request: z.object({ tag: z.string() }), response: z.object({ i: z.number() }), readonly: true }),
    Flood: serverStream({ request: z.object({}), response: z.object({ i: z.number(), pad: z.string() }) }),
    Fail: serverStream({ request: z.object({}), response: z.object({ i: z.number() }), readonly: true }),
    Sum: clientStream({ request: z.object({ x: z.number() }), response: z.object({ sum: z.number(), count: z.number() }) }),
    Slow: clientStream({ request: z.object({ x: z.number() }), response: z.object({ count: z.number() }) }),
    Upper: bidiStream({ request: z.object({ s: z.string() }), response: z.object({ s: z.string() }) }),
  },
});

interface Closed {
  code: number;
  reason: string;
  messages: unknown[];
}

/** Opens a WebSocket; resolves when open, or rejects with the HTTP answer that refused it. */
function open(url: string, path: string, options: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`, options.protocols ?? [], { headers: options.headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown })));
    });
    ws.once('error', reject);
  });
}

/** Every message until the socket closes. */
function collect(ws: WebSocket): Promise<Closed> {
  const messages: unknown[] = [];
  ws.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString('utf8'))));
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), messages })));
}

for (const preferLocal of [true, false]) describe(`API gateway streams (${preferLocal ? 'in process' : 'over the network'})`, () => {
  let h: AuthHarness;
  let gw: Gateway;
  let url: string;
  let svc: Service;
  let token: string;
  const gateways: Gateway[] = [];
  let produced = 0;
  const cancelled = new Map<string, () => void>();
  const whenCancelled = (tag: string) => new Promise<void>((resolve) => cancelled.set(tag, resolve));

  const start = async (options: Partial<GatewayOptions>): Promise<Gateway> => {
    const g = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, rulesTtl: 0, preferLocal, ...options });
    gateways.push(g);
    await g.listen();
    return g;
  };
  const auth = () => ({ headers: { authorization: `Bearer ${token}` } });

  before(async () => {
    h = await startAuthHarness();
    const admin = h.authAs(h.admin);
    const secret = (await admin.CreateAccount({ id: 'carol', namespace: 'tenant-s', scopes: ['dev'] })).secret as string;
    token = (await h.authAs().Token({ id: 'carol', secret, namespace: 'tenant-s' })).token;
    const creds = { ...h.accounts.issueServiceSecret('streamer', 'tenant-s'), namespace: 'tenant-s' };
    svc = new Service(
      streamer,
      {
        Echo: ({ s }) => ({ s }),
        async *Count({ n }) {
          for (let i = 0; i < n; i++) yield { i };
        },
        async *Forever({ tag }, ctx) {
          ctx.signal.addEventListener('abort', () => cancelled.get(tag)?.());
          for (let i = 0; !ctx.signal.aborted; i++) {
            yield { i };
            await new Promise((r) => setTimeout(r, 10));
          }
        },
        async *Flood(_req, ctx) {
          const pad = 'x'.repeat(10_000);
          for (let i = 0; !ctx.signal.aborted; i++) {
            produced = i;
            yield { i, pad };
          }
        },
        async *Fail() {
          yield { i: 0 };
          throw errors.Forbidden('streamer', 'no more for you');
        },
        Sum: async (requests) => {
          let sum = 0;
          let count = 0;
          for await (const { x } of requests) {
            sum += x;
            count++;
          }
          return { sum, count };
        },
        Slow: async (requests) => {
          let count = 0;
          for await (const _ of requests) {
            count++;
            await new Promise((r) => setTimeout(r, 20));
          }
          return { count };
        },
        async *Upper(requests) {
          for await (const { s } of requests) yield { s: s.toUpperCase() };
        },
      },
      { namespace: 'tenant-s', registry: h.registry, logger: silent, auth: new ServiceAuth({ address: h.address, credentials: creds, refreshInterval: 0 }) },
    );
    await svc.start();
    gw = await start({ rateLimit: false });
    url = gw.url;
  });

  after(async () => {
    for (const g of gateways) await g.close();
    await svc.stop();
    await h.close();
  });

  test('a server stream over a WebSocket: every response in order, then close 1000', async () => {
    const ws = await open(url, '/v1/streamer/Count', auth());
    const done = collect(ws);
    ws.send(JSON.stringify({ n: 200 }));
    const { code, messages } = await done;
    assert.equal(code, 1000);
    assert.deepEqual(messages, Array.from({ length: 200 }, (_, i) => ({ i })));
  });

  test('a server stream as server-sent events: every response in order, then event: end', async () => {
    const res = await http(url, 'GET', '/v1/streamer/Count?n=30', { headers: { ...auth().headers, accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    const events = res.body.split('\n\n').filter((e) => e !== '');
    assert.equal(events.length, 31);
    assert.deepEqual(events.slice(0, 30).map((e) => JSON.parse(e.replace(/^data: /, ''))), Array.from({ length: 30 }, (_, i) => ({ i })));
    assert.equal(events[30], 'event: end\ndata: {}');
    const failed = await http(url, 'GET', '/v1/streamer/Fail', { headers: { ...auth().headers, accept: 'text/event-stream' } });
    assert.match(failed.body, /^data: \{"i":0\}\n\nevent: error\ndata: \{"id":"streamer","code":403,"detail":"no more for you","status":"Forbidden"\}\n\n$/);
    // without Accept: text/event-stream a stream is still refused over plain HTTP
    assert.equal((await http(url, 'GET', '/v1/streamer/Count?n=1', auth())).status, 501);
  });

  test('server-sent events of a POST: the request as the JSON body, for any server stream; GET only for read-only ones', async () => {
    const sse = { ...auth().headers, accept: 'text/event-stream', 'content-type': 'application/json' };
    const posted = await http(url, 'POST', '/v1/streamer/Count', { headers: sse, body: JSON.stringify({ n: 3 }) });
    assert.equal(posted.status, 200, posted.body);
    assert.equal(posted.body, 'data: {"i":0}\n\ndata: {"i":1}\n\ndata: {"i":2}\n\nevent: end\ndata: {}\n\n');
    // Flood is not read-only: no GET reaches it, a POST does
    const got = await http(url, 'GET', '/v1/streamer/Flood', { headers: { ...auth().headers, accept: 'text/event-stream' } });
    assert.equal(got.status, 405, got.body);
    assert.equal(got.headers.allow, 'POST');
    assert.match((got.json as { detail: string }).detail, /streamer\.Flood is not read-only: .*POST the request as JSON with Accept: text\/event-stream/);
    const bad = await http(url, 'POST', '/v1/streamer/Count', { headers: sse, body: JSON.stringify({ n: 'x' }) });
    assert.match(bad.body, /event: error\ndata: \{"id":"streamer","code":400/);
  });

  test('client streams: every message a request, {"end": true} ends them; bidi: a response per request', async () => {
    const ws = await open(url, '/v1/streamer/Sum', auth());
    const done = collect(ws);
    for (let x = 1; x <= 100; x++) ws.send(JSON.stringify({ x }));
    ws.send(JSON.stringify({ end: true }));
    assert.deepEqual(await done, { code: 1000, reason: 'done', messages: [{ sum: 5050, count: 100 }] });

    const bidi = await open(url, '/v1/streamer/Upper', auth());
    const got = collect(bidi);
    for (const s of ['a', 'b', 'c']) bidi.send(JSON.stringify({ s }));
    bidi.send('{"end":true}');
    const r = await got;
    assert.equal(r.code, 1000);
    assert.deepEqual(r.messages, [{ s: 'A' }, { s: 'B' }, { s: 'C' }]);

    const unary = await open(url, '/v1/streamer/Echo', auth());
    const one = collect(unary);
    unary.send('{"s":"hi"}');
    assert.deepEqual((await one).messages, [{ s: 'hi' }]);
  });

  test('the client closing cancels the call on the service (WebSocket and SSE)', async () => {
    const cancelledWs = whenCancelled('ws');
    const ws = await open(url, '/v1/streamer/Forever', auth());
    ws.send(JSON.stringify({ tag: 'ws' }));
    await new Promise<void>((resolve) => ws.once('message', () => resolve()));
    ws.close(1000);
    await cancelledWs;

    const cancelledSse = whenCancelled('sse');
    const { hostname, port } = new URL(url);
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: hostname, port, path: '/v1/streamer/Forever?tag=sse', headers: { ...auth().headers, accept: 'text/event-stream' }, agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
    await cancelledSse;
  });

  test('a service error is the last message, then close 4000 + code; bad requests too', async () => {
    const ws = await open(url, '/v1/streamer/Fail', auth());
    const done = collect(ws);
    ws.send('{}');
    const r = await done;
    assert.equal(r.code, 4403);
    assert.deepEqual(r.messages, [{ i: 0 }, { error: { id: 'streamer', code: 403, detail: 'no more for you', status: 'Forbidden' } }]);

    const bad = await open(url, '/v1/streamer/Count', auth());
    const badDone = collect(bad);
    bad.send('{"n":"many"}');
    const b = await badDone;
    assert.equal(b.code, 4400);
    assert.equal((b.messages[0] as { error: { code: number } }).error.code, 400);
  });

  test('credentials are checked before the upgrade: 401/404 as HTTP JSON; the subprotocol carries a token', async () => {
    await assert.rejects(open(url, '/v1/streamer/Count', { headers: { 'micro-namespace': 'tenant-s' } }), (err: { status: number; body: { code: number; detail: string } }) => {
      assert.equal(err.status, 401);
      assert.equal(err.body.code, 401);
      assert.match(err.body.detail, /credentials required/);
      return true;
    });
    await assert.rejects(open(url, '/v1/streamer/Count', { headers: { authorization: 'Bearer x.y.z' } }), { status: 401 });
    await assert.rejects(open(url, '/v1/streamer/Nope', auth()), { status: 404 });
    await assert.rejects(open(url, '/v1/streamer/Count?n=1', auth()), { status: 400 });
    await assert.rejects(open(url, '/v1/streamer/Count', { headers: { cookie: `micro-token=${token}`, origin: 'https://evil.example' } }), { status: 403 });
    const ws = await open(url, '/v1/streamer/Count', { protocols: ['micro', `micro-token.${token}`] });
    assert.equal(ws.protocol, 'micro');
    const done = collect(ws);
    ws.send('{"n":2}');
    assert.deepEqual((await done).messages, [{ i: 0 }, { i: 1 }]);
  });

  test('another Upgrade (h2c) is served as plain HTTP/1.1 without a body, refused with one', async () => {
    const get = await raw(url, `GET /v1/streamer/Echo?s=h2 HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nauthorization: Bearer ${token}\r\n\r\n`);
    assert.equal(get.status, 200, get.text);
    assert.deepEqual(get.json, { s: 'h2' });
    const post = await raw(url, `POST /v1/streamer/Echo HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: h2c\r\ncontent-type: application/json\r\ncontent-length: 8\r\nauthorization: Bearer ${token}\r\n\r\n{"s":"x"}`);
    assert.equal(post.status, 400, post.text);
  });

  test('messages that are not JSON text, and binary frames: close 1003', async () => {
    for (const message of ['not json', Buffer.from([1, 2, 3])]) {
      const ws = await open(url, '/v1/streamer/Upper', auth());
      const done = collect(ws);
      ws.send(message, { binary: typeof message !== 'string' });
      const r = await done;
      assert.equal(r.code, 1003);
      assert.ok(r.reason.length > 0);
    }
  });

  test('a flood of requests: close 1008, and the gateway keeps serving', async () => {
    const ws = await open(url, '/v1/streamer/Slow', auth());
    const done = collect(ws);
    for (let i = 0; i < 5000 && ws.readyState === WebSocket.OPEN; i++) ws.send(JSON.stringify({ x: i }));
    const r = await done;
    assert.equal(r.code, 1008);
    assert.match(r.reason, /queued/);
    const res = await http(url, 'POST', '/v1/streamer/Echo', { headers: { ...auth().headers, 'content-type': 'application/json' }, body: '{"s":"still"}' });
    assert.deepEqual(res.json, { s: 'still' });
  });

  test('an oversized message: close 1009', async () => {
    const g = await start({ rateLimit: false, maxBodyBytes: 1024 });
    const ws = await open(g.url, '/v1/streamer/Upper', auth());
    const done = collect(ws);
    ws.send(JSON.stringify({ s: 'x'.repeat(4096) }));
    assert.equal((await done).code, 1009);
  });

  test('backpressure: a client that does not read holds the service back', async () => {
    const g = await start({ rateLimit: false, streamLimits: { highWaterMark: 64 * 1024 } });
    const socket = await open(g.url, '/v1/streamer/Flood', auth());
    let got = 0;
    socket.on('message', () => got++);
    socket.send('{}');
    await new Promise((r) => setTimeout(r, 100));
    socket.pause();
    await new Promise((r) => setTimeout(r, 400));
    const at = produced;
    await new Promise((r) => setTimeout(r, 400));
    // paused: the service is held back (kernel buffers hold a few MB at most)
    const ranAhead = produced - at;
    const total = produced;
    socket.resume();
    await new Promise((r) => setTimeout(r, 100));
    socket.close();
    assert.ok(ranAhead < 50, `the service ran ahead: ${at} → ${at + ranAhead}`);
    assert.ok(total < 3_000, `produced ${total}`);
    assert.ok(got > 0);
  });

  test('long streams outlive the request timeouts; SSE sends keep-alive comments', async () => {
    const g = await start({ rateLimit: false, headersTimeout: 200, requestTimeout: 300, streamLimits: { keepAlive: 100, pingInterval: 100 } });
    const ws = await open(g.url, '/v1/streamer/Forever', auth());
    let wsCount = 0;
    ws.on('message', () => wsCount++);
    ws.send('{"tag":"long-ws"}');
    const { hostname, port } = new URL(g.url);
    let text = '';
    const req = request({ host: hostname, port, path: '/v1/streamer/Forever?tag=long-sse', headers: { ...auth().headers, accept: 'text/event-stream' }, agent: false }, (res) => {
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
    });
    req.end();
    await new Promise((r) => setTimeout(r, 1_000));
    const before = [wsCount, text.length];
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(ws.readyState, WebSocket.OPEN);
    assert.ok(wsCount > (before[0] as number), 'the WebSocket stream goes on');
    assert.ok(text.length > (before[1] as number), 'the SSE stream goes on');
    assert.match(text, /\n: keep-alive\n\n/);
    ws.close();
    req.destroy();
  });

  test('closing the gateway ends open streams (1001) and cancels their calls', async () => {
    const g = await start({ rateLimit: false });
    const cancelledWs = whenCancelled('shutdown');
    const ws = await open(g.url, '/v1/streamer/Forever', auth());
    const done = collect(ws);
    ws.send('{"tag":"shutdown"}');
    await new Promise<void>((resolve) => ws.once('message', () => resolve()));
    const t0 = Date.now();
    await g.close(5_000);
    assert.ok(Date.now() - t0 < 2_000, `close took ${Date.now() - t0} ms`);
    assert.equal((await done).code, 1001);
    await cancelledWs;
  });

  test('opening a stream counts against the rate limit: 429 with Retry-After', async () => {
    const g = await start({ rateLimit: { rate: 0.5, burst: 2 } });
    const a = await open(g.url, '/v1/streamer/Upper', auth());
    const b = await open(g.url, '/v1/streamer/Upper', auth());
    await assert.rejects(open(g.url, '/v1/streamer/Upper', auth()), (err: { status: number; body: { code: number } }) => err.status === 429 && err.body.code === 429);
    a.close();
    b.close();
  });

  test('too many open streams per account: 429 before the upgrade; closing frees a slot', async () => {
    const g = await start({ rateLimit: false, maxStreams: 2 });
    const a = await open(g.url, '/v1/streamer/Upper', auth());
    const b = await open(g.url, '/v1/streamer/Upper', auth());
    await assert.rejects(open(g.url, '/v1/streamer/Upper', auth()), { status: 429 });
    const closed = collect(a);
    a.close();
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    const c = await open(g.url, '/v1/streamer/Upper', auth());
    b.close();
    c.close();
  });
});
