import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describePrice, parseFreeQuota, parsePrice, priceRow } from './pricing.js';

test('--price: whole units or $dollars; signs, exponents, fractions of a unit, words and huge amounts are refused naming the flag', () => {
  const good: [string, number][] = [['100', 100], ['0', 0], ['$0.0001', 100], ['$35', 35_000_000], [' $0.000001 ', 1], ['$1.5', 1_500_000], ['1000000000000000', 1e15], ['$999999999.999999', 999_999_999_999_999]];
  for (const [text, units] of good) assert.equal(parsePrice(text), units, text);
  const bad: [string, RegExp][] = [
    ['$-1', /--price must be whole units .*not "\$-1": dollars take at most 6 decimals and no sign/],
    ['-1', /--price must be .*not "-1"/],
    ['1e3', /not "1e3"/],
    ['$1e3', /not "\$1e3"/],
    ['abc', /not "abc"/],
    ['', /not ""/],
    ['0.5', /not "0\.5" \(for dollars write '\$0\.5'\)/],
    ['$0.0000001', /at most 6 decimals/],
    ['1152921504606846976', /not "1152921504606846976"/],
    ['1000000000000001', /at most 10\^15 units/],
    ['$1,000', /not "\$1,000"/],
    ['0x10', /not "0x10"/],
    ['１００', /not/],
  ];
  for (const [text, message] of bad) assert.throws(() => parsePrice(text), message, text);
});

test('--free: whole calls a month, 0 to 10^12', () => {
  assert.equal(parseFreeQuota('0'), 0);
  assert.equal(parseFreeQuota('1000'), 1000);
  assert.equal(parseFreeQuota('1000000000000'), 1e12);
  for (const text of ['-1', '1.5', '1e3', 'abc', '', '1000000000001', String(2 ** 60), '$5']) {
    assert.throws(() => parseFreeQuota(text), /--free must be a whole number of calls a month from 0 to 10\^12/, text);
  }
});

test('prices for people: dollars, free quota, where they come from', () => {
  assert.equal(describePrice({ price: 100, freeQuota: 1000 }), '$0.000100 a call beyond 1,000 free calls a month');
  assert.equal(describePrice({ price: 35_000_000, freeQuota: 0 }), '$35.00 a call');
  assert.equal(describePrice({ price: 0, freeQuota: 0 }), 'free of charge (counted)');
  assert.equal(describePrice({ price: 0, freeQuota: 5 }), 'free of charge (counted), 5 calls a month in its quota');
  const base = { namespace: 'acme', service: 'books', endpoint: 'Read', price: 250, freeQuota: 10 };
  assert.deepEqual(priceRow({ ...base, source: 'admin', definition: { price: 100, freeQuota: 1000 }, versions: ['1.0.0', '2.0.0'] }), [
    'acme',
    'books',
    'Read',
    '$0.000250',
    '10',
    'admin (definition $0.000100, 1,000 free)',
    '1.0.0, 2.0.0',
  ]);
  assert.deepEqual(priceRow({ ...base, source: 'admin', versions: [] }).slice(5), ['admin', 'not running']);
  assert.deepEqual(priceRow({ ...base, source: 'definition', definition: { price: 250, freeQuota: 10 }, versions: ['1'] }).slice(5), ['definition', '1']);
});
