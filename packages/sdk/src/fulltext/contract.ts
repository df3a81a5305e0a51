/*
 * The behaviour every Fulltext must have, as node:test cases: memory, remote over the
 * real fulltext service, SQLite FTS5 and PostgreSQL. `make` gives a fresh, empty engine
 * with full rights (an admin of `micro` for a remote one).
 *
 * node:test is loaded when a contract is registered, not when the SDK is imported.
 */

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { rejectsWith } from '../config/contract.js';
import { FULLTEXT_LIMITS, type Fulltext } from './fulltext.js';

type NodeTest = typeof import('node:test');

function nodeTest(): NodeTest {
  return createRequire(import.meta.url)('node:test') as NodeTest;
}

export interface MadeFulltext {
  impl: Fulltext;
  close(): Promise<void>;
}

const BOOKS = [
  { id: 'b1', data: { title: 'The Go Programming Language', author: { name: 'Alan Donovan' }, year: 2015, pages: 380, tags: ['go', 'programming'] } },
  { id: 'b2', data: { title: 'Programming TypeScript', author: { name: 'Boris Cherny' }, year: 2019, pages: 322, tags: ['typescript'] } },
  { id: 'b3', data: { title: 'Café Crème: a Paris guide', author: { name: 'Zoë Durand' }, year: 2021, pages: 120, price: 9.5 } },
  { id: 'b4', data: { title: 'programming programming programming', author: { name: 'Anon' }, year: 1999, pages: 10 } },
  { id: 'b5', data: { title: 'Gardening', author: { name: 'Go Green' }, year: 2015, pages: -1, draft: true, note: null } },
];

export function fulltextContract(name: string, make: () => Promise<MadeFulltext>): void {
  const { describe, test } = nodeTest();

  const withEngine = async (fn: (f: Fulltext) => Promise<void>) => {
    const made = await make();
    try {
      await fn(made.impl);
    } finally {
      await made.close();
    }
  };
  const ids = async (f: Fulltext, query: string, limit?: number, index = 'books') => (await f.search(index, query, { limit })).map((h) => h.id);
  const withBooks = (fn: (f: Fulltext) => Promise<void>) =>
    withEngine(async (f) => {
      for (const b of BOOKS) await f.put('books', b);
      await fn(f);
    });

  describe(`fulltext contract: ${name}`, () => {
    test('indexes: made on demand or on first put, listed by name, deleted with their documents', () =>
      withEngine(async (f) => {
        await f.createIndex('zeta');
        await f.createIndex('zeta');
        await f.put('alpha', { id: '1', data: { a: 'x' } });
        const list = await f.listIndexes();
        assert.deepEqual(list.map((i) => [i.name, i.documents]), [['alpha', 1], ['zeta', 0]]);
        assert.ok(list.every((i) => Number.isInteger(i.created) && i.created > 0));
        await f.deleteIndex('alpha');
        assert.deepEqual((await f.listIndexes()).map((i) => i.name), ['zeta']);
        await rejectsWith(f.deleteIndex('alpha'), 404, /no index "alpha"/);
        await rejectsWith(f.search('alpha', "a == 'x'"), 404, /no index "alpha"/);
        await rejectsWith(f.delete('alpha', '1'), 404, /no index "alpha"/);
        // made again, it is empty
        await f.createIndex('alpha');
        assert.deepEqual(await ids(f, "a == 'x'", undefined, 'alpha'), []);
      }));

    test('put answers the document as stored; search finds it exactly; a put replaces, a delete removes', () =>
      withEngine(async (f) => {
        const data = { title: 'Hello world', nested: { deep: [1, 'two', { three: 3 }] }, flag: false, none: null, n: 1.25, s: 'ünïcödé 😀' };
        assert.deepEqual(await f.put('i', { id: 'doc-1', data }), { id: 'doc-1', data });
        const generated = await f.put('i', { data: { title: 'no id given' } });
        assert.match(generated.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        const [hit] = await f.search('i', "title == 'hello'");
        assert.deepEqual({ id: hit?.id, data: hit?.data }, { id: 'doc-1', data });
        assert.ok(typeof hit?.score === 'number' && hit.score > 0);
        await f.put('i', { id: 'doc-1', data: { title: 'Goodbye world' } });
        assert.deepEqual(await ids(f, "title == 'hello'", undefined, 'i'), []);
        assert.deepEqual(await ids(f, "title == 'goodbye'", undefined, 'i'), ['doc-1']);
        await f.delete('i', 'doc-1');
        await f.delete('i', 'doc-1');
        assert.deepEqual(await ids(f, "title == 'world'", undefined, 'i'), []);
        assert.deepEqual(await ids(f, "title == 'given'", undefined, 'i'), [generated.id]);
      }));

    test('text: every word in the field, any order and case, accents ignored; prefixes; any field; * for any text', () =>
      withBooks(async (f) => {
        assert.deepEqual(await ids(f, "title == 'programming'"), ['b4', 'b2', 'b1'], 'the most occurrences first, then the shorter text');
        assert.deepEqual(await ids(f, "title == 'LANGUAGE go'"), ['b1']);
        assert.deepEqual(await ids(f, "title == 'go typescript'"), []);
        assert.deepEqual(await ids(f, "title == 'cafe creme'"), ['b3']);
        assert.deepEqual(await ids(f, 'title == "Café"'), ['b3']);
        assert.deepEqual((await ids(f, "title == 'prog*'")).sort(), ['b1', 'b2', 'b4']);
        assert.deepEqual(await ids(f, "title == 'type* lang*'"), []);
        assert.deepEqual(await ids(f, "author.name == 'zoe'"), ['b3'], 'dotted paths');
        assert.deepEqual((await ids(f, "tags == 'go'")).sort(), ['b1'], 'arrays of strings are text');
        assert.deepEqual((await ids(f, "'go'")).sort(), ['b1', 'b5'], 'a bare value: any field');
        assert.deepEqual(await ids(f, "'go language'"), ['b1'], 'every word in one field');
        assert.deepEqual((await ids(f, "price == '*'")).length, 0, 'price is a number, not text');
        assert.deepEqual((await ids(f, "title == '*'")).sort(), ['b1', 'b2', 'b3', 'b4', 'b5']);
        assert.deepEqual(await ids(f, "missing == 'go'"), []);
      }));

    test('numbers: ==, >=, <=, >, <; AND binds tighter than OR; parentheses; keywords in any case', () =>
      withBooks(async (f) => {
        const sorted = async (q: string) => (await ids(f, q)).sort();
        assert.deepEqual(await sorted('year == 2015'), ['b1', 'b5']);
        assert.deepEqual(await sorted('year >= 2019'), ['b2', 'b3']);
        assert.deepEqual(await sorted('year > 2019'), ['b3']);
        assert.deepEqual(await sorted('pages <= 10'), ['b4', 'b5']);
        assert.deepEqual(await sorted('pages < 0'), ['b5']);
        assert.deepEqual(await sorted('price >= 9.5 and price <= 9.5'), ['b3']);
        assert.deepEqual(await sorted('year >= 2000 AND year <= 2016'), ['b1', 'b5']);
        assert.deepEqual(await sorted("title == 'programming' and year >= 2016"), ['b2']);
        assert.deepEqual(await sorted("title == 'gardening' or year < 2000 AND pages > 100"), ['b5']);
        assert.deepEqual(await sorted("(title == 'gardening' or year < 2000) AND pages < 100"), ['b4', 'b5']);
        assert.deepEqual(await sorted("title == 'go' Or title == 'typescript' oR author.name == 'zoe'"), ['b1', 'b2', 'b3']);
        assert.deepEqual(await sorted('draft >= 0'), [], 'booleans are not numbers');
      }));

    test('ranking: better text matches first; without words, by id; at most limit (default 10)', () =>
      withEngine(async (f) => {
        for (let i = 0; i < 30; i++) await f.put('r', { id: `d${String(i).padStart(2, '0')}`, data: { n: i, text: i % 3 === 0 ? 'rare common' : 'common filler words here' } });
        assert.deepEqual(await ids(f, 'n >= 0', undefined, 'r'), ['d00', 'd01', 'd02', 'd03', 'd04', 'd05', 'd06', 'd07', 'd08', 'd09']);
        assert.equal((await ids(f, 'n >= 0', 100, 'r')).length, 30);
        assert.deepEqual(await ids(f, 'n >= 25', 2, 'r'), ['d25', 'd26']);
        const hits = await f.search('r', "text == 'common' and n >= 10", { limit: 5 });
        // the short texts (where the word weighs more) first, ties by id
        assert.deepEqual(hits.map((h) => h.id), ['d12', 'd15', 'd18', 'd21', 'd24']);
        assert.ok((hits[0]?.score ?? 0) > 0);
        assert.deepEqual((await ids(f, "text == 'rare' or n == 1", 3, 'r')), ['d00', 'd03', 'd06']);
        // a text match ranks above what matched by number only
        assert.deepEqual((await ids(f, "text == 'rare' or n == 1", 20, 'r')).at(-1), 'd01');
      }));

    test('hostile values are words, never operators: FTS5 and tsquery syntax, SQL, quotes', () =>
      withEngine(async (f) => {
        await f.put('h', { id: "x'; DROP TABLE docs; --", data: { t: 'near a b', u: 'quote " and \' marks' } });
        await f.put('h', { id: '../../etc/passwd', data: { t: 'or and not', u: 'c:d' } });
        await f.put('h', { id: 'plain', data: { t: 'plain text' } });
        const q = async (query: string) => (await ids(f, query, undefined, 'h')).sort();
        assert.deepEqual(await q("t == 'NEAR(a b)'"), ["x'; DROP TABLE docs; --"]);
        assert.deepEqual(await q("t == 'a OR plain'"), []);
        assert.deepEqual(await q("t == 'or AND not'"), ['../../etc/passwd']);
        assert.deepEqual(await q("t == 'NOT plain'"), []);
        assert.deepEqual(await q("u == 'c:d'"), ['../../etc/passwd']);
        assert.deepEqual(await q("t == '\"plain\" ^text'"), ['plain']);
        assert.deepEqual(await q("t == 'plain & !text | x'"), []);
        assert.deepEqual(await q("t == 'plain: text:A'"), []);
        assert.deepEqual(await q("u == '\\' marks'"), ["x'; DROP TABLE docs; --"]);
        assert.deepEqual(await q("t == '1=1; --'"), []);
        assert.deepEqual(await q("t == 'x\\' OR 1 == 1 --'"), []);
        assert.deepEqual(await q('t == "*"'), ["../../etc/passwd", 'plain', "x'; DROP TABLE docs; --"]);
        // every document is still there
        await f.delete('h', "x'; DROP TABLE docs; --");
        assert.deepEqual(await q("t == 'plain'"), ['plain']);
      }));

    test('queries that do not parse are 400s with the position', () =>
      withBooks(async (f) => {
        const cases: Array<[string, RegExp]> = [
          ['', /query must not be empty/],
          ['   ', /query must not be empty/],
          ["title == 'go", /not closed at position 10/],
          ['title = 1', /unknown operator "= " .* at position 7/],
          ['title != 1', /unknown operator "!=" .* at position 7/],
          ["title == 'go' AND", /expected a field, a quoted value or \(, got the end of the query at position 18/],
          ["(title == 'go'", /expected \) to close the \( at position 1/],
          ["title == 'go')", /expected AND, OR or the end of the query, got "\)" at position 14/],
          ["title 'go'", /expected an operator .* at position 7/],
          ["year >= 'x'", />= compares numbers.* at position 9/],
          ["title == 'a*b'", /\* only ends a word/],
          ["title == '*go'", /\* only ends a word/],
          ["title == '!!!'", /has no word to match/],
          ['title == ', /expected a quoted value or a number .* the end of the query/],
          ['year >= 1e999', /not a finite number/],
          ['$where == 1', /unexpected character "\$" at position 1/],
          ["title == 'go' ; DROP TABLE x", /unexpected character ";" at position 15/],
          ["title == '\\n'", /escapes only/],
          ['('.repeat(FULLTEXT_LIMITS.queryDepth + 1) + 'a == 1' + ')'.repeat(FULLTEXT_LIMITS.queryDepth + 1), /nest at most/],
          [Array.from({ length: FULLTEXT_LIMITS.queryConditions + 1 }, (_, i) => `n == ${i}`).join(' or '), /at most 32 conditions/],
          ['a == 1 '.repeat(400), /at most 2048 characters/],
        ];
        for (const [query, detail] of cases) await rejectsWith(f.search('books', query), 400, detail);
      }));

    test('bad names, ids, documents and limits are 400s (413: too large) naming the field; nothing is stored', () =>
      withEngine(async (f) => {
        for (const index of ['', '../x', 'a/b', 'a b', '.hidden', '-x', 'x'.repeat(FULLTEXT_LIMITS.indexChars + 1), "a'b", 'ä']) {
          await rejectsWith(f.put(index, { id: '1', data: { a: 'x' } }), 400, /index/);
          await rejectsWith(f.createIndex(index), 400, /index/);
        }
        await rejectsWith(f.put('i', { id: 'x'.repeat(FULLTEXT_LIMITS.idChars + 1), data: {} }), 400, /id must be at most/);
        await rejectsWith(f.put('i', { id: 'a\u0000b', data: {} }), 400, /id must not contain control characters/);
        await rejectsWith(f.put('i', { id: '1', data: [] as unknown as Record<string, unknown> }), 400, /data must be a JSON object/);
        await rejectsWith(f.put('i', { id: '1', data: null as unknown as Record<string, unknown> }), 400, /data must be a JSON object/);
        let deep: Record<string, unknown> = { leaf: 'x' };
        for (let i = 0; i < FULLTEXT_LIMITS.depth; i++) deep = { d: deep };
        await rejectsWith(f.put('i', { id: '1', data: deep }), 400, /data must not nest/);
        const wide = Object.fromEntries(Array.from({ length: FULLTEXT_LIMITS.fields + 1 }, (_, i) => [`f${i}`, i]));
        await rejectsWith(f.put('i', { id: '1', data: wide }), 400, /at most 100 fields/);
        await rejectsWith(f.put('i', { id: '1', data: { big: 'x'.repeat(FULLTEXT_LIMITS.documentBytes) } }), 413, /data must be at most/);
        assert.deepEqual(await f.listIndexes(), [], 'no index was made by a refused put');
        await f.put('i', { id: 'ok', data: { a: 'x' } });
        for (const limit of [0, -1, 1.5, FULLTEXT_LIMITS.maxLimit + 1]) await rejectsWith(f.search('i', 'a == 1', { limit }), 400, /limit/);
        await rejectsWith(f.delete('i', ''), 400, /id must be a non-empty string/);
        assert.deepEqual(await ids(f, "a == 'x'", undefined, 'i'), ['ok']);
      }));

    test('namespaces are apart: the same index and id in two namespaces are two documents', () =>
      withEngine(async (f) => {
        await f.put('shared', { id: 'x', data: { t: 'alpha' } }, { namespace: 'ns-a' });
        await f.put('shared', { id: 'x', data: { t: 'beta' } }, { namespace: 'ns-b' });
        assert.deepEqual((await f.search('shared', "t == 'alpha'", { namespace: 'ns-b' })).length, 0);
        assert.deepEqual((await f.search('shared', "t == '*'", { namespace: 'ns-a' })).map((h) => h.data), [{ t: 'alpha' }]);
        await f.deleteIndex('shared', { namespace: 'ns-b' });
        assert.deepEqual((await f.search('shared', "t == '*'", { namespace: 'ns-a' })).length, 1);
        await rejectsWith(f.search('shared', "t == '*'", { namespace: 'ns-c' }), 404);
        assert.deepEqual(await f.listIndexes({ namespace: 'ns-b' }), []);
      }));

    test(`a namespace holds at most ${FULLTEXT_LIMITS.indexes} indexes: the next is a 409`, () =>
      withEngine(async (f) => {
        for (let i = 0; i < FULLTEXT_LIMITS.indexes; i++) await f.createIndex(`i${i}`, { namespace: 'full' });
        await rejectsWith(f.createIndex('one-more', { namespace: 'full' }), 409, /100 indexes already/);
        await rejectsWith(f.put('one-more', { id: '1', data: {} }, { namespace: 'full' }), 409, /100 indexes already/);
        await f.createIndex('i0', { namespace: 'full' });
        await f.put('i1', { id: '1', data: { a: 'b' } }, { namespace: 'full' });
        await f.createIndex('other', { namespace: 'roomy' });
      }));
  });
}
