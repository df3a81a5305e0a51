import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { expectShape, startPlatform, type Answer } from '@micro/services-kit/testing';
import { service } from './handlers.js';

const b64 = (b: Buffer) => b.toString('base64');
const dataUrl = (b: Buffer, type = 'image/png') => `data:${type};base64, ${b64(b)}`;
/** the bytes of a data URL answered */
const bytesOf = (url: string) => Buffer.from(url.replace(/^data:[^,]*,/, ''), 'base64');

/** `width` × `height`, the left half red and the right half blue */
function halves(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set(x < width / 2 ? [255, 0, 0] : [0, 0, 255], (y * width + x) * 3);
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** The colour of the pixel at x, y. */
async function pixel(image: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(image).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
}

function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A PNG of a few hundred bytes whose header says width × height, grey, 1 bit a pixel: decoded, it would be gigabytes. */
function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([1, 0, 0, 0, 0], 8);
  const rows = deflateSync(Buffer.alloc(Math.ceil(width / 8) + 1), { level: 9 });
  return Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), chunk('IHDR', ihdr), chunk('IDAT', rows), chunk('IEND', Buffer.alloc(0))]);
}

const isError = (r: Answer, status: number, detail: RegExp, what: string) => {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body).slice(0, 300)}`);
  assert.deepEqual(Object.keys(r.body).sort(), ['code', 'detail', 'id', 'status'], what);
  assert.equal(r.body.id, 'image', what);
  assert.match(r.body.detail, detail, what);
};

for (const profile of ['local', 'nats'] as const) {
  test(`image: M3O's endpoints through the gateway, stored images served, tenants apart, hostile images refused (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    process.env.MICRO_PUBLIC_URL = p.url;
    const { a, b } = p;
    const call = (key: string, ep: string, body: unknown) => p.call(key, 'image', ep, body);
    const picture = await halves(40, 20);

    await t.test('Resize, Convert, Upload and Delete as M3O\'s client calls them', async () => {
      // one side given: the other keeps the aspect ratio; the answer is a data URL of the input's format
      const half = await call(a.key, 'Resize', { base64: dataUrl(picture), width: 20 });
      assert.equal(half.status, 200, JSON.stringify(half.body));
      await expectShape('image', 'Resize', half.body);
      assert.equal(half.body.url, '');
      assert.match(half.body.base64, /^data:image\/png;base64,/);
      assert.deepEqual(await sharp(bytesOf(half.body.base64)).metadata().then((m) => [m.format, m.width, m.height]), ['png', 20, 10]);

      // both sides given: stretched to them; name's extension picks the format; i64s as strings; bare base64 and file too
      const square = await call(a.key, 'Resize', { base64: b64(picture), width: '30', height: 30, name: 'square.jpg' });
      assert.match(square.body.base64, /^data:image\/jpeg;base64,/);
      assert.deepEqual(await sharp(bytesOf(square.body.base64)).metadata().then((m) => [m.format, m.width, m.height]), ['jpeg', 30, 30]);
      // turned upright by its EXIF orientation first: 40 × 20 stored rotated a quarter is 20 × 40
      const sideways = await sharp(picture).jpeg().withMetadata({ orientation: 6 }).toBuffer();
      const upright = await call(a.key, 'Resize', { base64: dataUrl(sideways, 'image/jpeg'), height: 20 });
      assert.deepEqual(await sharp(bytesOf(upright.body.base64)).metadata().then((m) => [m.format, m.width, m.height]), ['jpeg', 10, 20]);
      const fromFile = await call(a.key, 'Resize', { file: b64(picture), height: 10 });
      assert.deepEqual(await sharp(bytesOf(fromFile.body.base64)).metadata().then((m) => [m.width, m.height]), [20, 10]);

      // resized, then cropped at the anchor: the top right of red|blue is blue, the left is red
      const right = await call(a.key, 'Resize', { base64: dataUrl(picture), width: 20, height: 10, cropOptions: { anchor: 'top right', width: 5, height: 5 } });
      const rightImage = bytesOf(right.body.base64);
      assert.deepEqual(await sharp(rightImage).metadata().then((m) => [m.width, m.height]), [5, 5]);
      assert.deepEqual(await pixel(rightImage, 2, 2), [0, 0, 255]);
      const left = await call(a.key, 'Resize', { base64: dataUrl(picture), width: 20, height: 10, cropOptions: { anchor: 'left', width: 5 } });
      assert.deepEqual(await sharp(bytesOf(left.body.base64)).metadata().then((m) => [m.width, m.height]), [5, 10]);
      assert.deepEqual(await pixel(bytesOf(left.body.base64), 2, 5), [255, 0, 0]);
      // cropOptions alone crops the image as it is (center by default)
      const middle = await call(a.key, 'Resize', { base64: dataUrl(picture), cropOptions: { width: 2, height: 2 } });
      assert.deepEqual(await sharp(bytesOf(middle.body.base64)).metadata().then((m) => [m.width, m.height]), [2, 2]);

      const webp = await call(a.key, 'Convert', { base64: dataUrl(picture), name: 'cat.webp' });
      await expectShape('image', 'Convert', webp.body);
      assert.match(webp.body.base64, /^data:image\/webp;base64,/);
      assert.equal((await sharp(bytesOf(webp.body.base64)).metadata()).format, 'webp');
      for (const [name, format] of [['x.jpeg', 'jpeg'], ['x.gif', 'gif'], ['x.avif', 'heif'], ['x.TIFF', 'tiff'], ['x.png', 'png']]) {
        const r = await call(a.key, 'Convert', { file: b64(picture), name });
        assert.equal(r.status, 200, `${name}: ${JSON.stringify(r.body)}`);
        assert.equal((await sharp(bytesOf(r.body.base64)).metadata()).format, format, name);
      }

      // Upload: stored in the format of the name, served by the gateway to anyone
      const up = await call(a.key, 'Upload', { base64: dataUrl(picture), name: 'pets/cat.png' });
      assert.equal(up.status, 200, JSON.stringify(up.body));
      await expectShape('image', 'Upload', up.body);
      assert.equal(up.body.url, `${p.url}/image/${a.namespace}/pets/cat.png`);
      const served = await fetch(up.body.url);
      assert.equal(served.status, 200);
      assert.equal(served.headers.get('content-type'), 'image/png');
      assert.equal(served.headers.get('x-content-type-options'), 'nosniff');
      assert.match(served.headers.get('content-security-policy') ?? '', /^sandbox;/);
      assert.deepEqual(Buffer.from(await served.arrayBuffer()), picture);
      const jpeg = await call(a.key, 'Upload', { file: b64(picture), name: 'pets/cat.jpg' });
      assert.equal((await sharp(Buffer.from(await (await fetch(jpeg.body.url)).arrayBuffer())).metadata()).format, 'jpeg');

      // outputURL: the result stored under name; a stored image is an input by its url
      const stored = await call(a.key, 'Resize', { url: up.body.url, width: 8, name: 'pets/small.webp', outputURL: true });
      assert.equal(stored.status, 200, JSON.stringify(stored.body));
      await expectShape('image', 'Resize', stored.body);
      assert.equal(stored.body.base64, '');
      assert.equal(stored.body.url, `${p.url}/image/${a.namespace}/pets/small.webp`);
      assert.deepEqual(await sharp(Buffer.from(await (await fetch(stored.body.url)).arrayBuffer())).metadata().then((m) => [m.format, m.width, m.height]), ['webp', 8, 4]);
      const converted = await call(a.key, 'Convert', { url: stored.body.url, name: 'pets/small.gif', outputURL: true });
      assert.equal(converted.body.url, `${p.url}/image/${a.namespace}/pets/small.gif`);
      assert.equal((await fetch(converted.body.url)).headers.get('content-type'), 'image/gif');

      const deleted = await call(a.key, 'Delete', { url: converted.body.url });
      assert.equal(deleted.status, 200);
      await expectShape('image', 'Delete', deleted.body);
      assert.equal((await fetch(converted.body.url)).status, 404);
      isError(await call(a.key, 'Delete', { url: converted.body.url }), 404, /no image there/, 'a second Delete');
      // the bytes are in a's namespace of the blob store
      const blobs = await p.call(p.adminToken, 'store', 'Blob.List', { namespace: a.namespace, prefix: 'image/' });
      assert.equal(blobs.body.blobs.length, 3, JSON.stringify(blobs.body).slice(0, 300));
    });

    await t.test('tenant b can neither delete nor read a\'s images through the API', async () => {
      const { url } = (await call(a.key, 'Upload', { base64: dataUrl(picture), name: 'mine.png' })).body;
      isError(await call(b.key, 'Delete', { url }), 404, /no image there/, 'b deletes a\'s url');
      isError(await call(b.key, 'Resize', { url, width: 10 }), 400, /^url: only the URLs of your own images/, 'b resizes a\'s url');
      isError(await call(b.key, 'Upload', { url, name: 'stolen.png' }), 400, /^url/, 'b uploads a\'s url');
      for (const forged of [url.replace(`/image/${a.namespace}/`, `/image/${b.namespace}/../${a.namespace}/`), url.replace('/mine.png', '/%2e%2e/mine.png'), `${url}?x=1`, url.replace(a.namespace, encodeURIComponent(a.namespace).toUpperCase())]) {
        const r = await call(b.key, 'Delete', { url: forged });
        assert.ok(r.status === 400 || r.status === 404, `${forged}: ${r.status}`);
      }
      // b's image of that name is b's own
      const bs = await call(b.key, 'Upload', { base64: dataUrl(await halves(4, 4)), name: 'mine.png' });
      assert.equal(bs.body.url, `${p.url}/image/${b.namespace}/mine.png`);
      assert.equal((await call(b.key, 'Delete', { url: bs.body.url })).status, 200);
      const still = await fetch(url);
      assert.equal(still.status, 200);
      assert.deepEqual(Buffer.from(await still.arrayBuffer()), picture);
      // the route's endpoint answers the gateway only; the route stores nothing
      assert.equal((await call(b.key, 'Serve', { method: 'GET', path: `${a.namespace}/mine.png`, query: {} })).status, 404);
      assert.equal((await fetch(url, { method: 'PUT', body: 'x' })).status, 405);
      for (const path of [`${a.namespace}//mine.png`, `..%2f${a.namespace}/mine.png`, `nobody/mine.png`, `${a.namespace}/mine.png%00`]) {
        const r = await fetch(`${p.url}/image/${path}`);
        assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
      }
    });

    await t.test('bad input: a clear 4xx naming what is wrong; nothing is kept', async () => {
      const text = Buffer.from('this is not an image at all');
      const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><image href="file:///etc/passwd"/></svg>');
      const truncated = (await halves(64, 64)).subarray(0, 80);
      const cases: [string, unknown, number, RegExp][] = [
        ['Resize', { width: 10 }, 400, /image is required/],
        ['Resize', { base64: b64(picture), file: b64(picture), width: 10 }, 400, /one of base64, file or url/],
        ['Resize', { base64: b64(picture) }, 400, /width or height is required/],
        ['Resize', { base64: '***', width: 10 }, 400, /^base64: must be base64/],
        ['Resize', { base64: 'data:image/png,rawtext', width: 10 }, 400, /^base64: a data URL must be base64/],
        ['Resize', { file: 42, width: 10 }, 400, /file/],
        ['Resize', { base64: b64(text), width: 10 }, 400, /^not an image/],
        ['Upload', { base64: b64(svg), name: 'x.png' }, 400, /the image is svg/],
        ['Upload', { base64: b64(truncated), name: 'x.png' }, 400, /could not be read/],
        ['Resize', { base64: b64(pngBomb(100_000, 100_000)), width: 10 }, 400, /100000 × 100000 pixels; the most is 25,000,000/],
        ['Upload', { base64: b64(pngBomb(60_000, 1_000)), name: 'bomb.png' }, 400, /the most is 25,000,000/],
        ['Resize', { base64: b64(picture), width: 5000 }, 400, /^width: must be a whole number from 0 to 4096/],
        ['Resize', { base64: b64(picture), width: -1 }, 400, /^width/],
        ['Resize', { base64: b64(picture), width: 'wide' }, 400, /width/],
        ['Resize', { base64: b64(picture), height: 4000 }, 400, /the result would be 8000 × 4000 pixels/],
        ['Resize', { base64: b64(picture), width: 10, cropOptions: { anchor: 'middle' } }, 400, /^cropOptions.anchor: must be one of/],
        ['Resize', { base64: b64(picture), width: 10, cropOptions: { width: 1.5 } }, 400, /^cropOptions.width/],
        ['Resize', { base64: b64(picture), width: 10, name: 'x.exe' }, 400, /^name: its extension picks the format/],
        ['Resize', { base64: b64(picture), width: 10, outputURL: true }, 400, /^name: is required/],
        ['Resize', { base64: b64(picture), width: 10, outputURL: true, name: '../x.png' }, 400, /^name/],
        ['Resize', { url: 'http://169.254.169.254/latest/meta-data/x.png', width: 10 }, 400, /^url: only the URLs of your own images/],
        ['Resize', { url: 'file:///etc/passwd', width: 10 }, 400, /^url/],
        ['Convert', { base64: b64(picture) }, 400, /^name: its extension picks the format/],
        ['Convert', { base64: b64(picture), name: 'x.svg' }, 400, /^name/],
        ['Upload', { base64: b64(picture) }, 400, /^name: is required/],
        ['Upload', { base64: b64(picture), name: 'a/../b.png' }, 400, /^name/],
        ['Upload', { base64: b64(picture), name: 'page.html' }, 400, /^name: its extension/],
        ['Delete', {}, 400, /^url: is required/],
        ['Delete', { url: 'https://example.com/x.png' }, 400, /not an image URL of this platform/],
      ];
      for (const [ep, body, status, detail] of cases) isError(await call(a.key, ep, body), status, detail, `${ep} ${JSON.stringify(body).slice(0, 120)}`);

      // a result too large to answer: 413, and nothing stored
      const noise = await sharp(randomBytes(256 * 256 * 3), { raw: { width: 256, height: 256, channels: 3 } }).png().toBuffer();
      isError(await call(a.key, 'Resize', { file: b64(noise), width: 1200, height: 1200, name: 'big.png', outputURL: true }), 413, /the result is \d+ bytes; the most is/, 'a large result');
      assert.equal((await fetch(`${p.url}/image/${a.namespace}/big.png`)).status, 404);
      // larger than the gateway takes: 413 before the service
      assert.equal((await call(a.key, 'Upload', { file: b64(randomBytes(1024 * 1024)), name: 'huge.png' })).status, 413);
      // and the service answers the next caller as before
      const after = await call(b.key, 'Resize', { base64: dataUrl(picture), width: 4 });
      assert.equal(after.status, 200);
      assert.equal(await sharp(bytesOf(after.body.base64)).metadata().then((m) => m.width), 4);
    });
  });
}
