import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MicroError } from '@micro/sdk';
import { parsePeriod } from '../billing/periods.js';
import { changeFee, fullFee, joinerFee, periodFee, secondsIn, secondsLeft } from './charges.js';
import { whatToRemove } from './fit.js';
import { DEFAULT_PLANS, MAX_PRICE, namespacePlan, PlanBook, planFrom, type Plan } from './plans.js';

/* Plans as data, the money of a change, and what a refused downgrade says: pure functions. */

const plan = (id: string): Plan => DEFAULT_PLANS.find((p) => p.id === id) as Plan;
const bad = (detail: RegExp) => (err: unknown) => err instanceof MicroError && err.code === 400 && detail.test(err.detail);
const feb = parsePeriod('2027-02');

test('planFrom: a new plan needs a name and a price; an update changes only what it names; every field is checked', () => {
  assert.throws(() => planFrom('gold', { name: 'Gold' }), bad(/a new plan needs a name and a price/));
  const gold = planFrom('gold', { name: 'Gold', price: 1, limits: { services: 4 } });
  assert.deepEqual([gold.status, gold.support, gold.sharedNamespaces, gold.limits], ['available', 'community', false, { services: 4 }]);
  const next = planFrom('gold', { limits: { apiKeys: 2 }, sla: { responseHours: 8 } }, gold);
  assert.deepEqual([next.name, next.price, next.limits, next.sla], ['Gold', 1, { services: 4, apiKeys: 2 }, { uptimeBasisPoints: null, responseHours: 8 }]);
  assert.equal(planFrom('gold', { price: 0 }, gold).price, 0, 'free is a price');
  assert.equal(planFrom('gold', { price: MAX_PRICE }, gold).price, MAX_PRICE);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ price: -1 }, /price must be zero or more/],
    [{ price: 0.5 }, /price must be a whole number/],
    [{ price: MAX_PRICE + 1 }, /price: at most/],
    [{ price: Number.NaN }, /price must be a whole number/],
    [{ price: Infinity }, /price must be a whole number/],
    [{ price: '5' }, /price: a number of units, not a string/],
    [{ name: '' }, /^name: /],
    [{ name: 'x'.repeat(65) }, /^name: /],
    [{ name: 'a\u0000b' }, /^name: /],
    [{ description: 'line\nbreak' }, /^description: /],
    [{ limits: { services: 1.5 } }, /limits.services must be a whole number/],
    [{ limits: { services: 2 ** 51 } }, /limits.services must be a whole number from 0 to/],
    [{ limits: [] }, /limits must be an object/],
    [{ support: 'Phone' }, /^support: /],
    [{ sla: { uptimeBasisPoints: -1 } }, /^sla.uptimeBasisPoints: /],
    [{ sla: { responseHours: 0 } }, /^sla.responseHours: /],
    [{ inviteOnly: 'yes' }, /^inviteOnly: true or false/],
    [{ status: 'deleted' }, /^status: one of available, reserved, retired/],
  ];
  for (const [fields, detail] of cases) assert.throws(() => planFrom('gold', fields as never, gold), bad(detail), JSON.stringify(fields));
  for (const id of ['', 'G', 'Gold', 'gold!', 'x'.repeat(33), '-gold', '../x']) assert.throws(() => planFrom(id, { name: 'G', price: 1 }), bad(/^id: /), id);
  // the plan every customer falls back to stays free and available
  assert.throws(() => planFrom('community', { price: 1 }, plan('community')), bad(/its price stays 0 and it stays available/));
  assert.throws(() => planFrom('community', { status: 'retired' }, plan('community')), bad(/stays available/));
  assert.equal(planFrom('community', { limits: { services: 5 } }, plan('community')).limits.services, 5);
});

test('the built-in plans are valid plans, and a plan without shared namespaces holds one member', () => {
  for (const p of DEFAULT_PLANS) assert.deepEqual(planFrom(p.id, p, p), p, p.id);
  assert.deepEqual(DEFAULT_PLANS.map((p) => [p.id, p.price, p.status]), [
    ['community', 0, 'available'],
    ['developer', 35_000_000, 'available'],
    ['team', 35_000_000, 'available'],
    ['platform', 100_000_000, 'available'],
    ['cloud', 0, 'reserved'],
  ]);
  assert.equal(namespacePlan({ ...plan('team'), sharedNamespaces: false }).limits.members, 1);
  assert.equal(namespacePlan(plan('team')).limits.members, 50);
  assert.deepEqual([namespacePlan(plan('developer')).ownersSetLimits, namespacePlan(plan('team')).ownersSetLimits], [false, true]);
});

test('PlanBook: the version in force is the latest from at or before the period; the next one after it', () => {
  const v = (price: number, from: string) => ({ plan: { ...plan('developer'), price }, from, at: 0 });
  const book = new PlanBook([v(3, '2027-03'), v(1, '1970-01'), v(2, '2027-02'), { plan: plan('community'), from: '1970-01', at: 0 }]);
  assert.deepEqual(book.ids(), ['community', 'developer']);
  assert.equal(book.inForce('developer', '2027-01')?.plan.price, 1);
  assert.equal(book.inForce('developer', '2027-02')?.plan.price, 2);
  assert.equal(book.inForce('developer', '2030-12')?.plan.price, 3);
  assert.equal(book.after('developer', '2027-02')?.plan.price, 3);
  assert.equal(book.after('developer', '2027-03'), undefined);
  assert.equal(book.latest('developer')?.from, '2027-03');
  assert.equal(book.inForce('gold', '2027-01'), undefined);
  assert.equal(new PlanBook([{ plan: { ...plan('developer'), id: 'new' }, from: '2027-05', at: 0 }]).inForce('new', '2027-04'), undefined, 'not before it was made');
});

test('to the second: whole seconds left, truncated; a fee from the start is whole, from later its share, rounded toward zero', () => {
  assert.equal(secondsIn(feb), 2_419_200);
  assert.equal(secondsLeft(feb, feb.end - 1_500), 1, 'the part of a second is not counted');
  assert.equal(secondsLeft(feb, feb.start - 5_000), 2_419_200, 'never more than the period');
  assert.equal(secondsLeft(feb, feb.end + 5_000), 0);
  const at = Date.parse('2027-02-10T08:30:15.400Z');
  assert.equal(periodFee({ payer: 'cus_a', period: feb, plan: plan('team'), seats: 3, since: feb.start, at })?.amount, 105_000_000);
  assert.equal(periodFee({ payer: 'cus_a', period: feb, plan: plan('team'), seats: 3, since: at, at })?.amount, 69_921_180);
  assert.equal(periodFee({ payer: 'cus_a', period: feb, plan: plan('community'), seats: 3, since: at, at }), undefined, 'nothing moves for 0');
  const joiner = joinerFee({ payer: 'cus_a', period: feb, plan: plan('platform'), member: 'cus_b', since: Date.parse('2027-02-20T00:00:00Z'), at });
  assert.deepEqual([joiner?.key, joiner?.amount, joiner?.posting.metadata?.seconds], ['seats:cus_a:2027-02:cus_b', 32_142_857, '777600']);
  assert.throws(() => fullFee(MAX_PRICE, 10_001), /seats: 10001 is more than the 10000/);
  assert.equal(fullFee(MAX_PRICE, 10_000), 1e15);
});

test('a change: the rest of the period at the new plan less the old, each rounded, posted as the difference', () => {
  const at = Date.parse('2027-02-10T08:30:15.400Z');
  const up = changeFee({ payer: 'cus_a', period: feb, from: plan('developer'), to: plan('platform'), before: 3, after: 3, at, revision: 4 });
  assert.deepEqual([up.owed, up.credit, up.charge?.amount, up.charge?.key], [199_774_801, 69_921_180, 129_853_621, 'proration:cus_a:2027-02:4']);
  assert.deepEqual(up.charge?.posting.entries, [
    { account: 'customer:cus_a:due', amount: -129_853_621 },
    { account: 'platform:revenue', amount: 129_853_621 },
  ]);
  const down = changeFee({ payer: 'cus_a', period: feb, from: plan('platform'), to: plan('developer'), before: 3, after: 3, at, revision: 5 });
  assert.equal(down.charge?.amount, -129_853_621);
  assert.deepEqual(down.charge?.posting.entries[0], { account: 'customer:cus_a:due', amount: 129_853_621 });
  // Developer to Team at one price and one seat count: nothing moves
  assert.equal(changeFee({ payer: 'cus_a', period: feb, from: plan('developer'), to: plan('team'), before: 2, after: 2, at, revision: 6 }).charge, undefined);
  // a seat added by the change is charged for the rest at the new price
  assert.equal(changeFee({ payer: 'cus_a', period: feb, from: plan('developer'), to: plan('team'), before: 2, after: 3, at, revision: 7 }).charge?.amount, 23_307_060);
});

test('what a refused downgrade says to remove: per namespace, singular and plural', () => {
  assert.equal(
    whatToRemove([
      { namespace: 'acme', key: 'services', used: 8, limit: 5 },
      { namespace: 'acme', key: 'members', used: 2, limit: 1 },
      { namespace: 'beta', key: 'storeBytes', used: 3_000, limit: 1_000 },
      { namespace: 'beta', key: 'apiKeys', used: 6, limit: 5 },
      { namespace: 'beta', key: 'storeRecords', used: 12, limit: 10 },
    ]),
    'kill 3 services and remove 1 member or invite in acme (services 8 of 5, members 2 of 1); delete 2000 bytes of store records, revoke 1 API key and delete 2 store records in beta (storeBytes 3000 of 1000, apiKeys 6 of 5, storeRecords 12 of 10)',
  );
});
