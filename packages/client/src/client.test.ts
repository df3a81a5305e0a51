import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { MicroClient, MicroClientError, MicroHttpError, type WebSocketConstructor } from './index.js';
import { startHarness, type Harness } from './testing.js';

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Why the gateway does not upgrade a stream's path to a WebSocket, if it does not (streams may not be there yet). */
async function gatewayStreams(url: string, token: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/greeter/Stream`, ['micro', `micro-token.${token}`]);
    ws.on('open', () => {
      ws.close(1000);
      resolve(undefined);
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => {
        ws.terminate();
        // 501: streams not built yet; anything else means streams exist and fail: test them
        resolve(res.statusCode === 501 ? `the gateway answers the WebSocket upgrade with HTTP 501 ${body.slice(0, 200)}` : undefined);
      });
    });
    ws.on('error', () => resolve(undefined));
  });
}

describe('MicroClient against micro server', () => {
  let h: Harness;
  let client: MicroClient;

  before(async () => {
    h = await startHarness();
    client = new MicroClient({ url: h.url, token: h.token, WebSocket: WebSocket as unknown as WebSocketConstructor });
  });
  after(() => h?.close());

  test('call: a response; Call and call; Handler.Method; a token function; a typed service', async () => {
    assert.deepEqual(await client.call('greeter', 'Call', { name: 'Alice' }), { message: 'Hello Alice' });
    assert.deepEqual(await client.call('greeter', 'call', { name: 'Al', times: 2 }), { message: 'Hello AlHello Al' });
    assert.deepEqual(await client.call('greeter', 'Greeter.Hello', { name: 'Bo' }), { message: 'Hi Bo' });
    const lazy = new MicroClient({ url: `${h.url}/`, token: async () => h.token });
    const nested = await lazy.call<unknown, { city: string; count: number }>('greeter', 'Nested', { user: { name: 'x', address: { city: 'Oslo' } }, tags: [{ key: 'a', value: 'b' }] });
    assert.equal(nested.city, 'Oslo');
    assert.equal(nested.count, 1);
    const greeter = client.service<{ Call: { request: { name: string }; response: { message: string } }; 'Greeter.Hello': { request: { name: string }; response: { message: string } } }>('greeter');
    assert.equal((await greeter.Call({ name: 'T' })).message, 'Hello T');
    assert.equal((await greeter['Greeter.Hello']({ name: 'T' })).message, 'Hi T');
  });

  test('errors: 400 naming the field, 401 without credentials, 404 unknown service and endpoint', async () => {
    await assert.rejects(client.call('greeter', 'Call', { name: 5 }), (err: unknown) => {
      assert.ok(err instanceof MicroHttpError, String(err));
      assert.equal(err.code, 400);
      assert.equal(err.status, 'Bad Request');
      assert.equal(typeof err.id, 'string');
      assert.match(err.detail, /name/);
      return true;
    });
    await assert.rejects(client.call('greeter', 'Nested', { user: { name: 'x', address: { city: 7 } } }), (err: MicroHttpError) => err.code === 400 && /city/.test(err.detail));
    const anonymous = new MicroClient({ url: h.url });
    await assert.rejects(anonymous.call('greeter', 'Call', { name: 'x' }), (err: MicroHttpError) => err instanceof MicroHttpError && err.code === 401 && err.status === 'Unauthorized' && /credentials/.test(err.detail));
    const forged = new MicroClient({ url: h.url, token: 'not-a-token' });
    await assert.rejects(forged.call('greeter', 'Call', { name: 'x' }), (err: MicroHttpError) => err.code === 401);
    await assert.rejects(client.call('nope', 'Call', {}), (err: MicroHttpError) => err.code === 404 && /nope/.test(err.detail) && err.message.includes('404 Not Found'));
    await assert.rejects(client.call('greeter', 'Nope', {}), (err: MicroHttpError) => err.code === 404 && /Nope/.test(err.detail));
  });

  test('timeout: a MicroClientError of kind timeout naming the URL; abort signals', async () => {
    const t0 = Date.now();
    await assert.rejects(client.call('greeter', 'Slow', { ms: 5_000 }, { timeout: 200 }), (err: unknown) => {
      assert.ok(err instanceof MicroClientError, String(err));
      assert.equal(err.kind, 'timeout');
      assert.equal(err.url, `${h.url}/v1/greeter/Slow`);
      assert.match(err.message, /no answer in 200 ms/);
      return true;
    });
    assert.ok(Date.now() - t0 < 2_000);
    const quick = new MicroClient({ url: h.url, token: h.token, timeout: 150 });
    await assert.rejects(quick.call('greeter', 'Slow', { ms: 3_000 }), (err: MicroClientError) => err.kind === 'timeout');
    assert.deepEqual(await quick.call('greeter', 'Slow', { ms: 1 }), { ok: true });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(client.call('greeter', 'Slow', { ms: 3_000 }, { signal: ac.signal }), (err: MicroClientError) => /aborted/.test(err.message));
  });

  test('network errors name the URL; bad URLs are refused up front', async () => {
    const port = await closedPort();
    const down = new MicroClient({ url: `http://127.0.0.1:${port}`, timeout: 2_000 });
    await assert.rejects(down.call('greeter', 'Call', {}), (err: unknown) => {
      assert.ok(err instanceof MicroClientError, String(err));
      assert.equal(err.kind, 'network');
      assert.equal(err.message, `POST http://127.0.0.1:${port}/v1/greeter/Call: cannot reach the gateway: connect ECONNREFUSED 127.0.0.1:${port}`);
      return true;
    });
    assert.throws(() => new MicroClient({ url: 'localhost:8080' }), /invalid url|http:\/\/ or https:\/\//);
    assert.throws(() => new MicroClient({ url: 'ftp://x' }), /http:\/\/ or https:\/\//);
  });

  test('stream: responses over a WebSocket; breaking out closes it; errors', async (t) => {
    const why = await gatewayStreams(h.url, h.token);
    if (why) {
      console.log(`# skipped the stream test: ${why}`);
      t.skip(why);
      return;
    }
    const got: unknown[] = [];
    for await (const msg of client.stream('greeter', 'Stream', { name: 'Bob', count: 3 })) got.push(msg);
    assert.deepEqual(got, [0, 1, 2].map((index) => ({ message: 'Hello Bob', index })));
    // breaking out early closes the socket (and a next stream still works)
    let n = 0;
    for await (const _msg of client.stream('greeter', 'Stream', { name: 'x', count: 1000 })) if (++n === 2) break;
    assert.equal(n, 2);
    const empty: unknown[] = [];
    for await (const msg of client.stream('greeter', 'Stream', { name: 'x', count: 0 })) empty.push(msg);
    assert.deepEqual(empty, []);
    // a bad request: one error message, then the end
    await assert.rejects(
      (async () => {
        for await (const _msg of client.stream('greeter', 'Stream', { name: 5, count: 1 })) void _msg;
      })(),
      (err: unknown) => err instanceof MicroHttpError && err.code === 400 && /name/.test(err.detail),
    );
    // refused before the upgrade: 401 without credentials, 404 for an unknown endpoint
    const anonymous = new MicroClient({ url: h.url, WebSocket: WebSocket as unknown as WebSocketConstructor });
    await assert.rejects(
      (async () => {
        for await (const _msg of anonymous.stream('greeter', 'Stream', { name: 'x', count: 1 })) void _msg;
      })(),
      (err: unknown) => err instanceof MicroHttpError && err.code === 401 && err.status === 'Unauthorized',
    );
    await assert.rejects(
      (async () => {
        for await (const _msg of client.stream('greeter', 'Nope', {})) void _msg;
      })(),
      (err: unknown) => err instanceof MicroHttpError && err.code === 404,
    );
    // a unary endpoint over the socket: one message
    const one: unknown[] = [];
    for await (const msg of client.stream('greeter', 'Greeter.Hello', { name: 'Ws' })) one.push(msg);
    assert.deepEqual(one, [{ message: 'Hi Ws' }]);
    // no WebSocket constructor on Node 20: a clear error
    const noWs = new MicroClient({ url: h.url, token: h.token, WebSocket: undefined });
    if (!(globalThis as { WebSocket?: unknown }).WebSocket) {
      await assert.rejects(
        (async () => {
          for await (const _msg of noWs.stream('greeter', 'Stream', { name: 'x', count: 1 })) void _msg;
        })(),
        /pass options\.WebSocket/,
      );
    }
  });
});
