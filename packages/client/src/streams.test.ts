import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { MicroClient, MicroClientError, MicroHttpError, type WebSocketConstructor } from './index.js';
import { startHarness, type Harness } from './testing.js';

// Client and bidi streams of MicroClient against a real micro server (its gateway and the
// greeter of testing.ts: Sum is a client stream, Chat a bidi stream, Stream a server stream).

const WS = WebSocket as unknown as WebSocketConstructor;

type Greeter = {
  Call: { request: { name: string }; response: { message: string } };
  Stream: { request: { name: string; count: number }; response: { message: string; index: number }; kind: 'server' };
  Sum: { request: { x: number }; response: { sum: number; count: number }; kind: 'client' };
  Chat: { request: { text: string; fail?: boolean }; response: { text: string }; kind: 'bidi' };
};

/** Waits (bounded) until `check` holds: for effects on the service side, which come asynchronously. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), what);
}

describe('MicroClient client and bidi streams against micro server', () => {
  let h: Harness;
  let client: MicroClient;

  before(async () => {
    h = await startHarness();
    client = new MicroClient({ url: h.url, token: h.token, WebSocket: WS });
  });
  after(() => h?.close());

  test('client stream: requests, end, the one response; none at all; the typed view', async () => {
    const sum = client.clientStream<{ x: number }, { sum: number; count: number }>('greeter', 'Sum');
    for (const x of [1, 2, 3.5]) await sum.send({ x });
    assert.deepEqual(await sum.end(), { sum: 6.5, count: 3 });
    assert.deepEqual(await client.clientStream('greeter', 'Sum').end(), { sum: 0, count: 0 });
    // not awaiting each send: they still go out in order
    const fast = client.clientStream<{ x: number }, { sum: number; count: number }>('greeter', 'Sum');
    const sends = Array.from({ length: 500 }, (_, i) => fast.send({ x: i }));
    await Promise.all(sends);
    assert.deepEqual(await fast.end(), { sum: (499 * 500) / 2, count: 500 });

    const greeter = client.service<Greeter>('greeter', { Stream: 'server', Sum: 'client', Chat: 'bidi' });
    // the kinds are checked against the type: missing or wrong ones do not compile
    // @ts-expect-error the streams' kinds are needed at run time
    client.service<Greeter>('greeter');
    // @ts-expect-error Sum is a client stream
    client.service<Greeter>('greeter', { Stream: 'server', Sum: 'bidi', Chat: 'bidi' });
    // a service without streams needs none
    client.service<{ Call: Greeter['Call'] }>('greeter');
    assert.equal((await greeter.Call({ name: 'T' })).message, 'Hello T');
    const s = greeter.Sum();
    await s.send({ x: 40 });
    await s.send({ x: 2 });
    assert.equal((await s.end()).sum, 42);
    const got: number[] = [];
    for await (const m of greeter.Stream({ name: 'x', count: 3 })) got.push(m.index);
    assert.deepEqual(got, [0, 1, 2]);
    const chat = greeter.Chat();
    await chat.send({ text: 'typed' });
    await chat.end();
    const answers: string[] = [];
    for await (const m of chat) answers.push(m.text);
    assert.deepEqual(answers, ['TYPED']);
  });

  test('bidi stream: answers while sending, the end, then the iteration ends', async () => {
    const chat = client.bidiStream<{ text: string }, { text: string }>('greeter', 'Chat');
    const it = chat[Symbol.asyncIterator]();
    await chat.send({ text: 'a' });
    assert.deepEqual(await it.next(), { value: { text: 'A' }, done: false });
    await chat.send({ text: 'b' });
    assert.deepEqual(await it.next(), { value: { text: 'B' }, done: false });
    await chat.end();
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    assert.throws(() => chat[Symbol.asyncIterator](), /iterated once/);

    // many at once, read as they come: all of them, in order
    const many = client.bidiStream<{ text: string }, { text: string }>('greeter', 'Chat');
    const writer = (async () => {
      for (let i = 0; i < 300; i++) await many.send({ text: `m${i}` });
      await many.end();
    })();
    const seen: string[] = [];
    for await (const m of many) seen.push(m.text);
    await writer;
    assert.deepEqual(seen, Array.from({ length: 300 }, (_, i) => `M${i}`));
  });

  test('a reader slower than the stream: the socket is paused and resumed, nothing is lost', async () => {
    // maxQueued 5: past 5 unread responses the `ws` socket stops being read, and resumes at 2
    const got: number[] = [];
    for await (const m of client.stream<unknown, { index: number }>('greeter', 'Stream', { name: 'slow', count: 1000 }, { maxQueued: 5 })) {
      got.push(m.index);
      if (m.index % 100 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(got.length, 1000);
    assert.ok(got.every((v, i) => v === i), 'in order');
  });

  test('an error mid-stream: the answers before it, then a MicroHttpError; sends after it reject with it', async () => {
    const chat = client.bidiStream<{ text: string; fail?: boolean }, { text: string }>('greeter', 'Chat');
    await chat.send({ text: 'one' });
    await chat.send({ text: 'two', fail: true });
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of chat) got.push(m.text);
      })(),
      (err: unknown) => err instanceof MicroHttpError && err.code === 400 && err.status === 'Bad Request' && /cannot answer "two"/.test(err.detail),
    );
    assert.deepEqual(got, ['ONE']);
    await assert.rejects(chat.send({ text: 'three' }), (err: unknown) => err instanceof MicroHttpError && err.code === 400);
    await assert.rejects(chat.end(), (err: unknown) => err instanceof MicroHttpError && err.code === 400);

    // a client stream whose request fails validation: end() rejects naming the field
    const sum = client.clientStream('greeter', 'Sum');
    await sum.send({ x: 'not a number' });
    await assert.rejects(sum.end(), (err: unknown) => err instanceof MicroHttpError && err.code === 400 && /x/.test(err.detail));
  });

  test('send after end, after close; end twice; close cancels the call on the service', async () => {
    const sum = client.clientStream<{ x: number }, { sum: number }>('greeter', 'Sum');
    await sum.send({ x: 1 });
    const ended = sum.end();
    await assert.rejects(sum.send({ x: 2 }), (err: unknown) => err instanceof MicroClientError && err.kind === 'closed' && /send after end/.test(err.message));
    assert.equal((await ended).sum, 1);

    const chat = client.bidiStream<{ text: string }, { text: string }>('greeter', 'Chat');
    await chat.send({ text: 'to-cancel' });
    const first = await chat[Symbol.asyncIterator]().next();
    assert.deepEqual(first.value, { text: 'TO-CANCEL' });
    const e1 = chat.end();
    assert.equal(chat.end(), e1, 'end() twice is the same end');
    await e1;
    chat.close();
    await assert.rejects(chat.send({ text: 'late' }), (err: unknown) => err instanceof MicroClientError && err.kind === 'closed');

    // closing before the end cancels the call: the handler's ctx.signal fires
    const open = client.bidiStream<{ text: string }, { text: string }>('greeter', 'Chat');
    await open.send({ text: 'cancel-me' });
    for await (const m of open) {
      assert.equal(m.text, 'CANCEL-ME');
      break; // breaking out of the loop closes the stream
    }
    await eventually(() => h.cancelled.includes('cancel-me'), `the service saw the cancel (cancelled: ${h.cancelled.join(', ')})`);
    const aborted = new AbortController();
    const viaSignal = client.bidiStream<{ text: string }, { text: string }>('greeter', 'Chat', { signal: aborted.signal });
    await viaSignal.send({ text: 'abort-me' });
    await viaSignal[Symbol.asyncIterator]().next();
    aborted.abort();
    await eventually(() => h.cancelled.includes('abort-me'), 'the abort signal cancels the call');
    await assert.rejects(viaSignal.send({ text: 'x' }), (err: unknown) => err instanceof MicroClientError && /aborted/.test(err.message));
  });

  test('oversized and odd messages: refused by the client (the stream goes on), or by the gateway (1009)', async () => {
    const big = 'x'.repeat(1024 * 1024 + 10);
    const sum = client.clientStream<unknown, { sum: number; count: number }>('greeter', 'Sum');
    await assert.rejects(sum.send({ x: 1, pad: big }), (err: unknown) => err instanceof MicroClientError && err.kind === 'too-large' && /over the limit of 1048576/.test(err.message));
    // multi-byte characters count as bytes: 400,000 × 3 bytes is over 1 MiB
    await assert.rejects(sum.send({ x: 1, pad: '€'.repeat(400_000) }), (err: unknown) => err instanceof MicroClientError && err.kind === 'too-large');
    await assert.rejects(sum.send({ end: true }), /cannot be sent as a request/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await assert.rejects(sum.send(cyclic), /not JSON-serialisable/);
    await sum.send({ x: 5 });
    assert.deepEqual(await sum.end(), { sum: 5, count: 1 });

    // without the client's check, the gateway closes the stream with 1009
    const unchecked = client.bidiStream<unknown, unknown>('greeter', 'Chat', { maxMessageBytes: Infinity });
    await unchecked.send({ text: big });
    await assert.rejects(
      (async () => {
        for await (const _m of unchecked) void _m;
      })(),
      (err: unknown) => err instanceof MicroClientError && err.kind === 'protocol' && /closed with code 1009/.test(err.message),
    );
    // a server stream's request over the limit ends the stream with that error
    await assert.rejects(
      (async () => {
        for await (const _m of client.stream('greeter', 'Stream', { name: big, count: 1 })) void _m;
      })(),
      (err: unknown) => err instanceof MicroClientError && err.kind === 'too-large',
    );
  });

  test('refused before the upgrade: 401 without credentials, 404 unknown endpoint, for sends and end()', async () => {
    const anonymous = new MicroClient({ url: h.url, WebSocket: WS });
    const sum = anonymous.clientStream('greeter', 'Sum');
    await assert.rejects(sum.send({ x: 1 }), (err: unknown) => err instanceof MicroHttpError && err.code === 401);
    await assert.rejects(sum.end(), (err: unknown) => err instanceof MicroHttpError && err.code === 401);
    const nope = client.bidiStream('greeter', 'Nope');
    await assert.rejects(
      (async () => {
        for await (const _m of nope) void _m;
      })(),
      (err: unknown) => err instanceof MicroHttpError && err.code === 404,
    );
    // a token a subprotocol cannot carry: a clear error, not a throw from the constructor
    const odd = new MicroClient({ url: h.url, token: 'bad token', WebSocket: WS });
    await assert.rejects(odd.clientStream('greeter', 'Sum').end(), (err: unknown) => err instanceof MicroClientError && /cannot open a WebSocket/.test(err.message));
  });
});

describe('MicroClient streams when the server goes away', () => {
  test('the gateway closing (1001): the iteration and later sends fail with a MicroClientError', async () => {
    const h = await startHarness();
    let stopped = false;
    try {
      const client = new MicroClient({ url: h.url, token: h.token, WebSocket: WS });
      const chat = client.bidiStream<{ text: string }, { text: string }>('greeter', 'Chat');
      const it = chat[Symbol.asyncIterator]();
      await chat.send({ text: 'before' });
      assert.deepEqual((await it.next()).value, { text: 'BEFORE' });
      // the server (and so its gateway, first) stops while the stream is open
      await h.server.stop();
      stopped = true;
      await assert.rejects(it.next(), (err: unknown) => err instanceof MicroClientError && err.kind === 'protocol' && /closed with code 1001/.test(err.message) && /going away/.test(err.message));
      await assert.rejects(chat.send({ text: 'after' }), (err: unknown) => err instanceof MicroClientError && /1001/.test(err.message));
      // a new stream to a gateway that is gone: a network error naming the URL
      await assert.rejects(client.clientStream('greeter', 'Sum').end(), (err: unknown) => err instanceof MicroClientError && err.kind === 'network' && err.url === `${h.url}/v1/greeter/Sum`);
    } finally {
      // stopping the server a second time is harmless; the harness removes its home
      await h.close();
      assert.ok(stopped);
    }
  });
});
