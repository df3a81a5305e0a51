/*
 * The behaviour every Store and BlobStore must have, as node:test cases. Each engine's
 * tests run them: memory, SQLite, remote over the real service (and later Postgres and
 * NATS). Written engine-neutral: only the interfaces, real time for TTLs (short ones,
 * and assertions only after they have surely passed), a fresh store per test.
 *
 * node:test is loaded when a contract is registered, not when the SDK is imported.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { MicroError } from '../errors/errors.js';
import { readBlob, type BlobStore } from './blob.js';
import type { Store, StoreRecord } from './store.js';
import { STORE_LIMITS, compareKeys } from './util.js';

type NodeTest = typeof import('node:test');

function nodeTest(): NodeTest {
  return createRequire(import.meta.url)('node:test') as NodeTest;
}

export interface Made<T> {
  impl: T;
  close(): Promise<void>;
}

export interface MadeBlobStore extends Made<BlobStore> {
  /** the engine's bound on blob size, when the contract should check it (keep it small: ~1 MiB) */
  maxSize?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A rejection with this HTTP code (and, when given, a detail matching `detail`). */
async function rejectsWith(p: Promise<unknown> | (() => Promise<unknown>), code: number, detail?: RegExp): Promise<void> {
  await assert.rejects(typeof p === 'function' ? p() : p, (err: unknown) => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.detail}`);
    if (detail) assert.match(err.detail, detail);
    return true;
  });
}

/** Everything a table holds, for before/after comparisons. */
async function dump(store: Store, opts: { namespace?: string; database?: string; table?: string } = {}): Promise<StoreRecord[]> {
  return store.read('', { ...opts, prefix: true, limit: STORE_LIMITS.maxLimit });
}

export function storeContract(name: string, make: () => Promise<Made<Store>>): void {
  const { describe, test } = nodeTest();

  /** Runs `fn` with a fresh store, closed afterwards whatever happens. */
  const withStore = async (fn: (store: Store) => Promise<void>) => {
    const made = await make();
    try {
      await fn(made.impl);
    } finally {
      await made.close();
    }
  };

  describe(`store contract: ${name}`, () => {
    test('write then read returns the record; a missing key reads as nothing', () =>
      withStore(async (s) => {
        const values: unknown[] = [{ a: 1, b: [1, 'two', null, { c: true }] }, 'text', 42.5, -0.25, null, false, [], {}, 'ünïcödé 😀 \u0001'];
        for (const [i, value] of values.entries()) await s.write({ key: `k${i}`, value });
        for (const [i, value] of values.entries()) assert.deepEqual(await s.read(`k${i}`), [{ key: `k${i}`, value }]);
        assert.deepEqual(await s.read('missing'), []);
        await s.write({ key: 'meta', value: 1, metadata: { owner: 'alice', size: 3, draft: true } });
        assert.deepEqual(await s.read('meta'), [{ key: 'meta', value: 1, metadata: { owner: 'alice', size: 3, draft: true } }]);
      }));

    test('a write replaces the whole record, and changing what was written or read changes nothing stored', () =>
      withStore(async (s) => {
        const value = { n: 1, list: [1] };
        await s.write({ key: 'k', value, metadata: { a: 'x' } }, { ttl: 3600 });
        value.n = 2;
        value.list.push(2);
        const [read] = await s.read('k');
        assert.deepEqual(read?.value, { n: 1, list: [1] });
        (read?.value as { n: number }).n = 99;
        assert.deepEqual((await s.read('k'))[0]?.value, { n: 1, list: [1] });
        await s.write({ key: 'k', value: 'second' });
        assert.deepEqual(await s.read('k'), [{ key: 'k', value: 'second' }]);
      }));

    test('delete removes a record; deleting a missing key is fine', () =>
      withStore(async (s) => {
        await s.write({ key: 'a', value: 1 });
        await s.write({ key: 'b', value: 2 });
        await s.delete('a');
        await s.delete('a');
        await s.delete('never');
        assert.deepEqual(await s.read('a'), []);
        assert.deepEqual(await s.list(), ['b']);
      }));

    test('databases and tables keep records apart, and list only what holds records', () =>
      withStore(async (s) => {
        await s.write({ key: 'k', value: 'default' });
        await s.write({ key: 'k', value: 'users' }, { table: 'users' });
        await s.write({ key: 'k', value: 'other' }, { database: 'other', table: 'users' });
        assert.deepEqual((await s.read('k'))[0]?.value, 'default');
        assert.deepEqual((await s.read('k', { table: 'users' }))[0]?.value, 'users');
        assert.deepEqual((await s.read('k', { database: 'other', table: 'users' }))[0]?.value, 'other');
        assert.deepEqual(await s.read('k', { database: 'other' }), []);
        assert.deepEqual(await s.databases(), ['micro', 'other']);
        assert.deepEqual(await s.tables(), ['default', 'users']);
        assert.deepEqual(await s.tables({ database: 'other' }), ['users']);
        assert.deepEqual(await s.tables({ database: 'none' }), []);
        await s.delete('k', { database: 'other', table: 'users' });
        assert.deepEqual(await s.databases(), ['micro']);
        assert.deepEqual(await s.databases({ limit: 1, offset: 1 }), []);
      }));

    test('namespaces keep records apart', () =>
      withStore(async (s) => {
        await s.write({ key: 'k', value: 'a' }, { namespace: 'contract-a' });
        await s.write({ key: 'k', value: 'b' }, { namespace: 'contract-b' });
        assert.deepEqual((await s.read('k', { namespace: 'contract-a' }))[0]?.value, 'a');
        assert.deepEqual((await s.read('k', { namespace: 'contract-b' }))[0]?.value, 'b');
        await s.delete('k', { namespace: 'contract-a' });
        assert.deepEqual(await s.read('k', { namespace: 'contract-a' }), []);
        assert.deepEqual(await s.list({ namespace: 'contract-b' }), ['k']);
        assert.deepEqual(await s.databases({ namespace: 'contract-a' }), []);
        assert.deepEqual(await s.databases({ namespace: 'contract-b' }), ['micro']);
      }));

    test('prefix and suffix reads return matching records in key order, bounded by limit and offset', () =>
      withStore(async (s) => {
        for (const key of ['user:2', 'user:1', 'user:10', 'users', 'other:1', 'admin:1']) await s.write({ key, value: key });
        const keys = (records: StoreRecord[]) => records.map((r) => r.key);
        assert.deepEqual(keys(await s.read('user:', { prefix: true })), ['user:1', 'user:10', 'user:2']);
        assert.deepEqual(keys(await s.read('user:', { prefix: true, order: 'desc' })), ['user:2', 'user:10', 'user:1']);
        assert.deepEqual(keys(await s.read('user:', { prefix: true, limit: 2, offset: 1 })), ['user:10', 'user:2']);
        assert.deepEqual(keys(await s.read(':1', { suffix: true })), ['admin:1', 'other:1', 'user:1']);
        assert.deepEqual(keys(await s.read('user', { prefix: true, suffix: true })), []);
        assert.deepEqual(keys(await s.read('u', { prefix: true, after: 'user:1', before: 'users' })), ['user:10', 'user:2']);
        assert.deepEqual(keys(await s.read('', { prefix: true })), ['admin:1', 'other:1', 'user:1', 'user:10', 'user:2', 'users']);
        assert.deepEqual((await s.read('user:1', { prefix: true, limit: 1 }))[0], { key: 'user:1', value: 'user:1' });
      }));

    test('list filters by prefix, suffix and a window of keys, in either order', () =>
      withStore(async (s) => {
        for (const key of ['a', 'ab', 'abc', 'b', 'bc', 'c']) await s.write({ key, value: 0 });
        assert.deepEqual(await s.list(), ['a', 'ab', 'abc', 'b', 'bc', 'c']);
        assert.deepEqual(await s.list({ prefix: 'ab' }), ['ab', 'abc']);
        assert.deepEqual(await s.list({ suffix: 'c' }), ['abc', 'bc', 'c']);
        assert.deepEqual(await s.list({ prefix: 'a', suffix: 'c' }), ['abc']);
        assert.deepEqual(await s.list({ after: 'ab', before: 'bc' }), ['abc', 'b']);
        assert.deepEqual(await s.list({ order: 'desc', limit: 2 }), ['c', 'bc']);
        assert.deepEqual(await s.list({ order: 'desc', before: 'b' }), ['abc', 'ab', 'a']);
        assert.deepEqual(await s.list({ offset: 4 }), ['bc', 'c']);
        assert.deepEqual(await s.list({ prefix: 'zz' }), []);
        assert.deepEqual(await s.list({ after: 'c' }), []);
      }));

    test('keys sort by code point, the same in every engine', () =>
      withStore(async (s) => {
        const keys = ['a', 'B', 'é', '\uE000', '😀', '\uFFFF', 'a\u0001', 'ab', 'Z', '~', ' '];
        for (const key of keys) await s.write({ key, value: key });
        const expected = [...keys].sort(compareKeys);
        assert.deepEqual(await s.list(), expected);
        assert.deepEqual((await s.read('', { prefix: true })).map((r) => r.key), expected);
        assert.deepEqual(await s.list({ order: 'desc' }), [...expected].reverse());
        // the prefix of the last code point of its block still finds only its own keys
        await s.write({ key: '\u{10FFFF}x', value: 1 });
        assert.deepEqual(await s.list({ prefix: '\u{10FFFF}' }), ['\u{10FFFF}x']);
        assert.deepEqual(await s.list({ prefix: '\uFFFF' }), ['\uFFFF']);
        assert.deepEqual(await s.list({ prefix: '😀' }), ['😀']);
      }));

    test('wildcards and quotes in keys are plain characters', () =>
      withStore(async (s) => {
        const keys = ['%', '_', 'a%b', 'a_b', 'axb', '\\', "'; DROP TABLE records; --", '*', '?', '[a]', '__proto__', 'constructor'];
        for (const key of keys) await s.write({ key, value: key });
        assert.deepEqual(await s.list({ prefix: '%' }), ['%']);
        assert.deepEqual(await s.list({ prefix: 'a_' }), ['a_b']);
        assert.deepEqual(await s.list({ suffix: '%b' }), ['a%b']);
        assert.deepEqual(await s.list({ suffix: '_b' }), ['a_b']);
        assert.deepEqual(await s.list({ prefix: '\\' }), ['\\']);
        assert.deepEqual((await s.read("'; DROP TABLE records; --"))[0]?.value, "'; DROP TABLE records; --");
        assert.equal((await s.list({ limit: 1000 })).length, keys.length);
        assert.deepEqual((await s.read('__proto__'))[0]?.value, '__proto__');
      }));

    test('hostile values and metadata come back as they went in and pollute nothing', () =>
      withStore(async (s) => {
        const value = JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}}') as unknown;
        const metadata = JSON.parse('{"constructor": "m", "toString": 1}') as Record<string, string | number>;
        await s.write({ key: 'h', value, metadata });
        const [r] = await s.read('h');
        assert.equal(JSON.stringify(r?.value), JSON.stringify(value));
        assert.equal(Object.getPrototypeOf(r?.value), Object.prototype);
        assert.equal(JSON.stringify(r?.metadata), JSON.stringify(metadata));
        assert.equal(({} as { polluted?: boolean }).polluted, undefined);
        await rejectsWith(s.write({ key: 'h', value: 1, metadata: JSON.parse('{"__proto__": "m"}') as Record<string, string> }), 400, /metadata.*__proto__/);
      }));

    test('TTLs: a record is gone once its time passes, from every view', () =>
      withStore(async (s) => {
        const before = Date.now();
        await s.write({ key: 'long', value: 1 }, { ttl: 3600 });
        const [long] = await s.read('long');
        assert.ok(long?.expiry !== undefined && long.expiry >= before + 3_599_000 && long.expiry <= Date.now() + 3_601_000, `expiry ${long?.expiry}`);
        await s.write({ key: 'short', value: 1 }, { ttl: 0.2, table: 'brief' });
        await s.write({ key: 'short2', value: 1 }, { ttl: 0.2, database: 'brief' });
        await s.write({ key: 'forever', value: 1 }, { ttl: 0 });
        assert.equal((await s.read('forever'))[0]?.expiry, undefined);
        // an expiry given with the record is kept; one in the past is gone at once
        const at = Date.now() + 3_600_000;
        await s.write({ key: 'given', value: 1, expiry: at });
        assert.equal((await s.read('given'))[0]?.expiry, at);
        await s.write({ key: 'past', value: 1, expiry: Date.now() - 1 });
        assert.deepEqual(await s.read('past'), []);
        await sleep(500);
        assert.deepEqual(await s.read('short', { table: 'brief' }), []);
        assert.deepEqual(await s.read('s', { prefix: true, table: 'brief' }), []);
        assert.deepEqual(await s.list({ table: 'brief' }), []);
        assert.deepEqual(await s.tables(), ['default']);
        assert.deepEqual(await s.databases(), ['micro']);
        assert.deepEqual(await s.list(), ['forever', 'given', 'long']);
        // writing again after expiry makes a new record
        await s.write({ key: 'short', value: 2 }, { table: 'brief' });
        assert.deepEqual(await s.read('short', { table: 'brief' }), [{ key: 'short', value: 2 }]);
      }));

    test('pages are bounded: 100 by default, 1000 at most, and a cursor walks every key once', () =>
      withStore(async (s) => {
        const keys = Array.from({ length: 250 }, (_, i) => `k${String(i).padStart(4, '0')}`);
        for (let i = 0; i < keys.length; i += 25) await Promise.all(keys.slice(i, i + 25).map((key) => s.write({ key, value: i })));
        assert.equal((await s.list()).length, 100);
        assert.equal((await s.read('k', { prefix: true })).length, 100);
        assert.equal((await s.list({ limit: 1000 })).length, 250);
        const seen: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await s.list({ after, limit: 60 });
          seen.push(...page);
          if (page.length < 60) break;
          after = page.at(-1);
        }
        assert.deepEqual(seen, keys);
        await rejectsWith(s.list({ limit: 1001 }), 400, /limit/);
        await rejectsWith(s.list({ limit: 0 }), 400, /limit/);
        await rejectsWith(s.list({ limit: 1.5 }), 400, /limit/);
        await rejectsWith(s.list({ offset: -1 }), 400, /offset/);
        await rejectsWith(s.list({ offset: STORE_LIMITS.maxOffset + 1 }), 400, /offset/);
        await rejectsWith(s.read('k', { prefix: true, limit: 5000 }), 400, /limit/);
        await rejectsWith(s.read('k', { limit: 5000 }), 400, /limit/);
        await rejectsWith(s.databases({ limit: 1001 }), 400, /limit/);
        await rejectsWith(s.tables({ offset: -5 }), 400, /offset/);
      }));

    test('values and keys at their bounds are stored; one byte more is a 400', () =>
      withStore(async (s) => {
        const maxKey = 'k'.repeat(STORE_LIMITS.keyBytes);
        await s.write({ key: maxKey, value: 1 });
        assert.equal((await s.read(maxKey)).length, 1);
        await rejectsWith(s.write({ key: `${maxKey}k`, value: 1 }), 400, /key/);
        // 513 two-byte characters: few characters, too many bytes
        await rejectsWith(s.write({ key: 'é'.repeat(513), value: 1 }), 400, /key.*bytes/);
        await rejectsWith(s.read('é'.repeat(513)), 400, /key/);
        const big = 'x'.repeat(STORE_LIMITS.valueBytes - 2);
        await s.write({ key: 'big', value: big });
        assert.equal((await s.read('big'))[0]?.value, big);
        await rejectsWith(s.write({ key: 'big', value: `${big}x` }), 400, /value/);
        assert.equal((await s.read('big'))[0]?.value, big, 'a refused write changes nothing');
      }));

    test('reads of many large records return them all', () =>
      withStore(async (s) => {
        const big = 'y'.repeat(STORE_LIMITS.valueBytes - 100);
        for (let i = 0; i < 5; i++) await s.write({ key: `big${i}`, value: `${i}${big}` });
        const records = await s.read('big', { prefix: true });
        assert.deepEqual(records.map((r) => r.key), ['big0', 'big1', 'big2', 'big3', 'big4']);
        assert.ok(records.every((r, i) => r.value === `${i}${big}`));
        const down = await s.read('big', { prefix: true, order: 'desc', limit: 4 });
        assert.deepEqual(down.map((r) => r.key), ['big4', 'big3', 'big2', 'big1']);
      }));

    test('wrong, missing, oversized and hostile input is a 400 naming the field, and changes nothing', () =>
      withStore(async (s) => {
        await s.write({ key: 'keep', value: { v: 1 }, metadata: { m: 1 } });
        const snapshot = await dump(s);
        const w = (record: unknown, opts?: unknown) => () => s.write(record as StoreRecord, opts as never);
        await rejectsWith(w({ key: '', value: 1 }), 400, /key/);
        await rejectsWith(w({ key: 'a\u0000b', value: 1 }), 400, /key.*NUL/);
        await rejectsWith(w({ key: 'a\uD800', value: 1 }), 400, /key.*surrogate/);
        await rejectsWith(w({ key: 42, value: 1 }), 400, /key/);
        await rejectsWith(w({ value: 1 }), 400, /key/);
        await rejectsWith(w({ key: 'keep' }), 400, /value/);
        await rejectsWith(w({ key: 'keep', value: Number.NaN }), 400, /value/);
        await rejectsWith(w({ key: 'keep', value: { a: [1, Infinity] } }), 400, /value\.a\[1\]/);
        await rejectsWith(w({ key: 'keep', value: [1, undefined] }), 400, /value\[1\]/);
        let deep: unknown = 1;
        for (let i = 0; i < STORE_LIMITS.valueDepth + 5; i++) deep = [deep];
        await rejectsWith(w({ key: 'keep', value: deep }), 400, /value.*deeper/);
        await rejectsWith(w({ key: 'keep', value: 1, metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, i])) }), 400, /metadata/);
        await rejectsWith(w({ key: 'keep', value: 1, metadata: { a: { nested: 1 } } }), 400, /metadata/);
        await rejectsWith(w({ key: 'keep', value: 1, metadata: { a: 'x'.repeat(STORE_LIMITS.metadataValue + 1) } }), 400, /metadata/);
        await rejectsWith(w({ key: 'keep', value: 1, metadata: { a: Number.POSITIVE_INFINITY } }), 400, /metadata/);
        await rejectsWith(w({ key: 'keep', value: 1, metadata: [1] }), 400, /metadata/);
        await rejectsWith(w({ key: 'keep', value: 1 }, { ttl: -1 }), 400, /ttl/);
        await rejectsWith(w({ key: 'keep', value: 1 }, { ttl: STORE_LIMITS.maxTtlSeconds + 1 }), 400, /ttl/);
        await rejectsWith(w({ key: 'keep', value: 1, expiry: 'soon' }), 400, /expiry/);
        for (const database of ['', '../etc', 'a b', '.hidden', 'x'.repeat(STORE_LIMITS.nameChars + 1), 'a;drop', 'a/b']) {
          await rejectsWith(w({ key: 'keep', value: 1 }, { database }), 400, /database/);
        }
        for (const table of ['', '-x', 'a\u0000', 'ta*ble']) await rejectsWith(w({ key: 'keep', value: 1 }, { table }), 400, /table/);
        await rejectsWith(w({ key: 'keep', value: 1 }, { namespace: '' }), 400, /namespace/);
        await rejectsWith(() => s.read(''), 400, /key/);
        await rejectsWith(() => s.read('k', { prefix: 'yes' as never }), 400, /prefix/);
        await rejectsWith(() => s.read('k', { prefix: true, order: 'sideways' as never }), 400, /order/);
        await rejectsWith(() => s.list({ prefix: 'x'.repeat(STORE_LIMITS.keyBytes + 1) }), 400, /prefix/);
        await rejectsWith(() => s.list({ after: 'a\u0000' }), 400, /after/);
        await rejectsWith(() => s.delete(''), 400, /key/);
        await rejectsWith(() => s.delete('k', { table: '../x' }), 400, /table/);
        await rejectsWith(() => s.tables({ database: '*' }), 400, /database/);
        assert.deepEqual(await dump(s), snapshot);
      }));

    test('query: conditions on fields of the values, and/or, every comparison, as data', () =>
      withStore(async (s) => {
        const people = [
          { key: 'p1', value: { name: 'ada', age: 36, admin: true, address: { city: 'London' } } },
          { key: 'p2', value: { name: 'bob', age: 17, admin: false, address: { city: 'Paris' } } },
          { key: 'p3', value: { name: 'cy', age: 52.5, address: { city: 'london' } } },
          { key: 'p4', value: { name: 'dee', age: '40', note: "'; DROP TABLE records; --" } },
          { key: 'p5', value: [1, 2, 3] },
          { key: 'p6', value: 'just text' },
        ];
        for (const p of people) await s.write(p);
        await s.write({ key: 'other', value: { age: 99 } }, { table: 'other' });
        const keys = async (where: unknown, extra: object = {}) => (await s.query({ where: where as never, ...extra })).map((r) => r.key);
        assert.deepEqual(await keys({ field: 'age', op: '>', value: 18 }), ['p1', 'p3']);
        assert.deepEqual(await keys({ field: 'age', op: '>=', value: 36 }), ['p1', 'p3']);
        assert.deepEqual(await keys({ field: 'age', op: '<', value: 36 }), ['p2']);
        assert.deepEqual(await keys({ field: 'age', op: '<=', value: 36 }), ['p1', 'p2']);
        assert.deepEqual(await keys({ field: 'age', op: '==', value: 52.5 }), ['p3']);
        // a string is not a number: '40' matches only as a string
        assert.deepEqual(await keys({ field: 'age', op: '==', value: '40' }), ['p4']);
        assert.deepEqual(await keys({ field: 'age', op: '==', value: 40 }), []);
        // != is the negation of ==: records without the field match
        assert.deepEqual(await keys({ field: 'name', op: '!=', value: 'ada' }), ['p2', 'p3', 'p4', 'p5', 'p6']);
        assert.deepEqual(await keys({ field: 'admin', op: '==', value: true }), ['p1']);
        assert.deepEqual(await keys({ field: 'admin', op: '==', value: false }), ['p2']);
        assert.deepEqual(await keys({ field: 'admin', op: '!=', value: true }), ['p2', 'p3', 'p4', 'p5', 'p6']);
        assert.deepEqual(await keys({ field: 'address.city', op: '==', value: 'London' }), ['p1']);
        assert.deepEqual(await keys({ field: 'address.city', op: '>', value: 'M' }), ['p2', 'p3']);
        assert.deepEqual(await keys({ and: [{ field: 'age', op: '>', value: 10 }, { field: 'address.city', op: '!=', value: 'Paris' }] }), ['p1', 'p3']);
        assert.deepEqual(await keys({ or: [{ field: 'name', op: '==', value: 'bob' }, { and: [{ field: 'age', op: '>', value: 50 }] }] }), ['p2', 'p3']);
        // an object is not a string, whatever its JSON says
        assert.deepEqual(await keys({ field: 'address', op: '==', value: '{"city":"London"}' }), []);
        // hostile strings are values, compared as they are
        assert.deepEqual(await keys({ field: 'note', op: '==', value: "'; DROP TABLE records; --" }), ['p4']);
        assert.deepEqual(await keys({ field: 'name', op: '==', value: "ada' OR '1'='1" }), []);
        assert.deepEqual(await keys({ field: 'name', op: '==', value: '%' }), []);
        assert.deepEqual(await keys(undefined), ['p1', 'p2', 'p3', 'p4', 'p5', 'p6']);
        assert.equal(await s.count(), 6);
        assert.equal(await s.count({ where: { field: 'age', op: '>', value: 18 } }), 2);
        assert.equal(await s.count({ table: 'other' }), 1);
        assert.equal(await s.count({ table: 'none' }), 0);
        assert.deepEqual(await s.query({ table: 'none' }), []);
        const [first] = await s.query({ where: { field: 'name', op: '==', value: 'ada' } });
        assert.deepEqual(first, people[0]);
        assert.equal((await s.list({ limit: 1000 })).length, 6, 'the table is still there');
      }));

    test('query: order by a field (missing first going up), ties and pages by key', () =>
      withStore(async (s) => {
        const rows: [string, unknown][] = [['a', { n: 3 }], ['b', { n: 1 }], ['c', { n: 2 }], ['d', {}], ['e', { n: 1 }], ['f', { n: 10 }]];
        for (const [key, value] of rows) await s.write({ key, value });
        const keys = async (o: object) => (await s.query(o)).map((r) => r.key);
        assert.deepEqual(await keys({ orderBy: 'n' }), ['d', 'b', 'e', 'c', 'a', 'f']);
        assert.deepEqual(await keys({ orderBy: 'n', order: 'desc' }), ['f', 'a', 'c', 'e', 'b', 'd']);
        assert.deepEqual(await keys({ orderBy: 'n', limit: 2, offset: 1 }), ['b', 'e']);
        assert.deepEqual(await keys({ order: 'desc', limit: 3 }), ['f', 'e', 'd']);
        assert.deepEqual(await keys({ where: { field: 'n', op: '>=', value: 2 }, orderBy: 'n', order: 'desc' }), ['f', 'a', 'c']);
        await s.write({ key: 'w', value: { s: 'b' } }, { table: 'words' });
        await s.write({ key: 'x', value: { s: 'B' } }, { table: 'words' });
        await s.write({ key: 'y', value: { s: 'é' } }, { table: 'words' });
        await s.write({ key: 'z', value: { s: 'ab' } }, { table: 'words' });
        assert.deepEqual(await keys({ table: 'words', orderBy: 's' }), ['x', 'z', 'w', 'y']);
        assert.equal((await s.query({ limit: 1000 })).length, 6);
        await s.write({ key: 'gone', value: { n: 0 } }, { ttl: 0.05 });
        await sleep(150);
        assert.deepEqual(await keys({ where: { field: 'n', op: '==', value: 0 } }), []);
        assert.equal(await s.count(), 6);
      }));

    test('query: namespaces, databases and tables keep records apart', () =>
      withStore(async (s) => {
        await s.write({ key: 'k', value: { v: 1 } }, { namespace: 'contract-a', table: 't' });
        await s.write({ key: 'k', value: { v: 1 } }, { namespace: 'contract-b', table: 't' });
        await s.write({ key: 'k2', value: { v: 1 } }, { namespace: 'contract-a', database: 'd2', table: 't' });
        const where = { field: 'v', op: '==', value: 1 } as const;
        assert.deepEqual((await s.query({ namespace: 'contract-a', table: 't', where })).map((r) => r.key), ['k']);
        assert.equal(await s.count({ namespace: 'contract-b', table: 't', where }), 1);
        assert.equal(await s.count({ namespace: 'contract-c', table: 't', where }), 0);
        assert.equal(await s.count({ namespace: 'contract-a', database: 'd2', table: 't' }), 1);
      }));

    test('query: bad where, field paths and pages are 400s naming the field', () =>
      withStore(async (s) => {
        await s.write({ key: 'k', value: { a: 1 } });
        const q = (o: unknown) => () => s.query(o as never);
        await rejectsWith(q({ where: { field: 'a', op: '~', value: 1 } }), 400, /op/);
        await rejectsWith(q({ where: { field: "a'); DROP TABLE records; --", op: '==', value: 1 } }), 400, /field/);
        await rejectsWith(q({ where: { field: 'a..b', op: '==', value: 1 } }), 400, /field/);
        await rejectsWith(q({ where: { field: '$.a', op: '==', value: 1 } }), 400, /field/);
        await rejectsWith(q({ where: { field: 'a', op: '==', value: null } }), 400, /value/);
        await rejectsWith(q({ where: { field: 'a', op: '==', value: { x: 1 } } }), 400, /value/);
        await rejectsWith(q({ where: { field: 'a', op: '==', value: Number.NaN } }), 400, /value/);
        await rejectsWith(q({ where: { field: 'a', op: '>', value: true } }), 400, /booleans/);
        await rejectsWith(q({ where: { field: 'a', op: '==', value: 'x'.repeat(1025) } }), 400, /value/);
        await rejectsWith(q({ where: { field: Array.from({ length: 9 }, () => 'a').join('.'), op: '==', value: 1 } }), 400, /deeper/);
        await rejectsWith(q({ where: { and: [] } }), 400, /and/);
        let deep: unknown = { field: 'a', op: '==', value: 1 };
        for (let i = 0; i < 10; i++) deep = { and: [deep] };
        await rejectsWith(q({ where: deep }), 400, /deeper/);
        await rejectsWith(q({ where: { or: Array.from({ length: 65 }, () => ({ field: 'a', op: '==', value: 1 })) } }), 400, /at most/);
        await rejectsWith(q({ orderBy: 'a b' }), 400, /orderBy/);
        await rejectsWith(q({ order: 'up' }), 400, /order/);
        await rejectsWith(q({ limit: 1001 }), 400, /limit/);
        await rejectsWith(q({ offset: -1 }), 400, /offset/);
        await rejectsWith(q({ table: '../x' }), 400, /table/);
        await rejectsWith(() => s.count({ where: { field: '', op: '==', value: 1 } }), 400, /field/);
        assert.deepEqual(await dump(s), [{ key: 'k', value: { a: 1 } }]);
      }));

    test('concurrent writes to many keys all land', () =>
      withStore(async (s) => {
        await Promise.all(Array.from({ length: 100 }, (_, i) => s.write({ key: `c${i}`, value: i })));
        const records = await s.read('c', { prefix: true, limit: 1000 });
        assert.equal(records.length, 100);
        assert.deepEqual(new Set(records.map((r) => r.value)), new Set(Array.from({ length: 100 }, (_, i) => i)));
      }));
  });
}

export function blobStoreContract(name: string, make: () => Promise<MadeBlobStore>): void {
  const { describe, test } = nodeTest();

  const withBlobs = async (fn: (blobs: BlobStore, made: MadeBlobStore) => Promise<void>) => {
    const made = await make();
    try {
      await fn(made.impl, made);
    } finally {
      await made.close();
    }
  };
  const bytes = (n: number, seed = 1) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
    return b;
  };
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  async function* chunks(parts: Uint8Array[], fail?: Error) {
    for (const p of parts) {
      await Promise.resolve();
      yield p;
    }
    if (fail) throw fail;
  }

  describe(`blob store contract: ${name}`, () => {
    test('put then get returns the same bytes; list describes the blob', () =>
      withBlobs(async (b) => {
        const data = bytes(200_000);
        const before = Date.now();
        const info = await b.put('files/a.bin', data);
        assert.deepEqual({ ...info, updated: 0 }, { key: 'files/a.bin', size: data.length, sha256: sha(data), updated: 0 });
        assert.ok(info.updated >= before - 1000 && info.updated <= Date.now() + 1000);
        assert.ok((await readBlob(b.get('files/a.bin'))).equals(data));
        assert.deepEqual(await b.list(), [info]);
      }));

    test('data from an async source in uneven chunks, and an empty blob', () =>
      withBlobs(async (b) => {
        const parts = [bytes(1, 1), bytes(100_000, 2), new Uint8Array(0), bytes(65_536, 3), bytes(3, 4)];
        const info = await b.put('parts', chunks(parts));
        const all = Buffer.concat(parts);
        assert.equal(info.size, all.length);
        assert.ok((await readBlob(b.get('parts'))).equals(all));
        const empty = await b.put('empty', new Uint8Array(0));
        assert.equal(empty.size, 0);
        assert.equal((await readBlob(b.get('empty'))).length, 0);
        const sync = await b.put('sync', [bytes(10, 5), bytes(20, 6)]);
        assert.equal(sync.size, 30);
      }));

    test('a put replaces the blob; delete removes it; a missing blob is a 404', () =>
      withBlobs(async (b) => {
        await b.put('k', bytes(1000, 1));
        await b.put('k', bytes(10, 2));
        assert.ok((await readBlob(b.get('k'))).equals(bytes(10, 2)));
        await b.delete('k');
        await b.delete('k');
        await rejectsWith(readBlob(b.get('k')), 404, /not found/);
        assert.deepEqual(await b.list(), []);
      }));

    test('a put that fails half way leaves nothing visible and the old blob intact', () =>
      withBlobs(async (b, made) => {
        await b.put('k', bytes(100, 9));
        await assert.rejects(b.put('k', chunks([bytes(70_000, 1), bytes(70_000, 2)], new Error('source broke'))), /source broke/);
        await assert.rejects(b.put('new', chunks([bytes(10, 1)], new Error('source broke'))), /source broke/);
        assert.ok((await readBlob(b.get('k'))).equals(bytes(100, 9)));
        await rejectsWith(readBlob(b.get('new')), 404);
        if (made.maxSize !== undefined) {
          const max = made.maxSize;
          await rejectsWith(b.put('k', bytes(max + 1)), 413, /limit/);
          await rejectsWith(b.put('huge', chunks([bytes(max), bytes(1)])), 413);
          assert.ok((await readBlob(b.get('k'))).equals(bytes(100, 9)));
          await rejectsWith(readBlob(b.get('huge')), 404);
          const full = await b.put('full', bytes(max));
          assert.equal(full.size, max);
        }
        assert.deepEqual((await b.list()).map((i) => i.key), made.maxSize !== undefined ? ['full', 'k'] : ['k']);
      }));

    test('namespaces keep blobs apart', () =>
      withBlobs(async (b) => {
        await b.put('k', bytes(10, 1), { namespace: 'contract-a' });
        await b.put('k', bytes(10, 2), { namespace: 'contract-b' });
        assert.ok((await readBlob(b.get('k', { namespace: 'contract-a' }))).equals(bytes(10, 1)));
        await b.delete('k', { namespace: 'contract-b' });
        assert.ok((await readBlob(b.get('k', { namespace: 'contract-a' }))).equals(bytes(10, 1)));
        assert.deepEqual(await b.list({ namespace: 'contract-b' }), []);
        assert.equal((await b.list({ namespace: 'contract-a' })).length, 1);
      }));

    test('list filters by prefix, pages by after, limit and offset, in key order', () =>
      withBlobs(async (b) => {
        for (const key of ['img/2', 'img/1', 'doc/1', 'img/10', 'img%']) await b.put(key, bytes(1));
        assert.deepEqual((await b.list()).map((i) => i.key), ['doc/1', 'img%', 'img/1', 'img/10', 'img/2']);
        assert.deepEqual((await b.list({ prefix: 'img/' })).map((i) => i.key), ['img/1', 'img/10', 'img/2']);
        assert.deepEqual((await b.list({ prefix: 'img', after: 'img/1', limit: 1 })).map((i) => i.key), ['img/10']);
        assert.deepEqual((await b.list({ offset: 3 })).map((i) => i.key), ['img/10', 'img/2']);
        await rejectsWith(b.list({ limit: 0 }), 400, /limit/);
        await rejectsWith(b.list({ offset: -1 }), 400, /offset/);
      }));

    test('a reader that stops early leaves the store working; a replaced blob reads whole', () =>
      withBlobs(async (b) => {
        const data = bytes(300_000, 3);
        await b.put('r', data);
        for await (const chunk of b.get('r')) {
          assert.ok(chunk.length > 0);
          break;
        }
        // read while it is replaced: the old content or the new, never a mix
        const reading = readBlob(b.get('r'));
        await b.put('r', bytes(50_000, 4));
        const got = await reading.catch((err: unknown) => err);
        if (Buffer.isBuffer(got)) assert.ok(got.equals(data) || got.equals(bytes(50_000, 4)));
        else assert.equal((got as MicroError).code, 404);
        await b.delete('r');
        assert.deepEqual(await b.list(), []);
      }));

    test('bad keys and data are 400s', () =>
      withBlobs(async (b) => {
        await rejectsWith(b.put('', bytes(1)), 400, /key/);
        await rejectsWith(b.put('a\u0000', bytes(1)), 400, /key/);
        await rejectsWith(b.put('k'.repeat(STORE_LIMITS.keyBytes + 1), bytes(1)), 400, /key/);
        await rejectsWith(b.put('k', 'text' as never), 400, /data/);
        await rejectsWith(b.put('k', chunks(['text' as never])), 400, /data/);
        await rejectsWith(b.put('k', null as never), 400, /data/);
        await rejectsWith(async () => readBlob(b.get('')), 400, /key/);
        await rejectsWith(b.delete(''), 400, /key/);
        await rejectsWith(b.put('k', bytes(1), { namespace: '' }), 400, /namespace/);
        assert.deepEqual(await b.list(), []);
      }));
  });
}
