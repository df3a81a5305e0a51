import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

/** Long enough for a subscriber that opened its socket to be subscribed (gateway, service, broker). */
const settle = () => new Promise((r) => setTimeout(r, 400));

async function subscribe(p: Platform, key: string, topic: string, count: number, timeout = 10_000) {
  const s = p.stream(key, 'mq', 'Subscribe', { topic }, { count, timeout });
  await s.opened;
  await settle();
  return s;
}

async function publish(p: Platform, key: string, topic: string, message: unknown) {
  const res = await p.call(key, 'mq', 'Publish', { topic, message });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  await expectShape('mq', 'Publish', res.body);
}

for (const profile of ['local', 'nats'] as const) {
  test(`mq through the gateway as M3O's client calls it (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());

    await t.test('Subscribe hears what is published from now on, to every subscriber', async () => {
      await publish(p, p.a.key, 'chat.room1', { text: 'before anyone listened' });
      const s1 = await subscribe(p, p.a.key, 'chat.room1', 2);
      const s2 = await subscribe(p, p.a.key, 'chat.room1', 2);
      await publish(p, p.a.key, 'chat.room1', { text: 'one' });
      await publish(p, p.a.key, 'chat.room1', { text: 'two' });
      for (const s of [s1, s2]) {
        const frames = await s.frames;
        s.close();
        for (const f of frames) await expectShape('mq', 'Subscribe', f);
        assert.deepEqual(frames, [{ topic: 'chat.room1', message: { text: 'one' } }, { topic: 'chat.room1', message: { text: 'two' } }]);
      }
    });

    await t.test('isolation: tenant b subscribes and publishes on a\'s topic names and meets only its own', async () => {
      const word = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
      await fc.assert(
        fc.asyncProperty(fc.array(word, { minLength: 1, maxLength: 3 }), async (words) => {
          const topic = words.join('.');
          const a = await subscribe(p, p.a.key, topic, 1);
          const b = await subscribe(p, p.b.key, topic, 1);
          await publish(p, p.b.key, topic, { from: 'b' });
          await publish(p, p.a.key, topic, { from: 'a' });
          assert.deepEqual((await a.frames).map((f) => f.message), [{ from: 'a' }]);
          assert.deepEqual((await b.frames).map((f) => f.message), [{ from: 'b' }]);
          a.close();
          b.close();
        }),
        { numRuns: 6 },
      );
    });

    await t.test('bad input: a 400 (413 when too large) naming the field', async () => {
      const cases: [unknown, RegExp, number?][] = [
        [{ message: { a: 1 } }, /topic: required/],
        [{ topic: 'x' }, /message: required/],
        [{ topic: 'x', message: 'text' }, /message: must be a JSON object/],
        [{ topic: 'x.*', message: { a: 1 } }, /topic: must be dot-separated/],
        [{ topic: '>', message: { a: 1 } }, /topic/],
        [{ topic: '../../etc', message: { a: 1 } }, /topic/],
        [{ topic: 'a\nb', message: { a: 1 } }, /topic/],
        [{ topic: 'x'.repeat(201), message: { a: 1 } }, /topic: must be at most 200/],
        [{ topic: 'x', message: { big: 'y'.repeat(300 * 1024) } }, /message: is \d+ bytes/, 413],
      ];
      const listener = await subscribe(p, p.a.key, 'x', 1, 1_500);
      for (const [body, detail, code = 400] of cases) {
        const res = await p.call(p.a.key, 'mq', 'Publish', body);
        assert.equal(res.status, code, `${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.code, code);
        assert.match(res.body.detail, detail);
      }
      // nothing refused reached a subscriber
      await assert.rejects(listener.frames, /0 frames/);
      // a wildcard subscription would hear other topics: refused in-band
      for (const topic of ['>', 'x.*', '']) {
        const frames: { error: { code: number; detail: string } }[] = await p.stream(p.a.key, 'mq', 'Subscribe', { topic }).frames;
        assert.equal(frames[0]?.error.code, 400, JSON.stringify(frames));
        assert.match(frames[0]?.error.detail ?? '', /topic/);
      }
    });
  });
}
