import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { bearer, Client, remoteEngines } from '@micro/sdk';
import { service } from './handlers.js';

async function ok(p: Platform, key: string, endpoint: string, body: unknown) {
  const res = await p.call(key, 'stream', endpoint, body);
  assert.equal(res.status, 200, `${endpoint}: ${JSON.stringify(res.body).slice(0, 300)}`);
  await expectShape('stream', endpoint, res.body);
  return res.body;
}

const texts = (body: { messages: { text: string }[] }) => body.messages.map((m) => m.text);

for (const profile of ['local', 'nats'] as const) {
  test(`stream through the gateway as M3O's client calls it (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());

    await t.test('CreateChannel, SendMessage, ListMessages (newest, oldest first), ListChannels', async () => {
      assert.deepEqual(await ok(p, p.a.key, 'CreateChannel', { name: 'general', description: 'all of us' }), {});
      assert.deepEqual(await ok(p, p.a.key, 'ListMessages', { channel: 'general' }), { channel: 'general', messages: [] });
      for (let i = 1; i <= 30; i++) await ok(p, p.a.key, 'SendMessage', { channel: 'general', text: `hello ${i}` });
      const page = await ok(p, p.a.key, 'ListMessages', { channel: 'general' });
      assert.deepEqual(texts(page), Array.from({ length: 25 }, (_, i) => `hello ${i + 6}`));
      assert.equal(page.messages[0].channel, 'general');
      assert.ok(Math.abs(Date.parse(page.messages[0].timestamp) - Date.now()) < 60_000);
      assert.deepEqual(texts(await ok(p, p.a.key, 'ListMessages', { channel: 'general', limit: 2 })), ['hello 29', 'hello 30']);
      // text is cut to 512 characters, never a character in half
      await ok(p, p.a.key, 'SendMessage', { channel: 'general', text: '😀'.repeat(600) });
      const [long] = texts(await ok(p, p.a.key, 'ListMessages', { channel: 'general', limit: 1 }));
      assert.equal(Array.from(long as string).length, 512);
      assert.equal(long, '😀'.repeat(512));
      await ok(p, p.a.key, 'CreateChannel', { name: 'random' });
      const { channels } = await ok(p, p.a.key, 'ListChannels', {});
      assert.deepEqual(channels.map((c: { name: string; description: string }) => [c.name, c.description]), [['general', 'all of us'], ['random', '']]);
      assert.ok(Date.parse(channels[0].last_active) >= Date.parse(page.messages[24].timestamp));
    });

    await t.test('a channel keeps its newest 1,000 messages', async () => {
      await ok(p, p.a.key, 'CreateChannel', { name: 'busy' });
      await ok(p, p.a.key, 'SendMessage', { channel: 'busy', text: 'm0' });
      // the other 1,009 straight into the channel's topic (the gateway would rate-limit one caller sending them)
      const events = remoteEngines(new Client({ address: p.server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(p.adminToken)] })).events;
      for (let n = 1; n < 1010; n += 50) {
        await Promise.all(Array.from({ length: Math.min(50, 1010 - n) }, (_, i) => events.publish('stream.busy', { text: `m${n + i}` }, { namespace: 'tenant-a' })));
      }
      const all = await ok(p, p.a.key, 'ListMessages', { channel: 'busy', limit: 1000 });
      assert.equal(all.messages.length, 1000);
      // sent 50 at a time: the order within a batch is the engine's; the first batch's ten went
      const kept = new Set(texts(all));
      for (let n = 51; n < 1010; n++) assert.ok(kept.has(`m${n}`), `m${n}`);
      assert.ok(!kept.has('m0'));
      const times = all.messages.map((m: { timestamp: string }) => Date.parse(m.timestamp));
      assert.deepEqual(times, [...times].sort((x, y) => x - y));
      // the topic itself is bounded to the newest 1,000 (its retention, applied by the engine's sweep)
      const topic = (await events.topics({ namespace: 'tenant-a' })).find((t) => t.name === 'stream.busy');
      assert.equal(topic?.retention?.maxEvents, 1000);
    });

    await t.test('isolation: tenant b names a\'s channels and meets only its own', async () => {
      assert.equal((await p.call(p.b.key, 'stream', 'ListMessages', { channel: 'general' })).status, 404);
      assert.equal((await p.call(p.b.key, 'stream', 'SendMessage', { channel: 'general', text: 'from b' })).status, 404);
      assert.deepEqual(await ok(p, p.b.key, 'ListChannels', {}), { channels: [] });
      // b makes its own channel of the same name: apart from a's
      await ok(p, p.b.key, 'CreateChannel', { name: 'general', description: 'b\'s' });
      await ok(p, p.b.key, 'SendMessage', { channel: 'general', text: 'from b' });
      assert.deepEqual(texts(await ok(p, p.b.key, 'ListMessages', { channel: 'general' })), ['from b']);
      const a = await ok(p, p.a.key, 'ListMessages', { channel: 'general', limit: 1000 });
      assert.ok(!texts(a).includes('from b'));
      assert.equal((await ok(p, p.a.key, 'ListChannels', {})).channels.find((c: { name: string }) => c.name === 'general').description, 'all of us');

      await fc.assert(
        fc.asyncProperty(fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), async (name) => {
          await ok(p, p.a.key, 'CreateChannel', { name });
          await ok(p, p.a.key, 'SendMessage', { channel: name, text: `a:${name}` });
          const b = await p.call(p.b.key, 'stream', 'ListMessages', { channel: name });
          if (b.status === 200) assert.ok(!texts(b.body).includes(`a:${name}`));
          else assert.equal(b.status, 404);
        }),
        { numRuns: 10 },
      );
    });

    await t.test('bad input: a 400 naming the field, nothing stored', async () => {
      const cases: [string, unknown, RegExp][] = [
        ['CreateChannel', {}, /name: required/],
        ['CreateChannel', { name: '../other' }, /name: may hold only/],
        ['CreateChannel', { name: 'a.b' }, /name: may hold only/],
        ['CreateChannel', { name: "x'; DROP TABLE--" }, /name/],
        ['CreateChannel', { name: 'x'.repeat(65) }, /name: must be at most 64/],
        ['CreateChannel', { name: 'ok', description: 'd'.repeat(513) }, /description: must be at most 512/],
        ['CreateChannel', { name: { $gt: '' } }, /name: must be a string/],
        ['SendMessage', { channel: 'general' }, /text: required/],
        ['SendMessage', { channel: 'general', text: 42 }, /text: must be a string/],
        ['SendMessage', { text: 'hi' }, /channel: required/],
        ['ListMessages', { channel: 'general', limit: 1001 }, /limit: must be at most 1000/],
        ['ListMessages', { channel: 'general', limit: 0 }, /limit: must be at least 1/],
      ];
      for (const [ep, body, detail] of cases) {
        const res = await p.call(p.a.key, 'stream', ep, body);
        assert.equal(res.status, 400, `${ep} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.code, 400);
        assert.match(res.body.detail, detail);
      }
      assert.equal((await p.call(p.a.key, 'stream', 'SendMessage', { channel: 'nowhere', text: 'x' })).status, 404);
      const names = (await ok(p, p.a.key, 'ListChannels', {})).channels.map((c: { name: string }) => c.name);
      assert.ok(!names.includes('ok') && !names.includes('nowhere'), names.join());
    });
  });
}
