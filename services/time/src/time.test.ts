import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectRefused, expectShape, startPlatform } from '@micro/services-kit/testing';
import { service } from './handlers.js';


test('time through the gateway as M3O\'s client calls it', async (t) => {
  const p = await startPlatform(t, { services: [service] });
  if (!p) return;
  t.after(() => p.close());
  const call = (endpoint: string, body: unknown, key = p.a.key) => p.call(key, 'time', endpoint, body);

  await t.test('Now and Zone have M3O\'s shapes', async () => {
    const before = Math.floor(Date.now() / 1000);
    const now = await call('Now', { location: 'Europe/London' });
    assert.equal(now.status, 200, JSON.stringify(now.body));
    await expectShape('time', 'Now', now.body);
    assert.equal(now.body.location, 'Europe/London');
    assert.match(now.body.timezone, /^(GMT|BST)$/);
    assert.match(now.body.localtime, /^\d{2}:\d{2}:\d{2}$/);
    assert.match(now.body.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|\+01:00)$/);
    // the timestamp and unix name the same second, which is now
    assert.equal(Math.floor(Date.parse(now.body.timestamp) / 1000), Number(now.body.unix));
    assert.ok(Number(now.body.unix) >= before && Number(now.body.unix) <= Math.ceil(Date.now() / 1000));

    const utc = await call('now', {}, p.b.key);
    await expectShape('time', 'Now', utc.body);
    assert.equal(utc.body.location, 'UTC');
    assert.equal(utc.body.timezone, 'UTC');
    assert.match(utc.body.timestamp, /Z$/);

    const zone = await call('Zone', { location: 'tokyo' });
    assert.equal(zone.status, 200, JSON.stringify(zone.body));
    await expectShape('time', 'Zone', zone.body);
    assert.equal(zone.body.timezone, 'Asia/Tokyo');
    assert.equal(zone.body.abbreviation, 'JST');
    assert.equal(zone.body.offset, 9);
    assert.equal(zone.body.dst, false);
    assert.equal(zone.body.location, 'Tokyo');
    assert.match(zone.body.localtime, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/);
    const empty = await call('Zone', {});
    await expectShape('time', 'Zone', empty.body);
    assert.equal(empty.body.timezone, 'UTC');
  });

  await t.test('bad and hostile locations: a 400 or 404 saying what to give', async () => {
    expectRefused(await call('Now', { location: 'Atlantis' }), 404, /location: no time zone or city "Atlantis"/, 'time');
    expectRefused(await call('Zone', { location: 'Atlantis' }), 404, /zone name such as Europe\/London or a city such as London/, 'time');
    expectRefused(await call('Zone', { location: '../../etc/passwd' }), 400, /location: "..\/..\/etc\/passwd" is not a zone name or city/, 'time');
    expectRefused(await call('Now', { location: 'Europe/../../etc/shadow' }), 400, /not a zone name or city/, 'time');
    expectRefused(await call('Now', { location: 'x'.repeat(65) }), 400, /location: at most 64 characters/, 'time');
    expectRefused(await call('Now', { location: 'x'.repeat(10_000) }), 400, /location/, 'time');
    expectRefused(await call('Now', { location: 42 }), 400, /location/, 'time');
    expectRefused(await call('Zone', { location: ['London'] }), 400, /location/, 'time');
    expectRefused(await call('Zone', { location: '<script>' }), 400, /not a zone name or city/, 'time');
    assert.equal((await p.call(undefined, 'time', 'Now', {})).status, 401);
    // and it still answers
    assert.equal((await call('Now', { location: 'London' })).status, 200);
  });
});
