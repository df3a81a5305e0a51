import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultEngines, type Context } from '@micro/sdk';
import { tenantStore } from '@micro/services-kit';
import { userHandlers } from './handlers.js';
import { digest } from './password.js';

// in-memory engines (no MICRO_SERVER) and a clock of the test's own
const engines = defaultEngines();
const ctx = { tenant: 'unit-user' } as Context;
const DAY = 86_400_000;

const rejects = (p: unknown, code: number, detail: RegExp) =>
  assert.rejects(async () => p, (err: { code: number; detail: string }) => err.code === code && detail.test(err.detail));

test('user: sessions end after 7 days, reset codes after their expiration, magic links after 15 minutes', async () => {
  let clock = 1_700_000_000_000;
  const h = userHandlers(engines, { now: () => clock });
  const { account } = await h.Create({ username: 'eve', email: 'eve@example.com', password: 'long enough' }, ctx);
  const { session } = await h.Login({ username: 'eve', password: 'long enough' }, ctx);
  clock += 7 * DAY - 1000;
  assert.equal((await h.ReadSession({ session_id: session.id }, ctx)).account.id, account.id);
  clock += 2000;
  await rejects(h.ReadSession({ session_id: session.id }, ctx), 401, /expired/);

  // a reset pending with a known code (what SendPasswordResetEmail keeps: the code's digest)
  const db = tenantStore(engines.store, ctx, 'user');
  await db.write({ key: 'eve@example.com', value: { userId: account.id, code: digest(`${account.id}:12345678`), expires: clock + 60_000, tries: 5 } }, { table: 'resets' });
  clock += 61_000;
  await rejects(h.ResetPassword({ email: 'eve@example.com', code: '12345678', new_password: 'another one' }, ctx), 400, /code: .*expired/);

  // without the platform's mail service: a 503 saying what to run and set
  await rejects(h.SendMagicLink({ email: 'eve@example.com', address: 'https://app.example.com' }, ctx), 503, /micro server.*MICRO_SMTP_URL/);
  // a magic-link token written as SendMagicLink does, then 15 minutes and a second pass
  await db.write({ key: digest('magic-token'), value: { kind: 'magic', userId: account.id, email: 'eve@example.com', expires: clock + 15 * 60_000 } }, { table: 'tokens' });
  clock += 15 * 60_000 + 1;
  assert.deepEqual(await h.VerifyToken({ token: 'magic-token' }, ctx), { is_valid: false, message: 'the token is wrong, used or expired' });
});
