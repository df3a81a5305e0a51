import assert from 'node:assert/strict';
import { test } from 'node:test';
import { balanceConfigFromEnv, DEFAULT_BALANCE_CONFIG } from '../balance/config.js';
import { stripeFromEnv } from './env.js';

const KEY = 'sk_test_51abcdefGHIJKLMNOP';
const SECRET = 'whsec_abcdefghijklmnop';

test('stripe from the environment: both or neither; keys checked and never echoed', () => {
  assert.equal(stripeFromEnv({}), undefined);
  assert.equal(stripeFromEnv({ MICRO_STRIPE_SECRET_KEY: '  ' }), undefined);
  assert.deepEqual(stripeFromEnv({ MICRO_STRIPE_SECRET_KEY: KEY, MICRO_STRIPE_WEBHOOK_SECRET: SECRET }), { secretKey: KEY, webhookSecret: SECRET });
  assert.deepEqual(stripeFromEnv({ MICRO_STRIPE_SECRET_KEY: 'rk_live_abcdefgh12', MICRO_STRIPE_WEBHOOK_SECRET: SECRET, MICRO_STRIPE_API_URL: 'http://127.0.0.1:12111', MICRO_STRIPE_WEBHOOK_TOLERANCE: '60' }), { secretKey: 'rk_live_abcdefgh12', webhookSecret: SECRET, apiUrl: 'http://127.0.0.1:12111', tolerance: 60 });
  const refused: [NodeJS.ProcessEnv, RegExp][] = [
    [{ MICRO_STRIPE_WEBHOOK_SECRET: SECRET }, /set both .* or neither/],
    [{ MICRO_STRIPE_SECRET_KEY: KEY }, /MICRO_STRIPE_WEBHOOK_SECRET is required/],
    [{ MICRO_STRIPE_SECRET_KEY: 'pk_test_publishable1234', MICRO_STRIPE_WEBHOOK_SECRET: SECRET }, /must be a Stripe secret key/],
    [{ MICRO_STRIPE_SECRET_KEY: 'sk_test_has space in it', MICRO_STRIPE_WEBHOOK_SECRET: SECRET }, /must be a Stripe secret key/],
    [{ MICRO_STRIPE_SECRET_KEY: KEY, MICRO_STRIPE_WEBHOOK_SECRET: 'secret' }, /whsec_/],
    [{ MICRO_STRIPE_SECRET_KEY: KEY, MICRO_STRIPE_WEBHOOK_SECRET: SECRET, MICRO_STRIPE_API_URL: 'ftp://x' }, /MICRO_STRIPE_API_URL/],
    [{ MICRO_STRIPE_SECRET_KEY: KEY, MICRO_STRIPE_WEBHOOK_SECRET: SECRET, MICRO_STRIPE_API_URL: 'http://x/v1' }, /no path/],
    [{ MICRO_STRIPE_SECRET_KEY: KEY, MICRO_STRIPE_WEBHOOK_SECRET: SECRET, MICRO_STRIPE_WEBHOOK_TOLERANCE: '0' }, /1 to 3600/],
    [{ MICRO_STRIPE_SECRET_KEY: KEY, MICRO_STRIPE_WEBHOOK_SECRET: SECRET, MICRO_STRIPE_WEBHOOK_TOLERANCE: '1.5' }, /1 to 3600/],
  ];
  for (const [env, message] of refused) {
    assert.throws(() => stripeFromEnv(env), (err: Error) => {
      assert.match(err.message, message);
      for (const v of Object.values(env)) if (v && v.length > 8 && /_/.test(v)) assert.ok(!err.message.includes(v), `echoed ${v}`);
      return true;
    });
  }
});

test('billing bounds from the environment: whole units, top-ups in whole cents within what a card payment may be', () => {
  assert.deepEqual(balanceConfigFromEnv({}), DEFAULT_BALANCE_CONFIG);
  assert.deepEqual(balanceConfigFromEnv({ MICRO_BILLING_LOW_BALANCE: '0', MICRO_BILLING_TOPUP_MIN: '500000', MICRO_BILLING_TOPUP_MAX: '1000000000' }), { lowBalance: 0, topUpMin: 500_000, topUpMax: 1_000_000_000 });
  for (const [env, message] of [
    [{ MICRO_BILLING_LOW_BALANCE: '-1' }, /whole number of units/],
    [{ MICRO_BILLING_LOW_BALANCE: '1.5' }, /whole number of units/],
    [{ MICRO_BILLING_LOW_BALANCE: '1e6' }, /whole number of units/],
    [{ MICRO_BILLING_LOW_BALANCE: '99999999999999999' }, /whole number of units/],
    [{ MICRO_BILLING_TOPUP_MIN: '400000' }, /MICRO_BILLING_TOPUP_MIN must be whole cents from \$0\.50/],
    [{ MICRO_BILLING_TOPUP_MIN: '5000001' }, /whole cents/],
    [{ MICRO_BILLING_TOPUP_MAX: '1000000000000' }, /MICRO_BILLING_TOPUP_MAX must be whole cents/],
    [{ MICRO_BILLING_TOPUP_MIN: '20000000', MICRO_BILLING_TOPUP_MAX: '10000000' }, /is above MICRO_BILLING_TOPUP_MAX/],
  ] as [NodeJS.ProcessEnv, RegExp][]) {
    assert.throws(() => balanceConfigFromEnv(env), message);
  }
});
