import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MicroError } from '../errors/errors.js';
import { CONFIG_LIMITS } from './config.js';
import { checkValue, parsePath } from './path.js';

const FORBIDDEN = ['__proto__', 'constructor', 'prototype', '$secret'];

test('property: any string is a path or a 400 naming it, never another error', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.stringMatching(/^[a-z.]{0,20}$/)), (path) => {
      try {
        const segments = parsePath(path);
        assert.equal(segments.join('.'), path);
        for (const s of segments) {
          assert.ok(s.length > 0 && !s.includes('.') && !FORBIDDEN.includes(s) && !/\p{Cc}/u.test(s));
        }
        assert.ok(segments.length <= CONFIG_LIMITS.pathDepth && path.length <= CONFIG_LIMITS.pathChars);
      } catch (err) {
        assert.ok(err instanceof MicroError && err.code === 400, String(err));
        assert.match(err.detail, /^path /);
      }
    }),
    { numRuns: 2000 },
  );
});

test('anything that is not a string is not a path', () => {
  for (const p of [5, null, {}, ['a'], true]) assert.throws(() => parsePath(p), (err: MicroError) => err.code === 400 && /path must be a string/.test(err.detail));
  assert.deepEqual(parsePath(undefined), []);
  assert.deepEqual(parsePath(''), []);
});

/** JSON values whose keys are valid path segments: what config stores. */
const keyArb = fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !k.includes('.') && !FORBIDDEN.includes(k) && !/\p{Cc}/u.test(k));
const jsonArb = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
    fc.string({ maxLength: 10 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(keyArb, tie('value'), { maxKeys: 4, noNullPrototype: true }),
  ),
})).value;

test('property: valid JSON values are copied exactly, never shared', () => {
  fc.assert(
    fc.property(jsonArb, (value) => {
      const { value: copy, json } = checkValue(value);
      assert.deepStrictEqual(copy, value);
      assert.equal(json, JSON.stringify(value));
      if (typeof value === 'object' && value !== null) assert.notEqual(copy, value);
    }),
    { numRuns: 500 },
  );
});

test('property: anything else is refused with a 400 or a 413, never another error', () => {
  fc.assert(
    fc.property(fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true, withSparseArray: true, withBoxedValues: true }), (value) => {
      try {
        checkValue(value);
      } catch (err) {
        assert.ok(err instanceof MicroError && (err.code === 400 || err.code === 413), String(err));
      }
    }),
    { numRuns: 1000 },
  );
});

test('a value nested a million levels deep is refused without exhausting the stack', () => {
  let deep: unknown = 1;
  for (let i = 0; i < 1_000_000; i++) deep = [deep];
  assert.throws(() => checkValue(deep), (err: MicroError) => err.code === 400 && /nested too deep: at most 64 levels/.test(err.detail));
  let wide: unknown = 1;
  for (let i = 0; i < 64; i++) wide = { k: wide };
  assert.doesNotThrow(() => checkValue(wide), '64 levels are fine');
  assert.throws(() => checkValue({ k: wide }), /nested too deep/);
});

test('values are bounded at 256 KiB of JSON (counted in UTF-8 bytes)', () => {
  assert.doesNotThrow(() => checkValue('x'.repeat(CONFIG_LIMITS.valueBytes - 2)));
  assert.throws(() => checkValue('x'.repeat(CONFIG_LIMITS.valueBytes - 1)), (err: MicroError) => err.code === 413);
  assert.throws(() => checkValue('é'.repeat(CONFIG_LIMITS.valueBytes / 2)), (err: MicroError) => err.code === 413 && /bytes as JSON/.test(err.detail));
});
