import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type Stripe from 'stripe';
import { MicroError } from '@micro/sdk';
import { balanceAccount, dueAccount, EXTERNAL_PAYMENTS, openPayerAccounts, PLATFORM_REVENUE } from '../billing/accounts.js';
import { BILLING_ENGINES } from '../billing/testing.js';
import { checkoutFor, startStripeKit, type StripeKit } from './testing.js';

const DOLLAR = 1_000_000;

async function held(kit: StripeKit, account: string): Promise<number> {
  return kit.engines.ledger.balance(account).catch(() => 0);
}

async function balances(kit: StripeKit, payer: string): Promise<{ balance: number; due: number }> {
  return { balance: await held(kit, balanceAccount(payer)), due: await held(kit, dueAccount(payer)) };
}

/** A Checkout session someone opened at Stripe directly, not through payments (another app of the same account). */
function foreignSession(kit: StripeKit, cents: number, metadata: Record<string, string> = {}) {
  return kit.provider.stripe.checkout.sessions.create({ mode: 'payment', line_items: [{ quantity: 1, price_data: { currency: 'usd', unit_amount: cents, product_data: { name: 'x' } } }], success_url: 'https://example.com', metadata });
}

const outcome = (d: { status: number; body: string } | undefined) => ({ ...(JSON.parse(d?.body ?? '{}') as { outcome?: string; replay?: boolean; detail?: string }), status: d?.status });

const fails = (code: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, code, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

for (const engine of BILLING_ENGINES) {
  describe(`stripe payments on ${engine}`, () => {
    test('a top-up: a Stripe customer once, a Checkout session for the payer, the signed webhook credits the balance once', async (t) => {
      const kit = await startStripeKit(t, engine);
      if (!kit) return;
      const s = await checkoutFor(kit, 'cus_alice', 25);
      assert.equal(s.status, 'open');
      assert.match(s.url, new RegExp(`^${kit.fake.url}/c/pay/cs_test_`));
      const stripeSession = kit.fake.sessions.get(s.id) as Stripe.Checkout.Session;
      assert.deepEqual([stripeSession.mode, stripeSession.amount_total, stripeSession.currency, stripeSession.client_reference_id], ['payment', 2500, 'usd', 'cus_alice']);
      assert.deepEqual(stripeSession.metadata, { micro_payer: 'cus_alice', micro_purpose: 'topup' });
      const customer = kit.fake.customers.get(stripeSession.customer as string) as Stripe.Customer;
      assert.deepEqual(customer.metadata, { micro_payer: 'cus_alice' });
      assert.ok(kit.fake.requests.some((r) => r.path === '/v1/customers' && r.idempotencyKey === 'micro-customer-cus_alice'));
      // a second checkout reuses the customer
      const again = await checkoutFor(kit, 'cus_alice', 5);
      assert.equal(kit.fake.sessions.get(again.id)?.customer, customer.id);
      assert.equal(kit.fake.customers.size, 1);

      const { event, delivery } = await kit.fake.pay(s.id);
      assert.deepEqual(outcome(delivery), { status: 200, received: true, outcome: 'applied' });
      assert.deepEqual(await balances(kit, 'cus_alice'), { balance: 25 * DOLLAR, due: 0 });
      const posting = await kit.engines.ledger.posting(`stripe:checkout:${s.id}`);
      assert.deepEqual(posting?.metadata, { kind: 'topup', provider: 'stripe', session: s.id, period: '2027-01', payment: kit.fake.sessions.get(s.id)?.payment_intent as string });
      assert.deepEqual(kit.observed, ['cus_alice']);
      assert.equal((await kit.store.session('stripe', s.id))?.status, 'paid');
      // the same event again (Stripe retries), at once and ten times concurrently: nothing moves
      assert.deepEqual(outcome(await kit.fake.deliver(event)), { status: 200, received: true, outcome: 'applied', replay: true });
      const storm = await Promise.all(Array.from({ length: 10 }, () => kit.fake.deliver(event)));
      assert.ok(storm.every((d) => d.status === 200));
      assert.deepEqual(await balances(kit, 'cus_alice'), { balance: 25 * DOLLAR, due: 0 });
      assert.equal((await kit.engines.ledger.trialBalance()).ok, true);
    });

    test('one event delivered concurrently before it was ever seen, and two events of one session: one posting', async (t) => {
      const kit = await startStripeKit(t, engine);
      if (!kit) return;
      const s = await checkoutFor(kit, 'cus_bob', 10);
      kit.fake.endpoint = undefined;
      const { event } = await kit.fake.pay(s.id);
      kit.fake.endpoint = kit.webhookUrl;
      const answers = await Promise.all(Array.from({ length: 12 }, () => kit.fake.deliver(event)));
      assert.ok(answers.every((a) => a.status === 200), JSON.stringify(answers));
      assert.deepEqual(await balances(kit, 'cus_bob'), { balance: 10 * DOLLAR, due: 0 });
      // another event about the same paid session (async_payment_succeeded): the session's key holds
      const other = await kit.fake.emit('checkout.session.async_payment_succeeded', kit.fake.sessions.get(s.id) as object);
      assert.deepEqual(outcome(other.delivery), { status: 200, received: true, outcome: 'replayed' });
      assert.equal(await held(kit, balanceAccount('cus_bob')), 10 * DOLLAR);
      assert.equal(await held(kit, EXTERNAL_PAYMENTS), -10 * DOLLAR);
    });

    test('bad signatures, tampered bodies and stale timestamps: 400, nothing moves, nothing recorded', async (t) => {
      const kit = await startStripeKit(t, engine);
      if (!kit) return;
      const s = await checkoutFor(kit, 'cus_carol', 20);
      kit.fake.endpoint = undefined;
      const { event } = await kit.fake.pay(s.id);
      const body = kit.fake.payload(event);
      const to = kit.webhookUrl;
      const now = Math.floor(kit.clock.now / 1000);
      const tries: [string, Parameters<typeof kit.fake.deliver>[1], RegExp][] = [
        ['no header', { to, signature: null }, /stripe-signature: the header is missing/],
        ['empty header', { to, signature: '' }, /missing/],
        ['another secret', { to, signature: kit.fake.sign(body, now, 'whsec_attacker') }, /not a valid signature/],
        ['garbage', { to, signature: 't=abc,v1=zz' }, /not a valid signature/],
        ['only a timestamp', { to, signature: `t=${now}` }, /not a valid signature/],
        ['a tampered amount', { to, body: body.replace('"amount_total": 2000', '"amount_total": 2000000'), signature: kit.fake.sign(body, now) }, /not a valid signature/],
        ['signed 301 s ago', { to, signature: kit.fake.sign(body, now - 301) }, /not a valid signature.*more than 300 s old/i],
        ['a header asking for hints about the secret', { to, signature: `t=${now},v1=${'0'.repeat(64)},secret=whsec_${'*'.repeat(20)}abcd,payload=00000000` }, /does not match this body/],
        ['not JSON, but signed', { to, body: 'not json', signature: kit.fake.sign('not json', now) }, /not a valid signature/],
      ];
      for (const [why, options, detail] of tries) {
        const d = await kit.fake.deliver(event, options);
        assert.equal(d.status, 400, `${why}: ${d.body}`);
        assert.match(JSON.parse(d.body).detail, detail, why);
        assert.doesNotMatch(d.body, new RegExp(kit.fake.webhookSecret.slice(-4)), why);
        assert.doesNotMatch(d.body, /characters long/, why);
      }
      assert.deepEqual(await balances(kit, 'cus_carol'), { balance: 0, due: 0 });
      assert.equal(await kit.store.event('stripe', event.id), undefined);
      assert.equal((await kit.store.session('stripe', s.id))?.status, 'open');
      // within the tolerance (a clock 4 minutes behind) the same event applies
      assert.deepEqual(outcome(await kit.fake.deliver(event, { to, signature: kit.fake.sign(body, now - 240) })), { status: 200, received: true, outcome: 'applied' });
      assert.equal(await held(kit, balanceAccount('cus_carol')), 20 * DOLLAR);
    });

    test("out of order: completed after expired still pays; expired after completed changes nothing; a session's payer is ours, never the event's", async (t) => {
      const kit = await startStripeKit(t, engine);
      if (!kit) return;
      const s = await checkoutFor(kit, 'cus_dan', 15);
      kit.fake.endpoint = undefined;
      const open = structuredClone(kit.fake.sessions.get(s.id)) as Stripe.Checkout.Session;
      const { event: completed } = await kit.fake.pay(s.id);
      const { event: expired } = await kit.fake.emit('checkout.session.expired', { ...open, status: 'expired' });
      kit.fake.endpoint = kit.webhookUrl;
      assert.equal(outcome(await kit.fake.deliver(expired)).outcome, 'closed');
      assert.equal((await kit.store.session('stripe', s.id))?.status, 'expired');
      assert.equal(outcome(await kit.fake.deliver(completed)).outcome, 'applied');
      assert.equal((await kit.store.session('stripe', s.id))?.status, 'paid');
      assert.equal(await held(kit, balanceAccount('cus_dan')), 15 * DOLLAR);
      // a late expired event of another (paid) session: nothing changes
      const t2 = await checkoutFor(kit, 'cus_dan', 5);
      const open2 = structuredClone(kit.fake.sessions.get(t2.id)) as Stripe.Checkout.Session;
      await kit.fake.pay(t2.id);
      assert.equal(outcome((await kit.fake.emit('checkout.session.expired', { ...open2, status: 'expired' })).delivery).outcome, 'unchanged');
      assert.equal((await kit.store.session('stripe', t2.id))?.status, 'paid');
      assert.equal(await held(kit, balanceAccount('cus_dan')), 20 * DOLLAR);

      // an event signed with our secret that names another payer in its metadata and
      // client_reference_id (a session opened by Mallory, relabelled): the recorded payer gets it
      const m = await checkoutFor(kit, 'cus_mallory', 7);
      kit.fake.endpoint = undefined;
      const { event: paid } = await kit.fake.pay(m.id);
      const relabelled = structuredClone(paid) as Stripe.CheckoutSessionCompletedEvent;
      relabelled.id = 'evt_relabelled';
      relabelled.data.object.metadata = { micro_payer: 'cus_dan', micro_purpose: 'topup' };
      relabelled.data.object.client_reference_id = 'cus_dan';
      kit.fake.endpoint = kit.webhookUrl;
      assert.equal(outcome(await kit.fake.deliver(relabelled)).outcome, 'applied');
      assert.equal(await held(kit, balanceAccount('cus_mallory')), 7 * DOLLAR);
      assert.equal(await held(kit, balanceAccount('cus_dan')), 20 * DOLLAR);
      // a session someone else opened at Stripe (not through us), paid: logged and answered 200, nothing moves
      const foreign = await foreignSession(kit, 9900, { micro_payer: 'cus_dan' });
      assert.deepEqual(outcome((await kit.fake.pay(foreign.id)).delivery), { status: 200, received: true, outcome: 'ignored' });
      assert.equal(await held(kit, balanceAccount('cus_dan')), 20 * DOLLAR);
      assert.equal(await held(kit, EXTERNAL_PAYMENTS), -27 * DOLLAR);
    });

    test('a payment that settles later: nothing until it succeeds; a failed one moves nothing', async (t) => {
      const kit = await startStripeKit(t, engine);
      if (!kit) return;
      const s = await checkoutFor(kit, 'cus_erin', 30);
      assert.equal(outcome((await kit.fake.pay(s.id, { later: true })).delivery).outcome, 'pending');
      assert.equal(await held(kit, balanceAccount('cus_erin')), 0);
      assert.equal(outcome((await kit.fake.settle(s.id)).delivery).outcome, 'applied');
      assert.equal(await held(kit, balanceAccount('cus_erin')), 30 * DOLLAR);
      const f = await checkoutFor(kit, 'cus_erin', 12);
      await kit.fake.pay(f.id, { later: true });
      assert.equal(outcome((await kit.fake.fail(f.id)).delivery).outcome, 'closed');
      assert.equal((await kit.store.session('stripe', f.id))?.status, 'failed');
      assert.equal(await held(kit, balanceAccount('cus_erin')), 30 * DOLLAR);
    });

    test('paying what is due: the payment lands on due', async (t) => {
      const kit = await startStripeKit(t, engine);
      if (!kit) return;
      await openPayerAccounts(kit.engines.ledger, 'cus_frank');
      await kit.engines.ledger.post({ key: 'seats-1', reason: 'seats', entries: [{ account: dueAccount('cus_frank'), amount: -35 * DOLLAR }, { account: PLATFORM_REVENUE, amount: 35 * DOLLAR }], metadata: { kind: 'seats' } });
      const s = await checkoutFor(kit, 'cus_frank', 35, 'due');
      assert.equal(kit.fake.sessions.get(s.id)?.line_items, undefined);
      assert.deepEqual(kit.fake.sessions.get(s.id)?.metadata, { micro_payer: 'cus_frank', micro_purpose: 'due' });
      await kit.fake.pay(s.id);
      assert.deepEqual(await balances(kit, 'cus_frank'), { balance: 0, due: 0 });
      assert.equal((await kit.engines.ledger.posting(`stripe:checkout:${s.id}`))?.metadata.kind, 'payment');
    });

    test('refunds made at Stripe: a payout from the balance, the rest owed on due; before its payment: 409 and Stripe retries; not ours: ignored; failed: undone', async (t) => {
      const kit = await startStripeKit(t, engine);
      if (!kit) return;
      // a refund that comes before its payment was applied
      const s = await checkoutFor(kit, 'cus_gina', 10);
      kit.fake.endpoint = undefined;
      const { event: completed } = await kit.fake.pay(s.id);
      const pi = kit.fake.sessions.get(s.id)?.payment_intent as string;
      const { event: early } = await kit.fake.refund(pi, 400);
      kit.fake.endpoint = kit.webhookUrl;
      const refused = outcome(await kit.fake.deliver(early));
      assert.equal(refused.status, 409);
      assert.match(refused.detail ?? '', /not applied yet; Stripe delivers the event again later/);
      assert.deepEqual(await balances(kit, 'cus_gina'), { balance: 0, due: 0 });
      assert.equal(await kit.store.event('stripe', early.id), undefined, 'not recorded: the retry is applied');
      assert.equal(outcome(await kit.fake.deliver(completed)).outcome, 'applied');
      assert.equal(outcome(await kit.fake.deliver(early)).outcome, 'applied');
      assert.equal(outcome(await kit.fake.deliver(early)).outcome, 'applied', 'a replay answers as before');
      assert.deepEqual(await balances(kit, 'cus_gina'), { balance: 6 * DOLLAR, due: 0 });

      // spend 5 of the 6, then Stripe refunds the remaining 6 dollars of the payment: 1 from the balance, 5 owed
      await kit.engines.ledger.post({ key: 'usage-1', reason: 'calls', entries: [{ account: balanceAccount('cus_gina'), amount: -5 * DOLLAR }, { account: PLATFORM_REVENUE, amount: 5 * DOLLAR }], metadata: { kind: 'usage' } });
      const { refund, delivery } = await kit.fake.refund(pi);
      assert.equal(outcome(delivery).outcome, 'applied');
      assert.deepEqual(await balances(kit, 'cus_gina'), { balance: 0, due: -5 * DOLLAR });
      const payout = await kit.engines.ledger.posting(`stripe:refund:${refund.id}`);
      assert.equal(payout?.metadata.kind, 'payout');
      // the refund fails later at Stripe: undone
      assert.equal(outcome((await kit.fake.refundStatus(refund.id, 'failed')).delivery).outcome, 'applied');
      assert.deepEqual(await balances(kit, 'cus_gina'), { balance: 1 * DOLLAR, due: 0 });
      // more than was paid cannot be refunded at Stripe either (it answers 400; our code never asks)
      await assert.rejects(kit.provider.stripe.refunds.create({ payment_intent: pi, amount: 100_000 }), /greater than unrefunded amount/);
      // a refund of a payment that is not ours (no micro_payer mark): 200, ignored
      const foreign = await foreignSession(kit, 1000);
      await kit.fake.pay(foreign.id);
      const other = await kit.fake.refund(kit.fake.sessions.get(foreign.id)?.payment_intent as string);
      assert.deepEqual(outcome(other.delivery), { status: 200, received: true, outcome: 'ignored' });
      assert.equal((await kit.engines.ledger.trialBalance()).ok, true);
    });

    test('Stripe away, a wrong key, amounts that are not whole cents: clear errors, nothing recorded', async (t) => {
      const kit = await startStripeKit(t, engine);
      if (!kit) return;
      kit.fake.failNext(1, 503);
      await assert.rejects(checkoutFor(kit, 'cus_hal', 10), fails(503, /Stripe is unreachable or busy/));
      assert.deepEqual(await kit.store.sessions('cus_hal', 10), []);
      await assert.rejects(kit.payments.checkout({ payer: 'cus_hal', purpose: 'topup', amount: 10_000_001, successUrl: 'http://x/', cancelUrl: 'http://x/' }), fails(400, /whole number of cents/));
      for (const amount of [0, -10_000, 1.5, Number.NaN]) await assert.rejects(kit.payments.checkout({ payer: 'cus_hal', purpose: 'topup', amount, successUrl: 'http://x/', cancelUrl: 'http://x/' }), fails(400));
      // below Stripe's minimum of $0.50: Stripe's words come back as a 502
      await assert.rejects(checkoutFor(kit, 'cus_hal', 0.3), fails(502, /at least \$0\.50/));
      const { StripeProvider } = await import('./stripe.js');
      const wrong = new StripeProvider({ secretKey: 'sk_test_wrongwrongwrong1234', webhookSecret: 'whsec_x', apiUrl: kit.fake.url, retries: 0 }, kit.store);
      await assert.rejects(wrong.checkout({ payer: 'cus_hal', purpose: 'topup', amount: 10 * DOLLAR, successUrl: 'http://x/', cancelUrl: 'http://x/' }), (err: MicroError) => {
        assert.equal(err.code, 502);
        assert.match(err.detail, /refused the platform's key/);
        assert.doesNotMatch(err.detail, /wrongwrongwrong/);
        return true;
      });
    });

    test('a new payer checking out twice at once gets one Stripe customer', async (t) => {
      const kit = await startStripeKit(t, engine);
      if (!kit) return;
      const sessions = await Promise.all([checkoutFor(kit, 'cus_ivy', 5), checkoutFor(kit, 'cus_ivy', 6), checkoutFor(kit, 'cus_ivy', 7)]);
      const customers = new Set(sessions.map((s) => kit.fake.sessions.get(s.id)?.customer));
      assert.equal(customers.size, 1);
      assert.equal(kit.fake.customers.size, 1);
      assert.equal(await kit.store.customer('stripe', 'cus_ivy'), [...customers][0]);
    });
  });
}
