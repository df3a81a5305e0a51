import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TERMINATOR, encodeIndexable, type Indexable } from './encode.js';
import { compareKeys, prefixUpperBound, reverseKey } from './util.js';

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);
const kindRank = (v: Indexable) => (v === null ? 0 : v === false ? 1 : v === true ? 2 : typeof v === 'number' ? 3 : 4);
function natural(a: Indexable, b: Indexable): number {
  const k = kindRank(a) - kindRank(b);
  if (k !== 0) return k;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return compareKeys(a, b);
  return 0;
}

const indexable: fc.Arbitrary<Indexable> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -5, max: 5 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ unit: fc.constantFrom('\u0000', '\u0001', '\u0002', '\u0003', 'a'), maxLength: 6 }),
);
const id = fc.string({ unit: fc.constantFrom('a', 'b', 'z', '~', 'é', '😀'), minLength: 1, maxLength: 4 });

test('encoded values sort as the values do (kinds, numbers, strings by code point)', () => {
  fc.assert(
    fc.property(indexable, indexable, (a, b) => {
      assert.equal(sign(compareKeys(encodeIndexable(a), encodeIndexable(b))), sign(natural(a, b)));
    }),
    { numRuns: 2000 },
  );
  assert.equal(encodeIndexable(-0), encodeIndexable(0));
  assert.ok(compareKeys(encodeIndexable(-Number.MAX_VALUE), encodeIndexable(-1)) < 0);
  assert.ok(compareKeys(encodeIndexable(Number.MIN_VALUE), encodeIndexable(0)) > 0);
});

test('index keys sort by value first, whatever the ids, and encoded values never hold the terminator', () => {
  fc.assert(
    fc.property(indexable, indexable, id, id, (a, b, i, j) => {
      const ea = encodeIndexable(a);
      assert.ok(!ea.includes(TERMINATOR) && !ea.includes('\u0000'));
      const c = natural(a, b);
      if (c !== 0) assert.equal(sign(compareKeys(ea + TERMINATOR + i, encodeIndexable(b) + TERMINATOR + j)), sign(c));
    }),
    { numRuns: 2000 },
  );
});

test('compareKeys is the UTF-8 byte order', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
      assert.equal(sign(compareKeys(a, b)), sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))));
    }),
    { numRuns: 2000 },
  );
});

test('the prefix upper bound is above every key with the prefix and below every greater key without it', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }), fc.string({ unit: 'binary', maxLength: 4 }), fc.string({ unit: 'binary', maxLength: 6 }), (prefix, rest, other) => {
      const bound = prefixUpperBound(prefix);
      if (bound === undefined) return;
      assert.ok(compareKeys(prefix + rest, bound) < 0);
      if (!other.startsWith(prefix) && compareKeys(other, prefix) > 0) assert.ok(compareKeys(other, bound) >= 0);
    }),
    { numRuns: 2000 },
  );
  assert.equal(prefixUpperBound(''), undefined);
  assert.equal(prefixUpperBound('\u{10FFFF}'), undefined);
  assert.equal(prefixUpperBound('a\u{10FFFF}'), 'b');
  assert.equal(prefixUpperBound('\uD7FF'), '\uE000');
  assert.equal(reverseKey('ab😀'), '😀ba');
});
