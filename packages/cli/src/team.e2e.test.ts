import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMail, startSmtpServer, type TestSmtp } from '@micro/platform/testing';
import { codeFromSmtp, micro, startServer, tempDir, until, type Result } from './testing.js';

/*
 * Teams from the command line, against a real `micro server` whose mail goes to a real SMTP
 * server in this process. Ada and Bob are two people with a CLI each: one MICRO_HOME with
 * two environments on the same server (`local` for Ada, `bob` chosen by MICRO_ENV for Bob),
 * so each keeps its own login. Every command is `micro` in its own process.
 */

const PASSWORD = 'correct-horse-battery';
const BOB_PASSWORD = 'another-long-password';

type Run = (args: string[], input?: string) => Promise<Result>;

/** Invited by the staff (the local admin), signs up into `namespace` with the mailed code. */
async function signUp(run: Run, smtp: TestSmtp, email: string, password: string, namespace: string): Promise<void> {
  const before = smtp.received.length;
  const sent = await run(['signup', '--email', email]);
  assert.equal(sent.code, 0, sent.stderr);
  const code = await codeFromSmtp(smtp, email, before);
  const done = await run(['signup', '--email', email, '--code', code, '--password', '-', '--namespace', namespace], `${password}\n`);
  assert.equal(done.code, 0, done.stderr);
}

function refused(res: Result, why: RegExp, what: string): void {
  assert.equal(res.code, 1, `${what}: ${res.stdout}`);
  assert.match(res.stderr, why, what);
}

test('owner invites, bob accepts and works as developer, becomes viewer, is removed; hostile input', { timeout: 180_000 }, async (t) => {
  const home = tempDir('micro-team-');
  const smtp = await startSmtpServer(t);
  const server = await startServer(home, { env: { MICRO_SMTP_URL: smtp.url() } });
  const ada: Run = (args, input) => micro(home, args, { input });
  const bob: Run = (args, input) => micro(home, args, { input, env: { MICRO_ENV: 'bob' } });
  assert.equal((await micro(home, ['env', 'add', 'bob', server.address])).code, 0);

  // the staff invite both; each signs up into a namespace of their own
  assert.equal((await ada(['platform', 'invite', 'ada@example.com'])).code, 0);
  assert.equal((await ada(['platform', 'invite', 'bob@example.com'])).code, 0);
  await signUp(ada, smtp, 'ada@example.com', PASSWORD, 'acme');
  await signUp(bob, smtp, 'bob@example.com', BOB_PASSWORD, 'bobs-place');
  // members besides the owner are for plans with shared namespaces (Community has none)
  const team = await ada(['plan', 'change', 'team']);
  assert.equal(team.code, 0, team.stderr);

  // the owner invites bob as developer: a mail goes out, the invite is listed
  const mark = smtp.received.length;
  const invited = await ada(['team', 'invite', 'bob@example.com', '--role', 'developer', '-o', 'json']);
  assert.equal(invited.code, 0, invited.stderr);
  assert.deepEqual(pick(JSON.parse(invited.stdout), ['namespace', 'email', 'role']), { namespace: 'acme', email: 'bob@example.com', role: 'developer' });
  const mail = await until('the team invite mail', 15_000, async () => {
    const m = smtp.received.slice(mark).find((r) => r.to.includes('bob@example.com'));
    return m && parseMail(m.raw);
  });
  assert.match(mail.text ?? '', /acme/);
  const members = JSON.parse((await ada(['team', 'members', '-o', 'json'])).stdout) as { namespace: string; members: { email: string; role: string }[]; invites: { email: string; role: string }[] };
  assert.equal(members.namespace, 'acme');
  assert.deepEqual(members.members.map((m) => [m.email, m.role]), [['ada@example.com', 'owner']]);
  assert.deepEqual(members.invites.map((i) => [i.email, i.role]), [['bob@example.com', 'developer']]);
  assert.match((await ada(['team', 'members'])).stdout, /bob@example\.com +developer +invited until \d{4}-/);
  refused(await ada(['team', 'invite', 'bob@example.com', '--role', 'viewer']), /invited into acme already — `micro team remove <email>` revokes the invite/, 'invited twice');

  // bob, before accepting, is a stranger to acme: he may not list or invite there
  refused(await bob(['team', 'members', '--namespace', 'acme']), /forbidden: .*may not manage the members of acme/, 'a stranger lists members');
  refused(await bob(['team', 'accept', 'nowhere']), /no live invite of bob@example.com into nowhere — ask an owner or admin of it to invite you/, 'accept without an invite');

  // bob accepts with the password of his login; his namespaces show both with his roles
  const accepted = await bob(['team', 'accept', 'acme']);
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.match(accepted.stdout, /joined acme as developer .* switch to it with `micro user namespace set acme`/);
  const names = JSON.parse((await bob(['user', 'namespaces', '-o', 'json'])).stdout) as { current: string; namespaces: string[]; roles: Record<string, string> };
  assert.equal(names.current, 'bobs-place');
  assert.deepEqual([...names.namespaces].sort(), ['acme', 'bobs-place']);
  assert.deepEqual(names.roles, { acme: 'developer', 'bobs-place': 'owner' });
  assert.match((await bob(['user', 'namespaces'])).stdout, /^ +acme +developer$/m);
  assert.equal((await bob(['user', 'namespace', 'set', 'acme'])).code, 0);
  assert.equal((await bob(['user', 'namespace'])).stdout.trim(), 'acme');

  // a developer works with the store of acme, but manages no members
  const wrote = await bob(['store', 'write', 'greeting', 'hello']);
  assert.equal(wrote.code, 0, wrote.stderr);
  assert.equal((await bob(['store', 'read', 'greeting'])).stdout.trim(), 'hello');
  refused(await bob(['team', 'invite', 'carol@example.com', '--role', 'viewer']), /forbidden: InviteMember needs an owner or admin of acme \(you are developer[^)]*\) — account bob@example.com \(namespace acme\) may not manage the members of acme/, 'a developer invites');
  refused(await bob(['team', 'role', 'bob@example.com', 'owner']), /forbidden: .*you are developer/, 'a developer promotes himself');
  const roster = JSON.parse((await ada(['team', 'members', '-o', 'json'])).stdout) as typeof members;
  assert.deepEqual(roster.members.map((m) => [m.email, m.role]).sort(), [['ada@example.com', 'owner'], ['bob@example.com', 'developer']]);
  assert.deepEqual(roster.invites, []);

  // viewer: writes are refused at once, reads still work
  const demoted = await ada(['team', 'role', 'bob@example.com', 'viewer', '-o', 'json']);
  assert.equal(demoted.code, 0, demoted.stderr);
  assert.deepEqual(pick(JSON.parse(demoted.stdout), ['namespace', 'email', 'role']), { namespace: 'acme', email: 'bob@example.com', role: 'viewer' });
  refused(await bob(['store', 'write', 'greeting', 'changed']), /forbidden/, 'a viewer writes');
  assert.equal((await bob(['store', 'read', 'greeting'])).stdout.trim(), 'hello');

  // the rules of the server come through with what to do
  refused(await ada(['team', 'invite', 'bob@example.com', '--role', 'admin']), /bob@example.com is a member of acme already — change the role with `micro team role <email> <role>`/, 'invite a member');
  refused(await ada(['team', 'remove', 'ada@example.com', '--yes']), /ada@example.com is the last owner of acme.*`micro team role <email> owner`, then remove/, 'remove the last owner');
  refused(await ada(['team', 'remove', 'bob@example.com']), /ends their access at once: confirm with --yes/, 'remove without --yes');

  // removed: bob's calls in acme are refused; his own namespace is his again
  const removed = await ada(['team', 'remove', 'bob@example.com', '--yes']);
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, /removed bob@example.com from acme/);
  refused(await bob(['store', 'read', 'greeting']), /refused|log ?in/, 'a removed member reads');
  refused(await bob(['user', 'namespaces']), /refused the email and password for namespace acme/, 'namespaces of a removed member');
  assert.equal((await bob(['user', 'namespace', 'set', 'bobs-place'])).code, 0);
  const after = JSON.parse((await bob(['user', 'namespaces', '-o', 'json'])).stdout) as typeof names;
  assert.deepEqual(after, { current: 'bobs-place', namespaces: ['bobs-place'], roles: { 'bobs-place': 'owner' } });
  // bob, owner of his own namespace, cannot reach into acme's members
  refused(await bob(['team', 'remove', 'ada@example.com', '--namespace', 'acme', '--yes']), /forbidden: .*bobs-place may not manage the members of acme/, 'another owner removes');
  assert.deepEqual((JSON.parse((await ada(['team', 'members', '-o', 'json'])).stdout) as typeof members).members.map((m) => m.email), ['ada@example.com']);

  // hostile input: each a clear error naming what is wrong, nothing invited
  for (const [args, why] of [
    [['team', 'invite', 'carol@example.com', '--role', 'superuser'], /role: "superuser" is not one of admin, developer, viewer — e.g. `--role developer`/],
    [['team', 'invite', 'carol@example.com', '--role', 'owner'], /owners are made from members: invite as admin, then `micro team role <email> owner`/],
    [['team', 'invite', 'carol@example.com', '--role', 'x'.repeat(5000)], /role/],
    [['team', 'invite', 'not-an-email', '--role', 'viewer'], /email/],
    [['team', 'invite', 'evil@example.com\r\nBcc: victim@example.com', '--role', 'viewer'], /email/],
    [['team', 'invite', `${'a'.repeat(300)}@example.com`, '--role', 'viewer'], /email/],
    [['team', 'invite', 'carol@example.com'], /required option '--role <role>'/],
    [['team', 'invite', 'carol@example.com', '--role', 'viewer', '--namespace', '../../etc'], /namespace/],
    [['team', 'members', '--namespace', 'x'.repeat(5000)], /namespace/],
    [['team', 'role', 'nobody@example.com', 'viewer'], /nobody@example.com is not a member of acme/],
    [['team', 'role', 'ada@example.com', 'emperor'], /role: "emperor" is not one of owner, admin, developer, viewer/],
    [['team', 'remove', 'nobody@example.com', '--yes'], /neither a member of nor invited into acme/],
    [['team', 'accept', 'acme', '--password', 'on-the-command-line'], /--password takes only "-"/],
  ] as const) {
    const res = await ada([...args]);
    refused(res, why, args.join(' ').slice(0, 80));
    assert.ok(!res.stderr.includes('\r\n'), 'CR/LF echoed');
  }
  const final = JSON.parse((await ada(['team', 'members', '-o', 'json'])).stdout) as typeof members;
  assert.deepEqual(final.invites, []);
});

function pick(value: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, value[k]]));
}
