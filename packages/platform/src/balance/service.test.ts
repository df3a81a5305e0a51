import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MicroError } from '@micro/sdk';
import { testPostgres } from '@micro/server/testing';
import { balanceAccount, dueAccount, openPayerAccounts, PLATFORM_REVENUE } from '../billing/accounts.js';
import { PlatformHub } from '../hub.js';
import { startBalanceHarness, type BalanceHarness } from './testing.js';

const DOLLAR = 1_000_000;

const fails = (code: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, code, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

/** A priced call's charge, as metering posts it, then told to the hub as metering does. */
async function spend(b: BalanceHarness, payer: string, units: number, key: string): Promise<number> {
  const { posting } = await b.engines.ledger.post({ key, reason: 'priced calls', entries: [{ account: balanceAccount(payer), amount: -units }, { account: PLATFORM_REVENUE, amount: units }], metadata: { kind: 'usage' } });
  const after = await b.engines.ledger.balance(balanceAccount(payer));
  await b.hub.onBalance(payer, after);
  return posting.id;
}

describe('balance service (manual provider)', () => {
  let b: BalanceHarness;
  let alice: { token: string; payer: string };
  let mallory: { token: string; payer: string };
  before(async () => {
    b = await startBalanceHarness({ lowBalance: DOLLAR });
    alice = await b.customer('alice@example.com', 'acme');
    mallory = await b.customer('mallory@example.com', 'evil');
  });
  after(() => b.close());

  test('a new payer: nothing held, nothing due; manual provider; Read and History by the owner', async () => {
    const read = await b.balance(alice.token).Read({});
    assert.deepEqual(read, { namespace: 'acme', payer: alice.payer, balance: 0, due: 0, level: 'zero', lowBalance: DOLLAR, provider: 'manual', topUp: { min: 5 * DOLLAR, max: 10_000 * DOLLAR } });
    assert.deepEqual(await b.balance(alice.token).History({}), { payer: alice.payer, account: `customer:${alice.payer}:balance`, entries: [] });
    await assert.rejects(b.balance(alice.token).TopUp({ amount: 10 * DOLLAR }), fails(501, /no MICRO_STRIPE_SECRET_KEY.*bank transfer/));
    await assert.rejects(b.balance(alice.token).PayDue({}), fails(409, /nothing is due/));
    await assert.rejects(b.balance().Read({}), fails(401));
  });

  test('credits by admins: by customer id, email or namespace; a replay returns the first result; History shows kind, reason and the balance after', async () => {
    const first = await b.balance(b.admin).Credit({ customer: alice.payer, amount: 5 * DOLLAR, reason: 'welcome credit', idempotencyKey: 'promo-1' });
    assert.deepEqual([first.kind, first.amount, first.balance, first.replayed, first.key], ['credit', 5 * DOLLAR, 5 * DOLLAR, false, 'credit:promo-1']);
    const again = await b.balance(b.admin).Credit({ customer: 'ALICE@example.com', amount: '5000000', reason: 'welcome credit (retry)', idempotencyKey: 'promo-1' });
    assert.deepEqual([again.posting, again.replayed, again.balance, again.at], [first.posting, true, 5 * DOLLAR, first.at]);
    await assert.rejects(b.balance(b.admin).Credit({ namespace: 'acme', amount: 6 * DOLLAR, reason: 'other', idempotencyKey: 'promo-1' }), fails(409, /idempotencyKey: credit:promo-1 was used .* for another movement/));
    // no key: derived from payer, amount and reason; the same credit twice is one credit
    const derived = await b.balance(b.admin).Credit({ namespace: 'acme', amount: 2 * DOLLAR, reason: 'outage of 3 May' });
    const twice = await b.balance(b.admin).Credit({ customer: alice.payer, amount: 2 * DOLLAR, reason: 'outage of 3 May' });
    assert.deepEqual([twice.posting, twice.replayed], [derived.posting, true]);
    assert.equal((await b.balance(alice.token).Read({})).balance, 7 * DOLLAR);
    const history = await b.balance(alice.token).History({ limit: 1 });
    assert.equal(history.entries.length, 1);
    const [latest] = history.entries;
    assert.deepEqual([latest?.kind, latest?.reason, latest?.amount, latest?.balanceAfter, latest?.metadata.by, latest?.metadata.period?.length], ['credit', 'outage of 3 May', 2 * DOLLAR, 7 * DOLLAR, 'admin', 7]);
    const older = await b.balance(alice.token).History({ before: history.next as number });
    assert.deepEqual(older.entries.map((e) => [e.reason, e.balanceAfter]), [['welcome credit', 5 * DOLLAR]]);
    assert.equal(older.next, undefined);
    // credits leave the promo account
    assert.equal(await b.engines.ledger.balance('platform:promo'), -7 * DOLLAR);
  });

  test('strangers: a tenant reads, tops up or pages another payer, credits or refunds itself: 403, nothing moves', async () => {
    const evil = b.balance(mallory.token);
    const before = await b.balance(alice.token).Read({});
    await assert.rejects(evil.Read({ namespace: 'acme' }), fails(403, /may not act in namespace acme/));
    await assert.rejects(evil.History({ namespace: 'acme' }), fails(403));
    await assert.rejects(evil.History({ namespace: 'acme', account: 'due' }), fails(403));
    await assert.rejects(evil.TopUp({ namespace: 'acme', amount: 10 * DOLLAR }), fails(403));
    await assert.rejects(evil.PayDue({ namespace: 'acme' }), fails(403));
    for (const call of [
      () => evil.Credit({ namespace: 'evil', amount: 100 * DOLLAR, reason: 'free money' }),
      () => evil.Credit({ customer: mallory.payer, amount: 1, reason: 'free money' }),
      () => evil.Refund({ namespace: 'evil', amount: 1, reason: 'x' }),
      () => evil.RecordPayment({ namespace: 'evil', amount: 100 * DOLLAR, reason: 'wire', to: 'balance' }),
      () => b.balance(alice.token).Credit({ namespace: 'acme', amount: DOLLAR, reason: 'me' }),
    ]) {
      await assert.rejects(call(), fails(403, /needs an admin of namespace micro/));
    }
    assert.deepEqual(await b.balance(alice.token).Read({}), before);
    assert.equal((await evil.Read({})).balance, 0);
    // a namespace name that is not one; a payer that does not exist
    await assert.rejects(evil.Read({ namespace: '../acme' }), fails(400, /not a namespace name/));
    await assert.rejects(b.balance(b.admin).Credit({ namespace: 'nowhere', amount: DOLLAR, reason: 'x' }), fails(404, /no namespace nowhere/));
    await assert.rejects(b.balance(b.admin).Credit({ customer: 'cus_nobody', amount: DOLLAR, reason: 'x' }), fails(404, /no customer/));
    await assert.rejects(b.balance(b.admin).Credit({ amount: DOLLAR, reason: 'x' }), fails(400, /name the payer by one of them/));
    await assert.rejects(b.balance(b.admin).Credit({ customer: alice.payer, namespace: 'acme', amount: DOLLAR, reason: 'x' }), fails(400, /one of them/));
  });

  test('members of a team who are not owners or admins, and accounts without scope admin, read nothing', async () => {
    const auth = b.signup.auth.authAs({ token: b.admin });
    for (const scopes of [['developer'], ['viewer'], []]) {
      const id = `m-${scopes.join('') || 'none'}`;
      const { secret } = await auth.CreateAccount({ id, namespace: 'acme', scopes });
      const { token } = await b.signup.auth.authAs().Token({ id, secret: secret as string, namespace: 'acme' });
      await assert.rejects(b.balance(token).Read({}), fails(403), id);
      await assert.rejects(b.balance(token).TopUp({ amount: 10 * DOLLAR }), fails(403), id);
    }
    // an account of the namespace with scope admin (made by the owner) administers it
    const { secret } = await auth.CreateAccount({ id: 'ops', namespace: 'acme', scopes: ['admin'] });
    const { token } = await b.signup.auth.authAs().Token({ id: 'ops', secret: secret as string, namespace: 'acme' });
    assert.equal((await b.balance(token).Read({})).payer, alice.payer);
    // the staff read any namespace
    assert.equal((await b.balance(b.admin).Read({ namespace: 'acme' })).payer, alice.payer);
  });

  test('hostile amounts, reasons and keys: 400 naming the field, nothing moves', async () => {
    const staff = b.balance(b.admin);
    const before = await staff.Read({ namespace: 'evil' });
    const amounts: unknown[] = [-1, 0, -0, 1.5, 1e16, Number.MAX_SAFE_INTEGER, '1e6', '1.5', ' ', 'abc', '-5', '0x10', '99999999999999999999'];
    for (const amount of amounts) {
      for (const call of [
        () => staff.Credit({ namespace: 'evil', amount: amount as number, reason: 'x' }),
        () => staff.Refund({ namespace: 'evil', amount: amount as number, reason: 'x' }),
        () => staff.RecordPayment({ namespace: 'evil', amount: amount as number, reason: 'x' }),
        () => b.balance(mallory.token).TopUp({ amount: amount as number }),
      ]) {
        await assert.rejects(call(), fails(400, /amount/), `amount ${JSON.stringify(amount)}`);
      }
    }
    await assert.rejects(staff.Credit({ namespace: 'evil', amount: null as unknown as number, reason: 'x' }), fails(400));
    await assert.rejects(staff.Credit({ namespace: 'evil', amount: { $gt: 0 } as unknown as number, reason: 'x' }), fails(400));
    await assert.rejects(staff.Credit({ namespace: 'evil', amount: DOLLAR, reason: '' }), fails(400, /reason/));
    await assert.rejects(staff.Credit({ namespace: 'evil', amount: DOLLAR, reason: ' \u0000\r\n ' }), fails(400, /reason: say why/));
    await assert.rejects(staff.Credit({ namespace: 'evil', amount: DOLLAR, reason: 'x'.repeat(501) }), fails(400));
    await assert.rejects(staff.Credit({ namespace: 'evil', amount: DOLLAR, reason: 'x', idempotencyKey: 'has space' }), fails(400, /idempotencyKey/));
    await assert.rejects(staff.Credit({ namespace: 'evil', amount: DOLLAR, reason: 'x', idempotencyKey: 'k'.repeat(101) }), fails(400));
    await assert.rejects(staff.Credit({ namespace: 'evil', amount: DOLLAR, reason: 'x', extra: 1 } as never), fails(400));
    // top-ups: whole cents within the bounds
    for (const amount of [4_990_000, 10_000 * DOLLAR + 10_000, 5_000_001]) await assert.rejects(b.balance(mallory.token).TopUp({ amount }), fails(400, /amount: a top-up is/));
    await assert.rejects(b.balance(mallory.token).History({ limit: 201 }), fails(400));
    await assert.rejects(b.balance(mallory.token).History({ before: -1 }), fails(400));
    assert.deepEqual(await staff.Read({ namespace: 'evil' }), before);
  });

  test('refunds: at most what the payer paid the platform, net of refunds; concurrent refunds never pass it; a replay after the bound returns the first', async () => {
    const bob = await b.customer('bob@example.com', 'bobs');
    const staff = b.balance(b.admin);
    await assert.rejects(staff.Refund({ namespace: 'bobs', amount: 1, reason: 'goodwill' }), fails(409, /more than .* paid the platform, net of refunds: at most \$0\.00/));
    // a credit is not payment: still nothing to refund
    await staff.Credit({ namespace: 'bobs', amount: 10 * DOLLAR, reason: 'promo' });
    await assert.rejects(staff.Refund({ namespace: 'bobs', amount: 1, reason: 'goodwill' }), fails(409));
    await spend(b, bob.payer, 3 * DOLLAR, 'usage-bob-1');
    await assert.rejects(staff.Refund({ namespace: 'bobs', amount: 3 * DOLLAR + 1, reason: 'outage' }), fails(409, /at most \$3\.00/));
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => staff.Refund({ namespace: 'bobs', amount: DOLLAR, reason: `outage ${i}` })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
    for (const r of results) if (r.status === 'rejected') assert.ok(fails(409)(r.reason));
    assert.equal((await staff.Read({ namespace: 'bobs' })).balance, 10 * DOLLAR);
    // a replay of a refund that was given: the first result, though the bound is used up
    const idx = results.findIndex((r) => r.status === 'fulfilled');
    const given = results[idx] as PromiseFulfilledResult<{ posting: number }>;
    const replay = await staff.Refund({ namespace: 'bobs', amount: DOLLAR, reason: `outage ${idx}` });
    assert.deepEqual([replay.replayed, replay.posting], [true, given.value.posting]);
    // seat fees paid on due count too; a refund may go to due
    await b.engines.ledger.post({ key: 'seats-bob', reason: 'seats', entries: [{ account: dueAccount(bob.payer), amount: -35 * DOLLAR }, { account: PLATFORM_REVENUE, amount: 35 * DOLLAR }], metadata: { kind: 'seats' } });
    const toDue = await staff.Refund({ namespace: 'bobs', amount: 5 * DOLLAR, reason: 'seat removed', to: 'due' });
    assert.deepEqual([toDue.due, toDue.kind], [-30 * DOLLAR, 'refund']);
    assert.equal((await b.engines.ledger.trialBalance()).ok, true);
  });

  test('recorded payments: a bank transfer on due (default) or a top-up of the balance; replays move nothing', async () => {
    const carol = await b.customer('carol@example.com', 'carols');
    const staff = b.balance(b.admin);
    await openPayerAccounts(b.engines.ledger, carol.payer);
    await b.engines.ledger.post({ key: 'seats-carol', reason: 'seats', entries: [{ account: dueAccount(carol.payer), amount: -35 * DOLLAR }, { account: PLATFORM_REVENUE, amount: 35 * DOLLAR }], metadata: { kind: 'seats' } });
    const paid = await staff.RecordPayment({ customer: 'carol@example.com', amount: 35 * DOLLAR, reason: 'wire ref 1234', idempotencyKey: 'wire-1234' });
    assert.deepEqual([paid.kind, paid.due, paid.balance, paid.key], ['payment', 0, 0, 'manual:payment:wire-1234']);
    assert.equal((await staff.RecordPayment({ customer: carol.payer, amount: 35 * DOLLAR, reason: 'wire ref 1234 again', idempotencyKey: 'wire-1234' })).replayed, true);
    const topup = await staff.RecordPayment({ namespace: 'carols', amount: 20 * DOLLAR, reason: 'card at the desk', to: 'balance' });
    assert.deepEqual([topup.kind, topup.balance, topup.due], ['topup', 20 * DOLLAR, 0]);
    const [entry] = (await b.balance(carol.token).History({ account: 'due' })).entries;
    assert.deepEqual([entry?.kind, entry?.metadata.provider, entry?.reason], ['payment', 'manual', 'wire ref 1234']);
    const payments = await b.engines.ledger.history('external:payments', { limit: 2 });
    assert.deepEqual(payments.items.map((e) => e.amount), [-20 * DOLLAR, -35 * DOLLAR]);
  });

  test('low- and zero-balance: one event and one email per crossing, however many calls, in any order', async () => {
    const dan = await b.customer('dan@example.com', 'dans');
    const staff = b.balance(b.admin);
    const events = () => b.published.filter((m) => (m.body as { payer: string }).payer === dan.payer).map((m) => `${m.topic}:${(m.body as { balance: number }).balance}`);
    const mails = () => b.mailer.sent.filter((m) => m.to === 'dan@example.com').map((m) => m.subject);
    await staff.Credit({ namespace: 'dans', amount: 2 * DOLLAR, reason: 'start' });
    assert.deepEqual(events(), [], 'a first credit from zero announces nothing');
    await spend(b, dan.payer, 1_500_000, 'dan-1');
    // the same crossing told many times at once (metering's postings of one flush): one event
    await Promise.all(Array.from({ length: 20 }, () => b.hub.onBalance(dan.payer, 500_000)));
    await spend(b, dan.payer, 100_000, 'dan-2');
    assert.deepEqual(events(), ['balance.low:500000']);
    assert.deepEqual(mails(), ['Your M3O balance is low']);
    assert.match(b.mailer.lastTo('dan@example.com')?.text ?? '', /balance is \$0\.50, below \$1\.00[\s\S]*\/dashboard\/#\/billing/);
    await spend(b, dan.payer, 400_000, 'dan-3');
    await b.hub.onBalance(dan.payer, 0);
    assert.deepEqual(events(), ['balance.low:500000', 'balance.zero:0']);
    assert.deepEqual(mails(), ['Your M3O balance is low', 'Your M3O balance is used up']);
    // a hint that lies (an old balance) changes nothing: the ledger is read
    await b.hub.onBalance(dan.payer, 5 * DOLLAR);
    assert.equal(events().length, 2);
    // topped up: silent; falling again announces again
    await staff.Credit({ namespace: 'dans', amount: 3 * DOLLAR, reason: 'again' });
    await spend(b, dan.payer, 2_800_000, 'dan-4');
    assert.deepEqual(events(), ['balance.low:500000', 'balance.zero:0', 'balance.low:200000']);
    const body = b.published.at(-1)?.body as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['at', 'balance', 'payer', 'state', 'threshold']);
    assert.deepEqual([body.state, body.threshold], ['low', DOLLAR]);
  });

  test('concurrent top-ups and spends: no unit created or lost, never below zero', async () => {
    const erin = await b.customer('erin@example.com', 'erins');
    const staff = b.balance(b.admin);
    await staff.RecordPayment({ namespace: 'erins', amount: 5 * DOLLAR, reason: 'first', to: 'balance' });
    const spends = Array.from({ length: 40 }, (_, i) => spend(b, erin.payer, 300_000, `erin-spend-${i}`).then(() => 1, (err: unknown) => (fails(409)(err) ? 0 : Promise.reject(err))));
    const topups = Array.from({ length: 5 }, (_, i) => staff.RecordPayment({ namespace: 'erins', amount: DOLLAR, reason: `top-up ${i}`, to: 'balance' }).then(() => 1));
    const [spent, topped] = await Promise.all([Promise.all(spends), Promise.all(topups)]);
    const ok = spent.reduce((a, n) => a + n, 0);
    assert.equal(topped.length, 5);
    const balance = (await staff.Read({ namespace: 'erins' })).balance;
    assert.equal(balance, 10 * DOLLAR - ok * 300_000);
    assert.ok(balance >= 0 && balance < 300_000 + 5 * DOLLAR);
    const history = await b.balance(erin.token).History({ limit: 200 });
    assert.ok(history.entries.every((e) => e.balanceAfter >= 0));
    assert.equal((await b.engines.ledger.trialBalance()).ok, true);
  });
});

describe('balance service on the nats profile (PostgreSQL)', () => {
  test('credits, refunds and the low-balance watch with the tables in PostgreSQL', async (t) => {
    const db = await testPostgres(t, 'balance');
    if (!db) return;
    const profile = { name: 'nats' as const, natsUrl: '', redisUrl: '', postgresUrl: db.url, prefix: db.prefix };
    const b = await startBalanceHarness({ hub: new PlatformHub({ codeKey: Buffer.alloc(32, 7) }) }, profile);
    t.after(() => b.close());
    const fay = await b.customer('fay@example.com', 'fays');
    const staff = b.balance(b.admin);
    await staff.Credit({ namespace: 'fays', amount: 2 * DOLLAR, reason: 'start', idempotencyKey: 'k1' });
    assert.equal((await staff.Credit({ namespace: 'fays', amount: 2 * DOLLAR, reason: 'start', idempotencyKey: 'k1' })).replayed, true);
    await spend(b, fay.payer, 1_500_000, 'fay-1');
    const refunds = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => staff.Refund({ namespace: 'fays', amount: 500_000, reason: `r${i}` })));
    assert.equal(refunds.filter((r) => r.status === 'fulfilled').length, 3);
    assert.deepEqual(b.published.map((m) => m.topic), ['balance.low']);
    assert.equal((await b.balance(fay.token).Read({})).balance, 2 * DOLLAR);
    assert.equal((await b.engines.ledger.trialBalance()).ok, true);
  });
});
