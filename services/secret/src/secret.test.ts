import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

async function ok(p: Platform, key: string, endpoint: string, body: unknown) {
  const res = await p.call(key, 'secret', endpoint, body);
  assert.equal(res.status, 200, `${endpoint}: ${JSON.stringify(res.body).slice(0, 300)}`);
  await expectShape('secret', endpoint, res.body);
  return res.body;
}

/** Every byte of the files under `dir`, as latin1 text, to look for a plaintext. */
function bytesUnder(dir: string): string {
  if (!existsSync(dir)) return '';
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => readFileSync(join(d.parentPath, d.name)).toString('latin1'))
    .join('');
}

for (const profile of ['local', 'nats'] as const) {
  test(`secret through the gateway as M3O's client calls it (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());

    await t.test('Set, Get, List, Delete by key and path', async () => {
      const plain = `sk_live_${'x'.repeat(10)}_plaintext_marker`;
      assert.deepEqual(await ok(p, p.a.key, 'Set', { key: 'stripe', value: plain }), {});
      await ok(p, p.a.key, 'Set', { key: 'stripe', path: 'prod', value: 'prod value' });
      await ok(p, p.a.key, 'Set', { key: 'db.password', path: 'prod.eu', value: 'p%ss.word' });
      const got = await ok(p, p.a.key, 'Get', { key: 'stripe' });
      assert.equal(got.value, plain);
      assert.equal(got.key, 'stripe');
      assert.equal(got.path, '');
      assert.equal(got.created, got.updated);
      assert.ok(Math.abs(Date.parse(got.created) - Date.now()) < 60_000);
      assert.equal((await ok(p, p.a.key, 'Get', { key: 'stripe', path: 'prod' })).value, 'prod value');
      assert.equal((await ok(p, p.a.key, 'Get', { key: 'db.password', path: 'prod.eu' })).value, 'p%ss.word');
      assert.deepEqual((await ok(p, p.a.key, 'List', {})).keys, ['prod.eu/db.password', 'prod/stripe', 'stripe']);
      // set again: a new value, the same creation time
      await new Promise((r) => setTimeout(r, 5));
      await ok(p, p.a.key, 'Set', { key: 'stripe', value: 'rotated' });
      const again = await ok(p, p.a.key, 'Get', { key: 'stripe' });
      assert.equal(again.value, 'rotated');
      assert.equal(again.created, got.created);
      assert.ok(Date.parse(again.updated) >= Date.parse(got.updated));
      assert.deepEqual(await ok(p, p.a.key, 'Delete', { key: 'stripe', path: 'prod' }), {});
      assert.equal((await p.call(p.a.key, 'secret', 'Get', { key: 'stripe', path: 'prod' })).status, 404);
      assert.equal((await p.call(p.a.key, 'secret', 'Delete', { key: 'stripe', path: 'prod' })).status, 404);
      assert.deepEqual((await ok(p, p.a.key, 'List', {})).keys, ['prod.eu/db.password', 'stripe']);

      // encrypted at rest: the tenant's config shows them masked, and no file of the server holds the plaintext
      await ok(p, p.a.key, 'Set', { key: 'marker', value: plain });
      const asConfig = await p.call(p.a.key, 'config', 'Get', { path: 'micro_secret' });
      assert.ok(!JSON.stringify(asConfig.body).includes(plain), JSON.stringify(asConfig.body));
      if (profile === 'local') {
        const disk = bytesUnder(join(p.home, 'data'));
        assert.ok(disk.length > 0);
        assert.ok(!disk.includes(plain) && !disk.includes('_plaintext_marker'));
      }
    });

    await t.test('isolation: tenant b names a\'s keys and paths and gets only its own', async () => {
      await ok(p, p.a.key, 'Set', { key: 'api', path: 'prod', value: 'a-secret' });
      assert.equal((await p.call(p.b.key, 'secret', 'Get', { key: 'api', path: 'prod' })).status, 404);
      assert.equal((await p.call(p.b.key, 'secret', 'Delete', { key: 'api', path: 'prod' })).status, 404);
      assert.deepEqual((await ok(p, p.b.key, 'List', {})).keys, []);
      // b's own secret of the same name changes nothing of a's
      await ok(p, p.b.key, 'Set', { key: 'api', path: 'prod', value: 'b-secret' });
      assert.equal((await ok(p, p.a.key, 'Get', { key: 'api', path: 'prod' })).value, 'a-secret');
      assert.equal((await ok(p, p.b.key, 'Get', { key: 'api', path: 'prod' })).value, 'b-secret');
      // keys and paths that look like config paths or escapes reach nothing else
      for (const [key, path] of [['prod', 'api'], ['api', 'prod.'], ['prod.api', ''], ['api', '%70rod'], ['api', 'prod%2E'], ['__proto__', ''], ['$secret', 'prod']]) {
        const res = await p.call(p.b.key, 'secret', 'Get', { key, path });
        assert.ok(res.status === 404 || res.status === 400, `${key} ${path}: ${res.status}`);
      }
      const name = fc.string({ minLength: 1, maxLength: 24 }).filter((s) => !/\p{Cc}/u.test(s));
      await fc.assert(
        fc.asyncProperty(name, fc.option(name, { nil: undefined }), async (key, path) => {
          await ok(p, p.a.key, 'Set', { key, path, value: `a:${key}` });
          assert.equal((await ok(p, p.a.key, 'Get', { key, path })).value, `a:${key}`);
          const b = await p.call(p.b.key, 'secret', 'Get', { key, path });
          if (b.status === 200) assert.notEqual(b.body.value, `a:${key}`);
          else assert.equal(b.status, 404);
        }),
        { numRuns: 15 },
      );
      assert.equal((await ok(p, p.a.key, 'Get', { key: 'api', path: 'prod' })).value, 'a-secret');
    });

    await t.test('bad input: a 400 naming the field, nothing stored', async () => {
      const before = (await ok(p, p.a.key, 'List', {})).keys;
      const cases: [string, unknown, RegExp][] = [
        ['Set', { value: 'v' }, /key: required/],
        ['Set', { key: '', value: 'v' }, /key: required/],
        ['Set', { key: 'k' }, /value: required/],
        ['Set', { key: 'k', value: 42 }, /value: must be a string/],
        ['Set', { key: 'k', value: 'v'.repeat(64 * 1024 + 1) }, /value: must be at most 65536/],
        ['Set', { key: 'k'.repeat(129), value: 'v' }, /key: must be at most 128/],
        ['Set', { key: 'k', path: 'p'.repeat(129), value: 'v' }, /path: must be at most 128/],
        ['Set', { key: 'a\u0000b', value: 'v' }, /key.*control/],
        ['Set', { key: 'k', path: 'x\ny', value: 'v' }, /path.*control/],
        ['Set', { key: { $ne: null }, value: 'v' }, /key: must be a string/],
        ['Set', { key: '.'.repeat(128), path: '.'.repeat(10), value: 'v' }, /key: key and path are too long together/],
        ['Get', {}, /key: required/],
        ['Delete', { key: 7 }, /key: must be a string/],
      ];
      for (const [ep, body, detail] of cases) {
        const res = await p.call(p.a.key, 'secret', ep, body);
        assert.equal(res.status, 400, `${ep} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.code, 400);
        assert.match(res.body.detail, detail);
        // the value never comes back in an error
        if (typeof (body as { value?: unknown }).value === 'string') assert.ok(!res.body.detail.includes('vvvvvvvv'));
      }
      assert.deepEqual((await ok(p, p.a.key, 'List', {})).keys, before);
    });
  });
}
