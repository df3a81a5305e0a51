import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FakeStripe, startSmtpServer, type TestSmtp } from '@micro/platform/testing';
import { codeFromSmtp, micro, startServer, tempDir, type Result } from './testing.js';

/*
 * The balance from the command line, against a real `micro server` whose payments go to a
 * local stand-in for Stripe (FakeStripe: Stripe's API and its signed webhooks) and whose
 * mail goes to an SMTP server in this process. The staff is the local admin (environment
 * `local`, no login); Ada and Mallory are customers with environments of their own.
 */

const PASSWORD = 'correct-horse-battery';
type Run = (args: string[], input?: string) => Promise<Result>;

async function signUp(staff: Run, run: Run, smtp: TestSmtp, email: string, namespace: string): Promise<void> {
  assert.equal((await staff(['platform', 'invite', email])).code, 0);
  const before = smtp.received.length;
  assert.equal((await run(['signup', '--email', email])).code, 0);
  const code = await codeFromSmtp(smtp, email, before);
  const done = await run(['signup', '--email', email, '--code', code, '--password', '-', '--namespace', namespace], `${PASSWORD}\n`);
  assert.equal(done.code, 0, done.stderr);
}

function refused(res: Result, why: RegExp, what: string): void {
  assert.equal(res.code, 1, `${what}: ${res.stdout}`);
  assert.match(res.stderr, why, what);
}

test('micro balance, history, topup through Checkout, and the staff credit, refund and record payments', { timeout: 180_000 }, async (t) => {
  const home = tempDir('micro-balance-');
  const smtp = await startSmtpServer(t);
  const fake = new FakeStripe({ secretKey: `sk_test_${randomBytes(12).toString('hex')}` });
  await fake.listen();
  t.after(() => fake.close());
  const server = await startServer(home, { env: { MICRO_SMTP_URL: smtp.url(), MICRO_STRIPE_SECRET_KEY: fake.secretKey, MICRO_STRIPE_WEBHOOK_SECRET: fake.webhookSecret, MICRO_STRIPE_API_URL: fake.url } });
  fake.endpoint = `${server.gateway}/webhooks/stripe`;
  const staff: Run = (args, input) => micro(home, args, { input });
  const ada: Run = (args, input) => micro(home, args, { input, env: { MICRO_ENV: 'ada' } });
  const mallory: Run = (args, input) => micro(home, args, { input, env: { MICRO_ENV: 'mallory' } });
  for (const env of ['ada', 'mallory']) assert.equal((await micro(home, ['env', 'add', env, server.address])).code, 0);
  await signUp(staff, ada, smtp, 'ada@example.com', 'acme');
  await signUp(staff, mallory, smtp, 'mallory@example.com', 'evil');

  // a new customer: nothing held, nothing due, and a warning that the balance is used up
  const first = await ada(['balance']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, 'balance  $0.00\ndue      $0.00\n');
  assert.match(first.stderr, /the balance is used up: .*`micro balance topup <amount>`/);

  // a top-up: the Checkout URL, paid at the (fake) Stripe, the webhook credits once
  const topup = await ada(['balance', 'topup', '25']);
  assert.equal(topup.code, 0, topup.stderr);
  const url = /^(http:\/\/127\.0\.0\.1:\d+\/c\/pay\/cs_test_\S+)$/m.exec(topup.stdout)?.[1];
  assert.ok(url, topup.stdout);
  assert.match(topup.stdout, /Pay a top-up of \$25\.00 here \(until \d{4}-\d\d-\d\dT/);
  assert.equal((await fetch(url, { method: 'POST', body: new URLSearchParams({ action: 'pay' }), redirect: 'manual' })).status, 303);
  const event = fake.events.find((e) => e.type === 'checkout.session.completed');
  assert.ok(event);
  assert.equal((await fake.deliver(event)).status, 200, 'Stripe delivers again');
  const after = JSON.parse((await ada(['balance', '-o', 'json'])).stdout) as { balance: number; due: number; provider: string; namespace: string };
  assert.deepEqual([after.balance, after.due, after.provider, after.namespace], [25_000_000, 0, 'stripe', 'acme']);
  const history = await ada(['balance', 'history']);
  assert.equal(history.code, 0, history.stderr);
  assert.match(history.stdout, /^ID +WHEN +KIND +AMOUNT +AFTER +REASON\n\d+ +\d{4}-\S+ +topup +\+\$25\.00 +\$25\.00 +top-up paid through stripe\n$/);

  // amounts people mistype: clear errors, nothing asked of Stripe
  const sessions = fake.sessions.size;
  for (const [amount, why] of [
    ['-5', /invalid amount "-5": dollars/],
    ['abc', /invalid amount "abc"/],
    ['1.1234567', /at most 6 decimals/],
    ['1e3', /invalid amount/],
    ['0', /amount must be more than zero/],
    ['4.99', /a top-up is from \$5\.00 to \$10,000\.00, not \$4\.99/],
    ['10000.01', /a top-up is from \$5\.00 to \$10,000\.00/],
    ['5.001', /whole cents/],
    ['9'.repeat(30), /invalid amount/],
  ] as const) {
    refused(await ada(['balance', 'topup', amount]), why, `topup ${amount}`);
  }
  assert.equal(fake.sessions.size, sessions);
  refused(await ada(['balance', 'pay']), /nothing is due/, 'pay with nothing due');
  refused(await ada(['balance', 'history', '--limit', '0']), /--limit must be a whole number from 1 to 200/, 'limit 0');

  // the staff: a credit (replayed when given twice), a refund bounded by what was paid, a recorded payment
  const credit = await staff(['platform', 'credit', 'acme', '5', '--reason', 'welcome']);
  assert.equal(credit.code, 0, credit.stderr);
  assert.match(credit.stdout, /^credited \$5\.00 for cus_\S+ \(posting \d+\): balance \$30\.00, due \$0\.00$/m);
  const twice = await staff(['platform', 'credit', 'ada@example.com', '5', '--reason', 'welcome']);
  assert.equal(twice.code, 0, twice.stderr);
  assert.match(twice.stderr, /was used on .*: nothing moved now/);
  assert.match(twice.stdout, /balance \$30\.00/);
  refused(await staff(['platform', 'refund', 'acme', '1', '--reason', 'sorry']), /more than cus_\S+ paid the platform, net of refunds: at most \$0\.00/, 'refund of nothing paid');
  const wire = await staff(['platform', 'payment', 'acme', '20', '--reason', 'wire 2027-001', '--to', 'balance', '-o', 'json']);
  assert.equal(wire.code, 0, wire.stderr);
  assert.deepEqual(pick(JSON.parse(wire.stdout), ['kind', 'amount', 'balance']), { kind: 'topup', amount: 20_000_000, balance: 50_000_000 });
  refused(await staff(['platform', 'credit', 'acme', '5']), /required option '--reason <text>'/, 'credit without a reason');
  refused(await staff(['platform', 'credit', 'nowhere', '5', '--reason', 'x']), /namespace: no namespace nowhere/, 'credit of a namespace that does not exist');
  refused(await staff(['platform', 'refund', 'acme', '1', '--reason', 'x', '--to', 'card']), /--to must be balance or due/, 'refund to a card');
  refused(await staff(['platform', 'credit', 'acme', '-1', '--reason', 'x']), /invalid amount/, 'negative credit');
  assert.match((await ada(['balance'])).stdout, /^balance {2}\$50\.00$/m);

  // a stranger: reads and pays nothing of acme, gives itself nothing
  refused(await mallory(['balance', '--namespace', 'acme']), /forbidden: .*may not act in namespace acme/, 'a stranger reads');
  refused(await mallory(['balance', 'topup', '10', '--namespace', 'acme']), /forbidden/, 'a stranger tops up another');
  refused(await mallory(['platform', 'credit', 'evil', '100', '--reason', 'free']), /forbidden: .*needs an admin of namespace micro — account mallory@example.com \(namespace evil\) is not staff/, 'a tenant credits itself');
  refused(await mallory(['platform', 'payment', 'evil', '100', '--reason', 'wire', '--to', 'balance']), /forbidden/, 'a tenant records its own payment');
  assert.match((await mallory(['balance'])).stdout, /^balance {2}\$0\.00$/m);
  assert.match((await ada(['balance'])).stdout, /^balance {2}\$50\.00$/m);
});

function pick(value: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, value[k]]));
}
