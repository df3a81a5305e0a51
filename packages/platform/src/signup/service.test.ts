import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_NATS_URL, DEFAULT_REDIS_URL, MicroError } from '@micro/sdk';
import { testPostgres } from '@micro/server/testing';
import { fails, PASSWORD, startSignupHarness, type SignupHarness } from './testing.js';


/** Invites `email` (as the admin), sends its code and returns it. */
async function invitedCode(h: SignupHarness, admin: string, email: string, namespace?: string): Promise<string> {
  await h.as(admin).Invite({ email, ...(namespace ? { namespace } : {}) });
  await h.as().SendCode({ email });
  return h.codeOf(email.toLowerCase());
}

describe('signup service (invite only)', () => {
  let h: SignupHarness;
  let admin: string;
  let clock = Date.now();
  before(async () => {
    h = await startSignupHarness({ now: () => clock, sourceLimit: 10_000 });
    admin = await h.adminToken();
  });
  after(() => h.close());

  test('invite, code, signup: a customer with its namespace, an owner account and a token; then Login', async () => {
    const code = await invitedCode(h, admin, 'Alice@Example.COM');
    assert.match(h.mailer.lastTo('alice@example.com')?.text ?? '', /\/signup\/verify\?email=alice%40example\.com&code=[0-9]{6}/);
    const s = await h.as().CompleteSignup({ email: 'alice@example.com', code, password: PASSWORD, namespace: 'acme' });
    assert.equal(s.namespace, 'acme');
    assert.deepEqual(s.namespaces, ['acme']);
    const account = await h.auth.tokens.verify(s.token);
    assert.deepEqual([account.id, account.issuer, account.scopes], ['alice@example.com', 'acme', ['admin']]);
    const login = await h.as().Login({ email: 'ALICE@example.com', password: PASSWORD });
    assert.deepEqual([login.namespace, login.namespaces], ['acme', ['acme']]);
    const { customer } = await h.as(admin).ReadCustomer({ email: 'alice@example.com' });
    assert.equal(customer.status, 'active');
    assert.deepEqual(customer.namespaces, [{ namespace: 'acme', role: 'owner', account: 'alice@example.com' }]);
    const invites = await h.as(admin).ListInvites({});
    assert.equal(invites.invites.find((i) => i.email === 'alice@example.com')?.status, 'used');
  });

  test('a tenant calling the staff endpoints gets 403; a stranger 401', async () => {
    const code = await invitedCode(h, admin, 'mallory@example.com');
    const { token } = await h.as().CompleteSignup({ email: 'mallory@example.com', code, password: PASSWORD });
    const tenant = h.as(token);
    const calls: [string, () => Promise<unknown>][] = [
      ['Invite', () => tenant.Invite({ email: 'friend@example.com' })],
      ['RevokeInvite', () => tenant.RevokeInvite({ id: 'inv_x' })],
      ['ListInvites', () => tenant.ListInvites({})],
      ['ListWaitlist', () => tenant.ListWaitlist({})],
      ['InviteWaitlist', () => tenant.InviteWaitlist({ count: 1 })],
      ['ListCustomers', () => tenant.ListCustomers({})],
      ['ReadCustomer', () => tenant.ReadCustomer({ email: 'alice@example.com' })],
      ['SuspendCustomer', () => tenant.SuspendCustomer({ email: 'alice@example.com' })],
      ['ReactivateCustomer', () => tenant.ReactivateCustomer({ email: 'mallory@example.com' })],
      ['DeleteCustomer', () => tenant.DeleteCustomer({ email: 'alice@example.com' })],
    ];
    for (const [name, call] of calls) await assert.rejects(call(), fails(403, /admin of namespace micro/), name);
    await assert.rejects(h.as().ListCustomers({}), fails(401));
    assert.equal((await h.as(admin).ReadCustomer({ email: 'alice@example.com' })).customer.status, 'active', 'nothing changed');
  });

  test('SendCode only for an invited address; a revoked invite stops it', async () => {
    await assert.rejects(h.as().SendCode({ email: 'stranger@example.com' }), fails(403, /^email: no invite/));
    const { invite } = await h.as(admin).Invite({ email: 'bob@example.com' });
    await h.as(admin).RevokeInvite({ id: invite.id });
    await assert.rejects(h.as().SendCode({ email: 'bob@example.com' }), fails(403));
    await assert.rejects(h.as(admin).RevokeInvite({ id: invite.id }), fails(404));
  });

  test('guessing a code: dead after 5 tries, even the right code then', async () => {
    const code = await invitedCode(h, admin, 'guess@example.com');
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    for (let i = 0; i < 5; i++) await assert.rejects(h.as().CompleteSignup({ email: 'guess@example.com', code: wrong, password: PASSWORD }), fails(401, /^code: wrong code/));
    await assert.rejects(h.as().CompleteSignup({ email: 'guess@example.com', code, password: PASSWORD }), fails(401, /no live code/));
    // a new code works
    await h.as().SendCode({ email: 'guess@example.com' });
    await h.as().CompleteSignup({ email: 'guess@example.com', code: h.codeOf('guess@example.com'), password: PASSWORD });
  });

  test('parallel guesses get no more than 5 checks', async () => {
    const code = await invitedCode(h, admin, 'parallel@example.com');
    const wrongs = Array.from({ length: 12 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, '0'));
    const results = await Promise.allSettled(wrongs.map((c) => h.as().CompleteSignup({ email: 'parallel@example.com', code: c, password: PASSWORD })));
    assert.equal(results.filter((r) => r.status === 'rejected' && /wrong code/.test((r.reason as MicroError).detail)).length, 5);
    await assert.rejects(h.as().CompleteSignup({ email: 'parallel@example.com', code, password: PASSWORD }), fails(401));
  });

  test('a used code cannot be replayed; an expired code is refused', async () => {
    const code = await invitedCode(h, admin, 'replay@example.com');
    await h.as().CompleteSignup({ email: 'replay@example.com', code, password: PASSWORD });
    await assert.rejects(h.as().CompleteSignup({ email: 'replay@example.com', code, password: PASSWORD, namespace: 'second-one' }), fails(401));
    const late = await invitedCode(h, admin, 'late@example.com');
    clock += 15 * 60_000 + 1;
    await assert.rejects(h.as().CompleteSignup({ email: 'late@example.com', code: late, password: PASSWORD }), fails(401, /expired/));
  });

  test('signup races: one email twice, one namespace for two emails: exactly one wins, the other is refused', async () => {
    const code = await invitedCode(h, admin, 'race@example.com');
    const both = await Promise.allSettled([0, 1].map(() => h.as().CompleteSignup({ email: 'race@example.com', code, password: PASSWORD })));
    assert.equal(both.filter((r) => r.status === 'fulfilled').length, 1);
    sameEmailLoser((both.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason);
    const c1 = await invitedCode(h, admin, 'one@example.com');
    const c2 = await invitedCode(h, admin, 'two@example.com');
    const names = await Promise.allSettled([
      h.as().CompleteSignup({ email: 'one@example.com', code: c1, password: PASSWORD, namespace: 'contested' }),
      h.as().CompleteSignup({ email: 'two@example.com', code: c2, password: PASSWORD, namespace: 'contested' }),
    ]);
    assert.equal(names.filter((r) => r.status === 'fulfilled').length, 1);
    fails(409, /^namespace: contested is taken/)((names.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason);
    // the loser kept nothing: its code still works for another name
    const lost = names[0]?.status === 'rejected' ? 'one@example.com' : 'two@example.com';
    await assert.rejects(h.as(admin).ReadCustomer({ email: lost }), fails(404));
    const again = await h.as().CompleteSignup({ email: lost, code: lost === 'one@example.com' ? c1 : c2, password: PASSWORD, namespace: 'uncontested' });
    assert.equal(again.namespace, 'uncontested');
  });

  test('reserved, non-ASCII and malformed namespace names are refused, naming the field', async () => {
    const code = await invitedCode(h, admin, 'names@example.com');
    for (const namespace of ['micro', 'admin', 'www', 'platform', 'system', 'default', 'api', 'micro-billing', 'Acme', 'аcme', 'xn--acme', 'ac', 'a--b', 'abc-', '1abc', 'a_b', 'a'.repeat(33)]) {
      await assert.rejects(h.as().CompleteSignup({ email: 'names@example.com', code, password: PASSWORD, namespace }), fails(400, /namespace/), namespace);
    }
    // none of these used a try of the code
    assert.equal((await h.as().CompleteSignup({ email: 'names@example.com', code, password: PASSWORD })).namespace.split('-').length, 3, 'a generated name');
  });

  test('a name that has accounts in auth already is taken; the failed signup leaves nothing', async () => {
    await h.auth.authAs(h.auth.admin).CreateAccount({ id: 'squatter', namespace: 'oldspace', secret: 'squatter-password' });
    const code = await invitedCode(h, admin, 'late-comer@example.com');
    await assert.rejects(h.as().CompleteSignup({ email: 'late-comer@example.com', code, password: PASSWORD, namespace: 'oldspace' }), fails(409, /namespace/));
    await assert.rejects(h.as(admin).ReadCustomer({ email: 'late-comer@example.com' }), fails(404));
    assert.equal(await h.auth.accounts.info('late-comer@example.com', 'oldspace'), undefined);
  });

  test('hostile and bad emails: a 400 naming email on every public endpoint; disposable ones refused clearly', async () => {
    const bad = ['a'.repeat(250) + '@x.com', 'no-at-sign', 'a@b', 'a@@b.com', 'a b@example.com', 'x@example.com\r\nBcc: victim@example.com', '<script>@example.com', 'аlice@example.com', 'alice@exаmple.com', '.a@example.com', 'a..b@example.com', 'a@-x.com', "o'brien@example.com"];
    for (const email of bad) {
      for (const call of [() => h.as().SendCode({ email }), () => h.as().JoinWaitlist({ email }), () => h.as().Recover({ email }), () => h.as().Login({ email, password: 'x' }), () => h.as(admin).Invite({ email })]) {
        await assert.rejects(call(), fails(400, /email/), email);
      }
    }
    await assert.rejects(h.as().JoinWaitlist({ email: 'x'.repeat(300) + '@example.com' }), fails(400, /email/));
    await assert.rejects(h.as(admin).Invite({ email: 'burner@mailinator.com' }), fails(400, /^email: addresses of mailinator\.com are throwaway mailboxes/));
    await assert.rejects(h.as().JoinWaitlist({ email: 'burner@eu.yopmail.com' }), fails(400, /throwaway/));
    await assert.rejects(h.as().CompleteSignup({ email: 'alice@example.com', code: '123456', password: 'short' }), fails(400, /password/));
  });

  test('a suspended customer cannot log in and its tokens stop; reactivated, it can', async () => {
    const code = await invitedCode(h, admin, 'sus@example.com');
    const { token } = await h.as().CompleteSignup({ email: 'sus@example.com', code, password: PASSWORD, namespace: 'sus-space' });
    const { customer } = await h.as(admin).SuspendCustomer({ email: 'sus@example.com' });
    assert.equal(customer.status, 'suspended');
    await assert.rejects(h.auth.tokens.verify(token), 'the token stopped');
    await assert.rejects(h.as().Login({ email: 'sus@example.com', password: PASSWORD }), fails(401, /^wrong email or password$/));
    await assert.rejects(h.auth.authAs().Login({ id: 'sus@example.com', password: PASSWORD, namespace: 'sus-space' }), fails(401), 'nor through auth');
    await h.as(admin).ReactivateCustomer({ id: customer.id });
    assert.equal((await h.as().Login({ email: 'sus@example.com', password: PASSWORD })).namespace, 'sus-space');
  });

  test('Login: an unknown email, a wrong password and a namespace not one\'s own answer the same 401', async () => {
    const answers = await Promise.allSettled([
      h.as().Login({ email: 'nobody@example.com', password: PASSWORD }),
      h.as().Login({ email: 'alice@example.com', password: 'wrong password' }),
      h.as().Login({ email: 'alice@example.com', password: PASSWORD, namespace: 'sus-space' }),
    ]);
    const details = answers.map((r) => (r.status === 'rejected' ? `${(r.reason as MicroError).code} ${(r.reason as MicroError).detail}` : 'ok'));
    assert.deepEqual(details, Array(3).fill('401 wrong email or password'));
  });

  test('Recover answers the same for any address and mails only a customer', async () => {
    const before = h.mailer.sent.length;
    assert.deepEqual(await h.as().Recover({ email: 'nobody-here@example.com' }), {});
    assert.equal(h.mailer.sent.length, before);
    assert.deepEqual(await h.as().Recover({ email: 'alice@example.com' }), {});
    assert.match(h.mailer.lastTo('alice@example.com')?.text ?? '', /acme \(owner\)/);
  });

  test('an invite into a namespace makes a member of it (developer), not an owner of another', async () => {
    await assert.rejects(h.as(admin).Invite({ email: 'member@example.com', namespace: 'no-such-space' }), fails(404, /namespace/));
    const code = await invitedCode(h, admin, 'member@example.com', 'acme');
    await assert.rejects(h.as().CompleteSignup({ email: 'member@example.com', code, password: PASSWORD, namespace: 'mine' }), fails(400, /member of acme/));
    const s = await h.as().CompleteSignup({ email: 'member@example.com', code, password: PASSWORD });
    assert.deepEqual([s.namespace, s.account.scopes], ['acme', ['developer']]);
    const { customer } = await h.as(admin).ReadCustomer({ email: 'member@example.com' });
    assert.deepEqual(customer.namespaces, [{ namespace: 'acme', role: 'developer', account: 'member@example.com' }]);
  });

  test('a failure after the claim (the account cannot be made) leaves nothing, and the same code works on a retry', async () => {
    await h.auth.authAs(h.auth.admin).CreateAccount({ id: 'blocked@example.com', namespace: 'acme', secret: 'someone-elses-password' });
    const code = await invitedCode(h, admin, 'blocked@example.com', 'acme');
    await assert.rejects(h.as().CompleteSignup({ email: 'blocked@example.com', code, password: PASSWORD }), fails(409, /exists in namespace acme/));
    await assert.rejects(h.as(admin).ReadCustomer({ email: 'blocked@example.com' }), fails(404));
    assert.ok(await h.auth.accounts.verify('blocked@example.com', 'acme', 'someone-elses-password'), 'the account that was there is untouched');
    await h.auth.authAs(h.auth.admin).DeleteAccount({ id: 'blocked@example.com', namespace: 'acme' });
    const s = await h.as().CompleteSignup({ email: 'blocked@example.com', code, password: PASSWORD });
    assert.equal(s.namespace, 'acme');
  });

  test('delete: accounts gone, a namespace one alone owns marked deleted (its other accounts disabled), a shared one kept', async () => {
    const code = await invitedCode(h, admin, 'leaver@example.com');
    const s = await h.as().CompleteSignup({ email: 'leaver@example.com', code, password: PASSWORD, namespace: 'leaving' });
    const { secret } = await h.auth.authAs({ token: s.token }).CreateAccount({ id: 'robot', namespace: 'leaving' });
    const { deletedNamespaces } = await h.as(admin).DeleteCustomer({ email: 'leaver@example.com' });
    assert.deepEqual(deletedNamespaces, ['leaving']);
    assert.equal(await h.auth.accounts.info('leaver@example.com', 'leaving'), undefined);
    assert.equal(await h.auth.accounts.verify('robot', 'leaving', secret as string), undefined, 'the other accounts of the namespace are disabled');
    await assert.rejects(h.auth.tokens.verify(s.token));
    await assert.rejects(h.as().Login({ email: 'leaver@example.com', password: PASSWORD }), fails(401));
    // alice owns acme, which member@ shares: it stays
    const gone = await h.as(admin).DeleteCustomer({ email: 'alice@example.com' });
    assert.deepEqual(gone.deletedNamespaces, []);
    assert.equal((await h.as().Login({ email: 'member@example.com', password: PASSWORD })).namespace, 'acme');
    // the address is free again, the name is not
    const again = await invitedCode(h, admin, 'leaver@example.com');
    await assert.rejects(h.as().CompleteSignup({ email: 'leaver@example.com', code: again, password: PASSWORD, namespace: 'leaving' }), fails(409, /namespace/));
  });

  test('the waiting list: idempotent joins, invites go to the oldest first', async () => {
    for (const e of ['w1@example.com', 'w2@example.com', 'w1@example.com', 'w3@example.com']) assert.deepEqual(await h.as().JoinWaitlist({ email: e }), {});
    const { invites } = await h.as(admin).InviteWaitlist({ count: 2 });
    assert.deepEqual(invites.map((i) => i.email), ['w1@example.com', 'w2@example.com']);
    const { entries } = await h.as(admin).ListWaitlist({});
    assert.deepEqual(entries.map((e) => [e.email, e.invitedAt !== undefined]), [['w1@example.com', true], ['w2@example.com', true], ['w3@example.com', false]]);
    await h.as().SendCode({ email: 'w2@example.com' });
    await assert.rejects(h.as(admin).InviteWaitlist({ count: 0 }), fails(400, /count/));
    await assert.rejects(h.as(admin).InviteWaitlist({ count: 101 }), fails(400, /count/));
  });

  test('codes are throttled per address', async () => {
    await h.as(admin).Invite({ email: 'spam@example.com' });
    for (let i = 0; i < 5; i++) await h.as().SendCode({ email: 'spam@example.com' });
    await assert.rejects(h.as().SendCode({ email: 'spam@example.com' }), fails(429, /too many codes/));
  });
});

describe('signup service (open signup, tight limits)', () => {
  let h: SignupHarness;
  before(async () => {
    h = await startSignupHarness({ openSignup: true, sourceLimit: 4, loginThrottle: undefined });
  });
  after(() => h.close());

  test('any address gets a code and a generated three-word namespace', async () => {
    await h.as().SendCode({ email: 'open@example.com' });
    const s = await h.as().CompleteSignup({ email: 'open@example.com', code: h.codeOf('open@example.com'), password: PASSWORD });
    assert.match(s.namespace, /^[a-z]+-[a-z]+-[a-z]+(-[0-9]+)?$/);
  });

  test('a customer asking for a code gets a note, not a code, and the same answer', async () => {
    assert.deepEqual(await h.as().SendCode({ email: 'open@example.com' }), { sent: true });
    assert.match(h.mailer.lastTo('open@example.com')?.text ?? '', /has an M3O account already/);
  });

  test('public calls are throttled per source', async () => {
    // 4 public calls that mail or write per source: the tests above made 2
    let answered = 0;
    for (let i = 0; i < 10 && answered === 0; i++) {
      if (i < 2) await h.as().JoinWaitlist({ email: `q${i}@example.com` });
      else await assert.rejects(h.as().JoinWaitlist({ email: `q${i}@example.com` }), fails(429, /from your address/)).then(() => answered++);
    }
    assert.equal(answered, 1);
  });

  test('wrong passwords are throttled', async () => {
    for (let i = 0; i < 5; i++) await assert.rejects(h.as().Login({ email: 'open@example.com', password: `wrong-${i}` }), fails(401));
    await assert.rejects(h.as().Login({ email: 'open@example.com', password: PASSWORD }), fails(429));
  });
});

/**
 * The loser of two signups of one email with one code: refused because the winner holds
 * the email or the namespace asked for (409), has used the code up by then (401), or has
 * used the email's invite (403, on an invite-only platform), as the timing falls; either
 * way nothing of it is left.
 */
function sameEmailLoser(reason: unknown): void {
  const e = reason as { code?: number; detail?: string };
  if (e.code === 401) fails(401, /^code: no live code/)(reason);
  else if (e.code === 403) fails(403, /^email: no invite for this address/)(reason);
  else fails(409, /^(email:|namespace: \S+ is taken)/)(reason);
}

describe('signup service on the nats profile (PostgreSQL)', () => {
  test('two nodes over one schema: a signup on one, its races and login on the other', async (t) => {
    const db = await testPostgres(t, 'signup_svc');
    if (!db) return;
    const profile = { name: 'nats' as const, natsUrl: DEFAULT_NATS_URL, redisUrl: DEFAULT_REDIS_URL, postgresUrl: db.url, prefix: db.prefix };
    const codeKey = Buffer.alloc(32, 7);
    const a = await startSignupHarness({ codeKey }, profile);
    t.after(() => a.close());
    // a second node: its own process state, the same tables (auth is per harness here: the login goes to node a's)
    const b = await startSignupHarness({ codeKey }, profile);
    t.after(() => b.close());
    const admin = await a.adminToken();
    await a.as(admin).Invite({ email: 'pg@example.com' });
    await b.as().SendCode({ email: 'pg@example.com' });
    const code = b.codeOf('pg@example.com');
    const both = await Promise.allSettled([a, a].map((h) => h.as().CompleteSignup({ email: 'pg@example.com', code, password: PASSWORD, namespace: 'pg-space' })));
    assert.equal(both.filter((r) => r.status === 'fulfilled').length, 1);
    sameEmailLoser((both.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason);
    assert.equal((await a.as().Login({ email: 'pg@example.com', password: PASSWORD })).namespace, 'pg-space');
    const seen = await b.as(await b.adminToken()).ReadCustomer({ email: 'pg@example.com' });
    assert.equal(seen.customer.status, 'active', 'the other node sees the customer');
  });
});
