import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '@micro/sdk';
import { LoginThrottle, sourceOf } from './throttle.js';

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
  const wrong = () => throttle.attempt('ns', 'bob', 'tcp:10.0.0.1', 'secret', async () => (checks++, undefined));
  const right = () => throttle.attempt('ns', 'bob', 'tcp:10.0.0.1', 'secret', async () => (checks++, 'bob'));
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
  const throttle = new LoginThrottle({ free: 1, maxEntries: 3 });
  const fail = (ns: string, id: string) => throttle.attempt(ns, id, 'tcp:10.0.0.1', 'password', async () => false);
  await fail('a', 'x');
  await assert.rejects(fail('a', 'x'), refused(1));
  assert.equal(await throttle.attempt('b', 'x', 'tcp:10.0.0.1', 'password', async () => 'ok'), 'ok');
  // an id with the separator cannot reach another account's run
  assert.equal(await throttle.attempt('a\u0000x', '', 'tcp:10.0.0.1', 'password', async () => 'ok'), 'ok');
  await fail('c', 'y');
  await fail('d', 'z');
  await fail('e', 'w');
  assert.equal(throttle.size, 3);
  assert.equal(await throttle.attempt('a', 'x', 'tcp:10.0.0.1', 'password', async () => 'ok'), 'ok', 'the oldest run was dropped');
});

test('LoginThrottle: a guesser makes only its own source wait; the owner from another source gets in', async () => {
  const throttle = new LoginThrottle({ free: 5 });
  let checks = 0;
  const from = (source: string, answer: string | undefined) => throttle.attempt('ns', 'alice', source, 'password', async () => (checks++, answer));
  for (let i = 0; i < 5; i++) assert.equal(await from('tcp:203.0.113.9', undefined), undefined);
  for (let i = 0; i < 15; i++) await assert.rejects(from('tcp:203.0.113.9', 'alice'), (e: unknown) => (e as MicroError).code === 429);
  assert.equal(checks, 5, 'no secret is checked while the source waits');
  assert.equal(await from('tcp:198.51.100.7', 'alice'), 'alice');
});

test('LoginThrottle: a source spraying many accounts waits, for every account, and a right secret does not wash its run', async () => {
  let now = 0;
  const throttle = new LoginThrottle({ free: 5, sourceFree: 20, maxWaitMs: 60_000, now: () => now });
  const spray = (id: string, answer?: string) => throttle.attempt('ns', id, 'tcp:203.0.113.9', 'password', async () => answer);
  for (let i = 0; i < 20; i++) assert.equal(await spray(`user${i}`), undefined);
  await assert.rejects(spray('user99', 'user99'), /from your address/);
  now += 1_000;
  assert.equal(await spray('mine', 'mine'), 'mine', 'after the wait');
  await assert.rejects(
    (async () => {
      await spray('user21');
      await spray('user22');
    })(),
    /from your address: try again in [12] s/,
    'the right secret did not reset the count',
  );
  assert.equal(await throttle.attempt('ns', 'user0', 'tcp:198.51.100.7', 'password', async () => 'user0'), 'user0', 'other sources are not touched');
  now += 61_000 + 60_000;
  assert.equal(await spray('user1', 'user1'), 'user1', 'a quiet source is forgotten');
});

test('LoginThrottle: a generated secret (the fast check) passes while its account and source wait', async () => {
  const throttle = new LoginThrottle({ free: 1, sourceFree: 1 });
  await throttle.attempt('micro', 'admin', 'unix', 'secret', async () => undefined);
  await assert.rejects(throttle.attempt('micro', 'admin', 'unix', 'secret', async () => 'admin'), /429|try again/);
  assert.equal(await throttle.attempt('micro', 'admin', 'unix', 'secret', async () => undefined, () => 'admin'), 'admin');
  await assert.rejects(
    throttle.attempt('micro', 'admin', 'unix', 'secret', async () => 'admin', () => undefined),
    /try again/,
    'a wrong one still waits',
  );
});

test('sourceOf: IPv4-mapped as IPv4, IPv6 per /64, unix and none as they are', () => {
  assert.equal(sourceOf('tcp:::ffff:10.1.2.3'), 'tcp:10.1.2.3');
  assert.equal(sourceOf('tcp:10.1.2.3'), 'tcp:10.1.2.3');
  assert.equal(sourceOf('tcp:2001:db8:1:2:aaaa::1'), 'tcp:2001:db8:1:2::/64');
  assert.equal(sourceOf('tcp:2001:db8:1:2:bbbb:cccc:dddd:eeee'), 'tcp:2001:db8:1:2::/64');
  assert.equal(sourceOf('tcp:2001:db8::1'), 'tcp:2001:db8:0:0::/64');
  assert.equal(sourceOf('tcp:::1'), 'tcp:0:0:0:0::/64');
  assert.equal(sourceOf('unix'), 'unix');
  assert.equal(sourceOf(undefined), 'local');
});
