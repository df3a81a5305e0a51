import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_PLANS, type PlanVersion } from './plans.js';
import type { BillingStorage, ChargeRow, SubscriptionRow } from './storage.js';

/**
 * The behaviour every engine of billing's storage has (SQLite, PostgreSQL), run by each
 * engine's test file. `make` gives a fresh, empty storage (undefined: the engine is away
 * and the test was skipped); the suite closes it.
 */
export type MakeBillingStorage = (t: { skip(message?: string): void; after(fn: () => unknown): void }) => Promise<BillingStorage | undefined>;

const T0 = Date.UTC(2027, 0, 10);
const [community, developer] = DEFAULT_PLANS as [(typeof DEFAULT_PLANS)[number], (typeof DEFAULT_PLANS)[number]];

const row = (customer: string, extra: Partial<SubscriptionRow> = {}): SubscriptionRow => ({
  customer,
  plan: 'developer',
  since: T0,
  period: '2027-01',
  cancelAtPeriodEnd: false,
  status: 'active',
  revision: 1,
  createdAt: T0,
  updatedAt: T0,
  ...extra,
});

const charge = (key: string, payer: string, amount: number, period = '2027-01'): ChargeRow => ({
  key,
  payer,
  period,
  kind: 'seats',
  amount,
  at: T0,
  posting: { key, reason: 'seats', entries: [{ account: `customer:${payer}:due`, amount: -amount }, { account: 'platform:revenue', amount }], metadata: { kind: 'seats', period } },
});

export function billingStorageContract(engine: string, make: MakeBillingStorage): void {
  const it = (name: string, fn: (s: BillingStorage) => Promise<void>) =>
    test(`${engine}: ${name}`, async (t) => {
      const s = await make(t);
      if (!s) return;
      t.after(() => s.close());
      await fn(s);
    });

  it('plan versions: seed once, create only a new plan, update replaces the version of its period', async (s) => {
    const v = (plan: PlanVersion['plan'], from: string, at = T0): PlanVersion => ({ plan, from, at });
    assert.equal(await s.putVersion(v(community, '1970-01'), 'seed'), true);
    assert.equal(await s.putVersion(v({ ...community, name: 'changed' }, '1970-01'), 'seed'), false, 'a seed never overwrites');
    assert.equal(await s.putVersion(v(developer, '2027-01'), 'create'), true);
    assert.equal(await s.putVersion(v(developer, '2027-02'), 'create'), false, 'the plan exists');
    assert.equal(await s.putVersion(v({ ...developer, price: 1 }, '2027-02'), 'update'), true);
    assert.equal(await s.putVersion(v({ ...developer, price: 2 }, '2027-02', T0 + 1), 'update'), true);
    const all = await s.versions();
    assert.deepEqual(all.map((x) => [x.plan.id, x.from, x.plan.price, x.plan.name]), [
      ['community', '1970-01', 0, 'Community'],
      ['developer', '2027-01', developer.price, 'Developer'],
      ['developer', '2027-02', 2, 'Developer'],
    ]);
    assert.deepEqual(all[0]?.plan, community, 'the whole plan comes back');
  });

  it('commit: a compare-and-set on the revision, with its seats and charges, all or nothing', async (s) => {
    assert.equal(await s.commit({ expect: 1, row: row('cus_a', { revision: 2 }) }), false, 'no row yet: revision 0');
    assert.equal(await s.commit({ expect: 0, row: row('cus_a'), seats: [{ payer: 'cus_a', period: '2027-01', member: 'cus_a', since: T0 }], charges: [charge('seats:cus_a:2027-01', 'cus_a', 5)] }), true);
    assert.equal(await s.commit({ expect: 0, row: row('cus_a') }), false, 'made already');
    assert.deepEqual(await s.subscription('cus_a'), row('cus_a'));
    const next = row('cus_a', { plan: 'team', revision: 2, cancelAtPeriodEnd: true, updatedAt: T0 + 5 });
    assert.equal(await s.commit({ expect: 1, row: next, seats: [{ payer: 'cus_a', period: '2027-01', member: 'cus_b', since: T0 + 5 }] }), true);
    assert.deepEqual(await s.subscription('cus_a'), next);
    assert.equal(await s.commit({ expect: 1, row: row('cus_a', { revision: 2 }) }), false, 'stale revision');
    // a charge whose key exists rolls the whole commit back: row, seats and all
    const lost = row('cus_a', { plan: 'platform', revision: 3 });
    assert.equal(await s.commit({ expect: 2, row: lost, seats: [{ payer: 'cus_a', period: '2027-01', member: 'cus_c', since: T0 }], charges: [charge('seats:cus_a:2027-01', 'cus_a', 7)] }), false);
    assert.deepEqual(await s.subscription('cus_a'), next);
    assert.deepEqual((await s.seats('cus_a', '2027-01')).map((x) => x.member), ['cus_a', 'cus_b']);
    // a seat already there stays as it was
    assert.equal(await s.commit({ expect: 2, row: row('cus_a', { revision: 3 }), seats: [{ payer: 'cus_a', period: '2027-01', member: 'cus_a', since: T0 + 99 }] }), true);
    assert.equal((await s.seats('cus_a', '2027-01')).find((x) => x.member === 'cus_a')?.since, T0);
  });

  it('racing commits on one revision: exactly one wins', async (s) => {
    await s.commit({ expect: 0, row: row('cus_r') });
    const tries = await Promise.all(Array.from({ length: 8 }, (_, i) => s.commit({ expect: 1, row: row('cus_r', { revision: 2, plan: `p${i}` }), charges: [charge(`k${i}`, 'cus_r', 1)] })));
    assert.equal(tries.filter(Boolean).length, 1);
    assert.equal((await s.charges('cus_r')).length, 1);
    const firsts = await Promise.all(Array.from({ length: 5 }, () => s.commit({ expect: 0, row: row('cus_new') })));
    assert.equal(firsts.filter(Boolean).length, 1);
  });

  it('charges: by payer and period in order, pending until marked posted', async (s) => {
    await s.commit({ expect: 0, row: row('cus_a'), charges: [charge('c1', 'cus_a', 10), charge('c2', 'cus_a', -4)] });
    await s.commit({ expect: 0, row: row('cus_b'), charges: [charge('c3', 'cus_b', 3, '2027-02')] });
    assert.deepEqual((await s.charges('cus_a')).map((c) => [c.key, c.amount]), [['c1', 10], ['c2', -4]]);
    assert.deepEqual((await s.charges('cus_b', '2027-01')).length, 0);
    assert.deepEqual((await s.charges('cus_b', '2027-02'))[0]?.posting, charge('c3', 'cus_b', 3, '2027-02').posting, 'the posting comes back as recorded');
    assert.deepEqual((await s.pending(10)).map((c) => c.key), ['c1', 'c2', 'c3']);
    await s.markPosted('c2', T0 + 1);
    await s.markPosted('c2', T0 + 9);
    assert.deepEqual((await s.pending(2)).map((c) => c.key), ['c1', 'c3']);
    assert.equal((await s.charges('cus_a'))[1]?.postedAt, T0 + 1, 'marked once');
  });

  it('subscriptions: pages by customer; due ones are active with an earlier period; by plan', async (s) => {
    for (const [c, extra] of [
      ['cus_1', { period: '2027-01' }],
      ['cus_2', { period: '2027-02' }],
      ['cus_3', { period: '2026-12', status: 'ended' as const }],
      ['cus_4', { period: '2026-11', plan: 'team' }],
    ] as const) {
      await s.commit({ expect: 0, row: row(c, extra) });
    }
    const first = await s.subscriptions({ limit: 2 });
    assert.deepEqual(first.items.map((r) => r.customer), ['cus_1', 'cus_2']);
    const second = await s.subscriptions({ limit: 2, after: first.next });
    assert.deepEqual(second.items.map((r) => r.customer), ['cus_3', 'cus_4']);
    assert.equal(second.next, undefined);
    assert.deepEqual((await s.subscriptions({ limit: 10, due: '2027-02' })).items.map((r) => r.customer), ['cus_1', 'cus_4']);
    assert.deepEqual((await s.subscriptions({ limit: 10, plan: 'team' })).items.map((r) => r.customer), ['cus_4']);
    // a cursor is a value, never SQL: it sorts before every id here
    assert.equal((await s.subscriptions({ limit: 10, after: "' OR 1=1 --" })).items.length, 4);
    assert.equal((await s.subscriptions({ limit: 10, after: 'cus_4' })).items.length, 0);
  });
}
