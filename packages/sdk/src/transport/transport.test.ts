import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import fc from 'fast-check';
import { MicroError } from '../errors/errors.js';
import { startEcho, sleep } from '../test/fixtures.js';
import { Client } from '../client/client.js';
import { createClient } from '../client/typed.js';
import { echo } from '../test/fixtures.js';
import { decodeFrame, encodeFrame, encodeRequest, encodeRoute, FrameReader, FrameType, PREFACE } from './frame.js';
import { parseAddress } from './address.js';
import { jsonCodec, msgpackCodec } from '../codec/codec.js';
import { ConnectionPool } from './client.js';

/** A raw socket that speaks the protocol by hand, to send what no client would. */
async function rawConnection(address: string): Promise<{ socket: Socket; frames: () => Promise<Buffer[]>; closed: Promise<void> }> {
  const { host, port } = parseAddress(address) as { host: string; port: number };
  const socket = connect({ host, port });
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const got: Buffer[] = [];
  const reader = new FrameReader(16 << 20, (f) => got.push(Buffer.from(f)), () => undefined);
  socket.on('data', (c: Buffer) => reader.push(c));
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  return {
    socket,
    closed,
    frames: async () => {
      for (let i = 0; i < 100 && got.length === 0; i++) await sleep(10);
      return got.splice(0);
    },
  };
}

function errorOf(frame: Buffer): { id: number; code: number; detail: string } {
  const f = decodeFrame(frame);
  assert.equal(f.type, FrameType.Error);
  const body = JSON.parse(f.body.toString()) as { code: number; detail: string };
  return { id: f.id, code: body.code, detail: body.detail };
}

test('frames round-trip through the encoder and decoder', () => {
  const route = encodeRoute('micro', 'helloworld', 'Call');
  const frame = encodeRequest(FrameType.Request, 7, 0, 'unary', 1500, route, JSON.stringify({ md: { a: 'b' } }), '{"name":"x"}');
  const decoded = decodeFrame(frame.subarray(4));
  assert.equal(decoded.id, 7);
  assert.equal(decoded.head?.service, 'helloworld');
  assert.equal(decoded.head?.endpoint, 'Call');
  assert.equal(decoded.head?.namespace, 'micro');
  assert.equal(decoded.head?.timeout, 1500);
  assert.deepEqual(decoded.head?.meta, { md: { a: 'b' } });
  assert.equal(decoded.body.toString(), '{"name":"x"}');
});

test('the frame reader reassembles frames split at any byte', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 200 }), { minLength: 1, maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1 }), (bodies, cuts) => {
      const stream = Buffer.concat(bodies.map((b, i) => encodeFrame(FrameType.Data, i + 1, 0, JSON.stringify(b))));
      const out: string[] = [];
      const reader = new FrameReader(1 << 20, (f) => out.push(JSON.parse(decodeFrame(f).body.toString()) as string), () => assert.fail('no oversize'));
      let off = 0;
      let i = 0;
      while (off < stream.length) {
        const n = cuts[i++ % cuts.length] as number;
        reader.push(stream.subarray(off, off + n));
        off += n;
      }
      assert.deepEqual(out, bodies);
    }),
  );
});

test('decoding hostile bytes throws typed errors, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        decodeFrame(Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof MicroError, `threw ${String(err)}`);
        assert.equal(err.code, 400);
      }
    }),
    { numRuns: 2000 },
  );
});

test('a client that does not speak the protocol is told so and disconnected', async () => {
  const h = await startEcho({ remote: true });
  try {
    const { host, port } = parseAddress(h.service.address!) as { host: string; port: number };
    const socket = connect({ host, port });
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((r) => socket.once('close', () => r()));
    assert.match(text, /^HTTP\/1\.1 400 Bad Request/);
    assert.match(text, /micro RPC protocol/);
    // the service keeps serving
    assert.equal((await h.typed.Call({ name: 'still' })).message, 'Hello still');
  } finally {
    await h.close();
  }
});

test('malformed frames get typed errors on their id and the connection keeps serving', async () => {
  const h = await startEcho({ remote: true });
  try {
    const raw = await rawConnection(h.service.address!);
    raw.socket.write(PREFACE);
    // unknown frame type 99 on id 5
    const bad = encodeFrame(FrameType.Data, 5, 0, 'x');
    bad[4] = 99;
    raw.socket.write(bad);
    let [frame] = await raw.frames();
    assert.deepEqual({ ...errorOf(frame!), detail: undefined }, { id: 5, code: 400, detail: undefined });
    // a request whose route is garbage
    const garbageRoute = encodeRequest(FrameType.Request, 6, 0, 'unary', 0, Buffer.from('no-newlines'), undefined, '{}');
    raw.socket.write(garbageRoute);
    [frame] = await raw.frames();
    assert.equal(errorOf(frame!).code, 400);
    assert.match(errorOf(frame!).detail, /route/);
    // a body that is not JSON
    const route = encodeRoute(h.service.namespace, 'echo', 'Call');
    raw.socket.write(encodeRequest(FrameType.Request, 7, 0, 'unary', 0, route, undefined, '{"name":'));
    [frame] = await raw.frames();
    assert.equal(errorOf(frame!).code, 400);
    assert.match(errorOf(frame!).detail, /not valid JSON/);
    // bad metadata
    raw.socket.write(encodeRequest(FrameType.Request, 8, 0, 'unary', 0, route, '[1,2]', '{"name":"x"}'));
    [frame] = await raw.frames();
    assert.match(errorOf(frame!).detail, /metadata/);
    // and then a good request on the same connection works
    raw.socket.write(encodeRequest(FrameType.Request, 9, 0, 'unary', 0, route, undefined, '{"name":"ok"}'));
    [frame] = await raw.frames();
    const ok = decodeFrame(frame!);
    assert.equal(ok.type, FrameType.Response);
    assert.equal(ok.id, 9);
    assert.deepEqual(JSON.parse(ok.body.toString()), { message: 'Hello ok', metadata: {} });
    raw.socket.destroy();
  } finally {
    await h.close();
  }
});

test('an oversized frame is refused with 413 without being buffered, and the connection goes on', async () => {
  const h = await startEcho({ remote: true, service: { maxFrame: 64 * 1024 } });
  try {
    const raw = await rawConnection(h.service.address!);
    raw.socket.write(PREFACE);
    const route = encodeRoute(h.service.namespace, 'echo', 'Call');
    const huge = encodeRequest(FrameType.Request, 11, 0, 'unary', 0, route, undefined, JSON.stringify({ name: 'x'.repeat(200 * 1024) }));
    raw.socket.write(huge);
    raw.socket.write(encodeRequest(FrameType.Request, 12, 0, 'unary', 0, route, undefined, '{"name":"after"}'));
    const frames: Buffer[] = [];
    for (let i = 0; i < 50 && frames.length < 2; i++) frames.push(...(await raw.frames()));
    assert.equal(errorOf(frames[0]!).code, 413);
    assert.equal(errorOf(frames[0]!).id, 11);
    assert.equal(decodeFrame(frames[1]!).type, FrameType.Response);
    raw.socket.destroy();

    // through the client: a request too large is refused by the server, a response too large by the client
    await assert.rejects(h.typed.Call({ name: 'y'.repeat(200 * 1024) }), (err: MicroError) => err.code === 413);
    await assert.rejects(h.typed.Big({ size: 200 * 1024 }), (err: MicroError) => err.code === 413);
  } finally {
    await h.close();
  }
});

test('a request id reused while in flight is refused', async () => {
  const h = await startEcho({ remote: true });
  try {
    const raw = await rawConnection(h.service.address!);
    raw.socket.write(PREFACE);
    const route = encodeRoute(h.service.namespace, 'echo', 'Slow');
    raw.socket.write(encodeRequest(FrameType.Request, 3, 0, 'unary', 0, route, undefined, '{"ms":200}'));
    raw.socket.write(encodeRequest(FrameType.Request, 3, 0, 'unary', 0, route, undefined, '{"ms":200}'));
    const [frame] = await raw.frames();
    assert.match(errorOf(frame!).detail, /already in use/);
    raw.socket.destroy();
  } finally {
    await h.close();
  }
});

test('msgpack works as the codec, end to end', async () => {
  const h = await startEcho({ remote: true, client: { codec: 'msgpack' } });
  try {
    assert.equal((await h.typed.Call({ name: 'mp' })).message, 'Hello mp');
    const got: number[] = [];
    for await (const { n } of h.typed.Count({ to: 5 })) got.push(n);
    assert.deepEqual(got, [1, 2, 3, 4, 5]);
    assert.deepEqual(msgpackCodec.decode(msgpackCodec.encode({ a: [1, 'b'] })), { a: [1, 'b'] });
    assert.throws(() => msgpackCodec.decode(Buffer.from([0xc1])), (err: MicroError) => err.code === 400);
    assert.throws(() => jsonCodec.decode(Buffer.from('{')), (err: MicroError) => err.code === 400);
  } finally {
    await h.close();
  }
});

test('services listen on unix sockets too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-unix-'));
  const h = await startEcho({ remote: true, address: `unix://${join(dir, 'echo.sock')}` });
  try {
    assert.match(h.service.address!, /^unix:\/\//);
    assert.equal((await h.typed.Call({ name: 'unix' })).message, 'Hello unix');
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('many calls in flight share one connection', async () => {
  const h = await startEcho({ remote: true });
  try {
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => h.typed.Call({ name: String(i) })));
    assert.equal(results[499]!.message, 'Hello 499');
  } finally {
    await h.close();
  }
});

test('a server that dies mid-stream ends the stream with a typed error, not a hang', async () => {
  // a child process serves echo; we read a stream from it and kill it with SIGKILL
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { Service } = await import(${JSON.stringify(new URL('../index.js', import.meta.url).href)});
    const { echo, echoHandlers, silent } = await import(${JSON.stringify(new URL('../test/fixtures.js', import.meta.url).href)});
    const { MemoryRegistry } = await import(${JSON.stringify(new URL('../registry/memory.js', import.meta.url).href)});
    const svc = new Service(echo, echoHandlers(), { registry: new MemoryRegistry(), logger: silent, namespace: 'mid' });
    await svc.start();
    console.log(svc.address);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const address = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    const pool = new ConnectionPool();
    const client = createClient(echo, new Client({ namespace: 'mid', address, pool, preferLocal: false }));
    const got: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const { n } of client.Count({ to: 10_000_000 })) {
          got.push(n);
          if (n === 100) child.kill('SIGKILL');
        }
      })(),
      (err: MicroError) => err.code === 503 && /lost/.test(err.detail),
    );
    assert.ok(got.length >= 100);
    // unary calls to the dead node fail fast with a connection error
    await assert.rejects(client.Call({ name: 'x' }), (err: MicroError) => err.code === 503);
    pool.close();
  } finally {
    child.kill('SIGKILL');
  }
});

test('a caller that disappears mid-stream stops the handler on the server', async () => {
  const h = await startEcho({ remote: true });
  try {
    const raw = await rawConnection(h.service.address!);
    raw.socket.write(PREFACE);
    const route = encodeRoute(h.service.namespace, 'echo', 'Count');
    raw.socket.write(encodeRequest(FrameType.Open, 1, 0, 'server', 0, route, undefined, '{"to":100000000}'));
    await raw.frames();
    raw.socket.destroy();
    for (let i = 0; i < 200 && h.probe.streamClosed === 0; i++) await sleep(10);
    assert.equal(h.probe.streamClosed, 1, 'the generator was closed');
    // bounded by the flow control window: the producer stopped long before the end
    assert.ok(h.probe.produced < 1_000_000);
    assert.equal(h.service.state, 'running');
  } finally {
    await h.close();
  }
});
