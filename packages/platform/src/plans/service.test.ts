import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Profile } from '@micro/sdk';
import type { CoreContext } from '@micro/server/engine';
import { testPostgres } from '@micro/server/testing';
import { dueAccount } from '../billing/accounts.js';
import { PlatformHub } from '../hub.js';
import { fails, PASSWORD, startSignupHarness, type SignupHarness } from '../signup/testing.js';
import { billingService } from './definition.js';
import { billingCoreService } from './index.js';

/*
 * The billing service as micro server hosts it (the factory on a CoreContext with real
 * auth, quotas and signup, behind the server's guard), with the billing clock in the
 * test's hand. Tenants are strangers: a developer of a team tries to downgrade it, a
 * viewer to cancel it, another customer to read or change it; each must be refused.
 */

const at = (iso: string) => Date.parse(iso);

function suite(engine: 'sqlite' | 'postgres'): void {
  let h: SignupHarness;
  let hub: PlatformHub;
  let now = at('2027-02-01T00:00:00Z');
  let staff: string;
  let ada: string;
  let bob: string;
  let vic: string;
  let mal: string;
  let adaId: string;
  let malId: string;
  const billing = (token?: string) => h.client(billingService, token);
  const signUp = async (email: string, namespace?: string) => {
    if (namespace) await h.as(staff).Invite({ email });
    await h.as().SendCode({ email });
    return (await h.as().CompleteSignup({ email, code: h.codeOf(email), password: PASSWORD, ...(namespace ? { namespace } : {}) })).token;
  };
  const customerId = async (email: string) => (await h.as(staff).ReadCustomer({ email })).customer.id;
  const subs = () => hub.plans({} as CoreContext);

  let skipped: string | undefined;
  const cleanups: (() => unknown)[] = [];
  const it = (name: string, fn: () => Promise<void>) =>
    test(name, async (t) => {
      if (skipped !== undefined) return t.skip(skipped);
      await fn();
    });
  before(async () => {
    let profile: Profile = { name: 'local' };
    if (engine === 'postgres') {
      const db = await testPostgres({ skip: (why) => (skipped = why ?? 'postgres away'), after: (fn) => cleanups.push(fn) }, 'billingsvc');
      if (!db) return;
      profile = { name: 'nats', postgresUrl: db.url, prefix: db.prefix } as unknown as Profile;
    }
    hub = new PlatformHub({ clock: () => now, payerTtl: 0, codeKey: Buffer.alloc(32, 9) });
    h = await startSignupHarness({ hub, sourceLimit: 10_000, now: () => now, codeKey: Buffer.alloc(32, 9) }, profile, [billingCoreService({ hub })]);
    staff = await h.adminToken();
    ada = await signUp('ada@example.com', 'acme');
    mal = await signUp('mal@example.com', 'mals');
    adaId = await customerId('ada@example.com');
    malId = await customerId('mal@example.com');
  });
  after(async () => {
    await h?.close();
    for (const fn of cleanups) await fn();
  });

  it('Plans is public: prices and what each includes; Cloud shown as reserved', async () => {
    const { plans, period } = await billing().Plans({});
    assert.equal(period, '2027-02');
    assert.deepEqual(plans.map((p) => [p.id, p.price, p.status]), [
      ['community', 0, 'available'],
      ['developer', 35_000_000, 'available'],
      ['team', 35_000_000, 'available'],
      ['platform', 100_000_000, 'available'],
      ['cloud', 0, 'reserved'],
    ]);
    const [community, , team, platform] = plans;
    assert.equal(community?.limits.members, 1);
    assert.equal(team?.limits.members, 50);
    assert.equal(team?.perNamespaceQuotas, true);
    assert.deepEqual(platform?.sla, { uptimeBasisPoints: 9995, responseHours: 4 });
    assert.equal(typeof community?.limits.memoryPerInstance, 'number', 'limits in full: the platform defaults where the plan says nothing');
  });

  it('Community: the owner alone (no shared namespaces); the members quota refuses an invite', async () => {
    const { subscription } = await billing(ada).Subscription({});
    assert.deepEqual([subscription.plan.id, subscription.subscribed, subscription.namespaces, subscription.members, subscription.next.amount], ['community', false, ['acme'], 1, 0]);
    assert.equal((await h.quotas.limits('acme')).members, 1);
    await assert.rejects(h.as(ada).InviteMember({ namespace: 'acme', email: 'bob@example.com', role: 'developer' }), fails(403, /quota exceeded: members 1 of 1 used in namespace acme/));
  });

  it('the owner subscribes to Team; members join and their seats are charged from when they joined', async () => {
    now = at('2027-02-08T00:00:00Z');
    const { subscription, charged } = await billing(ada).ChangePlan({ plan: 'team' });
    // one seat, 21 of February's 28 days
    assert.equal(charged, 26_250_000);
    assert.deepEqual([subscription.plan.id, subscription.seats, subscription.charged, subscription.next.amount], ['team', 1, 26_250_000, 35_000_000]);
    assert.equal((await h.quotas.limits('acme')).members, 50);
    await h.as(ada).InviteMember({ namespace: 'acme', email: 'bob@example.com', role: 'developer' });
    await h.as(ada).InviteMember({ namespace: 'acme', email: 'vic@example.com', role: 'viewer' });
    now = at('2027-02-14T00:00:00Z');
    bob = await signUp('bob@example.com');
    vic = await signUp('vic@example.com');
    now = at('2027-02-14T00:01:00Z');
    const run = await (await subs()).runJob();
    assert.equal(run.joiners, 2);
    // 15 days of 28 each, from the second they joined: $18.75 a seat
    const read = (await billing(bob).Subscription({})).subscription;
    assert.deepEqual([read.seats, read.members, read.charged, read.next.amount, read.next.seats], [3, 3, 26_250_000 + 2 * 18_750_000, 105_000_000, 3]);
    assert.equal(await (await hub.billing({ profile: { name: 'local' }, dataDir: '' } as unknown as CoreContext)).ledger.balance(dueAccount(adaId)), -(26_250_000 + 37_500_000));
  });

  it('members read; only the owner who pays changes: a developer and a viewer are refused', async () => {
    assert.equal((await billing(vic).Subscription({})).subscription.plan.id, 'team', 'a viewer reads');
    await assert.rejects(billing(bob).ChangePlan({ plan: 'developer' }), fails(403, /^ChangePlan: only the owner who pays for acme changes its plan \(you are developer/));
    await assert.rejects(billing(bob).Cancel({}), fails(403, /only the owner who pays/));
    await assert.rejects(billing(vic).Cancel({}), fails(403), 'the guard: a viewer only reads');
    await assert.rejects(billing(bob).ChangePlan({ plan: 'developer', customer: adaId }), fails(403));
    assert.equal((await billing(ada).Subscription({})).subscription.plan.id, 'team', 'unchanged');
  });

  it("another customer can neither read nor change acme's plan, by namespace or by customer", async () => {
    await assert.rejects(billing(mal).Subscription({ namespace: 'acme' }), fails(403, /^namespace: account mal@example.com of mals may not see or change the plan of acme$/));
    await assert.rejects(billing(mal).Subscription({ customer: adaId }), fails(403, /^customer: the plan of mals is its owner's/));
    await assert.rejects(billing(mal).ChangePlan({ plan: 'community', customer: adaId }), fails(403));
    await assert.rejects(billing(mal).Cancel({ namespace: 'acme' }), fails(403));
    await assert.rejects(billing(mal).ListSubscriptions({}), fails(403));
    await assert.rejects(billing(mal).UpdatePlan({ id: 'community', name: 'Mine' }), fails(403));
    await assert.rejects(billing().Subscription({}), fails(401));
    await assert.rejects(billing().ChangePlan({ plan: 'team' }), fails(401));
    assert.equal((await billing(ada).Subscription({})).subscription.plan.id, 'team');
    assert.equal((await billing(mal).Subscription({})).subscription.customer, malId, 'its own is its own');
  });

  it('a downgrade below what acme uses is refused with what to remove; bad plans are 400, 404, 409', async () => {
    await assert.rejects(billing(ada).ChangePlan({ plan: 'developer' }), fails(409, /^plan: your namespaces use more than Developer includes: remove 2 members or invites in acme \(members 3 of 1\) first$/));
    await assert.rejects(billing(ada).ChangePlan({ plan: 'team' }), fails(409, /on Team already/));
    await assert.rejects(billing(ada).ChangePlan({ plan: 'gold' }), fails(404, /no plan gold/));
    await assert.rejects(billing(ada).ChangePlan({ plan: 'cloud' }), fails(409, /reserved/));
    for (const plan of ['', 'Gold!', 'x'.repeat(65), '../team']) await assert.rejects(billing(ada).ChangePlan({ plan }), fails(400), JSON.stringify(plan));
    await assert.rejects(billing(ada).ChangePlan({ plan: 'team', extra: 1 } as never), fails(400));
    await assert.rejects(billing(ada).ChangePlan({ plan: 7 } as never), fails(400));
  });

  it('cancel and resume: at period end, then Community', async () => {
    assert.equal((await billing(ada).Cancel({})).subscription.cancelAtPeriodEnd, true);
    const read = (await billing(ada).Subscription({})).subscription;
    assert.deepEqual([read.plan.id, read.next.plan, read.next.amount], ['team', 'community', 0]);
    assert.equal((await billing(ada).Resume({})).subscription.cancelAtPeriodEnd, false);
    assert.equal((await billing(ada).Subscription({})).subscription.next.amount, 105_000_000);
  });

  it('staff: any customer by id or email; plans created, changed from the next period, retired; hostile input is a 400', async () => {
    assert.equal((await billing(staff).Subscription({ customer: 'ada@example.com' })).subscription.customer, adaId);
    assert.equal((await billing(staff).Subscription({ namespace: 'acme' })).subscription.customer, adaId);
    await assert.rejects(billing(staff).Subscription({}), fails(400, /^customer: staff name the customer/));
    await assert.rejects(billing(staff).Subscription({ customer: 'cus_nobody' }), fails(404));
    const made = await billing(staff).CreatePlan({ id: 'startup', name: 'Startup', price: 20_000_000, limits: { services: 10 } });
    assert.deepEqual([made.plan.from, made.plan.limits.services, made.plan.status], ['2027-02', 10, 'available']);
    await assert.rejects(billing(staff).CreatePlan({ id: 'startup', name: 'Again', price: 1 }), fails(409, /exists/));
    const next = await billing(staff).UpdatePlan({ id: 'startup', price: 25_000_000 });
    assert.deepEqual([next.plan.from, next.plan.price], ['2027-03', 25_000_000]);
    const listed = (await billing(staff).ListPlans({})).plans.find((p) => p.current.id === 'startup');
    assert.deepEqual([listed?.current.price, listed?.next?.price, listed?.versions], [20_000_000, 25_000_000, 2]);
    assert.equal((await billing(staff).RetirePlan({ id: 'startup' })).plan.status, 'retired');
    assert.equal((await billing(staff).ListSubscriptions({})).subscriptions.find((s) => s.customer === adaId)?.plan, 'team');

    const bad: [Record<string, unknown>, RegExp][] = [
      [{ id: 'p1', name: 'P', price: -1 }, /price must be zero or more/],
      [{ id: 'p1', name: 'P', price: 1.5 }, /price must be a whole number of units/],
      [{ id: 'p1', name: 'P', price: 2 ** 60 }, /price must be a whole number/],
      [{ id: 'p1', name: 'P', price: 2 ** 52 }, /price must be at most 1000000000000000 units/],
      [{ id: 'p1', name: 'P', price: 100_000_000_001 }, /price: at most 100000000000 units/],
      [{ id: 'p1', name: 'P', price: '35' }, /price/],
      [{ id: 'p1', name: 'P', price: null }, /price/],
      [{ id: 'p1', price: 1 }, /a new plan needs a name and a price/],
      [{ id: 'P 1', name: 'P', price: 1 }, /^id: /],
      [{ id: 'p1', name: 'P\r\nX', price: 1 }, /^name: /],
      [{ id: 'p1', name: 'P', price: 1, limits: { storeBytes: -1 } }, /limits.storeBytes must be a whole number/],
      [{ id: 'p1', name: 'P', price: 1, limits: { rootAccess: 1 } }, /limits.rootAccess is not a limit/],
      [{ id: 'p1', name: 'P', price: 1, support: 'phone' }, /^support: one of community, email, priority/],
      [{ id: 'p1', name: 'P', price: 1, sla: { uptimeBasisPoints: 10_001 } }, /^sla.uptimeBasisPoints: /],
      [{ id: 'p1', name: 'P', price: 1, status: 'gone' }, /^status: one of available, reserved, retired/],
    ];
    for (const [req, detail] of bad) await assert.rejects(billing(staff).CreatePlan(req as never), fails(400, detail), JSON.stringify(req));
    assert.equal((await billing(staff).ListPlans({})).plans.some((p) => p.current.id === 'p1'), false, 'nothing was made');
    await assert.rejects(billing(staff).UpdatePlan({ id: 'community', price: 1 }), fails(400, /free plan every customer falls back to/));
    await assert.rejects(billing(staff).RetirePlan({ id: 'community' }), fails(400, /stays available/));
    await assert.rejects(billing(staff).UpdatePlan({ id: 'nope', price: 1 }), fails(404));
    await assert.rejects(billing(staff).UpdatePlan({ id: 'team' }), fails(400, /at least one field/));
  });

  it('staff change a customer; the quotas follow the plan at once', async () => {
    const { subscription } = await billing(staff).ChangePlan({ customer: 'ada@example.com', plan: 'platform' });
    assert.equal(subscription.plan.id, 'platform');
    assert.equal((await h.quotas.limits('acme')).requestsPerSecond, 500);
    assert.equal((await h.quotas.limits('mals')).requestsPerSecond, 10, 'another customer: Community');
  });
}

describe('the billing service through the real guard (SQLite)', () => suite('sqlite'));
describe('the billing service through the real guard (PostgreSQL)', () => suite('postgres'));
