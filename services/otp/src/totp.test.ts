import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultEngines, type Context } from '@micro/sdk';
import { otpHandlers } from './handlers.js';
import { hotp, totp } from './totp.js';

test('RFC 6238 appendix B test vectors (8 digits, 30 s steps)', () => {
  const keys = {
    sha1: Buffer.from('12345678901234567890'),
    sha256: Buffer.from('12345678901234567890123456789012'),
    sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
  };
  const vectors: [number, string, string, string][] = [
    [59, '94287082', '46119246', '90693936'],
    [1111111109, '07081804', '68084774', '25091201'],
    [1111111111, '14050471', '67062674', '99943326'],
    [1234567890, '89005924', '91819424', '93441116'],
    [2000000000, '69279037', '90698825', '38618901'],
    [20000000000, '65353130', '77737706', '47863826'],
  ];
  for (const [time, sha1, sha256, sha512] of vectors) {
    assert.equal(totp(keys.sha1, time, 30, 8), sha1, `sha1 at ${time}`);
    assert.equal(totp(keys.sha256, time, 30, 8, 'sha256'), sha256, `sha256 at ${time}`);
    assert.equal(totp(keys.sha512, time, 30, 8, 'sha512'), sha512, `sha512 at ${time}`);
  }
});

test('RFC 4226 appendix D HOTP values (6 digits)', () => {
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  expected.forEach((code, counter) => assert.equal(hotp(Buffer.from('12345678901234567890'), counter, 6), code));
});

test('otp: a code expires after its step and the next, is good once, and tries are bounded', async () => {
  let clock = 1_700_000_000_000;
  const h = otpHandlers(defaultEngines(), { now: () => clock });
  const ctx = { tenant: 'unit-otp' } as Context;
  const { code } = await h.Generate({ id: 'u1', size: 6, expiry: 60 }, ctx);
  assert.match(code, /^\d{6}$/);
  // the previous step's code still counts (one made just before a step ends), not two steps back
  clock += 60_000;
  assert.deepEqual(await h.Validate({ id: 'u1', code }, ctx), { success: true });
  assert.deepEqual(await h.Validate({ id: 'u1', code }, ctx), { success: false }, 'a code is good once');
  const second = (await h.Generate({ id: 'u1' }, ctx)).code;
  clock += 120_000;
  assert.deepEqual(await h.Validate({ id: 'u1', code: second }, ctx), { success: false }, 'expired');
  // five wrong codes, then even the right one is refused until a new Generate
  const third = (await h.Generate({ id: 'u1' }, ctx)).code;
  const wrong = third === '000000' ? '000001' : '000000';
  for (let i = 0; i < 5; i++) assert.deepEqual(await h.Validate({ id: 'u1', code: wrong }, ctx), { success: false });
  await assert.rejects(async () => h.Validate({ id: 'u1', code: third }, ctx), (err: { code: number; detail: string }) => err.code === 429 && /Generate a new code/.test(err.detail));
  const fourth = (await h.Generate({ id: 'u1' }, ctx)).code;
  assert.deepEqual(await h.Validate({ id: 'u1', code: fourth }, ctx), { success: true });
});
