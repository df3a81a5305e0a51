import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '../errors/errors.js';
import { startEcho, sleep, type Harness } from '../test/fixtures.js';

/**
 * The same contract, twice: calls made in this process (the router is called directly)
 * and calls made over TCP must behave alike.
 */
for (const mode of ['in-process', 'tcp'] as const) {
  describe(`calls ${mode}`, () => {
    const start = (extra: Parameters<typeof startEcho>[0] = {}): Promise<Harness> => startEcho({ remote: mode === 'tcp', ...extra });

    test('a unary call returns the typed response', async () => {
      const h = await start();
      try {
        const res = await h.typed.Call({ name: 'Alice' });
        assert.equal(res.message, 'Hello Alice');
        // the lower-case alias of the endpoint answers too
        assert.deepEqual(await h.client.call('echo', 'call', { name: 'Bob' }), { message: 'Hello Bob', metadata: {} });
      } finally {
        await h.close();
      }
    });

    test('metadata travels with the call', async () => {
      const h = await start({ client: { metadata: { 'x-team': 'core' } } });
      try {
        const res = await h.typed.Call({ name: 'A' }, { metadata: { 'x-request': '42' } });
        assert.deepEqual(res.metadata, { 'x-team': 'core', 'x-request': '42' });
      } finally {
        await h.close();
      }
    });

    test('invalid requests are rejected before the handler, naming the field', async () => {
      const h = await start();
      try {
        await assert.rejects(h.client.call('echo', 'Call', { name: 42 }), (err: MicroError) => {
          assert.equal(err.code, 400);
          assert.equal(err.id, 'echo');
          assert.match(err.detail, /^invalid request: name: /);
          return true;
        });
        await assert.rejects(h.client.call('echo', 'Call', {}), (err: MicroError) => err.code === 400 && /name/.test(err.detail));
        await assert.rejects(h.client.call('echo', 'Call', { name: 'x', nested: { count: 1.5 } }), (err: MicroError) => err.code === 400 && /nested\.count/.test(err.detail));
        await assert.rejects(h.client.call('echo', 'Call', null), (err: MicroError) => err.code === 400);
      } finally {
        await h.close();
      }
    });

    test('typed errors cross intact; unexpected throws become a 500 without the message', async () => {
      const h = await start();
      try {
        await assert.rejects(h.typed.Fail({ kind: 'typed' }), (err: unknown) => {
          assert.ok(err instanceof MicroError);
          assert.deepEqual(err.toJSON(), { id: 'echo', code: 404, detail: 'no such thing', status: 'Not Found' });
          return true;
        });
        await assert.rejects(h.typed.Fail({ kind: 'conflict' }), (err: MicroError) => err.code === 409 && err.status === 'Conflict');
        await assert.rejects(h.typed.Fail({ kind: 'crash' }), (err: MicroError) => {
          assert.equal(err.code, 500);
          assert.equal(err.detail, 'internal server error');
          assert.doesNotMatch(JSON.stringify(err.toJSON()), /secret|stack|at /);
          return true;
        });
      } finally {
        await h.close();
      }
    });

    test('unknown endpoints and services are 404s', async () => {
      const h = await start();
      try {
        await assert.rejects(h.client.call('echo', 'Nope', {}), (err: MicroError) => err.code === 404 && /echo\.Nope/.test(err.detail));
        await assert.rejects(h.client.call('nosuchservice', 'Call', {}), (err: MicroError) => err.code === 404 && /nosuchservice/.test(err.detail));
      } finally {
        await h.close();
      }
    });

    test('a call that passes its deadline fails with 504 and the handler sees the abort', async () => {
      const h = await start();
      try {
        await assert.rejects(h.typed.Slow({ ms: 5_000 }, { timeout: 50 }), (err: MicroError) => err.code === 504);
        // the server side was told: its signal fired
        for (let i = 0; i < 100 && h.probe.aborted === 0; i++) await sleep(10);
        assert.equal(h.probe.aborted, 1);
      } finally {
        await h.close();
      }
    });

    test('cancellation with an AbortSignal reaches the handler', async () => {
      const h = await start();
      try {
        const ac = new AbortController();
        const p = h.typed.Slow({ ms: 5_000 }, { signal: ac.signal });
        setTimeout(() => ac.abort(), 20);
        await assert.rejects(p, (err: MicroError) => err.code === 499);
        for (let i = 0; i < 100 && h.probe.aborted === 0; i++) await sleep(10);
        assert.equal(h.probe.aborted, 1);
        // an already aborted signal fails at once
        await assert.rejects(h.typed.Call({ name: 'x' }, { signal: AbortSignal.abort() }), (err: MicroError) => err.code === 499);
      } finally {
        await h.close();
      }
    });

    test('the remaining deadline and the trace propagate to nested calls', async () => {
      const h = await start();
      try {
        const res = await h.typed['Nested.Call']({ name: 'n' }, { timeout: 2_000 });
        assert.equal(res.message, 'nested n');
        assert.ok(res.remaining > 0 && res.remaining <= 2_000, `nested call saw ${res.remaining} ms left`);
        assert.match(res.traceId, /^[0-9a-f]{32}$/);
        // the Handler.Method form resolves with a lower-case handler too
        const again = await h.client.call('echo', 'nested.Call', { name: 'm' });
        assert.equal((again as { message: string }).message, 'nested m');
      } finally {
        await h.close();
      }
    });

    test('server streams deliver every message in order', async () => {
      const h = await start();
      try {
        const got: number[] = [];
        for await (const { n } of h.typed.Count({ to: 500 })) got.push(n);
        assert.equal(got.length, 500);
        assert.deepEqual(got.slice(0, 3), [1, 2, 3]);
        assert.equal(got.at(-1), 500);
      } finally {
        await h.close();
      }
    });

    test('breaking out of a server stream stops the producer (backpressure and cancel)', async () => {
      const h = await start();
      try {
        const got: number[] = [];
        for await (const { n } of h.typed.Count({ to: 1_000_000 })) {
          got.push(n);
          if (n === 10) break;
        }
        assert.equal(got.length, 10);
        for (let i = 0; i < 200 && h.probe.streamClosed === 0; i++) await sleep(10);
        assert.equal(h.probe.streamClosed, 1, 'the generator on the server was closed');
        // flow control: the producer ran at most a window ahead of the consumer
        assert.ok(h.probe.produced < 200_000, `produced ${h.probe.produced}`);
      } finally {
        await h.close();
      }
    });

    test('a slow consumer holds the producer back', async () => {
      const h = await start();
      try {
        const stream = h.typed.Count({ to: 1_000_000 });
        const first = await stream.next();
        assert.equal(first.value?.n, 1);
        await sleep(200);
        const produced = h.probe.produced;
        assert.ok(produced < 100_000, `producer ran ahead by ${produced} messages`);
        stream.cancel();
        await assert.rejects(stream.next(), (err: MicroError) => err.code === 499);
      } finally {
        await h.close();
      }
    });

    test('client streams send many requests and get one response', async () => {
      const h = await start();
      try {
        async function* numbers() {
          for (let n = 1; n <= 100; n++) yield { n };
        }
        assert.deepEqual(await h.typed.Sum(numbers()), { sum: 5050, count: 100 });
        assert.deepEqual(await h.typed.Sum([{ n: 1 }, { n: 2 }]), { sum: 3, count: 2 });
        assert.deepEqual(await h.typed.Sum([]), { sum: 0, count: 0 });
        // a bad message in the stream fails the call with a 400 naming the field
        await assert.rejects(h.client.stream('echo', 'Sum', 'client', [{ n: 1 }, { n: 'two' }]) as Promise<unknown>, (err: MicroError) => err.code === 400 && /n:/.test(err.detail));
      } finally {
        await h.close();
      }
    });

    test('bidirectional streams answer as requests arrive', async () => {
      const h = await start();
      try {
        const out: string[] = [];
        for await (const { echo } of h.typed.Chat([{ text: 'a' }, { text: 'b' }, { text: 'c' }])) out.push(echo);
        assert.deepEqual(out, ['A', 'B', 'C']);
        // interleaved: the second request is sent only after the first answer arrived
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        async function* talk() {
          yield { text: 'ping' };
          await gate;
          yield { text: 'pong' };
        }
        const replies: string[] = [];
        for await (const { echo } of h.typed.Chat(talk())) {
          replies.push(echo);
          if (replies.length === 1) release();
        }
        assert.deepEqual(replies, ['PING', 'PONG']);
      } finally {
        await h.close();
      }
    });

    test('calling a stream as unary (and the reverse) is a clear 400', async () => {
      const h = await start();
      try {
        await assert.rejects(h.client.call('echo', 'Count', { to: 1 }), (err: MicroError) => err.code === 400 && /stream/.test(err.detail));
      } finally {
        await h.close();
      }
    });

    test('the health endpoint answers on every service', async () => {
      const h = await start();
      try {
        const health = (await h.client.call('echo', 'Debug.Health', {})) as { status: string; service: string; version: string };
        assert.equal(health.status, 'ok');
        assert.equal(health.service, 'echo');
        assert.equal(health.version, '1.2.3');
      } finally {
        await h.close();
      }
    });

    test('graceful stop lets calls in flight finish and refuses new ones', async () => {
      const h = await start();
      const inflight = h.typed.Slow({ ms: 150 });
      await sleep(30);
      const stopping = h.close();
      const res = await inflight;
      assert.equal(res.aborted, false, 'the call in flight completed');
      await stopping;
      await assert.rejects(h.typed.Call({ name: 'late' }), (err: MicroError) => err.code === 404 || err.code === 503);
    });
  });
}
