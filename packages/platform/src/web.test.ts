import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { createLogger } from '@micro/sdk';
import { freePort } from '@micro/sdk/testing';
import { MicroServer } from '@micro/server';
import { browserReady, launchChromium, watchPage as watch } from '@micro/server/testing';
import { MemoryMailer } from './mail/mailer.js';
import { signupCoreService } from './signup/index.js';
import { PlatformHub } from './hub.js';
import { billingCoreService } from './plans/index.js';
import { startSignupHarness } from './signup/testing.js';

/**
 * The dashboard's pages of the platform (packages/web: signup.tsx, login.tsx, quotas.tsx, team.tsx, plan.tsx)
 * in Chromium against a real micro server that hosts the signup service. Here rather than
 * beside the dashboard's other browser test because @micro/server cannot import the platform.
 */

const silent = createLogger({ level: 'silent' });
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/dashboard/', import.meta.url));

interface Api {
  url: string;
  post(path: string, body: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }>;
}

function api(url: string): Api {
  return {
    url,
    async post(path, body, token) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      const res = await fetch(`${url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    },
  };
}

/** A customer signed up by the API (invited by the admin, the mailed code): its token. */
async function signUp(gw: Api, mailer: MemoryMailer, admin: string, who: { email: string; password: string }, namespace: string): Promise<string> {
  ok(await gw.post('/v1/signup/Invite', { email: who.email }, admin));
  ok(await gw.post('/v1/signup/SendCode', { email: who.email }));
  const code = /code is:\s*([0-9]{6})/.exec(mailer.lastTo(who.email)?.text ?? '')?.[1];
  assert.ok(code, 'the code was mailed');
  const made = await gw.post('/v1/signup/CompleteSignup', { email: who.email, code, password: who.password, namespace });
  ok(made);
  return made.json.token as string;
}

function ok(r: { status: number; json: unknown }): void {
  assert.equal(r.status, 200, JSON.stringify(r.json));
}

/**
 * A second namespace for a customer, as a team makes one: `owner` signs up into `namespace`
 * (invited by the admin) and invites the customer, who accepts with the password it has.
 */
async function joinTeam(gw: Api, mailer: MemoryMailer, admin: string, owner: { email: string; password: string }, namespace: string, member: { email: string; password: string; token: string }): Promise<void> {
  const token = await signUp(gw, mailer, admin, owner, namespace);
  ok(await gw.post('/v1/signup/InviteMember', { namespace, email: member.email, role: 'developer' }, token));
  ok(await gw.post('/v1/signup/AcceptInvite', { namespace, password: member.password }, member.token));
}

interface Platform {
  gw: Api;
  mailer: MemoryMailer;
  /** the admin of micro's token, and its id and secret */
  admin: string;
  adminFile: { id: string; secret: string };
  /** the dashboard's address, as the emails link to it */
  site: string;
  browser: Browser;
}

/**
 * A micro server hosting the signup service with a MemoryMailer (and with `billing`, the
 * billing service on the same hub: plans then drive the quotas), and Chromium; both
 * stopped after `fn`.
 */
async function withPlatform(t: TestContext, fn: (p: Platform) => Promise<void>, options: { billing?: boolean } = {}): Promise<void> {
  if (!browserReady(t)) return;
  const home = mkdtempSync(join(tmpdir(), 'micro-web-platform-'));
  const mailer = new MemoryMailer();
  const port = await freePort();
  const site = `http://127.0.0.1:${port}/dashboard`;
  const hub = new PlatformHub();
  const coreServices = [signupCoreService({ mailer, siteUrl: site, hub }), ...(options.billing ? [billingCoreService({ hub })] : [])];
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: `127.0.0.1:${port}`, logger: silent, coreServices }).start();
  let browser: Browser | undefined;
  try {
    const gw = api(server.gatewayUrl as string);
    const adminFile = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const admin = (await gw.post('/v1/auth/Token', { id: adminFile.id, secret: adminFile.secret })).json.token as string;
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    await fn({ gw, mailer, admin, adminFile, site, browser });
  } finally {
    await browser?.close();
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  }
}

test('the platform pages in chromium: sign up by the emailed link, a wrong code, login with a namespace picker, quotas, the waiting list', { timeout: 120_000 }, (t) =>
  withPlatform(t, async ({ gw, mailer, admin, site, browser }) => {
    const email = 'ada@example.com';
    const password = 'correct horse battery';
    assert.equal((await gw.post('/v1/signup/Invite', { email }, admin)).status, 200);

    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    const problems = watch(page);
    const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
    const alert = () => page.getByRole('alert');

    // an address without an invite: the server's 403 says why
    await page.goto(`${gw.url}/dashboard/#/signup`);
    await page.getByLabel('Email').fill('stranger@example.com');
    await page.getByRole('button', { name: 'Send code' }).click();
    await alert().getByText(/^403 Forbidden: email: no invite for this address/).waitFor();
    // the invited one: a code is mailed, the second step asks for it
    await page.getByLabel('Email').fill(email);
    await page.getByRole('button', { name: 'Send code' }).click();
    await page.getByRole('status').getByText(`We emailed a code to ${email}`).waitFor();
    const mail = mailer.lastTo(email)?.text ?? '';
    const code = /code is:\s*(\d{6})/.exec(mail)?.[1] as string;
    const link = /(http\S+\/signup\/verify\?\S+)/.exec(mail)?.[1] as string;
    assert.equal(link, `${site}/signup/verify?email=ada%40example.com&code=${code}`);
    const form = page.getByRole('form', { name: 'complete signup' });
    await form.getByLabel('Code').fill(String((Number(code) + 1) % 1_000_000).padStart(6, '0'));
    await form.getByLabel('Password').fill(password);
    await form.getByRole('button', { name: 'Sign up' }).click();
    await form.getByRole('alert').getByText('401 Unauthorized: code: wrong code (4 tries left)').waitFor();
    await shot('signup-wrong-code');

    // the emailed link: the code filled in, and gone from the address at once
    await page.goto(link);
    await form.waitFor();
    assert.equal(await form.getByLabel('Code').inputValue(), code);
    assert.equal(new URL(page.url()).pathname + new URL(page.url()).hash, '/dashboard/#/signup');
    assert.doesNotMatch(page.url(), /code=/);
    // bad input: the server's 400 names the field, nothing is lost
    await form.getByLabel('Password').fill('short');
    await form.getByRole('button', { name: 'Sign up' }).click();
    await form.getByRole('alert').getByText(/^400 Bad Request: .*password/).waitFor();
    await form.getByLabel('Password').fill(password);
    await form.getByLabel('Namespace').fill('micro');
    await form.getByRole('button', { name: 'Sign up' }).click();
    await form.getByRole('alert').getByText(/^400 Bad Request: namespace: .*reserved/).waitFor();
    await form.getByLabel('Namespace').fill('<b>x</b>');
    await form.getByRole('button', { name: 'Sign up' }).click();
    await form.getByRole('alert').getByText(/^400 Bad Request: namespace/).waitFor();
    assert.equal(await page.locator('main b').count(), 0);
    await form.getByLabel('Namespace').fill('ada-space');
    await form.getByRole('button', { name: 'Sign up' }).click();

    // signed up and logged in: the quotas of the new namespace
    await page.getByRole('heading', { name: 'Quotas of ada-space' }).waitFor();
    assert.equal(await page.locator('nav .who').innerText().then((s) => s.split('\n').slice(0, 2).join(' ')), `${email} ada-space`);
    const session = JSON.parse((await page.evaluate("sessionStorage.getItem('micro.session')")) as string) as { token: string; namespaces: string[] };
    assert.deepEqual(session.namespaces, ['ada-space']);
    // usage to show: a limit set by the platform's staff, three records written by the customer
    assert.equal((await gw.post('/v1/quota/Set', { namespace: 'ada-space', limits: { storeRecords: 4 } }, admin)).status, 200);
    for (const k of ['a', 'b', 'c']) assert.equal((await gw.post('/v1/store/Write', { record: { key: k, value: { n: 1 } } }, session.token)).status, 200);
    await page.getByRole('button', { name: 'Refresh' }).click();
    const records = page.getByRole('table', { name: 'quotas' }).locator('tr[data-limit="storeRecords"]');
    await records.getByRole('meter', { name: 'Store records' }).and(page.locator('[aria-valuenow="3"]')).waitFor();
    assert.match(await records.innerText(), /Store records\s+custom\s+3\s+4/);
    assert.equal(await records.getByRole('meter').getAttribute('aria-valuetext'), '3 of 4');
    assert.equal(await records.locator('.bar-fill').evaluate((e) => (e as unknown as { style: { width: string } }).style.width), '75%');
    assert.equal(await records.locator('.bar-high').count(), 0);
    const bytesRow = page.locator('tr[data-limit="storeBytes"]');
    assert.match(await bytesRow.innerText(), /Store size\s+\d+ B\s+[\d.]+ [kMG]B/);
    await shot('quotas');

    // a second namespace: login by email shows the picker; choosing one logs in to it
    await joinTeam(gw, mailer, admin, { email: 'grace@example.com', password: 'correct horse battery staple 2' }, 'ada-two', { email, password, token: session.token });
    await page.getByRole('button', { name: 'Log out' }).click();
    const loginForm = page.getByRole('form', { name: 'log in with email' });
    await loginForm.getByLabel('Email').fill(email);
    await loginForm.getByLabel('Password').fill('wrong password');
    await loginForm.getByRole('button', { name: 'Log in' }).click();
    await loginForm.getByRole('alert').getByText('401 Unauthorized: wrong email or password').waitFor();
    await loginForm.getByLabel('Password').fill(password);
    await loginForm.getByRole('button', { name: 'Log in' }).click();
    const picker = page.getByRole('group', { name: 'pick a namespace' });
    await picker.getByRole('button', { name: 'ada-space' }).waitFor();
    assert.deepEqual(await picker.getByRole('listitem').allInnerTexts(), ['ada-space', 'ada-two']);
    await shot('namespace-picker');
    await picker.getByRole('button', { name: 'ada-two' }).click();
    await page.getByRole('link', { name: 'Quotas' }).click();
    await page.getByRole('heading', { name: 'Quotas of ada-two' }).waitFor();
    assert.equal(await page.locator('nav .who').innerText().then((s) => s.split('\n').slice(0, 2).join(' ')), `${email} ada-two`);
    // switching: the email login again, its address filled in
    await page.getByRole('button', { name: 'Switch namespace' }).click();
    assert.equal(await loginForm.getByLabel('Email').inputValue(), email);
    await loginForm.getByLabel('Password').fill(password);
    await loginForm.getByRole('button', { name: 'Log in' }).click();
    await picker.getByRole('button', { name: 'ada-space' }).click();
    await page.getByRole('link', { name: 'Quotas' }).click();
    await page.getByRole('heading', { name: 'Quotas of ada-space' }).waitFor();
    await page.getByRole('button', { name: 'Log out' }).click();

    // the waiting list: a bad address named by the server, then a good one
    await page.goto(`${gw.url}/dashboard/#/waitlist`);
    const wait = page.getByRole('form', { name: 'join the waiting list' });
    await wait.getByLabel('Email').fill('not an email');
    await wait.getByRole('button', { name: 'Join' }).click();
    await wait.getByRole('alert').getByText(/^400 Bad Request: email/).waitFor();
    await wait.getByLabel('Email').fill('later@example.com');
    await wait.getByRole('button', { name: 'Join' }).click();
    await page.getByRole('status').getByText('later@example.com is on the waiting list').waitFor();
    const list = await gw.post('/v1/signup/ListWaitlist', {}, admin);
    assert.deepEqual((list.json.entries as { email: string }[]).map((e) => e.email), ['later@example.com']);
    await shot('waitlist');

    assert.deepEqual(problems, []);
  }),
);

/** A customer logged in by email in a browser tab of its own (its own sessionStorage); the page and its problems. */
async function logIn(browser: Browser, url: string, who: { email: string; password: string }): Promise<{ page: Page; problems: string[] }> {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  const problems = watch(page);
  await page.goto(`${url}/dashboard/`);
  const form = page.getByRole('form', { name: 'log in with email' });
  await form.getByLabel('Email').fill(who.email);
  await form.getByLabel('Password').fill(who.password);
  await form.getByRole('button', { name: 'Log in' }).click();
  await page.locator('nav .who').getByText(who.email).waitFor();
  return { page, problems };
}

test('the team page in chromium: invite, accept by the mailed link, the picker, roles, removal, and the 400, 403 and 409 of the server', { timeout: 120_000 }, (t) =>
  withPlatform(t, async ({ gw, mailer, admin, adminFile, site, browser }) => {
    const olga = { email: 'olga@example.com', password: 'correct horse battery one' };
    const mia = { email: 'mia@example.com', password: 'correct horse battery two' };
    await signUp(gw, mailer, admin, olga, 'olga-team');
    await signUp(gw, mailer, admin, mia, 'mia-space');

    // the owner's team: itself alone, no invites
    const owner = await logIn(browser, gw.url, olga);
    const op = owner.page;
    await op.getByRole('link', { name: 'Team' }).click();
    await op.getByRole('heading', { name: 'Team of olga-team' }).waitFor();
    const members = op.getByRole('table', { name: 'members' });
    const me = members.locator('tr[data-member="olga@example.com"]');
    await me.getByText('you').waitFor();
    assert.equal(await me.getByLabel('role of olga@example.com').inputValue(), 'owner');
    assert.equal(await members.locator('tbody tr').count(), 1);
    await op.getByText('No live invites.').waitFor();

    // the last owner may neither step down nor leave: the server's 409, the stored role shown again
    await me.getByLabel('role of olga@example.com').selectOption('admin');
    await op.getByRole('alert').getByText(/^409 Conflict: email: olga@example.com is the last owner of olga-team: make another member owner first$/).waitFor();
    assert.equal(await me.getByLabel('role of olga@example.com').inputValue(), 'owner');
    await me.getByRole('button', { name: 'Remove' }).click();
    await me.getByRole('group', { name: /^Remove olga@example.com \(you\)\?/ }).getByRole('button', { name: 'Yes, remove' }).click();
    await op.getByRole('alert').getByText(/^409 Conflict: .*last owner of olga-team: .*\(or ask M3O/).waitFor();
    assert.equal(await members.locator('tbody tr').count(), 1);

    // a bad address: the 400 names the field; then mia invited as a developer, the link mailed
    const invite = op.getByRole('form', { name: 'invite a member' });
    await invite.getByLabel('Email').fill('not an email');
    await invite.getByRole('button', { name: 'Invite' }).click();
    await invite.getByRole('alert').getByText(/^400 Bad Request: email/).waitFor();
    await invite.getByLabel('Email').fill(mia.email);
    await invite.getByLabel('Role').selectOption('developer');
    await invite.getByRole('button', { name: 'Invite' }).click();
    await invite.getByRole('status').getByText('Invited mia@example.com as developer').waitFor();
    assert.match(await op.getByRole('table', { name: 'invites' }).locator('tr[data-invite="mia@example.com"]').innerText(), /mia@example.com\s+developer/);
    const link = /(http\S+\/signup\?\S+)/.exec(mailer.lastTo(mia.email)?.text ?? '')?.[1];
    assert.equal(link, `${site}/signup?email=mia%40example.com&namespace=olga-team`);
    await op.screenshot({ path: join(ARTIFACTS, 'team-owner.png'), fullPage: true });

    // mia, logged in to her own namespace, follows the link: the team page with the namespace filled in
    const member = await logIn(browser, gw.url, mia);
    const mp = member.page;
    assert.equal(await mp.getByRole('button', { name: 'Switch namespace' }).count(), 0);
    await mp.goto(link as string);
    const join_ = mp.getByRole('form', { name: 'accept an invite' });
    assert.equal(await join_.getByLabel('Namespace').inputValue(), 'olga-team');
    assert.equal(new URL(mp.url()).hash, '#/team/olga-team');
    await join_.getByLabel('Password').fill('not my password');
    await join_.getByRole('button', { name: 'Accept invite' }).click();
    await join_.getByRole('alert').getByText('401 Unauthorized: password: wrong password').waitFor();
    await join_.getByLabel('Password').fill(mia.password);
    await join_.getByRole('button', { name: 'Accept invite' }).click();
    await mp.getByRole('status').getByText('You joined olga-team as developer.').waitFor();
    // the session knows the new namespace: Switch namespace, and the login's picker lists it
    await mp.getByRole('button', { name: 'Switch namespace' }).click();
    const loginForm = mp.getByRole('form', { name: 'log in with email' });
    assert.equal(await loginForm.getByLabel('Email').inputValue(), mia.email);
    await loginForm.getByLabel('Password').fill(mia.password);
    await loginForm.getByRole('button', { name: 'Log in' }).click();
    const picker = mp.getByRole('group', { name: 'pick a namespace' });
    await picker.getByRole('button', { name: 'olga-team' }).waitFor();
    assert.deepEqual(await picker.getByRole('listitem').allInnerTexts(), ['mia-space', 'olga-team']);
    await picker.getByRole('button', { name: 'olga-team' }).click();

    // a developer of olga-team: the list and an invite are refused by the server (403)
    await mp.getByRole('heading', { name: 'Team of olga-team' }).waitFor();
    await mp.getByText('You are developer of olga-team.').waitFor();
    await mp.getByRole('alert').getByText(/^403 Forbidden: ListMembers needs an owner or admin of olga-team \(you are developer/).waitFor();
    assert.equal(await mp.getByRole('table', { name: 'members' }).count(), 0);
    const devInvite = mp.getByRole('form', { name: 'invite a member' });
    await devInvite.getByText('Owners and admins of olga-team invite members; you are developer.').waitFor();
    await devInvite.getByLabel('Email').fill('zed@example.com');
    await devInvite.getByRole('button', { name: 'Invite' }).click();
    await devInvite.getByRole('alert').getByText(/^403 Forbidden: InviteMember needs an owner or admin of olga-team \(you are developer/).waitFor();
    await mp.screenshot({ path: join(ARTIFACTS, 'team-developer.png'), fullPage: true });

    // the owner sees mia as a developer and makes her a viewer: her tokens stop (her page logs out)
    await op.getByRole('button', { name: 'Refresh' }).click();
    const miaRow = members.locator('tr[data-member="mia@example.com"]');
    await miaRow.waitFor();
    assert.equal(await miaRow.getByLabel('role of mia@example.com').inputValue(), 'developer');
    assert.equal(await op.getByRole('table', { name: 'invites' }).locator('tbody tr').count(), 0);
    await miaRow.getByLabel('role of mia@example.com').selectOption('viewer');
    await op.getByRole('status').getByText('mia@example.com is now viewer of olga-team').waitFor();
    // the list read again shows the stored role
    // a selector, not waitForFunction: the dashboard's CSP forbids the eval a string predicate needs
    await op.locator('select[aria-label="role of mia@example.com"] option[value="viewer"]:checked').waitFor({ state: 'attached' });
    const listed = await gw.post('/v1/signup/ListMembers', { namespace: 'olga-team' }, admin);
    assert.deepEqual((listed.json.members as { email: string; role: string }[]).map((m) => `${m.email} ${m.role}`), ['olga@example.com owner', 'mia@example.com viewer']);
    await mp.getByRole('button', { name: 'Refresh' }).click();
    await mp.getByRole('form', { name: 'log in with email' }).waitFor();

    // removal asks first: Cancel keeps her, Yes removes her
    await miaRow.getByRole('button', { name: 'Remove' }).click();
    await miaRow.getByRole('button', { name: 'Cancel' }).click();
    await miaRow.getByRole('button', { name: 'Remove' }).click();
    await miaRow.getByRole('group', { name: /^Remove mia@example.com\? Their tokens and API keys here stop at once\.$/ }).getByRole('button', { name: 'Yes, remove' }).click();
    await op.getByRole('status').getByText('mia@example.com was removed from olga-team.').waitFor();
    await miaRow.waitFor({ state: 'detached' });

    // an invite revoked the same way
    await invite.getByLabel('Email').fill('zed@example.com');
    await invite.getByLabel('Role').selectOption('viewer');
    await invite.getByRole('button', { name: 'Invite' }).click();
    const zed = op.getByRole('table', { name: 'invites' }).locator('tr[data-invite="zed@example.com"]');
    await zed.getByText('viewer').waitFor();
    await zed.getByRole('button', { name: 'Revoke' }).click();
    await zed.getByRole('button', { name: 'Yes, revoke' }).click();
    await op.getByRole('status').getByText('The invite of zed@example.com was revoked.').waitFor();
    await zed.waitFor({ state: 'detached' });
    const after = await gw.post('/v1/signup/ListMembers', { namespace: 'olga-team' }, admin);
    assert.deepEqual({ members: (after.json.members as { email: string }[]).map((m) => m.email), invites: after.json.invites }, { members: ['olga@example.com'], invites: [] });
    await op.screenshot({ path: join(ARTIFACTS, 'team-after.png'), fullPage: true });

    // staff (the admin of micro, by account id) name the namespace whose team they see
    const staff = await (await browser.newContext()).newPage();
    const staffProblems = watch(staff);
    await staff.goto(`${gw.url}/dashboard/#/team`);
    await staff.getByRole('tab', { name: 'Account id' }).click();
    const staffLogin = staff.getByRole('form', { name: 'log in' });
    await staffLogin.getByLabel('Account id').fill(adminFile.id);
    await staffLogin.getByLabel('Secret').fill(adminFile.secret);
    await staffLogin.getByRole('button', { name: 'Log in' }).click();
    await staff.getByRole('heading', { name: 'Team', exact: true }).waitFor();
    await staff.getByRole('form', { name: 'choose a namespace' }).getByLabel('Namespace').fill('olga-team');
    await staff.getByRole('button', { name: 'Show' }).click();
    await staff.getByRole('heading', { name: 'Team of olga-team' }).waitFor();
    assert.equal(await staff.getByRole('table', { name: 'members' }).locator('tr[data-member="olga@example.com"]').getByLabel('role of olga@example.com').inputValue(), 'owner');

    assert.deepEqual([...owner.problems, ...member.problems, ...staffProblems], []);
  }),
);

test('the plan page in chromium: the plans with prices, a subscription, a member refused, a downgrade refused with what to remove, cancel and resume', { timeout: 120_000 }, (t) =>
  withPlatform(
    t,
    async ({ gw, mailer, admin, browser }) => {
      const ada = { email: 'ada@example.com', password: 'correct horse battery one' };
      const bob = { email: 'bob@example.com', password: 'correct horse battery two' };
      const adaToken = await signUp(gw, mailer, admin, ada, 'ada-plan');

      const owner = await logIn(browser, gw.url, ada);
      const op = owner.page;
      await op.getByRole('link', { name: 'Plan' }).click();
      await op.getByRole('heading', { name: 'Plan of ada-plan' }).waitFor();
      const facts = op.getByRole('definition');
      await op.locator('[data-fact="plan"]').getByText('Community, $0.00 a seat a month').waitFor();
      assert.equal(await op.locator('[data-fact="next"]').innerText(), `${await nextPeriod(op)}: Community: nothing to pay`);
      assert.ok((await facts.count()) >= 5);
      const plans = op.getByRole('table', { name: 'plans' });
      assert.match(await plans.locator('tr[data-plan="team"]').innerText(), /Team[\s\S]*\$35\.00\s+20\s+50\s+50\s+email/);
      assert.match(await plans.locator('tr[data-plan="developer"]').innerText(), /\$35\.00\s+20\s+50\s+you alone/);
      assert.equal(await plans.locator('tr[data-plan="cloud"]').getByRole('button', { name: 'Coming later' }).isDisabled(), true);
      await plans.locator('tr[data-plan="community"]').getByText('current').waitFor();

      // Team, asked first: the pro-rated charge is said, the page shows the new plan
      const team = plans.locator('tr[data-plan="team"]');
      await team.getByRole('button', { name: 'Choose' }).click();
      await team.getByRole('group', { name: /^Change to Team now\?/ }).getByRole('button', { name: 'Yes' }).click();
      await op.getByRole('status').getByText(/^Now on Team: \$\d+\.\d+ charged for the rest of \d{4}-\d{2}\.$/).waitFor();
      await op.locator('[data-fact="plan"]').getByText(/^Team, \$35\.00 a seat a month, since /).waitFor();
      await team.getByText('current').waitFor();
      await op.screenshot({ path: join(ARTIFACTS, 'plan-owner.png'), fullPage: true });

      // bob joins as a developer: he sees the plan and its two seats; his change is the server's 403
      ok(await gw.post('/v1/signup/InviteMember', { namespace: 'ada-plan', email: bob.email, role: 'developer' }, adaToken));
      ok(await gw.post('/v1/signup/SendCode', { email: bob.email }));
      const code = /code is:\s*([0-9]{6})/.exec(mailer.lastTo(bob.email)?.text ?? '')?.[1];
      ok(await gw.post('/v1/signup/CompleteSignup', { email: bob.email, code, password: bob.password }));
      const member = await logIn(browser, gw.url, bob);
      const mp = member.page;
      await mp.getByRole('link', { name: 'Plan' }).click();
      await mp.locator('[data-fact="seats"]').getByText(/2 members now$/).waitFor();
      assert.match(await mp.locator('[data-fact="next"]').innerText(), /: Team, 2 × \$35\.00 = \$70\.00$/);
      const dev = mp.getByRole('table', { name: 'plans' }).locator('tr[data-plan="developer"]');
      await dev.getByRole('button', { name: 'Choose' }).click();
      await dev.getByRole('button', { name: 'Yes' }).click();
      await mp.getByRole('alert').getByText(/^403 Forbidden: ChangePlan: only the owner who pays for ada-plan changes its plan \(you are developer/).waitFor();
      await mp.locator('[data-fact="plan"]').getByText(/^Team,/).waitFor();

      // the owner's downgrade below what is used: the server's 409 with what to remove
      const devRow = plans.locator('tr[data-plan="developer"]');
      await devRow.getByRole('button', { name: 'Choose' }).click();
      await devRow.getByRole('button', { name: 'Yes' }).click();
      await op.getByRole('alert').getByText('409 Conflict: plan: your namespaces use more than Developer includes: remove 1 member or invite in ada-plan (members 2 of 1) first').waitFor();

      // cancel at period end (asked first), then resume
      await op.getByRole('button', { name: 'Cancel at period end' }).click();
      await op.getByRole('group', { name: /^Back to Community when/ }).getByRole('button', { name: 'Yes' }).click();
      await op.getByRole('status').getByText(/^Team ends with \d{4}-\d{2}; then Community\.$/).waitFor();
      await op.locator('[data-fact="period"]').getByText('cancelled: Community after it').waitFor();
      assert.match(await op.locator('[data-fact="next"]').innerText(), /: Community: nothing to pay$/);
      await op.screenshot({ path: join(ARTIFACTS, 'plan-cancelled.png'), fullPage: true });
      await op.getByRole('button', { name: 'Resume' }).click();
      await op.getByRole('status').getByText(/^Team goes on after/).waitFor();
      assert.match(await op.locator('[data-fact="next"]').innerText(), /: Team, 2 × \$35\.00 = \$70\.00$/);
      const read = await gw.post('/v1/billing/Subscription', {}, adaToken);
      assert.deepEqual([(read.json.subscription as { plan: { id: string } }).plan.id, (read.json.subscription as { cancelAtPeriodEnd: boolean }).cancelAtPeriodEnd], ['team', false]);

      assert.deepEqual([...owner.problems, ...member.problems], []);
    },
    { billing: true },
  ),
);

/** The period after the current one, as the page prints it (`YYYY-MM`, UTC). */
async function nextPeriod(page: Page): Promise<string> {
  const text = await page.locator('[data-fact="period"]').innerText();
  const [y, m] = (/^(\d{4})-(\d{2})/.exec(text) ?? []).slice(1).map(Number) as [number, number];
  return m === 12 ? `${y + 1}-01` : `${y}-${String(m + 1).padStart(2, '0')}`;
}

test('the emailed link points at the dashboard of MICRO_PUBLIC_URL by default', async () => {
  const saved = process.env.MICRO_PUBLIC_URL;
  process.env.MICRO_PUBLIC_URL = 'https://m3o.example.com/';
  const h = await startSignupHarness();
  try {
    await h.as(await h.adminToken()).Invite({ email: 'bo@example.com' });
    await h.as().SendCode({ email: 'bo@example.com' });
    assert.ok(h.mailer.lastTo('bo@example.com')?.text.includes(`https://m3o.example.com/dashboard/signup/verify?email=bo%40example.com&code=${h.codeOf('bo@example.com')}`));
  } finally {
    await h.close();
    if (saved === undefined) delete process.env.MICRO_PUBLIC_URL;
    else process.env.MICRO_PUBLIC_URL = saved;
  }
});
