import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MicroError } from '@micro/sdk';
import type { Claim, SignupStorage } from './storage.js';

/**
 * The behaviour every engine of the signup storage has (SQLite, PostgreSQL): run by each
 * engine's test file. `make` gives a fresh, empty storage for one test (undefined: the
 * engine is away and the test was skipped), closed by the suite.
 */
export type MakeSignupStorage = (t: { skip(message?: string): void; after(fn: () => unknown): void }) => Promise<SignupStorage | undefined>;

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

const status = (code: number) => (err: unknown) => err instanceof MicroError && err.code === code;

const claimOf = (id: string, email: string, extra: Partial<Claim> = {}): Claim => ({
  customer: { id, email },
  owns: `ns-${id}`,
  account: email,
  now: T0,
  staleBefore: T0 - 5 * 60_000,
  ...extra,
});

export function signupStorageContract(engine: string, make: MakeSignupStorage): void {
  const it = (name: string, fn: (s: SignupStorage) => Promise<void>) =>
    test(`${engine}: ${name}`, async (t) => {
      const s = await make(t);
      if (!s) return;
      t.after(() => s.close());
      await fn(s);
    });

  it('invites: live until used, revoked or expired; pages by id', async (s) => {
    for (let i = 0; i < 5; i++) await s.createInvite({ id: `inv_${i}`, email: `p${i}@example.com`, createdAt: T0, expiresAt: T0 + HOUR, ...(i === 0 ? { namespace: 'team-a' } : {}) });
    assert.equal((await s.liveInvite('p0@example.com', T0))?.namespace, 'team-a');
    assert.equal(await s.liveInvite('p0@example.com', T0 + HOUR), undefined, 'expired');
    assert.equal(await s.revokeInvite('inv_1', T0), true);
    assert.equal(await s.revokeInvite('inv_1', T0), false, 'twice');
    assert.equal(await s.revokeInvite('nope', T0), false);
    assert.equal(await s.liveInvite('p1@example.com', T0), undefined);
    assert.equal((await s.getInvite('inv_1'))?.revokedAt, T0);
    assert.equal(await s.countInvites(T0), 4);
    const first = await s.listInvites(3);
    assert.deepEqual(first.items.map((i) => i.id), ['inv_0', 'inv_1', 'inv_2']);
    const second = await s.listInvites(3, first.next);
    assert.deepEqual(second.items.map((i) => i.id), ['inv_3', 'inv_4']);
    assert.equal(second.next, undefined);
  });

  it('waiting list: once per email, bounded, oldest first, each taken once', async (s) => {
    assert.equal(await s.joinWaitlist('b@example.com', T0 + 2, 3), true);
    assert.equal(await s.joinWaitlist('a@example.com', T0 + 1, 3), true);
    assert.equal(await s.joinWaitlist('a@example.com', T0 + 9, 3), true, 'joining twice is fine');
    assert.equal(await s.joinWaitlist('c@example.com', T0 + 2, 3), true);
    assert.equal(await s.joinWaitlist('d@example.com', T0 + 3, 3), false, 'full');
    assert.equal(await s.joinWaitlist('a@example.com', T0 + 9, 3), true, 'already on a full list');
    const p1 = await s.listWaitlist(2);
    assert.deepEqual(p1.items.map((e) => e.email), ['a@example.com', 'b@example.com']);
    assert.equal(p1.items[0]?.createdAt, T0 + 1, 'the first join counts');
    assert.deepEqual((await s.listWaitlist(2, p1.next)).items.map((e) => e.email), ['c@example.com']);
    const [x, y] = await Promise.all([s.takeWaitlist(2, T0 + 10), s.takeWaitlist(2, T0 + 10)]);
    assert.deepEqual([...(x ?? []), ...(y ?? [])].sort(), ['a@example.com', 'b@example.com', 'c@example.com'], 'each taken once');
    assert.deepEqual(await s.takeWaitlist(5, T0 + 11), []);
    await s.untakeWaitlist(['c@example.com']);
    assert.deepEqual(await s.takeWaitlist(5, T0 + 12), ['c@example.com']);
    assert.equal((await s.listWaitlist(1)).items[0]?.invitedAt, T0 + 10);
  });

  it('sends: at most max per window, counted atomically', async (s) => {
    const results = await Promise.all(Array.from({ length: 8 }, () => s.countSend('code:a@example.com', T0, HOUR, 3)));
    assert.equal(results.filter(Boolean).length, 3);
    assert.equal(await s.countSend('code:b@example.com', T0, HOUR, 3), true, 'per key');
    assert.equal(await s.countSend('code:a@example.com', T0 + HOUR, HOUR, 3), true, 'a new window');
  });

  it('codes: each check counts before comparing; dead after max; expired; replaced', async (s) => {
    await s.putCode('a@example.com', 'h1', T0 + 1000);
    const checks = await Promise.all(Array.from({ length: 9 }, () => s.checkCode('a@example.com', T0, 5)));
    assert.equal(checks.filter(Boolean).length, 5, 'parallel guesses get no more than max checks');
    assert.equal(await s.checkCode('a@example.com', T0, 5), undefined, 'dead');
    await s.putCode('a@example.com', 'h2', T0 + 1000);
    assert.deepEqual(await s.checkCode('a@example.com', T0, 5), { hash: 'h2', expiresAt: T0 + 1000, attempts: 1 }, 'a new code starts afresh');
    assert.equal(await s.checkCode('a@example.com', T0 + 1000, 5), undefined, 'expired');
    assert.equal(await s.checkCode('nobody@example.com', T0, 5), undefined);
  });

  it('claim → verified → finish: the customer active, the namespace active, the code and invite used', async (s) => {
    await s.putCode('a@example.com', 'h', T0 + HOUR);
    await s.createInvite({ id: 'inv_a', email: 'a@example.com', createdAt: T0, expiresAt: T0 + HOUR });
    assert.equal(await s.claim(claimOf('c1', 'a@example.com')), undefined);
    assert.equal((await s.getCustomer({ email: 'a@example.com' }))?.status, 'unverified');
    assert.equal(await s.namespaceStatus('ns-c1'), 'pending');
    assert.equal(await s.markVerified('c1', T0 + 1), true);
    assert.equal(await s.finish('c1', 'a@example.com', T0 + 2), true);
    const c = await s.getCustomer({ id: 'c1' });
    assert.deepEqual(c, { id: 'c1', email: 'a@example.com', status: 'active', createdAt: T0, updatedAt: T0 + 2 });
    assert.equal(await s.namespaceStatus('ns-c1'), 'active');
    assert.deepEqual(await s.memberships('c1'), [{ namespace: 'ns-c1', account: 'a@example.com', role: 'owner', createdAt: T0 }]);
    assert.equal(await s.checkCode('a@example.com', T0 + 3, 5), undefined, 'the code is gone: no replay');
    assert.equal((await s.getInvite('inv_a'))?.usedAt, T0 + 2);
    assert.equal(await s.finish('c1', 'a@example.com', T0 + 3), false, 'once');
    await assert.rejects(s.claim(claimOf('c2', 'a@example.com')), status(409), 'the email has a customer');
  });

  it('claim races: one email or one namespace, exactly one wins', async (s) => {
    const sameEmail = await Promise.allSettled([s.claim(claimOf('r1', 'race@example.com')), s.claim(claimOf('r2', 'race@example.com'))]);
    assert.equal(sameEmail.filter((r) => r.status === 'fulfilled').length, 1);
    assert.ok(sameEmail.some((r) => r.status === 'rejected' && status(409)(r.reason) && /email/.test((r.reason as MicroError).detail)));
    const sameName = await Promise.allSettled([s.claim(claimOf('r3', 'x@example.com', { owns: 'shared' })), s.claim(claimOf('r4', 'y@example.com', { owns: 'shared' }))]);
    assert.equal(sameName.filter((r) => r.status === 'fulfilled').length, 1);
    assert.ok(sameName.some((r) => r.status === 'rejected' && status(409)(r.reason) && /namespace/.test((r.reason as MicroError).detail)));
    const loser = sameName[0]?.status === 'rejected' ? 'x@example.com' : 'y@example.com';
    assert.equal(await s.getCustomer({ email: loser }), undefined, 'the loser left nothing');
  });

  it('release leaves nothing; a stale claim is taken over, a fresh one is not', async (s) => {
    await s.claim(claimOf('c1', 'a@example.com'));
    await s.release('c1');
    assert.equal(await s.getCustomer({ id: 'c1' }), undefined);
    assert.equal(await s.namespaceStatus('ns-c1'), undefined);
    assert.deepEqual(await s.memberships('c1'), []);
    await s.claim(claimOf('c2', 'a@example.com'));
    await assert.rejects(s.claim(claimOf('c3', 'a@example.com', { now: T0 + 1000, staleBefore: T0 - 1 })), status(409), 'under way');
    const taken = await s.claim(claimOf('c4', 'a@example.com', { now: T0 + HOUR, staleBefore: T0 + 1 }));
    assert.deepEqual(taken, { customer: 'c2', memberships: [{ namespace: 'ns-c2', account: 'a@example.com', role: 'owner', createdAt: T0 }] });
    assert.equal(await s.namespaceStatus('ns-c2'), undefined, 'its namespace is free again');
    assert.equal((await s.getCustomer({ email: 'a@example.com' }))?.id, 'c4');
  });

  it('joining a namespace: only an active one, as a member', async (s) => {
    await assert.rejects(s.claim(claimOf('m1', 'm@example.com', { owns: undefined, joins: 'team' })), status(404));
    assert.equal(await s.getCustomer({ email: 'm@example.com' }), undefined);
    await s.claim(claimOf('o1', 'o@example.com', { owns: 'team' }));
    await s.finish('o1', 'o@example.com', T0);
    await s.claim(claimOf('m1', 'm@example.com', { owns: undefined, joins: 'team' }));
    await s.finish('m1', 'm@example.com', T0);
    assert.deepEqual((await s.memberships('m1')).map((m) => [m.namespace, m.role]), [['team', 'developer']]);
    // the owner's deletion keeps a namespace another customer is in
    assert.deepEqual(await s.deleteCustomer('o1', T0 + 5), []);
    assert.equal(await s.namespaceStatus('team'), 'active');
  });

  it('customers: status changes, pages, deletion frees the email and keeps the name taken', async (s) => {
    for (const id of ['c1', 'c2', 'c3']) {
      await s.claim(claimOf(id, `${id}@example.com`));
      await s.finish(id, `${id}@example.com`, T0);
    }
    assert.equal(await s.setStatus('c2', 'suspended', T0 + 1), true);
    assert.deepEqual((await s.listCustomers(10, '', 'suspended')).items.map((c) => c.id), ['c2']);
    const p1 = await s.listCustomers(2);
    assert.deepEqual(p1.items.map((c) => c.id), ['c1', 'c2']);
    assert.deepEqual((await s.listCustomers(2, p1.next)).items.map((c) => c.id), ['c3']);
    assert.deepEqual(await s.deleteCustomer('c1', T0 + 2), ['ns-c1']);
    assert.deepEqual(await s.deleteCustomer('c1', T0 + 3), ['ns-c1'], 'a retry returns them again');
    const gone = await s.getCustomer({ id: 'c1' });
    assert.equal(gone?.status, 'deleted');
    assert.equal(gone?.email, undefined);
    assert.equal(await s.getCustomer({ email: 'c1@example.com' }), undefined);
    assert.equal(await s.setStatus('c1', 'active', T0 + 4), false, 'a deleted customer stays deleted');
    assert.equal(await s.namespaceStatus('ns-c1'), 'deleted');
    await assert.rejects(s.claim(claimOf('c9', 'c1@example.com', { owns: 'ns-c1' })), status(409), 'a deleted name stays taken');
    await s.claim(claimOf('c9', 'c1@example.com', { owns: 'fresh' }));
  });

  it('namespaces by status: pending until finished, active, deleted; paged by name', async (s) => {
    for (const id of ['c1', 'c2', 'c3', 'c4']) await s.claim(claimOf(id, `${id}@example.com`));
    for (const id of ['c3', 'c1', 'c2']) await s.finish(id, `${id}@example.com`, T0);
    assert.deepEqual((await s.listNamespaces('pending', 10)).items, ['ns-c4']);
    const p1 = await s.listNamespaces('active', 2);
    assert.deepEqual(p1.items, ['ns-c1', 'ns-c2']);
    const p2 = await s.listNamespaces('active', 2, p1.next);
    assert.deepEqual(p2, { items: ['ns-c3'] });
    await s.deleteCustomer('c2', T0 + 1);
    assert.deepEqual((await s.listNamespaces('active', 10)).items, ['ns-c1', 'ns-c3']);
    assert.deepEqual((await s.listNamespaces('deleted', 10)).items, ['ns-c2']);
  });

  it('teams: join by a live invite once; roles; the last owner stays; an admin cannot touch owners', async (s) => {
    for (const id of ['o1', 'c2', 'c3']) {
      await s.claim(claimOf(id, `${id}@example.com`, id === 'o1' ? { owns: 'team' } : {}));
      await s.finish(id, `${id}@example.com`, T0);
    }
    await s.createInvite({ id: 'inv_t2', email: 'c2@example.com', namespace: 'team', role: 'viewer', createdAt: T0, expiresAt: T0 + HOUR });
    await s.createInvite({ id: 'inv_other', email: 'c2@example.com', namespace: 'ns-c3', role: 'admin', createdAt: T0, expiresAt: T0 + HOUR });
    assert.equal((await s.liveTeamInvite('c2@example.com', 'team', T0))?.role, 'viewer');
    assert.deepEqual((await s.teamInvites('team', T0)).map((i) => i.id), ['inv_t2']);
    const join = { invite: 'inv_t2', customer: 'c2', namespace: 'team', account: 'c2@example.com', role: 'viewer' as const, now: T0 + 1, maxMembers: 10 };
    await s.join(join);
    await assert.rejects(s.join(join), status(404), 'the invite is used');
    assert.deepEqual((await s.members('team')).map((m) => [m.email, m.role]), [['o1@example.com', 'owner'], ['c2@example.com', 'viewer']]);
    assert.equal((await s.memberByAccount('team', 'c2@example.com'))?.customer, 'c2');
    assert.equal(await s.memberByAccount('ns-c3', 'c2@example.com'), undefined, 'per namespace');
    assert.equal((await s.liveTeamInvite('c2@example.com', 'ns-c3', T0 + 2))?.id, 'inv_other', 'another team invite stays live');
    // roles
    assert.equal(await s.setRole('team', 'c2', 'admin', false), 'viewer');
    await assert.rejects(s.setRole('team', 'o1', 'admin', false), status(403), 'an admin cannot demote an owner');
    await assert.rejects(s.setRole('team', 'o1', 'admin', true), status(409), 'the last owner');
    await assert.rejects(s.removeMember('team', 'o1', true), status(409), 'the last owner');
    await assert.rejects(s.setRole('team', 'c3', 'viewer', true), status(404), 'not a member');
    await s.setRole('team', 'c2', 'owner', true);
    assert.equal(await s.setRole('team', 'o1', 'developer', true), 'owner', 'another owner remains');
    // two owners removing each other: one of them stays
    await s.setRole('team', 'o1', 'owner', true);
    const both = await Promise.allSettled([s.removeMember('team', 'o1', true), s.removeMember('team', 'c2', true)]);
    assert.equal(both.filter((r) => r.status === 'fulfilled').length, 1);
    assert.deepEqual((await s.members('team')).map((m) => m.role), ['owner']);
    // a full team
    await s.createInvite({ id: 'inv_t3', email: 'c3@example.com', namespace: 'team', role: 'developer', createdAt: T0, expiresAt: T0 + HOUR });
    await assert.rejects(s.join({ ...join, invite: 'inv_t3', customer: 'c3', account: 'c3@example.com', maxMembers: 1 }), status(429));
    assert.equal(await s.revokeTeamInvites('c3@example.com', 'team', T0 + 3), 1);
    assert.equal(await s.liveTeamInvite('c3@example.com', 'team', T0 + 3), undefined);
  });
}
