import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

/** GET (or HEAD) of the gateway without following redirects */
const visit = (p: Platform, path: string, method = 'GET') => fetch(`${p.url}${path}`, { method, redirect: 'manual' });

for (const profile of ['local', 'nats'] as const) {
  test(`url: M3O's endpoints, the gateway's redirects, tenants apart, bad input (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    // the URLs the service hands out are the gateway's
    process.env.MICRO_PUBLIC_URL = p.url;
    const { a, b } = p;

    await t.test('every endpoint as M3O\'s client calls it', async () => {
      const shortened = await p.call(a.key, 'url', 'Shorten', { destinationURL: 'https://example.com/a' });
      assert.equal(shortened.status, 200, JSON.stringify(shortened.body));
      await expectShape('url', 'Shorten', shortened.body);
      assert.match(shortened.body.shortURL, new RegExp(`^${p.url}/u/[A-Za-z0-9]{8}$`));

      const created = await p.call(a.key, 'url', 'Create', { destinationURL: 'https://example.com/b', id: `mine-${profile}` });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      await expectShape('url', 'Create', created.body);
      assert.equal(created.body.url.id, `mine-${profile}`);
      assert.equal(created.body.url.hitCount, '0');
      assert.equal(created.body.url.shortURL, `${p.url}/u/mine-${profile}`);
      assert.ok(!Number.isNaN(Date.parse(created.body.url.created)));

      // Resolve by id and by short URL, each a hit
      const byId = await p.call(a.key, 'url', 'Resolve', { id: `mine-${profile}` });
      await expectShape('url', 'Resolve', byId.body);
      assert.equal(byId.body.destinationURL, 'https://example.com/b');
      assert.equal((await p.call(a.key, 'url', 'Resolve', { shortURL: created.body.url.shortURL })).body.destinationURL, 'https://example.com/b');

      // List: an ARRAY of pairs, with the hits
      const listed = await p.call(a.key, 'url', 'List', {});
      await expectShape('url', 'List', listed.body);
      assert.ok(Array.isArray(listed.body.urlPairs));
      assert.equal(listed.body.urlPairs.length, 2);
      const mine = listed.body.urlPairs.find((u: { id: string }) => u.id === `mine-${profile}`);
      assert.equal(mine.hitCount, '2');
      const one = await p.call(a.key, 'url', 'List', { shortURL: shortened.body.shortURL });
      assert.deepEqual(one.body.urlPairs.map((u: { shortURL: string }) => u.shortURL), [shortened.body.shortURL]);

      const updated = await p.call(a.key, 'url', 'Update', { shortURL: created.body.url.shortURL, destinationURL: 'https://example.org/new' });
      assert.equal(updated.status, 200, JSON.stringify(updated.body));
      await expectShape('url', 'Update', updated.body);
      assert.equal((await p.call(a.key, 'url', 'Resolve', { id: `mine-${profile}` })).body.destinationURL, 'https://example.org/new');

      const deleted = await p.call(a.key, 'url', 'Delete', { shortURL: shortened.body.shortURL });
      assert.equal(deleted.status, 200);
      await expectShape('url', 'Delete', deleted.body);
      assert.equal((await p.call(a.key, 'url', 'Resolve', { shortURL: shortened.body.shortURL })).status, 404);
      assert.equal((await p.call(a.key, 'url', 'List', {})).body.urlPairs.length, 1);
    });

    await t.test('GET /u/<id> is a 302 to the destination, counting a hit; HEAD is not a visit', async () => {
      const { body } = await p.call(a.key, 'url', 'Create', { destinationURL: 'https://example.com/go?x=1', id: `go-${profile}` });
      const res = await visit(p, `/u/go-${profile}`);
      assert.equal(res.status, 302);
      assert.equal(res.headers.get('location'), 'https://example.com/go?x=1');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      assert.equal((await visit(p, `/u/go-${profile}`, 'HEAD')).status, 302);
      const [pair] = (await p.call(a.key, 'url', 'List', { shortURL: body.url.shortURL })).body.urlPairs;
      assert.equal(pair.hitCount, '1');
      // the node's hits reach the stored record within a second (hits.ts)
      await new Promise((r) => setTimeout(r, 1_500));
      const stored = await p.call(p.adminToken, 'store', 'Read', { key: `go-${profile}`, namespace: a.namespace, database: 'url' });
      assert.equal(stored.body.records[0].value.hits, 1);
      assert.equal((await p.call(a.key, 'url', 'List', { shortURL: body.url.shortURL })).body.urlPairs[0].hitCount, '1');
      // an id nobody has, and hostile paths: a JSON 404 (nothing else is said)
      for (const path of ['/u/nobody', '/u/..%2f..%2fv1', '/u/a/b', '/u/%00', '/u/%zz', '/u/']) {
        const miss = await visit(p, path);
        assert.ok(miss.status === 404 || miss.status === 400, `${path}: ${miss.status}`);
        assert.equal(miss.headers.get('location'), null);
        assert.match(miss.headers.get('content-type') ?? '', /application\/json/);
      }
      // other methods
      const post = await fetch(`${p.url}/u/go-${profile}`, { method: 'POST' });
      assert.equal(post.status, 405);
      // the route's endpoint is the gateway's only: a tenant calling it gets a 404
      const direct = await p.call(b.key, 'url', 'Redirect', { method: 'GET', path: `go-${profile}` });
      assert.equal(direct.status, 404);
    });

    await t.test('a short domain of its own: MICRO_SHORT_URL_BASE', async () => {
      process.env.MICRO_SHORT_URL_BASE = 'https://sho.rt/';
      try {
        const { body } = await p.call(a.key, 'url', 'Shorten', { destinationURL: 'https://example.com/' });
        assert.match(body.shortURL, /^https:\/\/sho\.rt\/[A-Za-z0-9]{8}$/);
        assert.equal((await p.call(a.key, 'url', 'Resolve', { shortURL: body.shortURL })).body.destinationURL, 'https://example.com/');
      } finally {
        delete process.env.MICRO_SHORT_URL_BASE;
      }
    });

    await t.test('tenant b cannot read, change, delete or list a\'s links, nor take their ids', async () => {
      const id = `a-only-${profile}`;
      await p.call(a.key, 'url', 'Create', { destinationURL: 'https://example.com/a-secret', id });
      const shortURL = `${p.url}/u/${id}`;
      for (const req of [{ id }, { shortURL }]) {
        assert.equal((await p.call(b.key, 'url', 'Resolve', req)).status, 404);
        assert.equal((await p.call(b.key, 'url', 'Update', { ...req, destinationURL: 'https://evil.example/' })).status, 404);
        assert.equal((await p.call(b.key, 'url', 'Delete', req)).status, 404);
      }
      assert.deepEqual((await p.call(b.key, 'url', 'List', { shortURL })).body.urlPairs, []);
      assert.ok(!(await p.call(b.key, 'url', 'List', {})).body.urlPairs.some((u: { id: string }) => u.id === id));
      // ids are unique platform-wide: b cannot take a's
      const taken = await p.call(b.key, 'url', 'Create', { destinationURL: 'https://evil.example/', id });
      assert.equal(taken.status, 409);
      assert.match(taken.body.detail, /id/);
      // two tenants racing for one id: exactly one gets it
      const race = `race-${profile}`;
      const both = await Promise.all([a, b].map((x) => p.call(x.key, 'url', 'Create', { destinationURL: 'https://example.com/', id: race })));
      assert.deepEqual(both.map((r) => r.status).sort(), [200, 409]);

      // any id or short URL b sends: never a's link, and a's link stays as it was
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom(id, `${id}/`, `${id}?x`, `../${id}`, id.toUpperCase(), `${shortURL}#`)), async (s) => {
          for (const [ep, body] of [['Resolve', { id: s }], ['Resolve', { shortURL: s }], ['Update', { shortURL: s, destinationURL: 'https://evil.example/' }], ['Delete', { shortURL: s }], ['Delete', { id: s }]] as const) {
            const r = await p.call(b.key, 'url', ep, body);
            assert.ok(r.status === 404 || r.status === 400, `${ep} ${JSON.stringify(body)}: ${r.status}`);
            assert.equal(r.body.destinationURL, undefined);
          }
        }),
        { numRuns: 25 },
      );
      const res = await visit(p, `/u/${id}`);
      assert.equal(res.headers.get('location'), 'https://example.com/a-secret');
      assert.equal((await p.call(a.key, 'url', 'Resolve', { id })).body.destinationURL, 'https://example.com/a-secret');
      // the records are in a's namespace
      const own = await p.call(p.adminToken, 'store', 'Read', { key: id, namespace: a.namespace, database: 'url' });
      assert.equal(own.body.records[0].value.destinationURL, 'https://example.com/a-secret');
    });

    await t.test('bad input: a 400 in M3O\'s error shape naming the field; nothing is kept', async () => {
      const before = (await p.call(a.key, 'url', 'List', {})).body.urlPairs.length;
      const hostile = ['javascript:alert(document.cookie)', 'data:text/html;base64,PHNjcmlwdD4=', 'file:///etc/passwd', 'http://169.254.169.254/latest/meta-data/', 'http://0x7f000001/', 'http://[::1]:8080/', 'http://localhost:8080/dashboard/', `${p.url}/u/loop`, 'http://2130706433/'];
      for (const destinationURL of hostile) {
        for (const ep of ['Shorten', 'Create']) {
          const r = await p.call(a.key, 'url', ep, { destinationURL });
          assert.equal(r.status, 400, `${ep} ${destinationURL}`);
          assert.deepEqual(Object.keys(r.body).sort(), ['code', 'detail', 'id', 'status']);
          assert.match(r.body.detail, /destinationURL/);
        }
      }
      const cases: [string, unknown, RegExp][] = [
        ['Shorten', {}, /destinationURL/],
        ['Shorten', { destinationURL: 42 }, /destinationURL/],
        ['Create', { destinationURL: 'https://example.com/', id: '../../etc' }, /id/],
        ['Create', { destinationURL: 'https://example.com/', id: 'a/b' }, /id/],
        ['Create', { destinationURL: 'https://example.com/', id: 'x'.repeat(65) }, /id/],
        ['Create', { destinationURL: 'https://example.com/', id: "'; DROP TABLE urls; --" }, /id/],
        ['Resolve', {}, /id/],
        ['Resolve', { id: 'a\u0000b' }, /id/],
        ['Update', { id: 'nope' }, /destinationURL/],
        ['Delete', { shortURL: 'https://x/u/%2e%2e' }, /shortURL/],
        ['Shorten', { destinationURL: `https://example.com/${'a'.repeat(3000)}` }, /destinationURL/],
      ];
      for (const [ep, body, field] of cases) {
        const r = await p.call(a.key, 'url', ep, body);
        assert.equal(r.status, 400, `${ep} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.detail, field, `${ep}: ${r.body.detail}`);
      }
      assert.equal((await p.call(a.key, 'url', 'List', {})).body.urlPairs.length, before);
      // no credentials: 401; the redirect needs none
      assert.equal((await p.call(undefined, 'url', 'Shorten', { destinationURL: 'https://example.com/' })).status, 401);
    });
  });
}
