import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mailCoreService } from '@micro/platform';
import { parseMail, startSmtpServer, type TestSmtp } from '@micro/platform/testing';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

const FROM = 'no-reply@m3o.test';

/** The newest message to `to` after `after` were received, parsed (waits for it a while). */
async function mailTo(smtp: TestSmtp, to: string, after: number): Promise<{ text: string; from: string; subject: string }> {
  for (let i = 0; i < 100; i++) {
    const found = smtp.received.slice(after).find((r) => r.to.includes(to));
    if (found) {
      const m = await parseMail(found.raw);
      return { text: m.text ?? '', from: m.from?.text ?? '', subject: m.subject ?? '' };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no mail to ${to}`);
}

const ok = (res: { status: number; body: unknown }) => assert.equal(res.status, 200, JSON.stringify(res.body));
function refused(res: { status: number; body: any }, status: number, detail: RegExp) { // eslint-disable-line @typescript-eslint/no-explicit-any -- M3O's error body
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.code, status);
  assert.ok(res.body.id && res.body.status, JSON.stringify(res.body));
  assert.match(res.body.detail, detail);
}

for (const profile of ['local', 'nats'] as const) {
  test(`user: every endpoint as M3O's client calls it, tenants apart (${profile})`, async (t) => {
    const smtp = await startSmtpServer(t);
    const mail = mailCoreService({ env: { MICRO_SMTP_URL: smtp.url(), MICRO_SMTP_FROM: `Platform <${FROM}>` }, perTenant: 50 });
    const p = await startPlatform(t, { services: [service], profile, coreServices: [mail] });
    if (!p) return;
    t.after(() => p.close());
    const a = (ep: string, body: unknown) => p.call(p.a.key, 'user', ep, body);
    const b = (ep: string, body: unknown) => p.call(p.b.key, 'user', ep, body);

    await t.test('Create, Read, List', async () => {
      const res = await a('Create', { username: 'alice', email: 'Alice@Example.com', password: 'correct horse', profile: { name: 'Alice' } });
      ok(res);
      await expectShape('user', 'Create', res.body);
      const acc = res.body.account;
      assert.equal(acc.username, 'alice');
      assert.equal(acc.email, 'alice@example.com');
      assert.equal(acc.verified, false);
      assert.deepEqual(acc.profile, { name: 'Alice' });
      assert.ok(!JSON.stringify(res.body).includes('correct horse') && !('password' in acc));
      for (const by of [{ id: acc.id }, { username: 'ALICE' }, { email: 'alice@example.com' }]) {
        const r = await a('Read', by);
        ok(r);
        await expectShape('user', 'Read', r.body);
        assert.equal(r.body.account.id, acc.id);
      }
      ok(await a('Create', { id: 'bob-1', username: 'bob', email: 'bob@example.com', password: 'bobs password' }));
      const list = await a('List', {});
      await expectShape('user', 'List', list.body);
      assert.deepEqual(list.body.users.map((u: { username: string }) => u.username).sort(), ['alice', 'bob']);
      assert.equal((await a('List', { limit: 1, offset: 1 })).body.users.length, 1);
    });

    await t.test('usernames and emails are unique, also under concurrency', async () => {
      refused(await a('Create', { username: 'Alice', email: 'other@example.com', password: '12345678' }), 400, /username: is taken/);
      refused(await a('Create', { username: 'alice2', email: 'ALICE@example.com', password: '12345678' }), 400, /email: is taken/);
      refused(await a('Create', { id: 'bob-1', username: 'x', email: 'x@example.com', password: '12345678' }), 400, /id: .* is taken/);
      const racers = await Promise.all([0, 1, 2, 3].map((i) => a('Create', { username: `racer${i}`, email: 'race@example.com', password: 'racing along' })));
      assert.equal(racers.filter((r) => r.status === 200).length, 1, JSON.stringify(racers.map((r) => r.body)));
      for (const r of racers.filter((x) => x.status !== 200)) refused(r, 400, /email: is taken/);
      const names = await Promise.all([0, 1, 2].map((i) => a('Create', { username: 'samename', email: `same${i}@example.com`, password: 'racing along' })));
      assert.equal(names.filter((r) => r.status === 200).length, 1);
      const users = (await a('List', { limit: 100 })).body.users as { email: string; username: string }[];
      assert.equal(users.filter((u) => u.email === 'race@example.com').length, 1);
      assert.equal(users.filter((u) => u.username === 'samename').length, 1);
    });

    let session = '';
    await t.test('Login, ReadSession, Logout, LogoutAll', async () => {
      const byName = await a('Login', { username: 'alice', password: 'correct horse' });
      ok(byName);
      await expectShape('user', 'Login', byName.body);
      const s = byName.body.session;
      assert.equal(Number(s.expires) - Number(s.created), 7 * 86_400);
      const byEmail = await a('Login', { email: 'alice@example.com', password: 'correct horse' });
      ok(byEmail);
      refused(await a('Login', { username: 'alice', password: 'wrong horse' }), 401, /wrong/);
      refused(await a('Login', { username: 'nobody', password: 'wrong horse' }), 401, /wrong/);
      const read = await a('ReadSession', { sessionId: s.id });
      ok(read);
      await expectShape('user', 'ReadSession', read.body);
      assert.equal(read.body.account.username, 'alice');
      assert.equal(read.body.session.userId, s.userId);
      refused(await a('ReadSession', { session_id: 'not-a-session' }), 401, /session_id/);
      const out = await a('Logout', { session_id: s.id });
      ok(out);
      await expectShape('user', 'Logout', out.body);
      refused(await a('ReadSession', { session_id: s.id }), 401, /session_id/);
      ok(await a('ReadSession', { session_id: byEmail.body.session.id }));
      const all = await a('LogoutAll', { user_id: s.userId });
      ok(all);
      await expectShape('user', 'LogoutAll', all.body);
      refused(await a('ReadSession', { session_id: byEmail.body.session.id }), 401, /session_id/);
      session = (await a('Login', { username: 'alice', password: 'correct horse' })).body.session.id;
    });

    await t.test('Update and UpdatePassword', async () => {
      const id = (await a('Read', { username: 'bob' })).body.account.id;
      const up = await a('Update', { id, username: 'robert', email: 'robert@example.com', profile: { city: 'Leeds' } });
      ok(up);
      await expectShape('user', 'Update', up.body);
      const r = (await a('Read', { id })).body.account;
      assert.deepEqual([r.username, r.email, r.profile.city], ['robert', 'robert@example.com', 'Leeds']);
      refused(await a('Read', { username: 'bob' }), 404, /no account/);
      ok(await a('Create', { username: 'bob', email: 'bob@example.com', password: 'the new bob' }));
      refused(await a('Update', { id, username: 'ALICE' }), 400, /username: is taken/);
      refused(await a('UpdatePassword', { userId: id, old_password: 'not it at all', new_password: 'robert rules', confirm_password: 'robert rules' }), 401, /old_password/);
      refused(await a('UpdatePassword', { userId: id, old_password: 'bobs password', new_password: 'robert rules', confirm_password: 'robert rulez' }), 400, /confirm_password/);
      const pw = await a('UpdatePassword', { userId: id, old_password: 'bobs password', new_password: 'robert rules', confirm_password: 'robert rules' });
      ok(pw);
      await expectShape('user', 'UpdatePassword', pw.body);
      refused(await a('Login', { username: 'robert', password: 'bobs password' }), 401, /wrong/);
      ok(await a('Login', { username: 'robert', password: 'robert rules' }));
    });

    await t.test('SendVerificationEmail and VerifyEmail: the link in the mail', async () => {
      const before = smtp.received.length;
      const sent = await a('SendVerificationEmail', { email: 'alice@example.com', subject: 'Welcome', text_content: 'Hi! Click $micro_verification_link now', redirect_url: 'https://app.example.com/verified?x=1', from_name: 'Acme Support' });
      ok(sent);
      await expectShape('user', 'SendVerificationEmail', sent.body);
      const m = await mailTo(smtp, 'alice@example.com', before);
      assert.equal(m.subject, 'Welcome');
      assert.match(m.from, new RegExp(`Acme Support.*<${FROM}>`));
      const link = new URL(/Click (\S+) now/.exec(m.text)?.[1] ?? '');
      assert.equal(`${link.origin}${link.pathname}`, 'https://app.example.com/verified');
      assert.equal(link.searchParams.get('x'), '1');
      const token = link.searchParams.get('token') as string;
      refused(await b('VerifyEmail', { token }), 400, /token/);
      const v = await a('VerifyEmail', { token });
      ok(v);
      await expectShape('user', 'VerifyEmail', v.body);
      const acc = (await a('Read', { username: 'alice' })).body.account;
      assert.equal(acc.verified, true);
      assert.ok(Number(acc.verification_date) > 0);
      refused(await a('VerifyEmail', { token }), 400, /token: .*used/);
      refused(await a('SendVerificationEmail', { email: 'alice@example.com', redirect_url: 'javascript:alert(1)' }), 400, /redirect_url/);
      refused(await a('SendVerificationEmail', { email: 'nobody@example.com', redirect_url: 'https://app.example.com' }), 404, /no account/);
    });

    await t.test('SendPasswordResetEmail and ResetPassword: the code in the mail', async () => {
      const before = smtp.received.length;
      const sent = await a('SendPasswordResetEmail', { email: 'alice@example.com', text_content: 'Code: $code.', expiration: '900' });
      ok(sent);
      await expectShape('user', 'SendPasswordResetEmail', sent.body);
      const code = /Code: (\d+)\./.exec((await mailTo(smtp, 'alice@example.com', before)).text)?.[1] as string;
      assert.match(code, /^\d{8}$/);
      const wrong = code === '00000000' ? '00000001' : '00000000';
      refused(await a('ResetPassword', { email: 'alice@example.com', code: wrong, new_password: 'new horse!', confirm_password: 'new horse!' }), 400, /code: wrong code \(4 tries left\)/);
      // b holds a's email and code and still cannot reset a's password
      refused(await b('ResetPassword', { email: 'alice@example.com', code, new_password: 'hijacked!', confirm_password: 'hijacked!' }), 400, /code/);
      const reset = await a('ResetPassword', { email: 'alice@example.com', code, new_password: 'new horse!', confirm_password: 'new horse!' });
      ok(reset);
      await expectShape('user', 'ResetPassword', reset.body);
      refused(await a('ReadSession', { session_id: session }), 401, /session_id/);
      refused(await a('Login', { username: 'alice', password: 'correct horse' }), 401, /wrong/);
      ok(await a('Login', { username: 'alice', password: 'new horse!' }));
      refused(await a('ResetPassword', { email: 'alice@example.com', code, new_password: 'again horse', confirm_password: 'again horse' }), 400, /no password reset is pending/);
      // five wrong codes end a reset
      ok(await a('SendPasswordResetEmail', { email: 'robert@example.com' }));
      for (let i = 0; i < 5; i++) await a('ResetPassword', { email: 'robert@example.com', code: 'nope', new_password: 'whatever1' });
      refused(await a('ResetPassword', { email: 'robert@example.com', code: 'nope', new_password: 'whatever1' }), 400, /no password reset is pending/);
    });

    await t.test('SendMagicLink and VerifyToken', async () => {
      const before = smtp.received.length;
      const sent = await a('SendMagicLink', { email: 'alice@example.com', subject: 'Sign in', text_content: 'Go to $micro_verification_link', address: 'app.example.com', endpoint: 'auth/magic' });
      ok(sent);
      await expectShape('user', 'SendMagicLink', sent.body);
      const link = new URL(/Go to (\S+)/.exec((await mailTo(smtp, 'alice@example.com', before)).text)?.[1] ?? '');
      assert.equal(`${link.origin}${link.pathname}`, 'https://app.example.com/auth/magic');
      const token = link.searchParams.get('token') as string;
      const stolen = await b('VerifyToken', { token });
      ok(stolen);
      assert.equal(stolen.body.is_valid, false);
      const v = await a('VerifyToken', { token });
      ok(v);
      await expectShape('user', 'VerifyToken', v.body);
      assert.equal(v.body.is_valid, true);
      assert.equal((await a('ReadSession', { session_id: v.body.session.id })).body.account.username, 'alice');
      const again = await a('VerifyToken', { token });
      assert.deepEqual([again.body.is_valid, again.body.session], [false, undefined]);
      await expectShape('user', 'VerifyToken', again.body);
      refused(await a('SendMagicLink', { email: 'alice@example.com', address: 'https://app.example.com', endpoint: '../../evil' }), 400, /endpoint/);
      refused(await a('SendMagicLink', { email: 'alice@example.com', address: 'ftp://app.example.com' }), 400, /address/);
    });

    await t.test("isolation: b cannot read, log in as, end or delete a's users, even with the same names", async () => {
      const alice = (await a('Read', { username: 'alice' })).body.account;
      const aSession = (await a('Login', { username: 'alice', password: 'new horse!' })).body.session.id;
      // b has its own alice, with the same username and email
      ok(await b('Create', { username: 'alice', email: 'alice@example.com', password: 'b alice pw' }));
      refused(await b('Login', { username: 'alice', password: 'new horse!' }), 401, /wrong/);
      refused(await b('ReadSession', { session_id: aSession }), 401, /session_id/);
      refused(await b('Read', { id: alice.id }), 404, /no account/);
      refused(await b('Delete', { id: alice.id }), 404, /no account/);
      refused(await b('LogoutAll', { user_id: alice.id }), 404, /no account/);
      refused(await b('Logout', { session_id: aSession }), 404, /session_id/);
      refused(await b('Update', { id: alice.id, username: 'mallory' }), 404, /no account/);
      refused(await b('UpdatePassword', { userId: alice.id, old_password: 'new horse!', new_password: 'mallory!!' }), 404, /no account/);
      assert.deepEqual((await b('List', {})).body.users.map((u: { username: string }) => u.username), ['alice']);
      assert.notEqual((await b('Read', { username: 'alice' })).body.account.id, alice.id);
      const aIds = ((await a('List', { limit: 100 })).body.users as { id: string; username: string; email: string }[]);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...aIds), fc.constantFrom('id', 'username', 'email'), async (u, field) => {
          const r = await b('Read', { [field]: u[field as 'id'] });
          // 404, or b's own account of the same name (b has an alice too): never a's
          return r.status === 404 || (r.status === 200 && r.body.account.id !== u.id);
        }),
        { numRuns: 20 },
      );
      // a's session and account are as they were
      assert.equal((await a('ReadSession', { session_id: aSession })).body.account.id, alice.id);
    });

    await t.test('bad input: a 400 naming the field, nothing stored', async () => {
      const count = (await a('List', { limit: 1000 })).body.users.length;
      refused(await a('Create', { username: 'carol', password: '12345678' }), 400, /Missing email/);
      refused(await a('Create', { email: 'carol@example.com', password: '12345678' }), 400, /Missing username/);
      refused(await a('Create', { username: 'carol', email: 'carol@example.com', password: '1234567' }), 400, /password: must be at least 8/);
      refused(await a('Create', { username: 'carol', email: 'carol@example.com', password: 12345678 }), 400, /password/);
      refused(await a('Create', { username: 'carol', email: 'not an email', password: '12345678' }), 400, /email: must be one address/);
      refused(await a('Create', { username: 'carol', email: 'carol@example.com\r\nBcc: x@evil.com', password: '12345678' }), 400, /email/);
      refused(await a('Create', { username: 'x'.repeat(500), email: 'carol@example.com', password: '12345678' }), 400, /username/);
      refused(await a('Create', { username: 'car\u0000ol', email: 'carol@example.com', password: '12345678' }), 400, /username/);
      refused(await a('Create', { username: 'carol', email: 'carol@example.com', password: '12345678', profile: { deep: { er: 1 } } }), 400, /profile/);
      refused(await a('Create', { username: 'carol', email: 'carol@example.com', password: '12345678', profile: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, 'v'])) }), 400, /profile: at most 50/);
      refused(await a('List', { limit: 5000 }), 400, /limit/);
      refused(await a('Read', {}), 400, /Missing id, username or email/);
      refused(await a('Login', { username: 'alice' }), 400, /Missing password/);
      refused(await a('SendPasswordResetEmail', { email: 'alice@example.com', expiration: 5 }), 400, /expiration/);
      refused(await a('SendPasswordResetEmail', { email: 'alice@example.com', from_name: 'Evil\r\nBcc: x@evil.com' }), 400, /from_name/);
      assert.equal((await a('List', { limit: 1000 })).body.users.length, count);
      // the platform's mail service is for micro's own services, not for tenants
      const direct = await p.call(p.a.key, 'mail', 'Send', { tenant: 'tenant-a', to: 'x@example.com', subject: 's', text: 't' });
      assert.notEqual(direct.status, 200);
    });

    await t.test('Delete', async () => {
      const id = (await a('Read', { username: 'robert' })).body.account.id;
      const s = (await a('Login', { username: 'robert', password: 'robert rules' })).body.session.id;
      const del = await a('Delete', { id });
      ok(del);
      await expectShape('user', 'Delete', del.body);
      refused(await a('Read', { id }), 404, /no account/);
      refused(await a('ReadSession', { session_id: s }), 401, /session_id/);
      refused(await a('Login', { username: 'robert', password: 'robert rules' }), 401, /wrong/);
      // the name and email are free again
      ok(await a('Create', { username: 'robert', email: 'robert@example.com', password: 'robert again' }));
    });
  });
}

test('user: without the platform\'s mail service, emails are a 503 saying what to configure', async (t) => {
  const p = (await startPlatform(t, { services: [service] })) as Platform;
  t.after(() => p.close());
  assert.equal((await p.call(p.a.key, 'user', 'Create', { username: 'dora', email: 'dora@example.com', password: 'explorer!' })).status, 200);
  const res = await p.call(p.a.key, 'user', 'SendPasswordResetEmail', { email: 'dora@example.com' });
  refused(res, 503, /mail service.*micro server.*MICRO_SMTP_URL/);
});
