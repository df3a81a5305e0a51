import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyUsage } from './key-usage.js';

/* The last uses of API keys: remembered per use, written at most once an interval, kept when a write fails. */

test('many uses of many keys between two ticks are one write, with the last use of each', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const writes: Array<Array<[string, number]>> = [];
  const usage = new KeyUsage((uses) => void writes.push(uses), 60_000);
  for (let i = 0; i < 1_000; i++) usage.touch(`k${i % 3}`, i);
  assert.equal(writes.length, 0, 'no write per use');
  assert.equal(usage.seen('k0'), 999);
  assert.equal(usage.seen('nope'), undefined);
  t.mock.timers.tick(59_999);
  assert.equal(writes.length, 0);
  t.mock.timers.tick(1);
  assert.deepEqual(writes, [[['k0', 999], ['k1', 997], ['k2', 998]]]);
  // written: nothing pending, and no timer until the next use
  assert.equal(usage.seen('k0'), undefined);
  t.mock.timers.tick(120_000);
  assert.equal(writes.length, 1);
  usage.touch('k1', 2_000);
  t.mock.timers.tick(60_000);
  assert.deepEqual(writes[1], [['k1', 2_000]]);
});

test('a write that fails is kept for the next tick, under any newer use; close writes what is left and stops', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let fail = true;
  const writes: Array<Array<[string, number]>> = [];
  const usage = new KeyUsage(async (uses) => {
    if (fail) throw new Error('postgres is away');
    writes.push(uses);
  }, 1_000);
  usage.touch('a', 10);
  usage.touch('b', 11);
  await usage.flush();
  assert.equal(usage.seen('a'), 10, 'still known after the failed write');
  usage.touch('a', 20);
  fail = false;
  t.mock.timers.tick(1_000);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(writes, [[['a', 20], ['b', 11]]]);
  // a write in flight: its uses still show
  usage.touch('c', 30);
  const flushing = usage.flush();
  assert.equal(usage.seen('c'), 30);
  await flushing;
  assert.equal(usage.seen('c'), undefined);
  usage.touch('d', 40);
  await usage.close();
  assert.deepEqual(writes.at(-1), [['d', 40]]);
  usage.touch('e', 50);
  assert.equal(usage.seen('e'), undefined, 'closed: nothing more remembered');
});

test('a synchronous storage writes at once on flush; a throwing write keeps the batch', () => {
  let broken = true;
  const writes: Array<Array<[string, number]>> = [];
  const usage = new KeyUsage((uses) => {
    if (broken) throw new Error('database closed');
    writes.push(uses);
  });
  usage.touch('a', 1);
  assert.equal(usage.flush(), undefined);
  assert.equal(usage.seen('a'), 1);
  broken = false;
  usage.flush();
  assert.deepEqual(writes, [[['a', 1]]]);
  void usage.close();
});
