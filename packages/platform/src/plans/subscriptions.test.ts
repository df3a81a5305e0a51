import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MicroError } from '@micro/sdk';
import { dueAccount, PLATFORM_REVENUE } from '../billing/accounts.js';
import type { Ledger } from '../ledger/index.js';
import { openWorld, type World } from './testing.js';

/*
 * Subscriptions over real engines (SQLite; PostgreSQL where it says) with the billing
 * clock in the test's hand: pro-ration to the second with the README's worked example,
 * seats of members joining mid-period, the period job exactly once whatever the clock
 * does, cancellation at period end, a customer deleted mid-period, downgrades refused
 * with what to remove, plans changed from the next period only, charges the ledger
 * missed posted again.
 */

const at = (iso: string) => Date.parse(iso);
const $ = (dollars: number) => dollars * 1_000_000;

const fails = (code: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, code, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

async function due(w: World, payer: string): Promise<number> {
  return w.ledger.balance(dueAccount(payer)).catch(() => 0);
}

/** ada owns acme with bob and cy as members: three seats */
async function acme(w: World) {
  const ada = await w.customer('ada@example.com', 'acme');
  const bob = await w.customer('bob@example.com', 'bobs');
  const cy = await w.customer('cy@example.com', 'cys');
  await w.join(bob, 'bob@example.com', 'acme');
  await w.join(cy, 'cy@example.com', 'acme', 'viewer');
  return { ada, bob, cy };
}

describe('subscriptions', () => {
  test('the worked example: subscribe, upgrade, a member joins, the next periods, the clock back and forward', async (t) => {
    const w = (await openWorld(t, 'sqlite', at('2027-02-01T00:00:00Z'))) as World;
    const { ada } = await acme(w);
    const subs = await w.subscriptions();

    // Team from 2027-02-03T00:00:00Z: 3 seats for 26 of February's 28 days
    w.now = at('2027-02-03T00:00:00Z');
    const first = await subs.change(ada, 'team');
    assert.equal(first.charged, 97_500_000);
    const fee = await w.ledger.posting(`seats:${ada}:2027-02`);
    assert.deepEqual(fee?.entries, [
      { account: dueAccount(ada), amount: -97_500_000 },
      { account: PLATFORM_REVENUE, amount: 97_500_000 },
    ]);
    assert.deepEqual(
      { kind: fee?.metadata.kind, plan: fee?.metadata.plan, seats: fee?.metadata.seats, period: fee?.metadata.period, seconds: fee?.metadata.seconds, of: fee?.metadata.of },
      { kind: 'seats', plan: 'team', seats: '3', period: '2027-02', seconds: '2246400', of: '2419200' },
    );

    // Platform at 2027-02-10T08:30:15.400Z: 1,610,984 whole seconds left of 2,419,200
    w.now = at('2027-02-10T08:30:15.400Z');
    const up = await subs.change(ada, 'platform');
    assert.equal(up.charged, 199_774_801 - 69_921_180);
    const proration = await w.ledger.posting(`proration:${ada}:2027-02:2`);
    assert.equal(proration?.metadata.kind, 'proration');
    assert.deepEqual([proration?.metadata.charge, proration?.metadata.credit, proration?.metadata.previous, proration?.metadata.plan], ['199774801', '69921180', 'team', 'platform']);
    assert.equal(await due(w, ada), -(97_500_000 + 129_853_621));

    // dan joins acme on the 20th; the job a little later charges his seat from the second he joined
    const dan = await w.customer('dan@example.com', 'dans');
    w.now = at('2027-02-20T00:00:00Z');
    await w.join(dan, 'dan@example.com', 'acme');
    w.now = at('2027-02-20T00:00:42Z');
    const run = await subs.runJob();
    assert.deepEqual([run.periods, run.joiners, run.posted], [0, 1, 0]);
    assert.equal((await w.ledger.posting(`seats:${ada}:2027-02:${dan}`))?.entries[0]?.amount, -32_142_857);
    assert.deepEqual((await subs.runJob()).joiners, 0, 'once');

    // March: four seats at Platform's price, once however often the job runs
    w.now = at('2027-03-01T00:00:30Z');
    assert.equal((await subs.runJob()).periods, 1);
    assert.equal((await subs.runJob()).periods, 0);
    assert.equal((await w.ledger.posting(`seats:${ada}:2027-03`))?.entries[0]?.amount, -$(400));
    const march = await due(w, ada);

    // the clock back across the boundary: nothing twice; then three periods ahead: each once
    w.now = at('2027-02-28T23:59:59Z');
    assert.deepEqual(await subs.runJob(), { periods: 0, joiners: 0, ended: 0, posted: 0, failed: 0 });
    assert.equal(await due(w, ada), march);
    w.now = at('2027-06-15T12:00:00Z');
    assert.equal((await subs.runJob()).periods, 3);
    assert.equal((await subs.runJob()).periods, 0);
    for (const p of ['2027-04', '2027-05', '2027-06']) assert.equal((await w.ledger.posting(`seats:${ada}:${p}`))?.entries[0]?.amount, -$(400), p);
    assert.equal(await due(w, ada), march - 3 * $(400));
    assert.deepEqual((await subs.charges(ada)).map((c) => c.key), [
      `seats:${ada}:2027-02`,
      `proration:${ada}:2027-02:2`,
      `seats:${ada}:2027-02:${dan}`,
      `seats:${ada}:2027-03`,
      `seats:${ada}:2027-04`,
      `seats:${ada}:2027-05`,
      `seats:${ada}:2027-06`,
    ]);
    assert.equal((await w.storage.pending(10)).length, 0);
    assert.equal((await w.ledger.trialBalance()).ok, true);
  });

  test('a downgrade is refused while the namespaces use more than the plan includes, with what to remove first', async (t) => {
    const w = (await openWorld(t, 'sqlite', at('2027-02-01T00:00:00Z'))) as World;
    const { ada, bob, cy } = await acme(w);
    let services = 25;
    w.quotas.addSource(async (ns) => ({ members: (await w.signup.members(ns)).length, ...(ns === 'acme' ? { services } : {}) }));
    const subs = await w.subscriptions();
    await subs.change(ada, 'platform');
    const before = await due(w, ada);
    await assert.rejects(subs.change(ada, 'developer'), fails(409, /^plan: your namespaces use more than Developer includes: kill 5 services and remove 2 members or invites in acme \(services 25 of 20, members 3 of 1\) first$/));
    assert.equal(await due(w, ada), before, 'nothing charged or credited');
    assert.equal((await subs.standing(ada)).plan.plan.id, 'platform');
    // Team fits the members but not the services either; once they are gone it goes through
    await assert.rejects(subs.change(ada, 'team'), fails(409, /kill 5 services in acme \(services 25 of 20\)/));
    await w.signup.removeMember('acme', bob, true);
    await w.signup.removeMember('acme', cy, true);
    services = 20;
    const down = await subs.change(ada, 'developer');
    assert.ok(down.charged < 0, 'a downgrade mid-period is a credit');
  });

  test('a downgrade drops the owners settings above the new plan; staff settings on keys it does not lower stay', async (t) => {
    const w = (await openWorld(t, 'sqlite', at('2027-02-01T00:00:00Z'))) as World;
    const ada = await w.customer('ada@example.com', 'acme');
    const subs = await w.subscriptions();
    await subs.change(ada, 'team');
    await w.quotas.set('acme', { apiKeys: 80, memoryPerInstance: 4 * 1024 ** 3 });
    await subs.change(ada, 'developer');
    assert.deepEqual(await w.quotas.settings('acme'), { memoryPerInstance: 4 * 1024 ** 3 });
  });

  test('cancel at period end: the plan stays until the period ends, then Community, nothing more charged; resume keeps it', async (t) => {
    const w = (await openWorld(t, 'sqlite', at('2027-02-15T00:00:00Z'))) as World;
    const ada = await w.customer('ada@example.com', 'acme');
    const subs = await w.subscriptions();
    await subs.change(ada, 'developer');
    await subs.setCancel(ada, true);
    await subs.setCancel(ada, false);
    w.now = at('2027-03-01T00:00:10Z');
    await subs.runJob();
    assert.equal((await w.ledger.posting(`seats:${ada}:2027-03`))?.metadata.plan, 'developer', 'resumed: March is charged');
    await subs.setCancel(ada, true);
    assert.equal((await subs.planOf(ada))?.plan.id, 'developer', 'until the period ends');
    assert.equal((await subs.namespacePlan('acme'))?.id, 'developer');
    assert.equal((await subs.namespacePlan('acme'))?.owner, ada, 'the payer owns it');
    const before = await due(w, ada);
    w.now = at('2027-04-01T00:00:05Z');
    // the quotas see Community from the boundary on, before the job has run
    assert.equal((await subs.planOf(ada))?.plan.id, 'community');
    assert.deepEqual((await subs.namespacePlan('acme'))?.limits.members, 1);
    await subs.runJob();
    assert.equal(await w.ledger.posting(`seats:${ada}:2027-04`), undefined);
    assert.equal(await due(w, ada), before);
    const row = await w.storage.subscription(ada);
    assert.deepEqual([row?.plan, row?.cancelAtPeriodEnd, row?.since], ['community', false, at('2027-04-01T00:00:00Z')]);
    await assert.rejects(subs.setCancel(ada, true), fails(409, /free plan: there is nothing to cancel/));
  });

  test("the runtime is told of the namespaces whose plan changed: at a change, and when a cancellation takes effect; never of a stranger's", async (t) => {
    const w = (await openWorld(t, 'sqlite', at('2027-02-15T00:00:00Z'))) as World;
    const ada = await w.customer('ada@example.com', 'acme');
    // a stranger with a look-alike name who is a member of acme: ada's change tells acme only, never eve's own
    const eve = await w.customer('eve@example.com', 'acme-x');
    await w.join(eve, 'eve@example.com', 'acme');
    const told: string[] = [];
    const subs = await w.subscriptions({ namespaceChanged: (namespace) => told.push(namespace) });
    await subs.change(ada, 'developer');
    assert.deepEqual(told, ['acme']);
    await subs.setCancel(ada, true);
    assert.deepEqual(told, ['acme'], 'a cancellation changes nothing until the period ends');
    w.now = at('2027-03-01T00:00:05Z');
    await subs.runJob();
    assert.deepEqual(told, ['acme', 'acme']);
    assert.equal((await subs.namespacePlan('acme'))?.id, 'community');
    await subs.runJob();
    assert.deepEqual(told, ['acme', 'acme'], 'once');
  });

  test('a customer deleted mid-period: their fees stop, nothing is posted after the deletion', async (t) => {
    const w = (await openWorld(t, 'sqlite', at('2027-02-15T00:00:00Z'))) as World;
    const ada = await w.customer('ada@example.com', 'acme');
    const subs = await w.subscriptions();
    await subs.change(ada, 'developer');
    const charged = await due(w, ada);
    w.now = at('2027-02-20T00:00:00Z');
    await w.signup.deleteCustomer(ada, w.now);
    w.now = at('2027-05-01T00:00:00Z');
    const run = await subs.runJob();
    assert.deepEqual([run.ended, run.periods], [1, 0]);
    assert.equal(await due(w, ada), charged);
    assert.equal((await subs.charges(ada)).length, 1);
    assert.equal((await w.storage.subscription(ada))?.status, 'ended');
    assert.equal((await subs.runJob()).ended, 0);
    await assert.rejects(subs.change(ada, 'team'), fails(404, /no customer/));
  });

  test('bad changes: unknown plan, the same plan, a reserved or retired plan', async (t) => {
    const w = (await openWorld(t, 'sqlite', at('2027-02-15T00:00:00Z'))) as World;
    const ada = await w.customer('ada@example.com', 'acme');
    const subs = await w.subscriptions();
    await assert.rejects(subs.change(ada, 'gold'), fails(404, /^plan: no plan gold/));
    await assert.rejects(subs.change(ada, 'community'), fails(409, /you are on Community already/));
    await assert.rejects(subs.change(ada, 'cloud'), fails(409, /Cloud is reserved: it takes no subscriptions yet/));
    await subs.change(ada, 'developer');
    await assert.rejects(subs.change(ada, 'developer'), fails(409, /on Developer already/));
    // retired from the next period: taken this period, not the next; those on it keep it
    await subs.updatePlan('developer', { status: 'retired' });
    const bo = await w.customer('bo@example.com', 'bos');
    await subs.change(bo, 'developer');
    w.now = at('2027-03-02T00:00:00Z');
    const cy = await w.customer('cy@example.com', 'cys');
    await assert.rejects(subs.change(cy, 'developer'), fails(409, /Developer is retired: it takes no subscriptions$/));
    await subs.runJob();
    assert.equal((await w.ledger.posting(`seats:${ada}:2027-03`))?.metadata.plan, 'developer');
    assert.equal(await due(w, cy), 0);
  });

  test('a change of plan applies from the next period: this one keeps the old version, the next fee the new', async (t) => {
    const w = (await openWorld(t, 'sqlite', at('2027-02-01T00:00:00Z'))) as World;
    const ada = await w.customer('ada@example.com', 'acme');
    const subs = await w.subscriptions();
    await subs.change(ada, 'developer');
    w.now = at('2027-02-10T00:00:00Z');
    const v = await subs.updatePlan('developer', { price: $(40), limits: { requestsPerSecond: 77 } });
    assert.equal(v.from, '2027-03');
    assert.equal((await subs.planOf(ada))?.plan.price, $(35));
    assert.equal((await subs.namespacePlan('acme'))?.limits.requestsPerSecond, 50);
    const bo = await w.customer('bo@example.com', 'bos');
    await subs.change(bo, 'developer');
    const bos = await w.ledger.posting(`seats:${bo}:2027-02`);
    assert.deepEqual([bos?.metadata.listPrice, bos?.metadata.price], [String($(35)), undefined], 'subscribed this period: this period\'s version, pro-rated');
    // a second change in the period replaces the pending version, not the one in force
    await subs.updatePlan('developer', { price: $(41) });
    assert.equal((await subs.book()).versions('developer').length, 2);
    w.now = at('2027-03-01T00:01:00Z');
    await subs.runJob();
    const march = await w.ledger.posting(`seats:${ada}:2027-03`);
    assert.deepEqual([march?.entries[0]?.amount, march?.metadata.price, march?.metadata.seats], [-$(41), String($(41)), '1'], 'a whole period: seats × price is the amount');
    assert.equal((await subs.namespacePlan('acme'))?.limits.requestsPerSecond, 77);
  });

  test('a charge the ledger did not take is posted by the next run, under its key, once', async (t) => {
    const w = (await openWorld(t, 'sqlite', at('2027-02-15T00:00:00Z'))) as World;
    const ada = await w.customer('ada@example.com', 'acme');
    let down = true;
    const flaky: Ledger = new Proxy(w.ledger, {
      get: (target, prop, receiver) => (prop === 'post' && down ? () => Promise.reject(new Error('ledger away')) : Reflect.get(target, prop, receiver)),
    });
    const subs = await w.subscriptions({ ledger: flaky });
    await subs.change(ada, 'developer');
    assert.equal(await due(w, ada), 0);
    assert.equal((await w.storage.pending(10)).length, 1);
    down = false;
    assert.equal((await subs.runJob()).posted, 1);
    assert.equal((await subs.runJob()).posted, 0);
    assert.ok((await due(w, ada)) < 0);
    assert.equal((await w.storage.pending(10)).length, 0);
  });
});

describe('subscriptions on PostgreSQL', () => {
  test('two nodes running the job at once across three periods: each fee once', async (t) => {
    const w = await openWorld(t, 'postgres', at('2027-01-20T00:00:00Z'));
    if (!w) return;
    const ada = await w.customer('ada@example.com', 'acme');
    const [a, b, c] = [await w.subscriptions(), await w.subscriptions(), await w.subscriptions()];
    await a.change(ada, 'team');
    w.now = at('2027-04-02T00:00:00Z');
    const runs = await Promise.all([a.runJob(), b.runJob(), c.runJob()]);
    assert.equal(runs.reduce((n, r) => n + r.periods, 0), 3);
    assert.equal(await due(w, ada), -(Math.trunc((35_000_000 * 12 * 86_400) / (31 * 86_400)) + 3 * $(35)));
    assert.equal((await w.ledger.trialBalance()).ok, true);
  });
});
