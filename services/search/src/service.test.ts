import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FULLTEXT_LIMITS } from '@micro/sdk';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

/*
 * The search service through the gateway, as M3O's JavaScript client calls it (POST with a
 * Bearer API key), on both profiles: SQLite FTS5 behind micro server's fulltext service
 * (local), PostgreSQL full-text search (nats). Two tenants who are strangers; one attacks.
 */

const BOOKS = [
  { id: 'go', data: { title: 'The Go Programming Language', author: 'Alan Donovan', year: 2015, rating: 4.5 } },
  { id: 'ts', data: { title: 'Programming TypeScript', author: 'Boris Cherny', year: 2019, rating: 4.1 } },
  { id: 'rust', data: { title: 'Programming Rust', author: 'Jim Blandy', year: 2021, rating: 4.7 } },
  { id: 'sicp', data: { title: 'Structure and Interpretation of Computer Programs', author: 'Abelson Sussman', year: 1985, rating: 4.8 } },
];

async function ok(p: Platform, key: string, endpoint: string, body: unknown) {
  const res = await p.call(key, 'search', endpoint, body);
  assert.equal(res.status, 200, `${endpoint} ${JSON.stringify(body).slice(0, 200)}: ${JSON.stringify(res.body)}`);
  await expectShape('search', endpoint[0]?.toUpperCase() + endpoint.slice(1), res.body);
  return res.body;
}

async function refused(p: Platform, key: string, endpoint: string, body: unknown, status: number, detail: RegExp) {
  const res = await p.call(key, 'search', endpoint, body);
  const label = `${endpoint} ${typeof body === 'string' ? body : JSON.stringify(body).slice(0, 200)}`;
  assert.equal(res.status, status, `${label}: ${JSON.stringify(res.body)}`);
  assert.deepEqual(Object.keys(res.body).sort(), ['code', 'detail', 'id', 'status'], label);
  assert.equal(res.body.code, status, label);
  assert.equal(res.body.id, 'search', label);
  assert.match(res.body.detail, detail, label);
}

const ids = (body: { records: Array<{ id: string }> }) => body.records.map((r) => r.id);

for (const profile of ['local', 'nats'] as const) {
  test(`search through the gateway as M3O's client calls it (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    const { a, b } = p;

    await t.test('every endpoint answers M3O\'s shapes and does what it says', async () => {
      assert.deepEqual(await ok(p, a.key, 'CreateIndex', { index: 'books' }), {});
      assert.deepEqual(await ok(p, a.key, 'CreateIndex', { index: 'books' }), {}, 'again: not an error');
      for (const book of BOOKS) assert.deepEqual(await ok(p, a.key, 'Index', { index: 'books', ...book }), { record: book });
      const made = await ok(p, a.key, 'index', { index: 'notes', data: { text: 'made on first use' } });
      assert.match(made.record.id, /^[0-9a-f-]{36}$/);
      assert.deepEqual(made.record.data, { text: 'made on first use' });

      // full-text match, ranked: the shorter title where the word weighs more first
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: "title == 'programming'" })), ['rust', 'ts', 'go'], 'ties by id');
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: "title == 'prog*'" })).sort(), ['go', 'rust', 'sicp', 'ts']);
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: "author == 'JIM'" })), ['rust']);
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: 'year >= 2015 and year <= 2019' })), ['go', 'ts']);
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: "(title == 'rust' or title == 'structure') and rating >= 4.75" })), ['sicp']);
      const full = await ok(p, a.key, 'Search', { index: 'books', query: "title == 'go'" });
      assert.deepEqual(full.records, [BOOKS[0]], 'records as they were indexed');
      assert.equal((await ok(p, a.key, 'Search', { index: 'books', query: 'year >= 0', limit: '2' })).records.length, 2, 'limit as an i64 string');

      // Index replaces a record of the same id; Delete removes it (twice: not an error)
      await ok(p, a.key, 'Index', { index: 'books', id: 'go', data: { title: 'Learning Go', year: 2021 } });
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: "title == 'language'" })), []);
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: 'year >= 2021' })), ['go', 'rust']);
      assert.deepEqual(await ok(p, a.key, 'Delete', { index: 'books', id: 'go' }), {});
      assert.deepEqual(await ok(p, a.key, 'Delete', { index: 'books', id: 'go' }), {});
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: 'year >= 2021' })), ['rust']);

      // DeleteIndex: the index and its records are gone; a missing index is a 404
      assert.deepEqual(await ok(p, a.key, 'DeleteIndex', { index: 'notes' }), {});
      await refused(p, a.key, 'Search', { index: 'notes', query: "text == 'use'" }, 404, /no index "notes"/);
      await refused(p, a.key, 'DeleteIndex', { index: 'notes' }, 404, /no index "notes"/);
      await refused(p, a.key, 'Delete', { index: 'notes', id: 'x' }, 404, /no index "notes"/);

      // the records are in the tenant's own namespace of the fulltext service (purge deletes them)
      const own = await p.call(p.adminToken, 'fulltext', 'ListIndexes', { namespace: 'tenant-a' });
      assert.deepEqual(own.body.indexes.map((i: { name: string }) => i.name), ['books']);
      assert.equal((await p.call(undefined, 'search', 'Search', { index: 'books', query: 'year >= 0' })).status, 401);
    });

    await t.test('isolation: tenant b reaches none of tenant a\'s indexes or records through any field', async () => {
      await ok(p, a.key, 'Index', { index: 'secrets', id: 'plan', data: { text: 'the plan of a', n: 1 } });
      const before = await ok(p, a.key, 'Search', { index: 'secrets', query: "text == '*'" });
      await refused(p, b.key, 'Search', { index: 'secrets', query: "text == 'plan'" }, 404, /no index/);
      await refused(p, b.key, 'Delete', { index: 'secrets', id: 'plan' }, 404, /no index/);
      await refused(p, b.key, 'DeleteIndex', { index: 'secrets' }, 404, /no index/);
      // hostile names and ids that would cross a boundary if anything were built from them
      for (const index of ['tenant-a/secrets', '../tenant-a/secrets', 'tenant-a.secrets', 'secrets;tenant-a', '*', 'secrets%00']) {
        const res = await p.call(b.key, 'search', 'Search', { index, query: "text == 'plan'" });
        assert.ok(res.status === 400 || res.status === 404, `${index}: ${res.status} ${JSON.stringify(res.body)}`);
      }
      // a namespace field in the request is ignored: b stays in its own namespace
      await ok(p, b.key, 'Index', { index: 'secrets', id: 'plan', data: { text: 'overwritten by b' }, namespace: 'tenant-a' });
      await ok(p, b.key, 'CreateIndex', { index: 'x', namespace: 'tenant-a' });
      assert.deepEqual((await ok(p, b.key, 'Search', { index: 'secrets', query: "text == '*'", namespace: 'tenant-a' })).records, [{ id: 'plan', data: { text: 'overwritten by b' } }]);
      // b's own core-service calls cannot name a's namespace either
      const core = await p.call(b.key, 'fulltext', 'Search', { index: 'secrets', query: "text == '*'", namespace: 'tenant-a' });
      assert.ok(core.status === 403 || core.status === 404, `${core.status} ${JSON.stringify(core.body)}`);
      // random index names and ids from b: never a's data, a's unchanged
      await fc.assert(
        fc.asyncProperty(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ minLength: 1, maxLength: 40 }), async (index, id) => {
          for (const [endpoint, body] of [
            ['Search', { index, query: "text == 'plan'" }],
            ['Index', { index, id, data: { text: 'x' } }],
            ['Delete', { index, id }],
          ] as const) {
            const res = await p.call(b.key, 'search', endpoint, body);
            assert.ok(res.status === 200 || res.status === 400 || res.status === 404, `${endpoint} ${JSON.stringify(body)}: ${res.status}`);
            if (endpoint === 'Search' && res.status === 200) assert.ok(!JSON.stringify(res.body).includes('the plan of a'));
          }
        }),
        { numRuns: 25 },
      );
      assert.deepEqual(await ok(p, a.key, 'Search', { index: 'secrets', query: "text == '*'" }), before, 'a\'s records unchanged');
      assert.deepEqual((await p.call(p.adminToken, 'fulltext', 'ListIndexes', { namespace: 'tenant-a' })).body.indexes.map((i: { name: string }) => i.name), ['books', 'secrets']);
    });

    await t.test('bad input: 4xx in M3O\'s error shape naming the field; hostile queries are refused or matched as words', async () => {
      await refused(p, a.key, 'CreateIndex', {}, 400, /Missing index/);
      await refused(p, a.key, 'Index', { index: 'books' }, 400, /Missing data/);
      await refused(p, a.key, 'Index', { data: { a: 1 } }, 400, /Missing index/);
      await refused(p, a.key, 'Delete', { index: 'books' }, 400, /Missing id/);
      await refused(p, a.key, 'Search', { index: 'books' }, 400, /Missing query/);
      await refused(p, a.key, 'Search', { index: 'books', query: 7 }, 400, /query/);
      await refused(p, a.key, 'Index', { index: 'books', data: 'text' }, 400, /data/);
      await refused(p, a.key, 'Index', { index: 'books', data: [1, 2] }, 400, /data/);
      await refused(p, a.key, 'Index', { index: '../etc', data: { a: 1 } }, 400, /index "..\/etc" may hold only/);
      await refused(p, a.key, 'CreateIndex', { index: 'x'.repeat(FULLTEXT_LIMITS.indexChars + 1) }, 400, /index/);
      await refused(p, a.key, 'Index', { index: 'books', id: 'a\u0001b', data: { a: 1 } }, 400, /id must not contain control characters/);
      let deep: Record<string, unknown> = { t: 'x' };
      for (let i = 0; i < 20; i++) deep = { d: deep };
      await refused(p, a.key, 'Index', { index: 'books', id: 'deep', data: deep }, 400, /data must not nest/);
      await refused(p, a.key, 'Index', { index: 'books', id: 'big', data: { t: 'x'.repeat(FULLTEXT_LIMITS.documentBytes) } }, 413, /data must be at most/);
      await refused(p, a.key, 'Search', { index: 'books', query: "title == 'go" }, 400, /query: a value opened with ' is not closed at position 10/);
      await refused(p, a.key, 'Search', { index: 'books', query: "title == 'go' AND" }, 400, /query: expected a field.*at position 18/);
      await refused(p, a.key, 'Search', { index: 'books', query: "title == 'go'; DROP TABLE fulltext_docs; --" }, 400, /unexpected character ";" at position 14/);
      await refused(p, a.key, 'Search', { index: 'books', query: 'year >= 1 limit 1' }, 400, /expected AND, OR or the end of the query, got "limit"/);
      await refused(p, a.key, 'Search', { index: 'books', query: 'year >= 0', limit: 1000 }, 400, /limit/);
      // FTS5, tsquery and SQL syntax inside a value are words to match, nothing more
      for (const query of ["title == 'NEAR(rust programming)'", "title == 'rust OR 1=1 --'", "title == 'rust: & !go | ts'", "title == '\\\" OR \\\"'", "'title:rust' and title == '^programming'"]) {
        assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query })), [], query);
      }
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: "title == 'programming RUST'" })), ['rust'], 'all still there');
      assert.deepEqual(ids(await ok(p, a.key, 'Search', { index: 'books', query: 'year >= 0', limit: 100 })).sort(), ['rust', 'sicp', 'ts'], 'nothing stored half');
    });
  });
}
