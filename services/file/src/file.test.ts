import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expectShape, startPlatform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

for (const profile of ['local', 'nats'] as const) {
  test(`file: M3O's endpoints, public files through the gateway, tenants apart, bad input (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    process.env.MICRO_PUBLIC_URL = p.url;
    const { a, b } = p;
    const call = (key: string, ep: string, body: unknown) => p.call(key, 'file', ep, body);

    await t.test('every endpoint as M3O\'s client calls it, and public files served by the gateway', async () => {
      const saved = await call(a.key, 'Save', { file: { project: 'site', path: 'docs/readme.md', content: '# hi', metadata: { lang: 'en' } }, public: true });
      assert.equal(saved.status, 200, JSON.stringify(saved.body));
      await expectShape('file', 'Save', saved.body);
      assert.equal(saved.body.url, `${p.url}/file/${a.namespace}/site/docs/readme.md`);
      assert.equal((await call(a.key, 'Save', { file: { project: 'site', path: 'private/notes.txt', content: 'secret' } })).body.url, '');

      const read = await call(a.key, 'Read', { project: 'site', path: 'docs/readme.md' });
      await expectShape('file', 'Read', read.body);
      assert.equal(read.body.file.content, '# hi');
      assert.deepEqual(read.body.file.metadata, { lang: 'en' });
      assert.equal(read.body.file.project, 'site');

      const listed = await call(a.key, 'List', { project: 'site' });
      await expectShape('file', 'List', listed.body);
      assert.deepEqual(listed.body.files.map((f: { path: string }) => f.path), ['docs/readme.md', 'private/notes.txt']);
      assert.deepEqual((await call(a.key, 'List', { project: 'site', path: 'docs/' })).body.files.map((f: { path: string }) => f.path), ['docs/readme.md']);

      const res = await fetch(saved.body.url);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), '# hi');
      assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      // HTML of a tenant is a download in a sandbox, never a page of the gateway's origin
      const html = await call(a.key, 'Save', { file: { project: 'site', path: 'x.html', content: '<script>alert(1)</script>' }, public: true });
      const page = await fetch(html.body.url);
      assert.match(page.headers.get('content-disposition') ?? '', /^attachment/);
      assert.match(page.headers.get('content-security-policy') ?? '', /^sandbox/);
      // a private file is as missing as none
      const priv = await fetch(`${p.url}/file/${a.namespace}/site/private/notes.txt`);
      const none = await fetch(`${p.url}/file/${a.namespace}/site/private/none.txt`);
      assert.equal(priv.status, 404);
      assert.equal(await priv.text(), await none.text());

      const deleted = await call(a.key, 'Delete', { project: 'site', path: 'docs/readme.md' });
      await expectShape('file', 'Delete', deleted.body);
      assert.equal((await fetch(saved.body.url)).status, 404);
      assert.equal((await call(a.key, 'Read', { project: 'site', path: 'docs/readme.md' })).status, 404);
    });

    await t.test('tenant b cannot read, change, delete or list a\'s files', async () => {
      await call(a.key, 'Save', { file: { project: 'p', path: 'k.txt', content: 'a-only' } });
      for (const ep of ['Read', 'Delete']) assert.equal((await call(b.key, ep, { project: 'p', path: 'k.txt' })).status, 404);
      assert.deepEqual((await call(b.key, 'List', { project: 'p' })).body.files, []);
      await fc.assert(
        fc.asyncProperty(fc.string({ maxLength: 40 }), fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('k.txt', '../p/k.txt', './k.txt', '/k.txt')), async (project, path) => {
          for (const ep of ['Read', 'Delete', 'List']) {
            const r = await call(b.key, ep, { project, path });
            assert.ok([200, 400, 404].includes(r.status), `${ep}: ${r.status}`);
            if (r.status === 200) assert.ok(!JSON.stringify(r.body).includes('a-only'));
          }
        }),
        { numRuns: 20 },
      );
      assert.equal((await fetch(`${p.url}/file/${a.namespace}/p/k.txt`)).status, 404);
      assert.equal((await call(a.key, 'Read', { project: 'p', path: 'k.txt' })).body.file.content, 'a-only');
    });

    await t.test('bad input: a 400 naming the field; nothing is kept', async () => {
      const before = (await call(a.key, 'List', { project: 'bad' })).body.files.length;
      const cases: [string, unknown, RegExp][] = [
        ['Save', {}, /file/],
        ['Save', { file: { project: 'bad', content: 'x' } }, /path/],
        ['Save', { file: { project: 'bad', path: '../../etc/passwd', content: 'x' } }, /path/],
        ['Save', { file: { project: '../bad', path: 'x', content: 'x' } }, /project/],
        ['Save', { file: { project: 'bad', path: 'a\r\nb', content: 'x' } }, /path/],
        ['Save', { file: { project: 'bad', path: 'x', content: 5 } }, /content/],
        ['Save', { file: { project: 'bad', path: 'x', metadata: { k: 5 } } }, /metadata/],
        ['Save', { file: { project: 'bad', path: 'x' }, public: 'yes' }, /public/],
        ['Read', { project: 'bad' }, /path/],
        ['Delete', { project: 'bad', path: 'a/./b' }, /path/],
      ];
      for (const [ep, body, field] of cases) {
        const r = await call(a.key, ep, body);
        assert.equal(r.status, 400, `${ep} ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.detail, field);
      }
      assert.equal((await call(a.key, 'List', { project: 'bad' })).body.files.length, before);
    });
  });
}
