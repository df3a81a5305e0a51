import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requestId } from './request-id.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('request ids are UUIDs of version 7 whose first 48 bits are the time in ms', () => {
  const at = Date.UTC(2027, 0, 15, 12, 30, 45, 678);
  const id = requestId(at);
  assert.match(id, V7);
  assert.equal(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), at);
  assert.match(requestId(), V7);
  // the epoch and the last ms 48 bits hold (year 10889) still give a well-formed id
  assert.equal(requestId(0).slice(0, 13), '00000000-0000');
  assert.equal(requestId(2 ** 48 - 1).slice(0, 13), 'ffffffff-ffff');
});

test('ids of a later ms sort after those of an earlier one, as strings (their rows are appended)', () => {
  const t = Date.UTC(2027, 5, 30, 23, 59, 59, 999);
  for (let i = 0; i < 1_000; i++) {
    const earlier = requestId(t + i);
    const later = requestId(t + i + 1);
    assert.ok(earlier < later, `${earlier} < ${later}`);
  }
});

test('ids of the same ms differ in their 74 random bits: none repeats in 100,000', () => {
  const at = Date.now();
  const seen = new Set<string>();
  for (let i = 0; i < 100_000; i++) seen.add(requestId(at));
  assert.equal(seen.size, 100_000);
  // the random part is not a counter: two ids of one ms share no more than chance would
  const [a, b] = [...seen];
  assert.notEqual(a?.slice(15), b?.slice(15));
});
