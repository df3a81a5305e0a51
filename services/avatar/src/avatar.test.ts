import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { expectShape, startPlatform, type Answer } from '@micro/services-kit/testing';
import { service as image } from '@micro/service-image';
import { service } from './handlers.js';

const bytesOf = (url: string) => Buffer.from(url.replace(/^data:[^,]*,/, ''), 'base64');
const isError = (r: Answer, detail: RegExp, what: string) => {
  assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
  assert.deepEqual(Object.keys(r.body).sort(), ['code', 'detail', 'id', 'status'], what);
  assert.equal(r.body.id, 'avatar');
  assert.match(r.body.detail, detail, what);
};

test('avatar: the same face for a username every time, png or jpeg, stored as a public image on upload, tenants apart, bad input', async (t) => {
  const p = await startPlatform(t, { services: [service, image], profile: 'local' });
  if (!p) return;
  t.after(() => p.close());
  process.env.MICRO_PUBLIC_URL = p.url;
  const { a, b } = p;
  const generate = (key: string, body: unknown) => p.call(key, 'avatar', 'Generate', body);

  await t.test('Generate as M3O\'s client calls it', async () => {
    const alice = await generate(a.key, { username: 'alice' });
    assert.equal(alice.status, 200, JSON.stringify(alice.body));
    await expectShape('avatar', 'Generate', alice.body);
    assert.equal(alice.body.url, '');
    assert.match(alice.body.base64, /^data:image\/jpeg;base64,/);
    assert.deepEqual(await sharp(bytesOf(alice.body.base64)).metadata().then((m) => [m.format, m.width, m.height]), ['jpeg', 256, 256]);
    // deterministic: the same username gives the same face, for any tenant
    assert.equal((await generate(a.key, { username: 'alice' })).body.base64, alice.body.base64);
    assert.equal((await generate(b.key, { username: 'alice', format: 'jpeg', gender: 'male' })).body.base64, alice.body.base64);
    assert.notEqual((await generate(a.key, { username: 'alicf' })).body.base64, alice.body.base64);
    assert.notEqual((await generate(a.key, { username: 'alice', gender: 'female' })).body.base64, alice.body.base64);
    // no username: a new face each time
    assert.notEqual((await generate(a.key, {})).body.base64, (await generate(a.key, {})).body.base64);
    const png = await generate(a.key, { username: 'alice', format: 'PNG', gender: 'female' });
    assert.match(png.body.base64, /^data:image\/png;base64,/);
    assert.equal((await sharp(bytesOf(png.body.base64)).metadata()).format, 'png');

    // upload: stored as one of the tenant's images, served by the image service's route
    const up = await generate(a.key, { username: 'alice', format: 'png', gender: 'female', upload: true });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    await expectShape('avatar', 'Generate', up.body);
    assert.equal(up.body.base64, '');
    assert.equal(up.body.url, `${p.url}/image/${a.namespace}/avatars/alice.png`);
    const served = await fetch(up.body.url);
    assert.equal(served.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await served.arrayBuffer()), bytesOf(png.body.base64));
    // a username with other characters is stored under its hash; none, under a random name
    const odd = await generate(a.key, { username: '../ada/lovelace', upload: true });
    assert.equal(odd.body.url, `${p.url}/image/${a.namespace}/avatars/${createHash('sha256').update('../ada/lovelace').digest('hex').slice(0, 32)}.jpeg`);
    assert.match((await generate(a.key, { upload: true })).body.url, new RegExp(`/image/${a.namespace}/avatars/[0-9a-f-]{36}\\.jpeg$`));

    // tenant b: its upload is its own; it cannot delete a's
    const bs = await generate(b.key, { username: 'alice', format: 'png', upload: true });
    assert.equal(bs.body.url, `${p.url}/image/${b.namespace}/avatars/alice.png`);
    assert.equal((await p.call(b.key, 'image', 'Delete', { url: up.body.url })).status, 404);
    assert.equal((await fetch(up.body.url)).status, 200);
    // the owner deletes it as any image
    assert.equal((await p.call(a.key, 'image', 'Delete', { url: up.body.url })).status, 200);
    assert.equal((await fetch(up.body.url)).status, 404);
  });

  await t.test('bad input: a 400 naming the field', async () => {
    const cases: [unknown, RegExp][] = [
      [{ format: 'gif' }, /^format: must be png or jpeg/],
      [{ format: 7 }, /format/],
      [{ gender: 'robot' }, /^gender: must be male/],
      [{ username: 'x'.repeat(129) }, /^username: at most 128/],
      [{ username: 'x'.repeat(5000) }, /username/],
      [{ username: { $ne: '' } }, /username/],
      [{ upload: 'yes' }, /upload/],
    ];
    for (const [body, detail] of cases) isError(await generate(a.key, body), detail, JSON.stringify(body).slice(0, 80));
  });
});
