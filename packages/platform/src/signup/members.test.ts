import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Profile } from '@micro/sdk';
import { testPostgres } from '@micro/server/testing';
import { fails, PASSWORD, startSignupHarness, type SignupHarness } from './testing.js';

/*
 * The `members` quota of InviteMember on both signup engines (SQLite; PostgreSQL with the
 * quotas in the same schema): members + live invites never pass the limit, concurrent
 * invites included; revoking or removing frees a seat; a lowered limit removes no one;
 * one team's quota never touches another's.
 */

async function owner(h: SignupHarness, staff: string, email: string, namespace: string): Promise<string> {
  await h.as(staff).Invite({ email });
  await h.as().SendCode({ email });
  return (await h.as().CompleteSignup({ email, code: h.codeOf(email), password: PASSWORD, namespace })).token;
}

const isMembersQuota = (err: unknown) => fails(403, /quota exceeded: members \d+ of \d+ used in namespace acme; remove members or revoke invites/)(err);

async function suite(h: SignupHarness): Promise<void> {
  const staff = await h.adminToken();
  const alice = await owner(h, staff, 'alice@example.com', 'acme');
  const mallory = await owner(h, staff, 'mallory@example.com', 'mallory');
  await h.quotas.set('acme', { members: 5 });
  await h.quotas.set('mallory', { members: 1 });

  // the owner holds one seat: of 12 concurrent invites exactly 4 are made
  const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => h.as(alice).InviteMember({ namespace: 'acme', email: `p${i}@example.com`, role: 'developer' })));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 4);
  for (const r of results) if (r.status === 'rejected') assert.ok(isMembersQuota(r.reason));
  const { members, invites } = await h.as(alice).ListMembers({ namespace: 'acme' });
  assert.equal(members.length + invites.length, 5);
  assert.equal((await h.quotas.usage('acme')).members, 5);

  // another team is full at its own limit, not acme's; it cannot spend acme's seats
  await assert.rejects(h.as(mallory).InviteMember({ namespace: 'mallory', email: 'x@example.com', role: 'viewer' }), fails(403, /members 1 of 1 used in namespace mallory/));
  await assert.rejects(h.as(mallory).InviteMember({ namespace: 'acme', email: 'x@example.com', role: 'viewer' }), fails(403, /may not manage the members of acme/));

  // revoking an invite frees its seat
  const first = invites[0]?.email ?? '';
  await h.as(alice).RemoveMember({ namespace: 'acme', email: first });
  await h.as(alice).InviteMember({ namespace: 'acme', email: 'late@example.com', role: 'viewer' });
  await assert.rejects(h.as(alice).InviteMember({ namespace: 'acme', email: 'later@example.com', role: 'viewer' }), isMembersQuota);

  // a lowered limit removes no one and refuses the next invite; an accepted invite keeps its seat
  await h.quotas.set('acme', { members: 2 });
  await assert.rejects(h.as(alice).InviteMember({ namespace: 'acme', email: 'later@example.com', role: 'viewer' }), fails(403, /members 5 of 2/));
  await h.as().SendCode({ email: 'late@example.com' });
  await h.as().CompleteSignup({ email: 'late@example.com', code: h.codeOf('late@example.com'), password: PASSWORD });
  assert.equal((await h.as(alice).ListMembers({ namespace: 'acme' })).members.length, 2);

  // hostile input is refused before the quota is asked
  await assert.rejects(h.as(alice).InviteMember({ namespace: 'acme', email: 'not an email', role: 'viewer' }), fails(400));
  await assert.rejects(h.as(alice).InviteMember({ namespace: 'acme', email: 'y@example.com', role: 'owner' }), fails(400, /^role/));
}

describe('members quota', () => {
  test('SQLite', async (t) => {
    const h = await startSignupHarness({ sourceLimit: 10_000 });
    t.after(() => h.close());
    await suite(h);
  });

  test('PostgreSQL', async (t) => {
    const db = await testPostgres(t, 'members');
    if (!db) return;
    const profile = { name: 'nats', postgresUrl: db.url, prefix: db.prefix } as unknown as Profile;
    const h = await startSignupHarness({ sourceLimit: 10_000, codeKey: Buffer.alloc(32, 7) }, profile);
    t.after(() => h.close());
    await suite(h);
  });
});
