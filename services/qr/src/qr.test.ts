import { test } from 'node:test';
import assert from 'node:assert/strict';
import jsqr from 'jsqr';
import { PNG } from 'pngjs';
import { bearer, Client, remoteEngines, type Context } from '@micro/sdk';
import { expectRefused, expectShape, startPlatform } from '@micro/services-kit/testing';
import { QR_LIMITS } from './definition.js';
import { qrHandlers, renderPng, service } from './handlers.js';


/** What an independent reader (jsQR) reads in a PNG, and the image's size. */
function scan(png: Buffer): { width: number; height: number; bytes: Buffer } {
  const image = PNG.sync.read(png);
  const found = jsqr.default(new Uint8ClampedArray(image.data), image.width, image.height);
  assert.ok(found, 'a QR code is found in the image');
  return { width: image.width, height: image.height, bytes: Buffer.from(found.binaryData) };
}

const UUID_PNG = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.png$/;

test('renderPng: a PNG of the size asked that a QR reader reads back, up to the capacity', async () => {
  for (const [text, size] of [['https://m3o.com/qr', 256], ['Grüße, 世界 🚀', 64], ['WIFI:T:WPA;S:home;P:p@ss;;', 1024], ['0123456789', 300]] as const) {
    const read = scan(await renderPng(text, size));
    assert.deepEqual([read.width, read.height], [size, size]);
    assert.equal(read.bytes.toString('utf8'), text);
  }
  // the largest text: 2,331 bytes, version 40 (177 modules and the quiet zone: 185 wide),
  // read at 4 pixels a module (jsQR misreads version 40 at 5.5: a phone's camera does not)
  const longest = 'x'.repeat(QR_LIMITS.textBytes);
  assert.equal(scan(await renderPng(longest, 740)).bytes.toString(), longest);
  // a size too small for the code's modules and quiet zone gives 4 pixels a module
  const small = PNG.sync.read(await renderPng(longest, 64));
  assert.equal(small.width, 185 * 4);
  await assert.rejects(renderPng('x'.repeat(QR_LIMITS.textBytes + 1), 256), /too big/);
});

for (const profile of ['local', 'nats'] as const) {
  test(`qr: Generate and Codes as M3O's client calls them, PNGs at unguessable URLs, tenants apart (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    process.env.MICRO_PUBLIC_URL = p.url;
    const a = (ep: string, body: unknown) => p.call(p.a.key, 'qr', ep, body);
    const b = (ep: string, body: unknown) => p.call(p.b.key, 'qr', ep, body);
    const get = (url: string, init?: RequestInit) => fetch(url, { redirect: 'manual', ...init });

    const made = await a('Generate', { text: 'https://m3o.com/qr', size: 300 });
    await t.test('Generate: a URL of a PNG anyone with it can fetch', async () => {
      assert.equal(made.status, 200, JSON.stringify(made.body));
      await expectShape('qr', 'Generate', made.body);
      const prefix = `${p.url}/qr/${p.a.namespace}/`;
      assert.ok(made.body.qr.startsWith(prefix), made.body.qr);
      assert.match(made.body.qr.slice(prefix.length), UUID_PNG);
      const res = await get(made.body.qr);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'image/png');
      assert.equal(res.headers.get('content-disposition'), 'inline');
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.match(res.headers.get('content-security-policy') ?? '', /^sandbox;/);
      const read = scan(Buffer.from(await res.arrayBuffer()));
      assert.deepEqual([read.width, read.height, read.bytes.toString()], [300, 300, 'https://m3o.com/qr']);
      assert.equal((await get(made.body.qr, { method: 'HEAD' })).status, 200);

      // size by default 256, as a string too; any text a QR code holds
      const plain = await a('Generate', { text: 'Grüße 🚀\nline two' });
      assert.deepEqual(scan(Buffer.from(await (await get(plain.body.qr)).arrayBuffer())), { width: 256, height: 256, bytes: Buffer.from('Grüße 🚀\nline two') });
      const sized = await a('Generate', { text: 'sized', size: '128' });
      assert.equal(scan(Buffer.from(await (await get(sized.body.qr)).arrayBuffer())).width, 128);
      const full = await a('Generate', { text: 'é'.repeat(Math.floor(QR_LIMITS.textBytes / 2)), size: 1024 });
      assert.equal(full.status, 200, JSON.stringify(full.body));
    });

    await t.test('Codes: the tenant\'s codes, oldest first, each with its URL', async () => {
      const codes = await a('Codes', {});
      assert.equal(codes.status, 200, JSON.stringify(codes.body));
      await expectShape('qr', 'Codes', codes.body);
      assert.deepEqual(codes.body.codes.map((c: { text: string }) => c.text).slice(0, 3), ['https://m3o.com/qr', 'Grüße 🚀\nline two', 'sized']);
      const first = codes.body.codes[0];
      assert.equal(first.file, made.body.qr);
      assert.equal(`${first.id}.png`, made.body.qr.split('/').pop());
      assert.match(first.created, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
      assert.deepEqual((await b('Codes', {})).body, { codes: [] });
    });

    await t.test('tenant b can neither list, delete, overwrite nor reach a\'s codes but by their URLs', async () => {
      const aCodes = (await a('Codes', {})).body.codes as { id: string; file: string }[];
      const first = aCodes[0] as { id: string; file: string };
      const png = Buffer.from(await (await get(first.file)).arrayBuffer());
      // b deletes by a's id: a 404, as for an id that never was
      expectRefused(await b('Delete', { id: first.id }), 404, /no QR code/, 'qr');
      // b's own codes are b's: a's list and a's PNG do not change
      const theirs = await b('Generate', { text: 'b was here' });
      assert.equal(theirs.status, 200);
      assert.ok(theirs.body.qr.startsWith(`${p.url}/qr/${p.b.namespace}/`));
      assert.deepEqual((await a('Codes', {})).body.codes, aCodes);
      assert.deepEqual(Buffer.from(await (await get(first.file)).arrayBuffer()), png);
      assert.deepEqual((await b('Codes', {})).body.codes.map((c: { text: string }) => c.text), ['b was here']);
      // b's id under a's namespace, a's id under b's, a made-up id: nothing
      const bId = (theirs.body.qr as string).split('/').pop() as string;
      assert.equal((await get(`${p.url}/qr/${p.a.namespace}/${bId}`)).status, 404);
      assert.equal((await get(`${p.url}/qr/${p.b.namespace}/${first.id}.png`)).status, 404);
      assert.equal((await get(`${p.url}/qr/${p.a.namespace}/00000000-0000-4000-8000-000000000000.png`)).status, 404);
      for (const path of [`${p.a.namespace}/${first.id}`, `..%2F${p.a.namespace}/${first.id}.png`, `${p.a.namespace}/${first.id}.png/x`, `${p.a.namespace}`, '%E0%A4%A.png', `${p.a.namespace}/*.png`]) {
        const res = await get(`${p.url}/qr/${path}`);
        assert.ok(res.status === 404 || res.status === 400, `${path}: ${res.status}`);
      }
      // the URL cannot write a code
      assert.equal((await get(first.file, { method: 'PUT', body: 'not a png' })).status, 405);
      assert.deepEqual(Buffer.from(await (await get(first.file)).arrayBuffer()), png);
      // the route's endpoint answers the gateway only
      expectRefused(await b('Serve', { method: 'GET', path: `${p.a.namespace}/${first.id}.png` }), 404, /not found/, 'qr');
    });

    await t.test('Delete: the code and its PNG are gone', async () => {
      const code = await a('Generate', { text: 'short-lived' });
      const id = (code.body.qr as string).split('/').pop()?.replace('.png', '');
      const deleted = await a('Delete', { id });
      assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
      assert.deepEqual(deleted.body, {});
      assert.equal((await get(code.body.qr)).status, 404);
      assert.ok(!(await a('Codes', {})).body.codes.some((c: { id: string }) => c.id === id));
      expectRefused(await a('Delete', { id }), 404, /no QR code/, 'qr');
    });

    await t.test('bad input: a 400 saying what is wrong', async () => {
      expectRefused(await a('Generate', {}), 400, /Missing text/, 'qr');
      expectRefused(await a('Generate', { text: '' }), 400, /Missing text/, 'qr');
      expectRefused(await a('Generate', { text: 'x'.repeat(QR_LIMITS.textBytes + 1) }), 400, /text: at most 2331 bytes of UTF-8 fit in a QR code \(got 2332\)/, 'qr');
      expectRefused(await a('Generate', { text: '€'.repeat(1000) }), 400, /got 3000/, 'qr');
      expectRefused(await a('Generate', { text: 'x'.repeat(100_000) }), 400, /text/, 'qr');
      expectRefused(await a('Generate', { text: 42 }), 400, /text/, 'qr');
      expectRefused(await a('Generate', { text: 'x', size: 63 }), 400, /size: must be from 64 to 1024 pixels \(got 63\)/, 'qr');
      expectRefused(await a('Generate', { text: 'x', size: 1025 }), 400, /size: must be from 64 to 1024/, 'qr');
      expectRefused(await a('Generate', { text: 'x', size: -256 }), 400, /size/, 'qr');
      expectRefused(await a('Generate', { text: 'x', size: 1e300 }), 400, /size/, 'qr');
      expectRefused(await a('Generate', { text: 'x', size: 'big' }), 400, /size/, 'qr');
      expectRefused(await a('Generate', { text: 'x', size: 100.5 }), 400, /size/, 'qr');
      expectRefused(await a('Delete', {}), 400, /Missing id/, 'qr');
      expectRefused(await a('Delete', { id: '../../x' }), 400, /id/, 'qr');
      assert.equal((await p.call(undefined, 'qr', 'Generate', { text: 'x' })).status, 401);
      // nothing of it was kept
      assert.ok(!(await a('Codes', {})).body.codes.some((c: { text: string }) => c.text === 'x'));
    });

    if (profile === 'local') {
      await t.test('at most maxCodes a tenant: the next is a 429, and leaves no PNG behind', async () => {
        const client = new Client({ address: p.server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(p.adminToken)] });
        const engines = remoteEngines(client);
        const handlers = qrHandlers(engines, { maxCodes: 2 });
        const ctx = { tenant: p.a.namespace, namespace: 'micro' } as Context;
        const pngs = async () => (await engines.blobs.list({ namespace: p.a.namespace, prefix: 'qr/' })).length;
        const held = (await a('Codes', {})).body.codes.length as number;
        assert.ok(held >= 2);
        const before = await pngs();
        assert.equal(before, held);
        await assert.rejects(async () => handlers.Generate({ text: 'one too many' }, ctx), (err: { code?: number; message: string }) => err.code === 429 && /you keep 2 QR codes already/.test(err.message));
        assert.equal(await pngs(), before);
      });
    }
  });
}
