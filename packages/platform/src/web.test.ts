import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { createLogger } from '@micro/sdk';
import { freePort } from '@micro/sdk/testing';
import { MicroServer } from '@micro/server';
import { browserReady, launchChromium } from '@micro/server/testing';
import { MemoryMailer } from './mail/mailer.js';
import { signupCoreService } from './signup/index.js';
import { startSignupHarness } from './signup/testing.js';

/**
 * The dashboard's pages of the platform (packages/web: signup.tsx, login.tsx, quotas.tsx)
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

/** Page errors, and console errors other than the failed calls the test makes on purpose (4xx). */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return problems;
}

/**
 * A second namespace for a customer, as a team makes one: `owner` signs up into `namespace`
 * (invited by the admin) and invites the customer, who accepts with the password it has.
 */
async function joinTeam(gw: Api, mailer: MemoryMailer, admin: string, owner: { email: string; password: string }, namespace: string, member: { email: string; password: string; token: string }): Promise<void> {
  const ok = (r: { status: number; json: unknown }) => assert.equal(r.status, 200, JSON.stringify(r.json));
  ok(await gw.post('/v1/signup/Invite', { email: owner.email }, admin));
  ok(await gw.post('/v1/signup/SendCode', { email: owner.email }));
  const code = /code is:\s*([0-9]{6})/.exec(mailer.lastTo(owner.email)?.text ?? '')?.[1];
  assert.ok(code, 'the code was mailed');
  const made = await gw.post('/v1/signup/CompleteSignup', { email: owner.email, code, password: owner.password, namespace });
  ok(made);
  ok(await gw.post('/v1/signup/InviteMember', { namespace, email: member.email, role: 'developer' }, made.json.token as string));
  ok(await gw.post('/v1/signup/AcceptInvite', { namespace, password: member.password }, member.token));
}

test('the platform pages in chromium: sign up by the emailed link, a wrong code, login with a namespace picker, quotas, the waiting list', { timeout: 120_000 }, async (t) => {
  if (!browserReady(t)) return;
  const home = mkdtempSync(join(tmpdir(), 'micro-web-platform-'));
  const mailer = new MemoryMailer();
  const port = await freePort();
  const site = `http://127.0.0.1:${port}/dashboard`;
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: `127.0.0.1:${port}`, logger: silent, coreServices: [signupCoreService({ mailer, siteUrl: site })] }).start();
  let browser: Browser | undefined;
  try {
    const gw = api(server.gatewayUrl as string);
    const adminFile = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const admin = (await gw.post('/v1/auth/Token', { id: adminFile.id, secret: adminFile.secret })).json.token as string;
    const email = 'ada@example.com';
    const password = 'correct horse battery';
    assert.equal((await gw.post('/v1/signup/Invite', { email }, admin)).status, 200);

    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
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
  } finally {
    await browser?.close();
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  }
});

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
