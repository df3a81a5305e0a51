import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

/** Long enough for a consumer that opened its socket to be in its group (the gateway, the service, the engine). */
const settle = () => new Promise((r) => setTimeout(r, 400));

/** A consume stream that has joined, and its frames once `count` came. */
async function consume(p: Platform, key: string, body: unknown, count: number) {
  const s = p.stream(key, 'event', 'Consume', body, { count, timeout: 15_000 });
  await s.opened;
  await settle();
  return s;
}

async function publish(p: Platform, key: string, topic: string, message: unknown) {
  const res = await p.call(key, 'event', 'Publish', { topic, message });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  await expectShape('event', 'Publish', res.body);
}

for (const profile of ['local', 'nats'] as const) {
  test(`event through the gateway as M3O's client calls it (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());

    await t.test('Publish, Read: stored in order, pages by limit and offset', async () => {
      for (let i = 1; i <= 5; i++) await publish(p, p.a.key, 'orders.created', { n: i, note: `order ${i}` });
      const all = await p.call(p.a.key, 'event', 'Read', { topic: 'orders.created' });
      assert.equal(all.status, 200, JSON.stringify(all.body));
      await expectShape('event', 'Read', all.body);
      assert.deepEqual(all.body.events.map((e: { message: { n: number } }) => e.message.n), [1, 2, 3, 4, 5]);
      const ev = all.body.events[0];
      assert.ok(ev.id.length > 0);
      assert.ok(Math.abs(Date.parse(ev.timestamp) - Date.now()) < 60_000, ev.timestamp);
      const page = await p.call(p.a.key, 'event', 'read', { topic: 'orders.created', limit: 2, offset: 1 });
      assert.deepEqual(page.body.events.map((e: { message: { n: number } }) => e.message.n), [2, 3]);
      // a topic never published to is empty, not an error
      const none = await p.call(p.a.key, 'event', 'Read', { topic: 'never.used' });
      assert.deepEqual(none.body, { events: [] });
    });

    await t.test('Consume: from now by default, each frame {topic, id, timestamp, message}', async () => {
      await publish(p, p.a.key, 'live', { n: 0 });
      const s = await consume(p, p.a.key, { topic: 'live' }, 2);
      await publish(p, p.a.key, 'live', { n: 1 });
      await publish(p, p.a.key, 'live', { n: 2 });
      const frames = await s.frames;
      s.close();
      for (const f of frames) await expectShape('event', 'Consume', f);
      assert.deepEqual(frames.map((f) => f.message), [{ n: 1 }, { n: 2 }]);
      assert.equal(frames[0].topic, 'live');
      const read = await p.call(p.a.key, 'event', 'Read', { topic: 'live' });
      assert.deepEqual(frames.map((f) => f.id), read.body.events.slice(1).map((e: { id: string }) => e.id));
      // the consumer's own group went with it: nothing piles up in the tenant's namespace
      let groups: { name: string }[] = [];
      for (let i = 0; i < 20; i++) {
        await settle();
        groups = (await p.call(p.adminToken, 'events', 'Groups', { topic: 'event.live', namespace: 'tenant-a' })).body.groups;
        if (groups.length === 0) break;
      }
      assert.deepEqual(groups, []);
    });

    await t.test('Consume from a time: RFC 3339 or seconds since 1970', async () => {
      const before = Date.now() - 2_000;
      await publish(p, p.a.key, 'history', { n: 1 });
      await publish(p, p.a.key, 'history', { n: 2 });
      for (const offset of [new Date(before).toISOString(), String(Math.floor(before / 1000))]) {
        const s = p.stream(p.a.key, 'event', 'Consume', { topic: 'history', offset }, { count: 2 });
        const frames: { message: { n: number } }[] = await s.frames;
        s.close();
        assert.deepEqual(frames.map((f) => f.message.n), [1, 2], offset);
      }
      // a time after both: nothing yet
      const late = p.stream(p.a.key, 'event', 'Consume', { topic: 'history', offset: new Date(Date.now() + 1_000).toISOString() }, { count: 1, timeout: 1_500 });
      await assert.rejects(late.frames, /0 frames/);
    });

    await t.test('a group shares the events among its members; another group sees them all', async () => {
      const m1 = await consume(p, p.a.key, { topic: 'jobs', group: 'workers' }, 6);
      const m2 = await consume(p, p.a.key, { topic: 'jobs', group: 'workers' }, 6);
      const other = await consume(p, p.a.key, { topic: 'jobs', group: 'audit' }, 6);
      for (let i = 0; i < 6; i++) await publish(p, p.a.key, 'jobs', { job: i });
      const audit = (await other.frames).map((f) => f.message.job);
      assert.deepEqual(audit, [0, 1, 2, 3, 4, 5]);
      // the members together had each job once (who had which is the group's choice)
      await settle();
      m1.close();
      m2.close();
      const got = [...(await m1.frames.catch((e: Error) => e.message)), ...(await m2.frames.catch((e: Error) => e.message))];
      const jobs = got.map((f) => f.message.job).sort();
      assert.deepEqual(jobs, [0, 1, 2, 3, 4, 5]);
      other.close();
    });

    await t.test('isolation: tenant b names a\'s topics and groups and gets only its own', async () => {
      await publish(p, p.a.key, 'secret.plans', { owner: 'a' });
      // b reads, consumes from the start of time, joins a's group name: none of a's events
      assert.deepEqual((await p.call(p.b.key, 'event', 'Read', { topic: 'secret.plans' })).body, { events: [] });
      const bAll = p.stream(p.b.key, 'event', 'Consume', { topic: 'secret.plans', offset: '0' }, { count: 1, timeout: 1_500 });
      const bGroup = p.stream(p.b.key, 'event', 'Consume', { topic: 'jobs', group: 'workers', offset: '0' }, { count: 1, timeout: 1_500 });
      await assert.rejects(bAll.frames, /0 frames/);
      await assert.rejects(bGroup.frames, /0 frames/);
      // a's consumer does not hear b's publish on the same name; a's history is unchanged
      const aLive = await consume(p, p.a.key, { topic: 'secret.plans' }, 1);
      await publish(p, p.b.key, 'secret.plans', { owner: 'b' });
      await publish(p, p.a.key, 'secret.plans', { owner: 'a', n: 2 });
      assert.deepEqual((await aLive.frames).map((f) => f.message), [{ owner: 'a', n: 2 }]);
      aLive.close();
      const aRead = await p.call(p.a.key, 'event', 'Read', { topic: 'secret.plans' });
      assert.deepEqual(aRead.body.events.map((e: { message: unknown }) => e.message), [{ owner: 'a' }, { owner: 'a', n: 2 }]);
      assert.deepEqual((await p.call(p.b.key, 'event', 'Read', { topic: 'secret.plans' })).body.events.map((e: { message: unknown }) => e.message), [{ owner: 'b' }]);

      // any topic name: what a publishes, b never reads
      const word = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
      await fc.assert(
        fc.asyncProperty(fc.array(word, { minLength: 1, maxLength: 3 }), async (words) => {
          const topic = words.join('.');
          await publish(p, p.a.key, topic, { mine: topic });
          assert.deepEqual((await p.call(p.b.key, 'event', 'Read', { topic, limit: 1000 })).body.events.filter((e: { message: { mine?: string } }) => e.message.mine === topic && e.message !== undefined).length, 0);
          const own = await p.call(p.a.key, 'event', 'Read', { topic, limit: 1000 });
          assert.ok(own.body.events.some((e: { message: { mine?: string } }) => e.message.mine === topic));
        }),
        { numRuns: 12 },
      );
    });

    await t.test('bad input: a 400 (413 when too large) naming the field, nothing stored', async () => {
      const cases: [string, unknown, RegExp, number?][] = [
        ['Publish', { message: { a: 1 } }, /topic: required/],
        ['Publish', { topic: 'x' }, /message: required/],
        ['Publish', { topic: 'x', message: 'text' }, /message: must be a JSON object/],
        ['Publish', { topic: 'x', message: [1, 2] }, /message/],
        ['Publish', { topic: 'x.*', message: { a: 1 } }, /topic: must be dot-separated/],
        ['Publish', { topic: 'x.>', message: { a: 1 } }, /topic/],
        ['Publish', { topic: '../etc/passwd', message: { a: 1 } }, /topic/],
        ['Publish', { topic: 'a b', message: { a: 1 } }, /topic/],
        ['Publish', { topic: "x'; DROP TABLE events; --", message: { a: 1 } }, /topic/],
        ['Publish', { topic: 'x\u0000y', message: { a: 1 } }, /topic/],
        ['Publish', { topic: 'x..y', message: { a: 1 } }, /topic/],
        ['Publish', { topic: 'x'.repeat(201), message: { a: 1 } }, /topic: must be at most 200/],
        ['Publish', { topic: 42, message: { a: 1 } }, /topic: must be a string/],
        ['Publish', { topic: 'x', message: { big: 'y'.repeat(300 * 1024) } }, /message: is \d+ bytes/, 413],
        ['Read', { topic: 'x', limit: 0 }, /limit: must be at least 1/],
        ['Read', { topic: 'x', limit: 1001 }, /limit: must be at most 1000/],
        ['Read', { topic: 'x', limit: 'ten' }, /limit: must be a number/],
        ['Read', { topic: 'x', offset: -1 }, /offset: must be 0 or more/],
        ['Read', {}, /topic: required/],
      ];
      for (const [ep, body, detail, code = 400] of cases) {
        const res = await p.call(p.a.key, 'event', ep, body);
        assert.equal(res.status, code, `${ep} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.code, code);
        assert.match(res.body.detail, detail, JSON.stringify(body).slice(0, 80));
        assert.ok(res.body.id && res.body.status, JSON.stringify(res.body));
      }
      // nested too deep: refused (by the gateway's JSON limit or the service's), never stored
      let deep: unknown = { end: true };
      for (let i = 0; i < 100; i++) deep = { d: deep };
      const tooDeep = await p.call(p.a.key, 'event', 'Publish', { topic: 'x', message: deep });
      assert.equal(tooDeep.status, 400, JSON.stringify(tooDeep.body));
      assert.deepEqual((await p.call(p.a.key, 'event', 'Read', { topic: 'x' })).body, { events: [] });
      // a stream with a bad request: one error frame in M3O's shape, then the socket closes
      for (const body of [{ topic: 'x', offset: 'yesterday' }, { topic: 'x', group: '../a' }, { topic: 'x.*' }]) {
        const frames: { error: { code: number; detail: string } }[] = await p.stream(p.a.key, 'event', 'Consume', body).frames;
        assert.equal(frames.length, 1, JSON.stringify(frames));
        assert.equal(frames[0]?.error.code, 400, JSON.stringify(frames));
        assert.match(frames[0]?.error.detail ?? '', /offset|group|topic/);
      }
    });
  });
}
