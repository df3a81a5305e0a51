import assert from 'node:assert/strict';
import { test } from 'node:test';
import { balanceAccount, dueAccount, openPayerAccounts, PLATFORM_REVENUE } from '../billing/accounts.js';
import { paidPlatform } from './testing.js';

/**
 * The top-up flow end to end through a real micro server: a tenant asks the gateway for a
 * top-up, gets the Checkout URL of the (fake) Stripe, "pays" there, Stripe's signed webhook
 * reaches /webhooks/stripe of the gateway, and the balance rises exactly once.
 */

const DOLLAR = 1_000_000;

test('top-up end to end: Checkout URL, the signed webhook through the gateway, the balance rises exactly once', { timeout: 120_000 }, (t) =>
  paidPlatform(t, async ({ fake, post, customer, engines }) => {
    const alice = await customer('alice@example.com', 'acme');
    const read = async (token: string) => (await post('/v1/balance/Read', {}, token)).json as { payer: string; balance: number; due: number; provider: string };
    const { payer, provider } = await read(alice);
    assert.equal(provider, 'stripe');
    // bad amounts at the gateway: 400s naming the field, no session made
    for (const amount of [-1, 0, 1.5, '1e9', 'abc', 1e20, 4_990_000, 10_000 * DOLLAR + 10_000, 5_000_001, null, [1], { a: 1 }]) {
      const res = await post('/v1/balance/TopUp', { amount }, alice);
      assert.equal(res.status, 400, `${JSON.stringify(amount)}: ${JSON.stringify(res.json)}`);
      assert.match(String(res.json.detail), /amount/);
    }
    assert.equal(fake.sessions.size, 0);

    const asked = await post('/v1/balance/TopUp', { amount: 25 * DOLLAR }, alice);
    assert.equal(asked.status, 200, JSON.stringify(asked.json));
    const session = asked.json.session as { id: string; url: string; amount: number; status: string };
    assert.deepEqual([session.amount, session.status], [25 * DOLLAR, 'open']);
    assert.equal(session.url, `${fake.url}/c/pay/${session.id}`);
    assert.equal(fake.sessions.get(session.id)?.success_url, 'http://127.0.0.1:8080/dashboard/#/billing/paid');
    assert.equal(fake.customers.get(fake.sessions.get(session.id)?.customer as string)?.email, 'alice@example.com');

    // the payer pays on the hosted page: the webhook arrives before the redirect
    const page = await fetch(session.url, { method: 'POST', body: new URLSearchParams({ action: 'pay' }), redirect: 'manual' });
    assert.equal(page.status, 303);
    assert.equal((await read(alice)).balance, 25 * DOLLAR);
    // Stripe delivers again, and many times at once: nothing moves
    const event = fake.events.find((e) => e.type === 'checkout.session.completed');
    assert.ok(event);
    const again = await Promise.all(Array.from({ length: 8 }, () => fake.deliver(event)));
    assert.ok(again.every((d) => d.status === 200));
    assert.equal((await read(alice)).balance, 25 * DOLLAR);
    assert.equal(await engines.ledger.balance(balanceAccount(payer)), 25 * DOLLAR);
    assert.equal((await engines.ledger.trialBalance()).ok, true);
  }),
);

test("strangers at the webhook: forged, unsigned or replayed events move nothing; paying another payer's session credits that payer", { timeout: 120_000 }, (t) =>
  paidPlatform(t, async ({ url, fake, post, customer, engines }) => {
    const alice = await customer('alice@example.com', 'acme');
    const mallory = await customer('mallory@example.com', 'evil');
    const payerOf = async (token: string) => (await post('/v1/balance/Read', {}, token)).json.payer as string;
    const [a, m] = [await payerOf(alice), await payerOf(mallory)];
    const session = (await post('/v1/balance/TopUp', { amount: 10 * DOLLAR }, alice)).json.session as { id: string; url: string };
    // Mallory sends the webhook herself: no signature, a signature of her own, her token
    const forged = JSON.stringify({ id: 'evt_forged', object: 'event', type: 'checkout.session.completed', data: { object: { id: session.id, object: 'checkout.session', mode: 'payment', payment_status: 'paid', currency: 'usd', amount_total: 1_000_000 } } });
    for (const headers of [{}, { 'stripe-signature': fake.sign(forged, undefined, 'whsec_mallorys_own') }, { authorization: `Bearer ${mallory}` }, { 'stripe-signature': 't=1,v1=00' }] as Record<string, string>[]) {
      const res = await fetch(`${url}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: forged });
      assert.equal(res.status, 400, await res.text());
    }
    assert.equal(await engines.ledger.balance(balanceAccount(a)).catch(() => 0), 0);
    // Mallory pays Alice's session (she got the URL): Alice is credited, never Mallory
    await fetch(session.url, { method: 'POST', body: new URLSearchParams({ action: 'pay' }), redirect: 'manual' });
    assert.equal(await engines.ledger.balance(balanceAccount(a)), 10 * DOLLAR);
    assert.equal(await engines.ledger.balance(balanceAccount(m)).catch(() => 0), 0);
    // Mallory replays Alice's signed event (captured in transit): a replay, nothing moves
    const event = fake.events.find((e) => e.type === 'checkout.session.completed');
    assert.ok(event);
    const replay = await fake.deliver(event);
    assert.deepEqual(JSON.parse(replay.body), { received: true, outcome: 'applied', replay: true });
    assert.equal(await engines.ledger.balance(balanceAccount(a)), 10 * DOLLAR);
    // the webhook route takes nothing else
    assert.equal((await fetch(`${url}/webhooks/stripe`)).status, 405);
    assert.equal((await fetch(`${url}/webhooks/paypal`, { method: 'POST', body: '{}' })).status, 404);
  }),
);

test('paying what is due through Checkout, and top-ups paid while the balance is being spent', { timeout: 120_000 }, (t) =>
  paidPlatform(t, async ({ fake, post, customer, engines }) => {
    const bob = await customer('bob@example.com', 'bobs');
    const payer = (await post('/v1/balance/Read', {}, bob)).json.payer as string;
    await openPayerAccounts(engines.ledger, payer);
    assert.equal((await post('/v1/balance/PayDue', {}, bob)).status, 409);
    await engines.ledger.post({ key: 'seats-bob', reason: 'seats', entries: [{ account: dueAccount(payer), amount: -35_123_456 }, { account: PLATFORM_REVENUE, amount: 35_123_456 }], metadata: { kind: 'seats' } });
    const due = (await post('/v1/balance/PayDue', {}, bob)).json.session as { id: string; amount: number; purpose: string };
    // rounded up to the cent: the rest of the cent stays as credit on due
    assert.deepEqual([due.amount, due.purpose], [35_130_000, 'due']);
    await fake.pay(due.id);
    assert.equal(await engines.ledger.balance(dueAccount(payer)), 6_544);

    // three top-ups paid while 30 priced calls of $1 spend the balance
    const sessions = await Promise.all([10, 10, 10].map(async (dollars) => ((await post('/v1/balance/TopUp', { amount: dollars * DOLLAR }, bob)).json.session as { id: string }).id));
    let i = 0;
    const spend = async () => {
      try {
        await engines.ledger.post({ key: `use-${i++}`, reason: 'calls', entries: [{ account: balanceAccount(payer), amount: -DOLLAR }, { account: PLATFORM_REVENUE, amount: DOLLAR }], metadata: { kind: 'usage' } });
        return 1;
      } catch {
        return 0;
      }
    };
    const results = await Promise.all([...sessions.map((id) => fake.pay(id).then(() => 0)), ...Array.from({ length: 30 }, spend)]);
    const spent = results.reduce((a, n) => a + n, 0);
    const balance = await engines.ledger.balance(balanceAccount(payer));
    assert.equal(balance, 30 * DOLLAR - spent * DOLLAR);
    assert.ok(balance >= 0);
    assert.equal((await engines.ledger.trialBalance()).ok, true);
  }),
);
