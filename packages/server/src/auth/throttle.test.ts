import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '@micro/sdk';
import { LoginThrottle } from './throttle.js';

const refused = (seconds: number) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, 429);
  assert.match(err.detail, new RegExp(`try again in ${seconds} s$`));
  return true;
};

test('LoginThrottle: waits double after the free attempts, up to the longest; a right answer ends the run', async () => {
  let now = 0;
  const throttle = new LoginThrottle({ free: 2, maxWaitMs: 5_000, now: () => now });
  let checks = 0;
  const wrong = () => throttle.attempt('ns', 'bob', 'secret', async () => (checks++, undefined));
  const right = () => throttle.attempt('ns', 'bob', 'secret', async () => (checks++, 'bob'));
  assert.equal(await wrong(), undefined);
  assert.equal(await wrong(), undefined); // the second: a wait of 1 s begins
  await assert.rejects(right(), refused(1));
  assert.equal(checks, 2, 'no check while waiting');
  now += 1_000;
  assert.equal(await wrong(), undefined); // the fourth: 2 s
  now += 1_500;
  await assert.rejects(wrong(), refused(1));
  now += 500;
  assert.equal(await wrong(), undefined); // 4 s
  now += 4_000;
  assert.equal(await wrong(), undefined); // 8 s, capped at 5
  await assert.rejects(wrong(), refused(5));
  now += 5_000;
  assert.equal(await right(), 'bob');
  assert.equal(throttle.size, 0);
  assert.equal(await wrong(), undefined, 'a new run starts free');
});

test('LoginThrottle: accounts are apart (namespace and id), and the oldest runs go past the bound', async () => {
  const throttle = new LoginThrottle({ free: 1, maxAccounts: 3 });
  const fail = (ns: string, id: string) => throttle.attempt(ns, id, 'password', async () => false);
  await fail('a', 'x');
  await assert.rejects(fail('a', 'x'), refused(1));
  assert.equal(await throttle.attempt('b', 'x', 'password', async () => 'ok'), 'ok');
  // an id with the separator cannot reach another account's run
  assert.equal(await throttle.attempt('a\u0000x', '', 'password', async () => 'ok'), 'ok');
  await fail('c', 'y');
  await fail('d', 'z');
  await fail('e', 'w');
  assert.equal(throttle.size, 3);
  assert.equal(await throttle.attempt('a', 'x', 'password', async () => 'ok'), 'ok', 'the oldest run was dropped');
});
