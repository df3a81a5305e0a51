import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { MicroClient, MicroClientError, MicroHttpError, type WebSocketConstructor } from './index.js';

// The client's side of the stream protocol, against a stand-in that speaks it exactly as the
// gateway contract says (the real gateway is tested in client.test.ts once it streams):
// GET the path with Upgrade: websocket; first text message = the request; each response one
// JSON text message; close 1000 at the end; an error = one final {"error": {...}} message.
describe('MicroClient.stream: the WebSocket protocol', () => {
  let http: Server;
  let wss: WebSocketServer;
  let url: string;
  const seen: { path: string; token: string | null; namespace: string | undefined; request: unknown }[] = [];
  let closedByClient = 0;

  before(async () => {
    http = createServer((_req, res) => res.writeHead(404).end());
    wss = new WebSocketServer({ server: http, handleProtocols: (protocols) => (protocols.has('micro') ? 'micro' : false) });
    wss.on('connection', (ws, req) => {
      const u = new URL(req.url ?? '/', 'http://x');
      const token = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).find((p) => p.startsWith('micro-token.'))?.slice('micro-token.'.length) ?? null;
      if (u.search !== '' || ws.protocol !== 'micro' || token !== 'tok') {
        ws.send(JSON.stringify({ error: { id: 'gateway', code: 401, detail: 'credentials required', status: 'Unauthorized' } }));
        ws.close(4401, 'Unauthorized');
        return;
      }
      ws.once('message', (data) => {
        const request = JSON.parse(String(data)) as { count: number; fail?: boolean; abrupt?: boolean; forever?: boolean; closeOnly?: boolean };
        seen.push({ path: u.pathname, token, namespace: req.headers['micro-namespace'] as string | undefined, request });
        if (request.forever) {
          let i = 0;
          const t = setInterval(() => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ index: i++ })), 5);
          ws.on('close', () => {
            clearInterval(t);
            closedByClient++;
          });
          return;
        }
        for (let index = 0; index < request.count; index++) ws.send(JSON.stringify({ index }));
        if (request.fail) {
          ws.send(JSON.stringify({ error: { id: 'greeter', code: 400, detail: 'invalid request: name: expected string', status: 'Bad Request' } }));
          ws.close(4400, 'Bad Request');
        } else if (request.abrupt) ws.terminate();
        else if (request.closeOnly) ws.close(4429, 'Too Many Requests');
        else ws.close(1000, 'done');
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });

  const client = (o: { token?: string; namespace?: string } = { token: 'tok' }) =>
    new MicroClient({ url, ...o, WebSocket: WebSocket as unknown as WebSocketConstructor, timeout: 2_000 });
  const collect = async (it: AsyncIterable<unknown>) => {
    const out: unknown[] = [];
    for await (const m of it) out.push(m);
    return out;
  };

  test('4000 + status without an error message is a MicroHttpError too', async () => {
    await assert.rejects(collect(client().stream('greeter', 'Stream', { count: 1, closeOnly: true })), (err: MicroHttpError) => err instanceof MicroHttpError && err.code === 429 && err.status === 'Too Many Requests');
  });

  test('the request goes first, each message is one response, close 1000 ends it', async () => {
    assert.deepEqual(await collect(client({ token: 'tok', namespace: 'tenant-a' }).stream('greeter', 'Greeter.Stream', { count: 3 })), [{ index: 0 }, { index: 1 }, { index: 2 }]);
    assert.deepEqual(seen.at(-1), { path: '/v1/greeter/Greeter/Stream', token: 'tok', namespace: 'tenant-a', request: { count: 3 } });
    assert.deepEqual(await collect(client().stream('greeter', 'Stream', { count: 0 })), []);
  });

  test('an error message: the responses before it, then a MicroHttpError', async () => {
    const got: unknown[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of client().stream('greeter', 'Stream', { count: 2, fail: true })) got.push(m);
      })(),
      (err: unknown) => err instanceof MicroHttpError && err.code === 400 && err.id === 'greeter' && /name/.test(err.detail),
    );
    assert.equal(got.length, 2);
    await assert.rejects(collect(client({}).stream('greeter', 'Stream', { count: 1 })), (err: MicroHttpError) => err.code === 401);
  });

  test('breaking out of the loop closes the socket', async () => {
    const before = closedByClient;
    let n = 0;
    for await (const _m of client().stream('greeter', 'Stream', { forever: true })) if (++n === 3) break;
    for (let i = 0; i < 100 && closedByClient === before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(closedByClient, before + 1);
  });

  test('a close other than 1000, a refused connection, no WebSocket: clear errors', async () => {
    await assert.rejects(collect(client().stream('greeter', 'Stream', { count: 1, abrupt: true })), (err: MicroClientError) => err instanceof MicroClientError && /closed with code 1006/.test(err.message));
    const down = new MicroClient({ url: 'http://127.0.0.1:9', WebSocket: WebSocket as unknown as WebSocketConstructor });
    await assert.rejects(collect(down.stream('greeter', 'Stream', {})), (err: MicroClientError) => err.kind === 'network' && err.message.includes('http://127.0.0.1:9/v1/greeter/Stream'));
    if (!(globalThis as { WebSocket?: unknown }).WebSocket) {
      await assert.rejects(collect(new MicroClient({ url }).stream('greeter', 'Stream', {})), /pass options\.WebSocket/);
    }
  });
});
