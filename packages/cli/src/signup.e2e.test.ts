import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { parseMail, startSmtpServer } from '@micro/platform/testing';
import { Home } from './config.js';
import { CliContext } from './context.js';
import { main } from './main.js';
import { codeFromSmtp, codeOf, micro, startServer, tempDir, until } from './testing.js';

/*
 * The signup flow of the platform from the command line, against a real `micro server`
 * whose mail goes to a real SMTP server in this process (MICRO_SMTP_URL), or to the outbox.
 * The interactive runs (prompts, passwords without echo) go through main() in this process
 * with a scripted terminal; every other command is `micro` in its own process.
 */

const PASSWORD = 'correct-horse-battery';

type Step = [prompt: RegExp, answer: () => string | Promise<string>];

/**
 * `micro <args>` in this process on a scripted terminal: each time stderr shows the next
 * prompt, its answer is typed (and Enter). The prompts of the CLI go to stderr.
 */
async function onTerminal(home: string, args: string[], script: Step[]): Promise<{ code: number; out: string; err: string; left: number }> {
  const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => stdin });
  let out = '';
  let err = '';
  let seen = 0;
  const steps = [...script];
  // a stream, as readline wants of a terminal's output
  const stderr = new Writable({
    write(chunk: Buffer, _enc, done) {
      err += chunk.toString();
      if (process.env.DEBUG_TERM) process.stdout.write(`# ${JSON.stringify(chunk.toString())}\n`);
      const step = steps[0];
      if (step && step[0].test(err.slice(seen))) {
        seen = err.length;
        steps.shift();
        void Promise.resolve(step[1]()).then((answer) => stdin.write(`${answer}\r`));
      }
      done();
    },
  });
  const ctx = new CliContext(new Home(home), { stdout: { write: (s: string) => (out += s) }, stderr, stdin });
  const code = await main(args, ctx);
  return { code, out, err, left: steps.length };
}

test('invite, signup with the mailed code, services in the new namespace, logout, login by email, namespaces', { timeout: 120_000 }, async (t) => {
  const home = tempDir('micro-signup-');
  const smtp = await startSmtpServer(t);
  await startServer(home, { env: { MICRO_SMTP_URL: smtp.url() } });

  // staff (the local admin) invite; the invite goes out by SMTP
  const invited = await micro(home, ['platform', 'invite', 'ada@example.com', '--days', '3', '-o', 'json']);
  assert.equal(invited.code, 0, invited.stderr);
  const invite = JSON.parse(invited.stdout) as { id: string; email: string; status: string };
  assert.match(invite.id, /^inv_/);
  assert.equal(invite.status, 'pending');
  await until('the invite mail', 15_000, async () => (smtp.received.some((m) => m.to.includes('ada@example.com')) ? true : undefined));
  const list = JSON.parse((await micro(home, ['platform', 'invites', '-o', 'json'])).stdout) as { invites: { id: string }[] };
  assert.ok(list.invites.some((i) => i.id === invite.id));

  // on a terminal: the email, a wrong code then the right one, two passwords that differ then agree
  const sentBefore = smtp.received.length;
  const wrong = async () => ((await codeFromSmtp(smtp, 'ada@example.com', sentBefore)) === '000000' ? '111111' : '000000');
  const run = await onTerminal(home, ['signup'], [
    [/Email: $/, () => 'ada@example.com'],
    [/Code from the email: $/, wrong],
    [/New password.*: $/, () => PASSWORD],
    [/Again: $/, () => 'something-else-entirely'],
    [/differ — try again\n[\s\S]*New password.*: $/, () => PASSWORD],
    [/Again: $/, () => PASSWORD],
    [/wrong code \(4 tries left\) — try again\n[\s\S]*Code from the email: $/, () => codeFromSmtp(smtp, 'ada@example.com', sentBefore)],
  ]);
  assert.equal(run.code, 0, run.err);
  assert.equal(run.left, 0, run.err);
  assert.ok(!run.err.includes(PASSWORD) && !run.out.includes(PASSWORD), 'the password was echoed');
  const namespace = /your namespace is ([a-z0-9-]+)/.exec(run.out)?.[1];
  assert.ok(namespace, run.out);
  assert.match(run.out, /next: micro services/);
  // what is stored: the email, the password and the namespace, 0600
  const stored = JSON.parse(readFileSync(join(home, 'credentials', 'local.json'), 'utf8')) as Record<string, string>;
  assert.deepEqual(stored, { id: 'ada@example.com', secret: PASSWORD, namespace });

  // logged in as the tenant: its own namespace works; the staff's commands answer 403 with what to do
  const services = await micro(home, ['services', '-o', 'json']);
  assert.equal(services.code, 0, services.stderr);
  assert.equal((await micro(home, ['user', 'namespace'])).stdout.trim(), namespace);
  const denied = await micro(home, ['platform', 'invite', 'eve@example.com']);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /forbidden: .*needs an admin of namespace micro — account ada@example.com \(namespace [a-z-]+\) is not staff of the platform; log in as an admin of namespace micro/);
  const names = JSON.parse((await micro(home, ['user', 'namespaces', '-o', 'json'])).stdout) as { current: string; namespaces: string[]; roles: Record<string, string> };
  assert.deepEqual(names, { current: namespace, namespaces: [namespace], roles: { [namespace as string]: 'owner' } });

  // logout, then login by email: no namespace to know
  assert.equal((await micro(home, ['logout'])).code, 0);
  const refused = await micro(home, ['login', '--email', 'ada@example.com', '--password', '-'], { input: 'not-the-password\n' });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refused the email and password — check them/);
  const login = await micro(home, ['login', '--email', 'ADA@example.com', '--password', '-'], { input: `${PASSWORD}\n` });
  assert.equal(login.code, 0, login.stderr);
  assert.match(login.stdout, new RegExp(`logged in to local as ada@example.com \\(namespace ${namespace}\\)`));
  const table = await micro(home, ['user', 'namespaces']);
  assert.match(table.stdout, new RegExp(`^\\* +${namespace} +owner$`, 'm'));
  assert.equal((await micro(home, ['services'])).code, 0);
  // a namespace not one's own is refused like a wrong password; the login stays as it was
  const other = await micro(home, ['user', 'namespace', 'set', 'someone-elses']);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /refused the email and password for namespace someone-elses/);
  assert.equal((await micro(home, ['user', 'namespace'])).stdout.trim(), namespace);
  assert.equal((await micro(home, ['user', 'namespace', 'set', namespace as string])).code, 0);
  // the old login by id and secret still works
  assert.equal((await micro(home, ['logout'])).code, 0);
  const byId = await micro(home, ['login', '--id', 'ada@example.com', '--namespace', namespace as string, '--secret', '-'], { input: `${PASSWORD}\n` });
  assert.equal(byId.code, 0, byId.stderr);
});

test('without a terminal: flags, wrong input, the waiting list and the staff commands', { timeout: 120_000 }, async (t) => {
  const home = tempDir('micro-signup-flags-');
  const smtp = await startSmtpServer(t);
  await startServer(home, { env: { MICRO_SMTP_URL: smtp.url() } });

  // usage errors say what to give
  const bare = await micro(home, ['signup']);
  assert.equal(bare.code, 1);
  assert.match(bare.stderr, /give the invited address with --email \(stdin is not a terminal/);
  const inline = await micro(home, ['signup', '--email', 'bob@example.com', '--code', '1', '--password', 'hunter22hunter']);
  assert.match(inline.stderr, /--password takes only "-"/);
  const noInvite = await micro(home, ['signup', '--email', 'stranger@example.com']);
  assert.equal(noInvite.code, 1);
  assert.match(noInvite.stderr, /has no invite on local — join the waiting list with `micro signup --waitlist stranger@example.com`/);
  for (const [args, why] of [
    [['platform', 'invite', 'x@example.com', '--days', '0'], /--days must be a whole number from 1 to 90/],
    [['platform', 'invite', 'evil@example.com\r\nBcc: x@example.com'], /email/],
    [['platform', 'invite-next', 'lots'], /<n> must be a whole number/],
    [['platform', 'customers', '--status', 'happy'], /--status must be one of/],
    [['platform', 'revoke', 'inv_nope'], /no invite inv_nope/],
  ] as const) {
    const res = await micro(home, [...args]);
    assert.equal(res.code, 1, args.join(' '));
    assert.match(res.stderr, why, args.join(' '));
  }

  // the waiting list, then an invite of the next on it
  assert.equal((await micro(home, ['signup', '--waitlist', 'bob@example.com'])).code, 0);
  const waiting = JSON.parse((await micro(home, ['platform', 'waitlist', '-o', 'json'])).stdout) as { entries: { email: string }[] };
  assert.deepEqual(waiting.entries.map((e) => e.email), ['bob@example.com']);
  const next = JSON.parse((await micro(home, ['platform', 'invite-next', '5', '-o', 'json'])).stdout) as { invites: { email: string }[] };
  assert.deepEqual(next.invites.map((i) => i.email), ['bob@example.com']);

  // two steps: the code is sent, then given with the password on stdin
  const before = smtp.received.length;
  const sent = await micro(home, ['signup', '--email', 'bob@example.com']);
  assert.equal(sent.code, 0, sent.stderr);
  assert.match(sent.stdout, /finish with: micro signup --email bob@example.com --code <the code> --password -/);
  const code = await codeFromSmtp(smtp, 'bob@example.com', before);
  const wrongCode = await micro(home, ['signup', '--email', 'bob@example.com', '--code', code === '000000' ? '111111' : '000000', '--password', '-'], { input: `${PASSWORD}\n` });
  assert.equal(wrongCode.code, 1);
  assert.match(wrongCode.stderr, /wrong code \(4 tries left\) — a new code: `micro signup --email bob@example.com`/);
  const short = await micro(home, ['signup', '--email', 'bob@example.com', '--code', code, '--password', '-'], { input: 'short\n' });
  assert.match(short.stderr, /at least 8 characters/);
  const done = await micro(home, ['signup', '--email', 'bob@example.com', '--code', code, '--password', '-', '--namespace', 'bobs-team', '-o', 'json'], { input: `${PASSWORD}\n` });
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual(JSON.parse(done.stdout), { email: 'bob@example.com', namespace: 'bobs-team', namespaces: ['bobs-team'] });
  assert.equal((await micro(home, ['logout'])).code, 0);

  // recovery mails the namespaces; the answer is the same for an unknown address
  const mark = smtp.received.length;
  assert.equal((await micro(home, ['signup', 'recover', 'bob@example.com'])).code, 0);
  assert.equal((await micro(home, ['signup', 'recover', 'nobody@example.com'])).code, 0);
  const recovery = await until('the recovery mail', 15_000, async () => {
    const m = smtp.received.slice(mark).find((r) => r.to.includes('bob@example.com'));
    return m && parseMail(m.raw);
  });
  assert.match(recovery.text ?? '', /bobs-team/);

  // the staff manage the customer; deleting asks for --yes without a terminal
  const customer = JSON.parse((await micro(home, ['platform', 'customer', 'bob@example.com', '-o', 'json'])).stdout) as { id: string; status: string };
  assert.equal(customer.status, 'active');
  assert.match((await micro(home, ['platform', 'customers'])).stdout, /bob@example\.com +active +bobs-team \(owner\)/);
  assert.equal((await micro(home, ['platform', 'suspend', customer.id])).code, 0);
  const suspended = await micro(home, ['login', '--email', 'bob@example.com', '--password', '-'], { input: `${PASSWORD}\n` });
  assert.match(suspended.stderr, /refused the email and password/);
  assert.equal((await micro(home, ['platform', 'reactivate', 'bob@example.com'])).code, 0);
  const unconfirmed = await micro(home, ['platform', 'delete', customer.id]);
  assert.equal(unconfirmed.code, 1);
  assert.match(unconfirmed.stderr, /cannot be undone: confirm with --yes/);
  const deleted = await micro(home, ['platform', 'delete', customer.id, '--yes', '-o', 'json']);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.deepEqual(JSON.parse(deleted.stdout), { deletedNamespaces: ['bobs-team'] });
});

test('without SMTP the server says where the outbox is, and the message there holds the code', { timeout: 120_000 }, async () => {
  const home = tempDir('micro-signup-outbox-');
  const server = await startServer(home, { env: { MICRO_SMTP_URL: '', MICRO_LOG_LEVEL: 'info' } });
  assert.equal((await micro(home, ['platform', 'invite', 'cy@example.com'])).code, 0);
  assert.equal((await micro(home, ['signup', '--email', 'cy@example.com'])).code, 0);
  const outbox = join(home, 'outbox');
  await until('the outbox line of micro server', 15_000, async () => (server.output().includes(`messages are written as .eml files to ${outbox}`) ? true : undefined));
  // as README.md reads it: the last line of six digits in the outbox's files, oldest first
  const code = await until('the code in the outbox', 15_000, async () => {
    const files = readdirSync(outbox).filter((n) => n.endsWith('.eml')).sort();
    const text = files.map((n) => readFileSync(join(outbox, n), 'utf8')).join('');
    return [...text.matchAll(/^ +(\d{6})$/gm)].pop()?.[1];
  });
  const mail = await parseMail(readFileSync(join(outbox, readdirSync(outbox).filter((n) => n.endsWith('.eml')).sort().pop() as string)));
  assert.equal(codeOf(mail), code);
  const done = await micro(home, ['signup', '--email', 'cy@example.com', '--code', code, '--password', '-'], { input: `${PASSWORD}\n` });
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stdout, /signed up: your namespace is [a-z]/);
});

test('MICRO_SIGNUP=open lets anyone sign up; a wrong value stops micro server saying what to write', { timeout: 120_000 }, async () => {
  const wrong = await startServer(tempDir('micro-signup-mode-'), { env: { MICRO_SIGNUP: 'everyone' } }).then(
    () => undefined,
    (err: Error) => err.message,
  );
  assert.match(wrong ?? '', /MICRO_SIGNUP must be "invite" \(invited emails only, the default\) or "open" \(anyone\), not "everyone"/);
  const home = tempDir('micro-signup-open-');
  await startServer(home, { env: { MICRO_SIGNUP: 'open', MICRO_SMTP_URL: '' } });
  // no invite: the code is sent all the same
  const sent = await micro(home, ['signup', '--email', 'walk-in@example.com']);
  assert.equal(sent.code, 0, sent.stderr);
  const outbox = join(home, 'outbox');
  const code = await until('the code in the outbox', 15_000, async () => {
    const text = readdirSync(outbox).filter((n) => n.endsWith('.eml')).sort().map((n) => readFileSync(join(outbox, n), 'utf8')).join('');
    return [...text.matchAll(/^ +(\d{6})$/gm)].pop()?.[1];
  }).catch(() => undefined);
  assert.ok(code, 'a code was mailed to an address without an invite');
  const done = await micro(home, ['signup', '--email', 'walk-in@example.com', '--code', code, '--password', '-'], { input: `${PASSWORD}\n` });
  assert.equal(done.code, 0, done.stderr);
});
