import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expectShape, startPlatform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const get = (url: string, init?: RequestInit) => fetch(url, { redirect: 'manual', ...init });
/** an answer without what differs per request (its id, its date) */
async function answer(res: Response) {
  const headers = Object.fromEntries([...res.headers].filter(([k]) => k !== 'x-request-id' && k !== 'date'));
  return { status: res.status, headers, body: await res.text() };
}
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4de0000000049454e44ae426082', 'hex');

for (const profile of ['local', 'nats'] as const) {
  test(`space: M3O's endpoints, public objects and signed URLs through the gateway, tenants apart, bad input (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    process.env.MICRO_PUBLIC_URL = p.url;
    const { a, b } = p;
    const call = (key: string, ep: string, body: unknown) => p.call(key, 'space', ep, body);

    await t.test('every endpoint as M3O\'s client calls it', async () => {
      const created = await call(a.key, 'Create', { name: 'docs/hello.txt', object: b64('hello'), visibility: 'public' });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      await expectShape('space', 'Create', created.body);
      assert.equal(created.body.url, `${p.url}/space/${a.namespace}/docs/hello.txt`);
      const priv = await call(a.key, 'Create', { name: 'docs/secret.txt', object: b64('secret') });
      assert.equal(priv.body.url, '');
      assert.equal((await call(a.key, 'Create', { name: 'docs/hello.txt', object: b64('again') })).status, 409);

      const head = await call(a.key, 'Head', { name: 'docs/hello.txt' });
      await expectShape('space', 'Head', head.body);
      assert.equal(head.body.object.visibility, 'public');
      assert.equal(head.body.object.name, 'docs/hello.txt');
      const read = await call(a.key, 'Read', { name: 'docs/secret.txt' });
      await expectShape('space', 'Read', read.body);
      assert.equal(Buffer.from(read.body.object.data, 'base64').toString(), 'secret');
      assert.equal(read.body.object.visibility, 'private');

      const updated = await call(a.key, 'Update', { name: 'docs/secret.txt', object: b64('secret v2') });
      await expectShape('space', 'Update', updated.body);
      assert.equal(Buffer.from((await call(a.key, 'Read', { name: 'docs/secret.txt' })).body.object.data, 'base64').toString(), 'secret v2');
      // Update keeps the visibility unless told
      assert.equal((await call(a.key, 'Head', { name: 'docs/secret.txt' })).body.object.visibility, 'private');

      const listed = await call(a.key, 'List', { prefix: 'docs/' });
      await expectShape('space', 'List', listed.body);
      assert.deepEqual(listed.body.objects.map((o: { name: string }) => o.name), ['docs/hello.txt', 'docs/secret.txt']);

      const download = await call(a.key, 'Download', { name: 'docs/secret.txt' });
      await expectShape('space', 'Download', download.body);
      const dl = await get(download.body.url);
      assert.equal(dl.status, 200);
      assert.equal(await dl.text(), 'secret v2');

      const upload = await call(a.key, 'Upload', { name: 'up/photo.png', visibility: 'public' });
      await expectShape('space', 'Upload', upload.body);
      const put = await get(upload.body.url, { method: 'PUT', body: PNG });
      assert.equal(put.status, 201);
      const up = await call(a.key, 'Read', { name: 'up/photo.png' });
      assert.deepEqual(Buffer.from(up.body.object.data, 'base64'), PNG);
      assert.equal(up.body.object.visibility, 'public');

      const deleted = await call(a.key, 'Delete', { name: 'docs/hello.txt' });
      await expectShape('space', 'Delete', deleted.body);
      assert.equal((await call(a.key, 'Head', { name: 'docs/hello.txt' })).status, 404);
      assert.equal((await get(`${p.url}/space/${a.namespace}/docs/hello.txt`)).status, 404);
    });

    await t.test('the gateway serves public objects only, with headers that keep script off its origin', async () => {
      const png = await get(`${p.url}/space/${a.namespace}/up/photo.png`);
      assert.equal(png.status, 200);
      assert.equal(png.headers.get('content-type'), 'image/png');
      assert.equal(png.headers.get('content-disposition'), 'inline');
      assert.equal(png.headers.get('x-content-type-options'), 'nosniff');
      assert.match(png.headers.get('content-security-policy') ?? '', /^sandbox;/);
      assert.deepEqual(Buffer.from(await png.arrayBuffer()), PNG);
      const head = await get(`${p.url}/space/${a.namespace}/up/photo.png`, { method: 'HEAD' });
      assert.equal(head.headers.get('content-length'), String(PNG.length));

      // a tenant's HTML, SVG or a file named to look harmless: never a page of the gateway's origin
      const attacks: [string, string][] = [
        ['x/page.html', '<script>fetch("/v1/auth/ListKeys",{method:"POST"})</script>'],
        ['x/logo.svg', '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'],
        ['x/data.xml', '<x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>'],
        ['x/noext', '<html><script>alert(1)</script></html>'],
        ['x/app.js', 'alert(1)'],
      ];
      for (const [name, body] of attacks) {
        await call(a.key, 'Update', { name, object: b64(body), visibility: 'public' });
        const res = await get(`${p.url}/space/${a.namespace}/${name}`);
        assert.equal(res.status, 200, name);
        assert.match(res.headers.get('content-disposition') ?? '', /^attachment/, name);
        assert.match(res.headers.get('content-security-policy') ?? '', /^sandbox; default-src 'none'/, name);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
        assert.equal(res.headers.get('x-frame-options'), 'DENY');
        assert.equal(res.headers.get('set-cookie'), null);
        assert.equal(await res.text(), body);
      }

      // private, missing, another namespace, hostile paths: one answer, nothing said about existence
      const missing = await answer(await get(`${p.url}/space/${a.namespace}/nothing-here`));
      assert.equal(missing.status, 404);
      const secret = await answer(await get(`${p.url}/space/${a.namespace}/docs/secret.txt`));
      assert.deepEqual(secret, missing);
      for (const path of [`${a.namespace}/docs/../docs/secret.txt`, `${a.namespace}/docs%2fsecret.txt`, `${a.namespace}//docs/secret.txt`, `..%2f${a.namespace}/docs/secret.txt`, 'nobody/docs/secret.txt', `${a.namespace}/docs/secret.txt%00`]) {
        const res = await get(`${p.url}/space/${path}`);
        assert.ok(res.status === 404 || res.status === 400, `${path}: ${res.status}`);
        assert.notEqual(await res.text(), 'secret v2');
      }
      // signatures: changed, moved to another object, or to another method, they open nothing
      const { url } = (await call(a.key, 'Download', { name: 'docs/secret.txt' })).body;
      const u = new URL(url);
      const sig = u.searchParams.get('signature') as string;
      const tamper = (f: (x: URL) => void) => {
        const x = new URL(url);
        f(x);
        return x.href;
      };
      for (const bad of [
        tamper((x) => x.searchParams.set('signature', `${sig.slice(0, -2)}AA`)),
        tamper((x) => x.searchParams.set('expires', String(Number(x.searchParams.get('expires')) + 3600))),
        tamper((x) => (x.pathname = `/space/${a.namespace}/up/photo.png.private`)),
        tamper((x) => (x.pathname = `/space/${b.namespace}/docs/secret.txt`)),
      ]) assert.equal((await get(bad)).status, 404, bad);
      assert.equal((await get(url, { method: 'PUT', body: 'overwritten' })).status, 403);
      assert.equal(Buffer.from((await call(a.key, 'Read', { name: 'docs/secret.txt' })).body.object.data, 'base64').toString(), 'secret v2');
      // the route's endpoint answers the gateway only
      assert.equal((await call(b.key, 'Serve', { method: 'GET', path: `${a.namespace}/docs/secret.txt`, query: {} })).status, 404);
    });

    await t.test('tenant b cannot read, change, delete or list a\'s objects', async () => {
      await call(a.key, 'Update', { name: 'mine/keep.bin', object: b64('a-data') });
      for (const ep of ['Head', 'Read', 'Delete', 'Download']) assert.equal((await call(b.key, ep, { name: 'mine/keep.bin' })).status, 404, ep);
      assert.deepEqual((await call(b.key, 'List', { prefix: '' })).body.objects, []);
      // b's object of that name is b's own
      assert.equal((await call(b.key, 'Create', { name: 'mine/keep.bin', object: b64('b-data'), visibility: 'public' })).status, 200);
      // a URL b signs is for b's namespace only
      const bUpload = (await call(b.key, 'Upload', { name: 'mine/keep.bin' })).body.url as string;
      assert.ok(bUpload.includes(`/space/${b.namespace}/`));
      assert.equal((await get(bUpload.replace(`/space/${b.namespace}/`, `/space/${a.namespace}/`), { method: 'PUT', body: 'evil' })).status, 403);
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('mine/keep.bin', 'mine//keep.bin', '../tenant-a/mine/keep.bin', 'mine/./keep.bin', '/mine/keep.bin', 'MINE/keep.bin')), async (name) => {
          for (const ep of ['Read', 'Head', 'Delete', 'Download']) {
            const r = await call(b.key, ep, { name });
            assert.ok(r.status === 404 || r.status === 400 || (r.status === 200 && name === 'mine/keep.bin'), `${ep} ${JSON.stringify(name)}: ${r.status}`);
            if (ep === 'Read' && r.status === 200) assert.equal(Buffer.from(r.body.object.data, 'base64').toString(), 'b-data');
          }
          await call(b.key, 'Create', { name: 'mine/keep.bin', object: b64('b-data'), visibility: 'public' });
          const prefix = await call(b.key, 'List', { prefix: name });
          assert.ok(prefix.status === 200 || prefix.status === 400);
          for (const o of prefix.body.objects ?? []) assert.ok(!o.url.includes(a.namespace));
        }),
        { numRuns: 20 },
      );
      assert.equal(Buffer.from((await call(a.key, 'Read', { name: 'mine/keep.bin' })).body.object.data, 'base64').toString(), 'a-data');
      assert.equal((await get(`${p.url}/space/${a.namespace}/mine/keep.bin`)).status, 404);
      // the bytes are in a's namespace of the blob store
      const blobs = await p.call(p.adminToken, 'store', 'Blob.List', { namespace: a.namespace, prefix: 'space/' });
      assert.ok(blobs.status === 200 && blobs.body.blobs.length >= 3, JSON.stringify(blobs.body).slice(0, 300));
    });

    await t.test('bad input: a 4xx naming the field; nothing is kept', async () => {
      const before = (await call(a.key, 'List', {})).body.objects.length;
      const cases: [string, unknown, number, RegExp][] = [
        ['Create', { object: b64('x') }, 400, /name/],
        ['Create', { name: '../etc/passwd', object: b64('x') }, 400, /name/],
        ['Create', { name: 'a/../../b', object: b64('x') }, 400, /name/],
        ['Create', { name: '/abs', object: b64('x') }, 400, /name/],
        ['Create', { name: 'a//b', object: b64('x') }, 400, /name/],
        ['Create', { name: 'a\\b', object: b64('x') }, 400, /name/],
        ['Create', { name: 'line\r\nSet-Cookie: x=1', object: b64('x') }, 400, /name/],
        ['Create', { name: 'nul\u0000', object: b64('x') }, 400, /name/],
        ['Create', { name: 'x'.repeat(513), object: b64('x') }, 400, /name/],
        ['Create', { name: 'ok.txt', object: '***not base64***' }, 400, /object/],
        ['Create', { name: 'ok.txt', object: 42 }, 400, /object/],
        ['Create', { name: 'ok.txt', object: b64('x'), visibility: 'world' }, 400, /visibility/],
        ['Read', {}, 400, /name/],
        ['Upload', { name: 'a/../b' }, 400, /name/],
      ];
      for (const [ep, body, status, field] of cases) {
        const r = await call(a.key, ep, body);
        assert.equal(r.status, status, `${ep} ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
        assert.deepEqual(Object.keys(r.body).sort(), ['code', 'detail', 'id', 'status']);
        assert.match(r.body.detail, field);
      }
      // larger than the gateway takes: 413 before the service
      const big = await call(a.key, 'Create', { name: 'big.bin', object: b64(Buffer.alloc(1024 * 1024)) });
      assert.equal(big.status, 413);
      assert.equal((await call(a.key, 'List', {})).body.objects.length, before);
    });

    await t.test('the namespace\'s blobBytes quota refuses an object with a clear 403, and keeps nothing', async () => {
      const q = await p.call(p.adminToken, 'quota', 'Set', { namespace: b.namespace, limits: { blobBytes: 64 * 1024 } });
      assert.equal(q.status, 200, JSON.stringify(q.body));
      assert.equal((await call(b.key, 'Create', { name: 'small.bin', object: b64(Buffer.alloc(1024)) })).status, 200);
      const over = await call(b.key, 'Create', { name: 'large.bin', object: b64(Buffer.alloc(100 * 1024)) });
      assert.equal(over.status, 403, JSON.stringify(over.body));
      assert.equal(over.body.id, 'quota');
      assert.match(over.body.detail, /blobBytes/);
      assert.equal((await call(b.key, 'Head', { name: 'large.bin' })).status, 404);
      // an Update that does not fit keeps the object as it was
      assert.equal((await call(b.key, 'Update', { name: 'small.bin', object: b64(Buffer.alloc(100 * 1024)) })).status, 403);
      assert.equal(Buffer.from((await call(b.key, 'Read', { name: 'small.bin' })).body.object.data, 'base64').length, 1024);
    });
  });
}
