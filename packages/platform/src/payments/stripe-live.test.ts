import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { createLogger } from '@micro/sdk';
import { testBillingEngines } from '../billing/testing.js';
import { Payments } from './payments.js';
import { openPaymentsStorage } from './storage.js';
import { StripeProvider } from './stripe.js';

/**
 * The same provider against Stripe's real test mode, when STRIPE_SECRET_KEY (an sk_test_
 * key) is set: a customer, a Checkout session on checkout.stripe.com, read back and expired
 * through the API, and a webhook signed by the library's own test header. Skipped, saying
 * why, without the key (or with a live key: this lane never touches real money).
 */
test('stripe test mode: customer, Checkout session, expiry, a signed webhook', { timeout: 60_000 }, async (t) => {
  const key = process.env.STRIPE_SECRET_KEY?.trim();
  if (!key) {
    t.skip('STRIPE_SECRET_KEY is not set: the lane against Stripe test mode does not run (the fake in stripe.test.ts covers the same calls)');
    return;
  }
  if (!key.startsWith('sk_test_') && !key.startsWith('rk_test_')) {
    t.skip('STRIPE_SECRET_KEY is not a test-mode key (sk_test_…): this lane never runs against live mode');
    return;
  }
  const engines = await testBillingEngines(t, 'sqlite');
  if (!engines) return;
  const store = await openPaymentsStorage(engines);
  const webhookSecret = `whsec_${randomBytes(16).toString('hex')}`;
  const provider = new StripeProvider({ secretKey: key, webhookSecret, logger: createLogger({ level: 'silent' }) }, store);
  const payments = new Payments({ ledger: engines.ledger, store, clock: Date.now, observe: async () => undefined }, provider);
  const payer = `cus_live_test_${randomBytes(6).toString('hex')}`;
  const s = await payments.checkout({ payer, purpose: 'topup', amount: 5_000_000, email: 'billing-test@example.com', successUrl: 'https://example.com/paid', cancelUrl: 'https://example.com/' });
  assert.match(s.url, /^https:\/\/checkout\.stripe\.com\//);
  const remote = await provider.stripe.checkout.sessions.retrieve(s.id);
  assert.deepEqual([remote.mode, remote.amount_total, remote.currency, remote.metadata?.micro_payer, remote.payment_status], ['payment', 500, 'usd', payer, 'unpaid']);
  const customer = await store.customer('stripe', payer);
  assert.equal(remote.customer, customer);
  // one customer per payer, also when asked again
  assert.equal(await provider.customer(payer), customer);
  // a webhook signed as Stripe signs (the library's own test header), through our route
  const expired = await provider.stripe.checkout.sessions.expire(s.id);
  const body = JSON.stringify({ id: `evt_test_${randomBytes(8).toString('hex')}`, object: 'event', type: 'checkout.session.expired', data: { object: expired } });
  const header = provider.stripe.webhooks.generateTestHeaderString({ payload: body, secret: webhookSecret });
  const route = provider.webhook(payments);
  const answer = await route({ method: 'POST', headers: { 'stripe-signature': header }, body: Buffer.from(body), peer: 'test' });
  assert.deepEqual(answer.body, { received: true, outcome: 'closed' });
  assert.equal((await store.session('stripe', s.id))?.status, 'expired');
  await provider.stripe.customers.del(customer as string);
});
