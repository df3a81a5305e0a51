import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectRefused, expectShape, startPlatform } from '@micro/services-kit/testing';
import { CLASSES } from './definition.js';
import { service } from './handlers.js';


const only = (pw: string, chars: string) => [...pw].every((ch) => chars.includes(ch));
const some = (pw: string, chars: string) => [...pw].some((ch) => chars.includes(ch));

test('password through the gateway as M3O\'s client calls it', async (t) => {
  const p = await startPlatform(t, { services: [service] });
  if (!p) return;
  t.after(() => p.close());
  const gen = (body: unknown, key = p.a.key) => p.call(key, 'password', 'Generate', body);

  await t.test('defaults: 8 characters of every class, a new one each call', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const res = await gen({});
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await expectShape('password', 'Generate', res.body);
      const pw = res.body.password as string;
      assert.equal(pw.length, 8);
      for (const chars of Object.values(CLASSES)) assert.ok(some(pw, chars), `${pw} has one of ${chars}`);
      seen.add(pw);
    }
    assert.equal(seen.size, 20);
    assert.equal((await gen({ length: 0 }, p.b.key)).body.password.length, 8);
  });

  await t.test('classes and length as asked', async () => {
    const digits = (await gen({ length: 32, numbers: true })).body.password;
    assert.match(digits, /^\d{32}$/);
    const two = (await p.call(p.a.key, 'password', 'generate', { length: 4, uppercase: true, special: true })).body.password;
    assert.equal(two.length, 4);
    assert.ok(only(two, CLASSES.uppercase + CLASSES.special) && some(two, CLASSES.uppercase) && some(two, CLASSES.special), two);
    // a class set false is left out of "all"
    const noSpecial = (await gen({ length: 128, special: false })).body.password;
    assert.equal(noSpecial.length, 128);
    assert.ok(!some(noSpecial, CLASSES.special) && some(noSpecial, CLASSES.lowercase) && some(noSpecial, CLASSES.numbers) && some(noSpecial, CLASSES.uppercase), noSpecial);
    // true wins over false
    assert.match((await gen({ lowercase: true, numbers: false })).body.password, /^[a-z]{8}$/);
  });

  await t.test('bad input: a 400 saying what is wrong', async () => {
    expectRefused(await gen({ length: 3 }), 400, /length: must be from 4 to 128 \(got 3\)/, 'password');
    expectRefused(await gen({ length: 129 }), 400, /length: must be from 4 to 128/, 'password');
    expectRefused(await gen({ length: -8 }), 400, /length: must be from 4 to 128/, 'password');
    expectRefused(await gen({ length: 1e12 }), 400, /length/, 'password');
    expectRefused(await gen({ length: 8.5 }), 400, /length/, 'password');
    expectRefused(await gen({ length: '8' }), 400, /length/, 'password');
    expectRefused(await gen({ length: { $gt: 1 } }), 400, /length/, 'password');
    expectRefused(await gen({ numbers: 'yes' }), 400, /numbers/, 'password');
    expectRefused(await gen({ lowercase: false, numbers: false, special: false, uppercase: false }), 400, /no character class left/, 'password');
    expectRefused(await gen([1, 2]), 400, /invalid request/, 'password');
    assert.equal((await p.call(undefined, 'password', 'Generate', {})).status, 401);
    // and the service still answers
    assert.equal((await gen({})).status, 200);
  });
});
