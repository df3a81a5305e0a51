import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testPostgres } from '@micro/server/testing';
import { fails, PASSWORD, startSignupHarness, type SignupHarness } from './testing.js';


/** A customer signed up by a staff invite (owner of `namespace`), or into a team by a team invite. */
async function signUp(h: SignupHarness, admin: string, email: string, namespace?: string): Promise<string> {
  if (namespace !== undefined) await h.as(admin).Invite({ email });
  await h.as().SendCode({ email });
  return (await h.as().CompleteSignup({ email, code: h.codeOf(email), password: PASSWORD, ...(namespace ? { namespace } : {}) })).token;
}

const login = async (h: SignupHarness, email: string, namespace: string) => (await h.as().Login({ email, password: PASSWORD, namespace })).token;

describe('teams (SQLite, through the real guard)', () => {
  let h: SignupHarness;
  let staff: string;
  let alice: string;
  before(async () => {
    h = await startSignupHarness({ sourceLimit: 10_000 });
    staff = await h.adminToken();
    alice = await signUp(h, staff, 'alice@example.com', 'acme');
  });
  after(() => h.close());

  test('an existing customer accepts an invite as viewer: reads, never writes', async () => {
    const bobOwn = await signUp(h, staff, 'bob@example.com', 'bobspace');
    const { invite } = await h.as(alice).InviteMember({ namespace: 'acme', email: 'Bob@Example.com', role: 'viewer' });
    assert.equal(invite.role, 'viewer');
    assert.match(h.mailer.lastTo('bob@example.com')?.text ?? '', /alice@example\.com invited you to the team namespace acme .* as viewer/s);
    await assert.rejects(h.as(bobOwn).AcceptInvite({ namespace: 'acme', password: 'wrong password' }), fails(401, /^password/));
    assert.deepEqual(await h.as(bobOwn).AcceptInvite({ namespace: 'acme', password: PASSWORD }), { namespace: 'acme', role: 'viewer', account: 'bob@example.com' });
    await assert.rejects(h.as(bobOwn).AcceptInvite({ namespace: 'acme', password: PASSWORD }), fails(404), 'once');
    assert.deepEqual((await h.as(bobOwn).Namespaces({})).namespaces, [{ namespace: 'bobspace', role: 'owner' }, { namespace: 'acme', role: 'viewer' }]);

    const viewer = await login(h, 'bob@example.com', 'acme');
    await h.store(alice).Write({ record: { key: 'k', value: 1 } });
    await h.config(alice).Set({ path: 'app.colour', value: 'blue' });
    assert.deepEqual((await h.store(viewer).List({})).keys, ['k'], 'a viewer reads');
    assert.equal((await h.config(viewer).Get({ path: 'app.colour' })).value, 'blue');
    await assert.rejects(h.store(viewer).Write({ record: { key: 'k', value: 2 } }), fails(403, /role viewer: a viewer may only read/));
    await assert.rejects(h.store(viewer).Delete({ key: 'k' }), fails(403));
    await assert.rejects(h.config(viewer).Set({ path: 'app.colour', value: 'red' }), fails(403));
    await assert.rejects(h.auth.authAs({ token: viewer }).CreateKey({ name: 'sneaky', scopes: [] }), fails(403), 'no unrestricted key for a viewer');
    await assert.rejects(h.as(viewer).InviteMember({ namespace: 'acme', email: 'x@example.com', role: 'admin' }), fails(403));
    assert.equal((await h.store(alice).Read({ key: 'k' })).records[0]?.value, 1, 'nothing changed');
  });

  test('a new person signs up through the invite as developer: writes, but manages no members, keys or accounts', async () => {
    await h.as(alice).InviteMember({ namespace: 'acme', email: 'carol@example.com', role: 'developer' });
    const carol = await signUp(h, staff, 'carol@example.com');
    const account = await h.auth.tokens.verify(carol);
    assert.deepEqual([account.issuer, account.scopes], ['acme', ['developer']]);
    await h.store(carol).Write({ record: { key: 'dev', value: true } });
    await assert.rejects(h.auth.authAs({ token: carol }).CreateKey({ name: 'k' }), fails(403, /managed by admins/));
    await assert.rejects(h.auth.authAs({ token: carol }).CreateAccount({ id: 'svc', secret: 'a-long-secret-1' }), fails(403));
    await assert.rejects(h.as(carol).InviteMember({ namespace: 'acme', email: 'y@example.com', role: 'viewer' }), fails(403, /needs an owner or admin of acme \(you are developer/));
    await assert.rejects(h.as(carol).SetRole({ namespace: 'acme', email: 'carol@example.com', role: 'admin' }), fails(403));
    await assert.rejects(h.as(carol).ListMembers({ namespace: 'acme' }), fails(403));
    await assert.rejects(h.as(carol).RemoveMember({ namespace: 'acme', email: 'alice@example.com' }), fails(403));
  });

  test('an admin manages members but not owners; a role change stops old tokens at once', async () => {
    await h.as(alice).InviteMember({ namespace: 'acme', email: 'dave@example.com', role: 'admin' });
    const dave = await signUp(h, staff, 'dave@example.com');
    await assert.rejects(h.as(dave).SetRole({ namespace: 'acme', email: 'alice@example.com', role: 'viewer' }), fails(403, /owner/));
    await assert.rejects(h.as(dave).RemoveMember({ namespace: 'acme', email: 'alice@example.com' }), fails(403, /owner/));
    await assert.rejects(h.as(dave).SetRole({ namespace: 'acme', email: 'dave@example.com', role: 'owner' }), fails(403, /only an owner makes owners/));
    const carolBefore = await login(h, 'carol@example.com', 'acme');
    const { member } = await h.as(dave).SetRole({ namespace: 'acme', email: 'carol@example.com', role: 'viewer' });
    assert.equal(member.role, 'viewer');
    await assert.rejects(h.store(carolBefore).Write({ record: { key: 'dev', value: 2 } }), fails(401), 'the developer token stopped');
    await assert.rejects(h.store(await login(h, 'carol@example.com', 'acme')).Write({ record: { key: 'dev', value: 2 } }), fails(403), 'a new login is a viewer');
    const { members, invites } = await h.as(dave).ListMembers({ namespace: 'acme' });
    assert.deepEqual(members.map((m) => [m.email, m.role]), [['alice@example.com', 'owner'], ['bob@example.com', 'viewer'], ['carol@example.com', 'viewer'], ['dave@example.com', 'admin']]);
    assert.deepEqual(invites, []);
  });

  test('a removed member: its token and API key stop at once; its own namespace is untouched', async () => {
    const erinOwn = await signUp(h, staff, 'erin@example.com', 'erin-space');
    await h.as(alice).InviteMember({ namespace: 'acme', email: 'erin@example.com', role: 'admin' });
    await h.as(erinOwn).AcceptInvite({ namespace: 'acme', password: PASSWORD });
    const erin = await login(h, 'erin@example.com', 'acme');
    const { key } = await h.auth.authAs({ token: erin }).CreateKey({ name: 'ci' });
    const fromKey = (await h.auth.authAs().Token({ apiKey: key })).token;
    await h.store(fromKey).List({});
    await h.as(alice).RemoveMember({ namespace: 'acme', email: 'erin@example.com' });
    await assert.rejects(h.store(erin).List({}), fails(401), 'the token');
    await assert.rejects(h.store(fromKey).List({}), fails(401), "the key's token");
    await assert.rejects(h.auth.authAs().Token({ apiKey: key }), fails(401), 'the key');
    await assert.rejects(h.as().Login({ email: 'erin@example.com', password: PASSWORD, namespace: 'acme' }), fails(401));
    assert.deepEqual((await h.as(erinOwn).Namespaces({})).namespaces, [{ namespace: 'erin-space', role: 'owner' }]);
    await h.store(erinOwn).List({});
    // an admin of another namespace acting on acme
    await assert.rejects(h.as(erinOwn).ListMembers({ namespace: 'acme' }), fails(403, /may not manage the members of acme/));
    await assert.rejects(h.as(erinOwn).InviteMember({ namespace: 'acme', email: 'erin@example.com', role: 'admin' }), fails(403));
    await assert.rejects(h.as(erinOwn).RemoveMember({ namespace: 'acme', email: 'bob@example.com' }), fails(403));
    await assert.rejects(h.store(erinOwn).List({ namespace: 'acme' }), fails(403));
    // invited again, it can join again
    await h.as(alice).InviteMember({ namespace: 'acme', email: 'erin@example.com', role: 'viewer' });
    await h.as(erinOwn).AcceptInvite({ namespace: 'acme', password: PASSWORD });
  });

  test('bad input: members again, the last owner, unknown roles, other namespaces, hostile fields', async () => {
    await assert.rejects(h.as(alice).InviteMember({ namespace: 'acme', email: 'bob@example.com', role: 'viewer' }), fails(409, /member of acme already/));
    await h.as(alice).InviteMember({ namespace: 'acme', email: 'frank@example.com', role: 'viewer' });
    await assert.rejects(h.as(alice).InviteMember({ namespace: 'acme', email: 'frank@example.com', role: 'admin' }), fails(409, /invited/));
    await h.as(alice).RemoveMember({ namespace: 'acme', email: 'frank@example.com' });
    assert.deepEqual((await h.as(alice).ListMembers({ namespace: 'acme' })).invites, [], 'RemoveMember revoked the invite');
    await assert.rejects(h.as(alice).RemoveMember({ namespace: 'acme', email: 'alice@example.com' }), fails(409, /last owner/));
    await assert.rejects(h.as(alice).SetRole({ namespace: 'acme', email: 'alice@example.com', role: 'admin' }), fails(409, /last owner/));
    for (const role of ['superuser', 'Owner', '', 'x'.repeat(17)]) {
      await assert.rejects(h.as(alice).SetRole({ namespace: 'acme', email: 'bob@example.com', role }), fails(400, /role/), role);
    }
    await assert.rejects(h.as(alice).InviteMember({ namespace: 'acme', email: 'g@example.com', role: 'owner' }), fails(400, /role/));
    await assert.rejects(h.as(alice).SetRole({ namespace: 'acme', email: 'nobody@example.com', role: 'viewer' }), fails(404));
    await assert.rejects(h.as(alice).ListMembers({ namespace: 'bobspace' }), fails(403));
    await assert.rejects(h.as(alice).SetRole({ namespace: 'bobspace', email: 'bob@example.com', role: 'viewer' }), fails(403));
    for (const namespace of ['ACME', 'micro', 'a'.repeat(33), 'acme\r\nx']) await assert.rejects(h.as(alice).ListMembers({ namespace }), fails(400, /namespace/), namespace);
    for (const email of ['bob@example.com\r\nBcc: x@example.com', 'not-an-email', `${'a'.repeat(250)}@example.com`]) {
      await assert.rejects(h.as(alice).InviteMember({ namespace: 'acme', email, role: 'viewer' }), fails(400, /email/), email);
    }
    await assert.rejects(h.as().Namespaces({}), fails(401));
    await assert.rejects(h.as(staff).Namespaces({}), fails(403), 'the staff is no customer');
    // the staff may act on any team
    assert.ok((await h.as(staff).ListMembers({ namespace: 'acme' })).members.length >= 4);
  });
});

describe('teams on PostgreSQL', () => {
  test('invite, accept, role, removal', async (t) => {
    const db = await testPostgres(t, 'team');
    if (!db) return;
    const h = await startSignupHarness({ sourceLimit: 10_000, codeKey: Buffer.alloc(32, 7) }, { name: 'nats', postgresUrl: db.url, prefix: db.prefix } as never);
    t.after(() => h.close());
    const staff = await h.adminToken();
    const alice = await signUp(h, staff, 'alice@example.com', 'acme');
    const bob = await signUp(h, staff, 'bob@example.com', 'bobspace');
    await h.as(alice).InviteMember({ namespace: 'acme', email: 'bob@example.com', role: 'developer' });
    await h.as(bob).AcceptInvite({ namespace: 'acme', password: PASSWORD });
    const bobAcme = await login(h, 'bob@example.com', 'acme');
    await assert.rejects(h.auth.authAs({ token: bobAcme }).CreateKey({ name: 'k' }), fails(403));
    await h.as(alice).SetRole({ namespace: 'acme', email: 'bob@example.com', role: 'admin' });
    await assert.rejects(h.auth.authAs({ token: bobAcme }).ListKeys({}), fails(401), 'the old token stopped');
    await assert.rejects(h.as(await login(h, 'bob@example.com', 'acme')).RemoveMember({ namespace: 'acme', email: 'alice@example.com' }), fails(403));
    await assert.rejects(h.as(alice).RemoveMember({ namespace: 'acme', email: 'alice@example.com' }), fails(409));
    await h.as(alice).RemoveMember({ namespace: 'acme', email: 'bob@example.com' });
    assert.deepEqual((await h.as(alice).ListMembers({ namespace: 'acme' })).members.map((m) => m.email), ['alice@example.com']);
  });
});
