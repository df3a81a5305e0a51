/*
 * The behaviour every Cache must have, as node:test cases: memory, remote over the real
 * cache service, Redis. `make` gives a fresh, empty cache with full rights (an admin of
 * `micro` for a remote one). TTLs are real time: short ones, and assertions only after
 * they have surely passed.
 *
 * node:test is loaded when a contract is registered, not when the SDK is imported.
 */

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { MicroError } from '../errors/errors.js';
import { compareKeys } from '../store/util.js';
import { CACHE_LIMITS, type Cache } from './cache.js';

type NodeTest = typeof import('node:test');

function nodeTest(): NodeTest {
  return createRequire(import.meta.url)('node:test') as NodeTest;
}

export interface MadeCache {
  impl: Cache;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MAX = Number.MAX_SAFE_INTEGER;

/** A rejection with this HTTP code and a detail matching `detail`. */
async function rejectsWith(p: Promise<unknown> | (() => Promise<unknown>), code: number, detail: RegExp): Promise<void> {
  await assert.rejects(typeof p === 'function' ? p() : p, (err: unknown) => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.detail}`);
    assert.match(err.detail, detail);
    return true;
  });
}

export function cacheContract(name: string, make: () => Promise<MadeCache>): void {
  const { describe, test } = nodeTest();

  const withCache = async (fn: (cache: Cache) => Promise<void>) => {
    const made = await make();
    try {
      await fn(made.impl);
    } finally {
      await made.close();
    }
  };

  describe(`cache contract: ${name}`, () => {
    test('set then get returns the value, with ttl 0 when it does not expire; a missing key is undefined', () =>
      withCache(async (c) => {
        const values: unknown[] = [{ a: 1, b: [1, 'two', null, { c: true }] }, 'text', 42, -0.25, null, false, [], {}, 'ünïcödé 😀 \u0001', '42'];
        for (const [i, value] of values.entries()) await c.set(`k${i}`, value);
        for (const [i, value] of values.entries()) assert.deepEqual(await c.get(`k${i}`), { key: `k${i}`, value, ttl: 0 });
        assert.equal(await c.get('missing'), undefined);
        // keys are taken literally: glob characters, separators, percent signs, any script
        for (const key of ['a*', 'a?', 'a[bc]', 'a\\*', 'x:y:z', '%3A', 'ключ 😀', ' ']) {
          await c.set(key, key);
          assert.deepEqual(await c.get(key), { key, value: key, ttl: 0 });
        }
        // the largest value there is: 1 MiB as JSON
        const big = 'x'.repeat(CACHE_LIMITS.valueBytes - 2);
        await c.set('big', big);
        assert.equal((await c.get('big'))?.value, big);
      }));

    test('a set replaces the value and the TTL; changing what was set or got changes nothing cached', () =>
      withCache(async (c) => {
        const value = { n: 1, list: [1] };
        await c.set('k', value, { ttl: 3600 });
        value.n = 2;
        value.list.push(2);
        const got = await c.get('k');
        assert.deepEqual(got?.value, { n: 1, list: [1] });
        (got?.value as { n: number }).n = 99;
        assert.deepEqual((await c.get('k'))?.value, { n: 1, list: [1] });
        assert.ok((got?.ttl ?? 0) > 3500 && (got?.ttl ?? 0) <= 3600, `ttl ${got?.ttl}`);
        await c.set('k', 'second');
        assert.deepEqual(await c.get('k'), { key: 'k', value: 'second', ttl: 0 }, 'no ttl: the key no longer expires');
        await c.set('k', 'third', { ttl: 0 });
        assert.deepEqual(await c.get('k'), { key: 'k', value: 'third', ttl: 0 });
      }));

    test('delete removes a key; deleting a missing key is fine', () =>
      withCache(async (c) => {
        await c.set('a', 1);
        await c.set('b', 2);
        await c.delete('a');
        await c.delete('a');
        await c.delete('never');
        assert.equal(await c.get('a'), undefined);
        assert.deepEqual(await c.listKeys(), ['b']);
      }));

    test('TTL: get says the whole seconds left; an expired key is gone for get, listKeys and the counters', () =>
      withCache(async (c) => {
        await c.set('long', 'v', { ttl: 100.5 });
        // whole seconds, rounded up (exactly 101 unless the machine paused; the memory test pins it with a clock)
        const long = (await c.get('long'))?.ttl ?? 0;
        assert.ok(Number.isInteger(long) && long > 90 && long <= 101, `ttl ${long}`);
        await c.set('short', 'v', { ttl: 0.2 });
        await c.set('counter', 5, { ttl: 0.2 });
        await c.set('stays', 'v');
        const left = (await c.get('short'))?.ttl;
        assert.ok(left === undefined || left === 1, `a live key with less than a second left says 1, not 0 (got ${left})`);
        await sleep(1200);
        assert.equal(await c.get('short'), undefined);
        assert.deepEqual(await c.listKeys(), ['long', 'stays']);
        // an expired counter counts from 0 again, and no longer expires
        assert.equal(await c.increment('counter'), 1);
        assert.deepEqual(await c.get('counter'), { key: 'counter', value: 1, ttl: 0 });
      }));

    test('increment and decrement: a missing key counts from 0, default 1, any integer delta; the TTL stays', () =>
      withCache(async (c) => {
        assert.equal(await c.increment('n'), 1);
        assert.equal(await c.increment('n', 41), 42);
        assert.equal(await c.decrement('n'), 41);
        assert.equal(await c.decrement('n', 50), -9);
        assert.equal(await c.increment('n', -1), -10);
        assert.equal(await c.decrement('n', -10), 0);
        assert.equal(await c.increment('n', 0), 0);
        assert.deepEqual(await c.get('n'), { key: 'n', value: 0, ttl: 0 });
        assert.equal(await c.decrement('fresh', 3), -3);
        // a number set by set() counts too, and keeps its TTL
        await c.set('t', 10, { ttl: 3600 });
        assert.equal(await c.increment('t', 5), 15);
        const t = await c.get('t');
        assert.equal(t?.value, 15);
        assert.ok((t?.ttl ?? 0) > 3500, `ttl kept: ${t?.ttl}`);
        // the edges of the safe integers are reachable, not crossed
        await c.set('edge', MAX - 1);
        assert.equal(await c.increment('edge'), MAX);
        await c.set('edge', -MAX + 1);
        assert.equal(await c.decrement('edge'), -MAX);
      }));

    test('increment and decrement are atomic: concurrent calls lose nothing', () =>
      withCache(async (c) => {
        await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 4 === 3 ? c.decrement('hits') : c.increment('hits', 2))));
        // 75 × +2 and 25 × −1
        assert.equal((await c.get('hits'))?.value, 125);
        const seen = await Promise.all(Array.from({ length: 20 }, () => c.increment('ids')));
        assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1), 'each caller got its own value');
      }));

    test('a counter on a key that holds no safe integer, or that would leave them, is a 409 and changes nothing', () =>
      withCache(async (c) => {
        for (const [i, value] of ['x', '5', 1.5, {}, [1], null, true, 2 ** 53, -(2 ** 60), 1e21].entries()) {
          await c.set(`v${i}`, value, { ttl: 3600 });
          await rejectsWith(c.increment(`v${i}`), 409, new RegExp(`v${i}.* not an integer`));
          await rejectsWith(c.decrement(`v${i}`, 2), 409, /not an integer/);
          const after = await c.get(`v${i}`);
          assert.deepEqual(after?.value, value);
          assert.ok((after?.ttl ?? 0) > 3500);
        }
        await c.set('max', MAX);
        await rejectsWith(c.increment('max'), 409, /max.*would leave/);
        await c.set('min', -MAX);
        await rejectsWith(c.decrement('min', 1), 409, /would leave/);
        await rejectsWith(c.increment('min', -MAX), 409, /would leave/);
        assert.equal((await c.get('max'))?.value, MAX);
        assert.equal((await c.get('min'))?.value, -MAX);
        await rejectsWith(c.increment('none', MAX).then(() => c.increment('none', 1)), 409, /would leave/);
        assert.equal((await c.get('none'))?.value, MAX);
      }));

    test('listKeys: keys with the prefix taken literally (no wildcards), sorted by code point, at most limit', () =>
      withCache(async (c) => {
        const keys = ['b', 'a', 'ab', 'a*', 'a?', 'a[b]', 'a\\', 'a\\*', 'a%', 'a:b', 'A', '😀', '\uFFFD', 'zz'];
        for (const key of keys) await c.set(key, key);
        assert.deepEqual(await c.listKeys(), [...keys].sort(compareKeys));
        assert.deepEqual(await c.listKeys({ prefix: '' }), [...keys].sort(compareKeys));
        assert.deepEqual(await c.listKeys({ prefix: 'a*' }), ['a*']);
        assert.deepEqual(await c.listKeys({ prefix: 'a?' }), ['a?']);
        assert.deepEqual(await c.listKeys({ prefix: 'a[' }), ['a[b]']);
        assert.deepEqual(await c.listKeys({ prefix: 'a[b' }), ['a[b]']);
        assert.deepEqual(await c.listKeys({ prefix: 'a\\' }), ['a\\', 'a\\*']);
        assert.deepEqual(await c.listKeys({ prefix: 'a\\*' }), ['a\\*']);
        assert.deepEqual(await c.listKeys({ prefix: 'a:' }), ['a:b']);
        assert.deepEqual(await c.listKeys({ prefix: 'a' }), ['a', 'a%', 'a*', 'a:b', 'a?', 'a[b]', 'a\\', 'a\\*', 'ab']);
        assert.deepEqual(await c.listKeys({ prefix: '😀' }), ['😀']);
        assert.deepEqual(await c.listKeys({ prefix: 'nothing' }), []);
        const two = await c.listKeys({ prefix: 'a', limit: 2 });
        assert.equal(two.length, 2);
        for (const k of two) assert.ok(k.startsWith('a'), k);
        assert.deepEqual(two, [...two].sort(compareKeys));
      }));

    test('namespaces keep keys apart, whatever characters namespaces and keys hold', () =>
      withCache(async (c) => {
        await c.set('k', 'a', { namespace: 'contract-a' });
        await c.set('k', 'b', { namespace: 'contract-b' });
        // "ns a:b, key c" and "ns a, key b:c" must not be the same entry in any engine
        await c.set('c', 'colon-ns', { namespace: 'contract-a:b' });
        await c.set('b:c', 'colon-key', { namespace: 'contract-a' });
        await c.set('x', 'star-ns', { namespace: 'contract-*' });
        assert.equal((await c.get('k', { namespace: 'contract-a' }))?.value, 'a');
        assert.equal((await c.get('k', { namespace: 'contract-b' }))?.value, 'b');
        assert.equal((await c.get('c', { namespace: 'contract-a:b' }))?.value, 'colon-ns');
        assert.equal((await c.get('b:c', { namespace: 'contract-a' }))?.value, 'colon-key');
        assert.equal(await c.get('k'), undefined, 'the default namespace holds none of them');
        assert.deepEqual(await c.listKeys({ namespace: 'contract-a' }), ['b:c', 'k']);
        assert.deepEqual(await c.listKeys({ namespace: 'contract-a:b' }), ['c']);
        assert.deepEqual(await c.listKeys({ namespace: 'contract-*' }), ['x'], 'a glob in a namespace matches only itself');
        assert.deepEqual(await c.listKeys(), []);
        assert.equal(await c.increment('k', 1, { namespace: 'contract-c' }), 1);
        await c.delete('k', { namespace: 'contract-a' });
        assert.equal((await c.get('k', { namespace: 'contract-b' }))?.value, 'b');
      }));

    test('wrong, missing, oversized and hostile input is a 400 naming the field, and changes nothing', () =>
      withCache(async (c) => {
        await c.set('keep', 1);
        const any = c as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
        const cases: [string, () => Promise<unknown>, RegExp][] = [
          ['empty key', () => c.set('', 1), /key must not be empty/],
          ['key not a string', () => any.set!(7, 1), /key must be a string/],
          ['key too long', () => c.set('k'.repeat(CACHE_LIMITS.keyBytes + 1), 1), /key must be at most 1024 bytes/],
          ['key too long in bytes', () => c.set('é'.repeat(CACHE_LIMITS.keyBytes / 2 + 1), 1), /key must be at most 1024 bytes/],
          ['NUL in key', () => c.set('a\u0000b', 1), /key must not contain control characters/],
          ['newline in key', () => c.get('a\nb'), /key must not contain control characters/],
          ['escape in key', () => c.delete('\u001b[2J'), /key must not contain control characters/],
          ['DEL in key', () => c.increment('a\u007f'), /key must not contain control characters/],
          ['lone surrogate', () => c.set('a\uD800', 1), /key must be well-formed Unicode/],
          ['no value', () => c.set('k', undefined), /value is required/],
          ['NaN value', () => c.set('k', { n: NaN }), /value\.n must be a finite number/],
          ['function value', () => c.set('k', () => 1), /value is a function/],
          ['value too large', () => c.set('k', 'x'.repeat(CACHE_LIMITS.valueBytes - 1)), /value must be at most 1048576 bytes/],
          ['negative ttl', () => c.set('k', 1, { ttl: -1 }), /ttl must be/],
          ['ttl too long', () => c.set('k', 1, { ttl: CACHE_LIMITS.maxTtlSeconds + 1 }), /ttl must be/],
          ['ttl NaN', () => c.set('k', 1, { ttl: NaN }), /ttl must be/],
          ['ttl a string', () => c.set('k', 1, { ttl: '10' as unknown as number }), /ttl must be/],
          ['fractional delta', () => c.increment('k', 1.5), /value must be an integer/],
          ['unsafe delta', () => c.increment('k', 2 ** 60), /value must be an integer/],
          ['NaN delta', () => c.decrement('k', NaN), /value must be an integer/],
          ['limit 0', () => c.listKeys({ limit: 0 }), /limit must be an integer from 1 to 1000/],
          ['limit too large', () => c.listKeys({ limit: 1001 }), /limit must be/],
          ['limit fractional', () => c.listKeys({ limit: 1.5 }), /limit must be/],
          ['prefix with control characters', () => c.listKeys({ prefix: 'a\r\n' }), /prefix must not contain control characters/],
          ['prefix too long', () => c.listKeys({ prefix: 'p'.repeat(2000) }), /prefix must be at most/],
          ['namespace too long', () => c.get('k', { namespace: 'n'.repeat(300) }), /namespace must be at most/],
          ['namespace empty', () => c.get('k', { namespace: '' }), /namespace must be a non-empty string/],
          ['namespace with control characters', () => c.listKeys({ namespace: 'a\u0000' }), /namespace must not contain control characters/],
        ];
        for (const [what, call, detail] of cases) {
          await assert.rejects(call(), (err: unknown) => {
            assert.ok(err instanceof MicroError, `${what}: expected a MicroError, got ${String(err)}`);
            assert.equal(err.code, 400, `${what}: ${err.code} ${err.detail}`);
            assert.match(err.detail, detail, what);
            return true;
          });
        }
        assert.deepEqual(await c.listKeys(), ['keep']);
        assert.deepEqual(await c.get('keep'), { key: 'keep', value: 1, ttl: 0 });
      }));
  });
}
