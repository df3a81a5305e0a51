import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startSmtpServer, type TestSmtp } from '@micro/platform/testing';
import { codeFromSmtp, micro, natsPlatform, startServer, stopProcess, tempDir, type Result } from './testing.js';

/*
 * Plans and subscriptions from the command line, against a real `micro server` (its mail
 * to a real SMTP server in this process). The staff (the local admin) edit plans; Ada
 * owns acme and subscribes; Bob, a developer of acme, reads the plan and may not change
 * it. Every command is `micro` in its own process; amounts depend on the real clock, so
 * this checks their signs and what the server says, the unit tests check the units.
 */

const PASSWORD = 'correct-horse-battery';

type Run = (args: string[], input?: string) => Promise<Result>;

function refused(res: Result, why: RegExp, what: string): void {
  assert.equal(res.code, 1, `${what}: ${res.stdout}`);
  assert.match(res.stderr, why, what);
}

function ok(res: Result, what: string): string {
  assert.equal(res.code, 0, `${what}: ${res.stderr}`);
  return res.stdout;
}

async function signUp(run: Run, smtp: TestSmtp, email: string, namespace?: string): Promise<void> {
  const before = smtp.received.length;
  ok(await run(['signup', '--email', email]), `code for ${email}`);
  const code = await codeFromSmtp(smtp, email, before);
  ok(await run(['signup', '--email', email, '--code', code, '--password', '-', ...(namespace ? ['--namespace', namespace] : [])], `${PASSWORD}\n`), `signup of ${email}`);
}

async function scenario(t: TestContext, env: Record<string, string>): Promise<void> {
  const home = tempDir('micro-plans-');
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const smtp = await startSmtpServer(t);
  const server = await startServer(home, { timeout: 60_000, env: { MICRO_SMTP_URL: smtp.url(), ...env } });
  t.after(() => stopProcess(server.proc));
  const staff: Run = (args, input) => micro(home, args, { input, env: { MICRO_ENV: 'staff' } });
  const ada: Run = (args, input) => micro(home, args, { input });
  const bob: Run = (args, input) => micro(home, args, { input, env: { MICRO_ENV: 'bob' } });
  ok(await micro(home, ['env', 'add', 'staff', server.address]), 'env staff');
  const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  ok(await staff(['login', '--id', admin.id, '--namespace', 'micro', '--secret', '-'], `${admin.secret}\n`), 'staff login');
  ok(await micro(home, ['env', 'add', 'bob', server.address]), 'env bob');

  // the plans anyone sees: prices a seat a month, Cloud for later
  assert.match(ok(await staff(['plan', 'list']), 'plan list'), /^team +Team +\$35\.00 +available +20 +50 +50 +email$/m);
  assert.match(ok(await staff(['plan', 'list']), 'plan list'), /^cloud +Cloud +later +reserved/m);
  const listed = JSON.parse(ok(await staff(['platform', 'plans', '-o', 'json']), 'platform plans')) as { plans: { current: { id: string; price: number } }[] };
  assert.deepEqual(listed.plans.map((p) => [p.current.id, p.current.price]), [['community', 0], ['developer', 35_000_000], ['team', 35_000_000], ['platform', 100_000_000], ['cloud', 0]]);

  // staff make a plan, change it from the next period, retire it
  const made = JSON.parse(ok(await staff(['platform', 'plans', 'create', 'startup', '--name', 'Startup', '--price', '$20', '--limit', 'services=10', 'requestsPerSecond=30', '--uptime', '99.5', '-o', 'json']), 'create')) as { price: number; limits: Record<string, number>; sla: { uptimeBasisPoints: number } };
  assert.deepEqual([made.price, made.limits.services, made.limits.requestsPerSecond, made.sla.uptimeBasisPoints], [20_000_000, 10, 30, 9950]);
  assert.match(ok(await staff(['platform', 'plans', 'set', 'startup', '--price', '25.50', '--shared-namespaces', 'true']), 'set'), /plan startup changed from \d{4}-\d{2}: \$25\.50 a seat a month, available; this period keeps the version in force/);
  const shown = ok(await staff(['platform', 'plans', 'show', 'startup']), 'show');
  assert.match(shown, /^Startup \(startup\), in force from \d{4}-\d{2}: \$20\.00 a seat a month, available$/m);
  assert.match(shown, /^Startup \(startup\), next from \d{4}-\d{2}: \$25\.50 a seat a month, available$/m);
  assert.match(ok(await staff(['platform', 'plans', 'retire', 'startup']), 'retire'), /plan startup is retired from \d{4}-\d{2}: no new subscriptions; those on it keep it/);

  // hostile input to the staff's commands: each a clear error, nothing made
  for (const [args, why] of [
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', '-5'], /--price: invalid amount "-5"/],
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', '1.2345678'], /--price: invalid amount/],
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', 'lots'], /--price: invalid amount "lots"/],
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', '1e9'], /--price: invalid amount/],
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', '200000'], /price: at most 100000000000 units \(\$100000\) per seat a month/],
    [['platform', 'plans', 'create', 'p1', '--price', '5'], /a new plan needs a name and a price/],
    [['platform', 'plans', 'create', 'Bad Id', '--name', 'P', '--price', '5'], /^id: "Bad Id" is not a plan id/m],
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', '5', '--limit', 'services=-1'], /limits.services must be a whole number/],
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', '5', '--limit', 'rootAccess=1'], /limits.rootAccess is not a limit/],
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', '5', '--uptime', '101'], /--uptime must be a percentage/],
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', '5', '--invite-only', 'yes'], /--invite-only must be true or false/],
    [['platform', 'plans', 'create', 'p1', '--name', 'P', '--price', '5', '--support', 'phone'], /support: one of community, email, priority/],
    [['platform', 'plans', 'create', 'community', '--name', 'Mine', '--price', '5'], /plan community exists/],
    [['platform', 'plans', 'set', 'community', '--price', '5'], /free plan every customer falls back to/],
    [['platform', 'plans', 'retire', 'community'], /stays available/],
    [['platform', 'plans', 'set', 'nope', '--price', '5'], /no plan nope/],
    [['platform', 'plans', 'show', 'nope'], /no plan nope — `micro platform plans` lists them/],
    [['plan'], /staff name the customer .* — e.g. `micro plan --customer ada@example.com`/],
  ] as const) {
    refused(await staff([...args]), why, args.join(' '));
  }
  assert.equal((JSON.parse(ok(await staff(['platform', 'plans', '-o', 'json']), 'plans')) as typeof listed).plans.some((p) => p.current.id === 'p1'), false);

  // ada signs up: Community; the reserved and unknown plans are refused; Team it is
  ok(await staff(['platform', 'invite', 'ada@example.com']), 'invite ada');
  await signUp(ada, smtp, 'ada@example.com', 'acme');
  assert.match(ok(await ada(['plan']), 'plan'), /^plan +Community, \$0\.00 a seat a month \(never subscribed\)$/m);
  refused(await ada(['plan', 'change', 'cloud']), /^plan: Cloud is reserved: it takes no subscriptions yet$/m, 'cloud');
  refused(await ada(['plan', 'change', 'gold']), /^plan: no plan gold — `micro plan list` shows the plans$/m, 'gold');
  refused(await ada(['team', 'invite', 'bob@example.com', '--role', 'developer']), /quota exceeded: members 1 of 1 used in namespace acme/, 'Community has no shared namespaces');
  const changed = JSON.parse(ok(await ada(['plan', 'change', 'team', '-o', 'json']), 'change to team')) as { charged: number; subscription: { plan: { id: string }; seats: number } };
  assert.ok(changed.charged > 0 && changed.charged <= 35_000_000, String(changed.charged));
  assert.deepEqual([changed.subscription.plan.id, changed.subscription.seats], ['team', 1]);
  refused(await ada(['plan', 'change', 'team']), /you are on Team already/, 'the same plan');

  // bob joins acme as a developer by the invite: he reads the plan, may not change it
  ok(await ada(['team', 'invite', 'bob@example.com', '--role', 'developer']), 'invite bob');
  await signUp(bob, smtp, 'bob@example.com');
  const read = ok(await bob(['plan']), 'bob reads');
  assert.match(read, /^plan +Team, \$35\.00 a seat a month, since /m);
  assert.match(read, /^next +\d{4}-\d{2}: Team, 2 × \$35\.00 = \$70\.00$/m);
  refused(await bob(['plan', 'change', 'developer']), /^forbidden: ChangePlan: only the owner who pays for acme changes its plan \(you are developer, and the plan is the paying owner's\) — account bob@example.com \(namespace acme\)/m, 'a developer downgrades');
  refused(await bob(['plan', 'cancel']), /only the owner who pays for acme/, 'a developer cancels');
  refused(await bob(['plan', '--customer', 'someone@example.com']), /forbidden: customer: the plan of acme is its owner's/, 'another customer');

  // a downgrade below what acme uses is refused with what to remove first
  refused(await ada(['plan', 'change', 'developer']), /^plan: your namespaces use more than Developer includes: remove 1 member or invite in acme \(members 2 of 1\) first$/m, 'downgrade');
  // Team: owners set their namespace's quotas within the plan
  ok(await ada(['quota', 'set', 'acme', 'apiKeys=5']), 'quota within the plan');
  refused(await ada(['quota', 'set', 'acme', 'apiKeys=500']), /apiKeys: 500 is more than your plan's 100 \(Team\)/, 'quota above the plan');

  // cancel at period end, resume
  assert.match(ok(await ada(['plan', 'cancel']), 'cancel'), /^Team ends with \d{4}-\d{2}: from \S+ on Community$/m);
  assert.match(ok(await ada(['plan']), 'plan'), /^period +\d{4}-\d{2} until \S+, cancelled: then Community$/m);
  assert.match(ok(await ada(['plan', 'resume']), 'resume'), /^Team goes on: next fee \$70\.00 on /m);

  // staff read and change any customer
  const byStaff = JSON.parse(ok(await staff(['plan', '--customer', 'ada@example.com', '-o', 'json']), 'staff reads')) as { plan: { id: string }; namespaces: string[]; members: number };
  assert.deepEqual([byStaff.plan.id, byStaff.namespaces, byStaff.members], ['team', ['acme'], 2]);
  const up = JSON.parse(ok(await staff(['plan', 'change', 'platform', '--customer', 'ada@example.com', '-o', 'json']), 'staff upgrade')) as { charged: number };
  assert.ok(up.charged > 0);
}

test('micro plan and micro platform plans (local profile): staff edit plans, the owner subscribes, a developer is refused, hostile input', { timeout: 180_000 }, (t) => scenario(t, {}));

test('micro plan and micro platform plans (nats profile: PostgreSQL)', { timeout: 240_000 }, async (t) => {
  const platform = await natsPlatform(t, 'plans');
  if (!platform) return;
  t.after(() => platform.drop());
  await scenario(t, platform.env);
});
