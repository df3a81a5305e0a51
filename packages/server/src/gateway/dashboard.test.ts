import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { WebSocket } from 'ws';
import { createLogger, defineService, endpoint, Service, z } from '@micro/sdk';
import { startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { MicroServer } from '../server.js';
import { browserReady, launchChromium } from './browser-testing.js';
import { DASHBOARD_CSP, defaultDashboardDir } from './dashboard.js';
import { Gateway } from './gateway.js';
import { http, raw } from './testing.js';

const silent = createLogger({ level: 'silent' });

describe('dashboard files at /dashboard/', () => {
  let h: AuthHarness;
  let dir: string;
  let url: string;
  let emptyUrl: string;
  let offUrl: string;
  const gateways: Gateway[] = [];
  const start = async (dashboardDir: string | false): Promise<string> => {
    const g = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, rateLimit: false, dashboardDir });
    gateways.push(g);
    return g.listen();
  };

  before(async () => {
    h = await startAuthHarness();
    dir = mkdtempSync(join(tmpdir(), 'micro-dashboard-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>x</title>');
    writeFileSync(join(dir, 'assets', 'app-1a2b.js'), 'console.log(1)');
    writeFileSync(join(dir, '.env'), 'SECRET=1');
    // a file beside the folder that a path must never reach
    writeFileSync(join(dir, '..', `${dir.split('/').pop() as string}-outside.txt`), 'outside');
    url = await start(dir);
    emptyUrl = await start(join(dir, 'missing'));
    offUrl = await start(false);
  });
  after(async () => {
    for (const g of gateways) await g.close();
    await h.close();
    rmSync(`${dir}-outside.txt`, { force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('index.html at /dashboard/, assets with their type, a strict CSP that allows its own scripts', async () => {
    const index = await http(url, 'GET', '/dashboard/');
    assert.equal(index.status, 200);
    assert.equal(index.body, '<!doctype html><title>x</title>');
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(index.headers['content-security-policy'], DASHBOARD_CSP);
    assert.match(DASHBOARD_CSP, /script-src 'self';/);
    assert.doesNotMatch(DASHBOARD_CSP, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(index.headers['x-frame-options'], 'DENY');
    assert.equal(index.headers['cache-control'], 'no-store');
    const js = await http(url, 'GET', '/dashboard/assets/app-1a2b.js');
    assert.equal(js.status, 200);
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.match(String(js.headers['cache-control']), /immutable/);
    const head = await http(url, 'HEAD', '/dashboard/index.html');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-length'], String('<!doctype html><title>x</title>'.length));
    // the pages the signup emails link to are index.html (which reads the path and query); nothing else is
    for (const page of ['/dashboard/signup', '/dashboard/signup/verify?email=a%40example.com&code=123456']) {
      const r = await http(url, 'GET', page);
      assert.equal(r.status, 200, page);
      assert.equal(r.body, '<!doctype html><title>x</title>', page);
      assert.equal(r.headers['content-security-policy'], DASHBOARD_CSP, page);
    }
    for (const page of ['/dashboard/signup/', '/dashboard/signup/verify/x', '/dashboard/signups', '/dashboard/assets/signup']) assert.equal((await http(url, 'GET', page)).status, 404, page);
    const bare = await http(url, 'GET', '/dashboard?x=1');
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.location, '/dashboard/');
  });

  test('hostile paths never leave the folder: 404 (or 400 for a malformed escape), never a file', async () => {
    const name = dir.split('/').pop() as string;
    for (const path of [
      `/dashboard/../${name}-outside.txt`,
      `/dashboard/%2e%2e/${name}-outside.txt`,
      `/dashboard/..%2f${name}-outside.txt`,
      '/dashboard/assets/..%2F..%2Fetc%2Fpasswd',
      '/dashboard/.env',
      '/dashboard/%2eenv',
      '/dashboard/index.html%00.js',
      '/dashboard/assets%5capp-1a2b.js',
      '/dashboard//etc/passwd',
      '/dashboard/assets/',
      '/dashboard/nope.js',
      `/dashboard/${'a'.repeat(600)}`,
    ]) {
      const res = await raw(url, `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
      assert.equal(res.status, 404, `${path}: ${res.text.slice(0, 200)}`);
      assert.equal((res.json as { code: number }).code, 404, path);
      assert.doesNotMatch(res.body, /outside|SECRET|root:/, path);
    }
    const malformed = await http(url, 'GET', '/dashboard/%E0%A4%A');
    assert.equal(malformed.status, 400);
    assert.deepEqual(malformed.json, { id: 'gateway', code: 400, detail: 'malformed path', status: 'Bad Request' });
  });

  test('other methods are refused with Allow; a dashboard not built is a 404 that says how to build it; false turns it off', async () => {
    const post = await http(url, 'POST', '/dashboard/', { headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const missing = await http(emptyUrl, 'GET', '/dashboard/');
    assert.equal(missing.status, 404);
    const e = missing.json as { id: string; code: number; detail: string; status: string };
    assert.deepEqual([e.id, e.code, e.status], ['gateway', 404, 'Not Found']);
    assert.match(e.detail, /the dashboard is not built: run `npm run build --workspace @micro\/web`/);
    const off = await http(offUrl, 'GET', '/dashboard/');
    assert.equal(off.status, 404);
    assert.match((off.json as { detail: string }).detail, /the API is under \/v1/);
    // the API is untouched beside it (a caller without credentials learns nothing of what is there)
    const api = await http(url, 'POST', '/v1/nothing/Call', { headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(api.status, 401, api.body);
    assert.match((api.json as { detail: string }).detail, /credentials required/);
  });

  test('the default folder is the built @micro/web package', () => {
    assert.equal(defaultDashboardDir(), fileURLToPath(new URL('../../../web/dist', import.meta.url)));
  });
});

// ---- the dashboard in a browser ------------------------------------------------------

const ARTIFACTS = fileURLToPath(new URL('../../../../test-artifacts/dashboard/', import.meta.url));

const echo = defineService({
  name: 'dashtest',
  version: '1.0.0',
  description: 'a service the dashboard test registers',
  endpoints: {
    Greet: endpoint({
      description: 'Greets someone, some times',
      request: z.object({ name: z.string().min(1).describe('who to greet'), times: z.number().int().min(1).max(5).optional(), loud: z.boolean().optional() }),
      response: z.object({ message: z.string() }),
    }),
  },
});

/** runtime.Create (micro run) of a folder over the gateway's WebSocket: resolves with the last progress message. */
function microRun(url: string, token: string, source: string, env: Record<string, string> = {}): Promise<{ step: string; message: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/runtime/Create`, 'micro', { headers: { authorization: `Bearer ${token}` } });
    let last: { step: string; message: string } | undefined;
    ws.on('open', () => ws.send(JSON.stringify({ source, env })));
    ws.on('message', (data) => (last = JSON.parse(String(data)) as { step: string; message: string }));
    ws.on('close', (code, why) => (last?.step === 'done' ? resolve(last) : reject(new Error(`runtime.Create ended with ${code} ${String(why)}: ${JSON.stringify(last)}`))));
    ws.on('error', reject);
  });
}

/**
 * events.Consume over the gateway's WebSocket: joins `group` at the earliest event with no
 * credit, then leaves: the group stays, with every event of the topic pending (its lag).
 */
function laggingGroup(url: string, token: string, topic: string, group: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/events/Consume`, 'micro', { headers: { authorization: `Bearer ${token}` } });
    let subscribed = false;
    ws.on('open', () => ws.send(JSON.stringify({ subscribe: { topic, group, offset: 'earliest' }, credit: 0 })));
    ws.on('message', (data) => {
      if ((JSON.parse(String(data)) as { subscribed?: unknown }).subscribed) {
        subscribed = true;
        ws.close();
      }
    });
    ws.on('close', (code, why) => (subscribed ? resolve() : reject(new Error(`events.Consume ended with ${code} ${String(why)}`))));
    ws.on('error', reject);
  });
}

test('the dashboard in chromium: log in as the admin, browse, call a service from its generated form', { timeout: 120_000 }, async (t) => {
  if (!browserReady(t)) return;
  const home = mkdtempSync(join(tmpdir(), 'micro-dashboard-e2e-'));
  // traces for the traces page: opt-in by the environment only (the trace service reads it at
  // start, the services micro run starts inherit it); this file runs in its own process
  const tracing = process.env.MICRO_TRACING;
  process.env.MICRO_TRACING = 'on';
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent }).start();
  let browser: Browser | undefined;
  const svc = new Service(
    echo,
    { Greet: ({ name, times, loud }) => ({ message: (loud ? `HELLO ${name.toUpperCase()}! ` : `Hello ${name}! `).repeat(times ?? 1).trim() }) },
    { namespace: 'micro', registry: server.registry, logger: silent, auth: false },
  );
  try {
    await svc.start();
    const url = server.gatewayUrl as string;
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    // something to see on the store and config pages, with a secret that must stay masked
    const tok = await http(url, 'POST', '/v1/auth/Token', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: admin.id, secret: admin.secret }) });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${(tok.json as { token: string }).token}` };
    const post = async (path: string, body: unknown) => assert.equal((await http(url, 'POST', path, { headers, body: JSON.stringify(body) })).status, 200, path);
    await post('/v1/store/Write', { record: { key: 'user:1', value: { name: 'Ada' } }, database: 'app', table: 'users' });
    await post('/v1/config/Set', { path: 'db', value: { host: 'db.local', port: 5432 } });
    await post('/v1/config/Set', { path: 'db.password', value: 'hunter2-very-secret', secret: true });
    // a service the runtime runs (plain JavaScript: nothing to build), for the runtime page
    const source = join(home, 'pinger');
    mkdirSync(source);
    writeFileSync(join(source, 'package.json'), JSON.stringify({ name: 'pinger', version: '0.0.1', private: true, type: 'module', dependencies: { '@micro/sdk': '0.1.0' } }));
    writeFileSync(
      join(source, 'main.js'),
      `import { defineService, endpoint, run, z } from '@micro/sdk';
await run(defineService({ name: 'pinger', version: '1.0.0', endpoints: { Ping: endpoint({ request: z.object({}), response: z.object({ pong: z.boolean() }) }) } }), {
  Ping: (_req, ctx) => {
    ctx.logger.info('ping from the dashboard test');
    return { pong: true };
  },
});`,
    );
    // its logs at info whatever the suite's MICRO_LOG_LEVEL (npm test sets silent, which the
    // runtime hands on to the services it runs): the Logs page has to show its lines
    await microRun(url, (tok.json as { token: string }).token, source, { MICRO_LOG_LEVEL: 'info' });

    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    const page: Page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    // a CSP violation or a script error shows in the console: none is allowed
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    // a trace is a 404 until its spans are recorded (the page looks again), or when it is unknown (the test opens one);
    // pricing.List is a 404 on a server without the platform layer (the Services page then shows the records' own prices)
    const expected404 = (u: string) => u.endsWith('/v1/trace/Read') || u.endsWith('/v1/pricing/List');
    page.on('console', (m) => {
      // the failed calls the test makes on purpose (a wrong secret, a bad request) log their status
      if (m.type() !== 'error' || /Failed to load resource: the server responded with a status of (40[01]|429)/.test(m.text())) return;
      if (/status of 404/.test(m.text()) && expected404(m.location().url)) return;
      problems.push(`console: ${m.text()}`);
    });
    page.on('response', (r) => {
      if (r.status() === 404 && !expected404(r.url())) problems.push(`404: ${r.url()}`);
    });
    const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

    await page.goto(`${url}/dashboard/`);
    // the email form is first (customers of the platform); the tab stays chosen in this browser tab
    await page.getByRole('tab', { name: 'Account id' }).click();
    await page.getByLabel('Account id').fill(admin.id);
    await page.getByLabel('Secret').fill('wrong secret');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').waitFor();
    assert.match(await page.getByRole('alert').innerText(), /^401 /);
    await shot('login');
    await page.getByLabel('Secret').fill(admin.secret);
    await page.getByRole('button', { name: 'Log in' }).click();

    // services: the test's service, its endpoint's schemas, a call from the generated form
    await page.getByRole('button', { name: 'dashtest' }).click();
    const ep = page.locator('article[data-endpoint="Greet"]');
    await ep.getByRole('button', { name: 'Show schemas' }).click();
    assert.match(await ep.locator('.schemas').innerText(), /"who to greet"/);
    const form = page.getByRole('form', { name: 'call dashtest.Greet' });
    await form.locator('input[name="name"]').fill('Ada');
    await form.locator('input[name="times"]').fill('2');
    await form.locator('input[name="loud"]').check();
    await form.getByRole('button', { name: 'Call' }).click();
    const answer = form.getByLabel('answer');
    await answer.waitFor();
    assert.deepEqual(JSON.parse(await answer.innerText()), { message: 'HELLO ADA! HELLO ADA!' });
    // a bad request shows the service's error, not a crash
    await form.locator('input[name="times"]').fill('9');
    await form.getByRole('button', { name: 'Call' }).click();
    await form.getByRole('alert').waitFor();
    assert.match(await form.getByRole('alert').innerText(), /^400 .*times/);
    // the whole request as JSON: what the form held, a parse error named, markup shown as text
    await form.getByRole('button', { name: 'Edit as JSON' }).click();
    const rawRequest = form.locator('textarea[name="request"]');
    assert.deepEqual(JSON.parse(await rawRequest.inputValue()), { name: 'Ada', times: 9, loud: true });
    await rawRequest.fill('{"name": ');
    await form.getByRole('button', { name: 'Call' }).click();
    await form.getByRole('alert').getByText('the request is not valid JSON').waitFor();
    const hostile = '<img src=x onerror="document.title=1">';
    await rawRequest.fill(JSON.stringify({ name: hostile }));
    await form.getByRole('button', { name: 'Call' }).click();
    await answer.waitFor();
    assert.deepEqual(JSON.parse(await answer.innerText()), { message: `Hello ${hostile}!` });
    assert.equal(await page.locator('main img').count(), 0);
    await form.getByRole('button', { name: 'Edit as form' }).click();
    await form.locator('input[name="times"]').fill('2');
    await form.getByRole('button', { name: 'Call' }).click();
    await form.getByText('HELLO ADA! HELLO ADA!').waitFor();
    await shot('services');

    // logs: follow pinger (micro run started it), call it, watch its line come
    const ping = async () => {
      const r = await http(url, 'POST', '/v1/pinger/Ping', { headers, body: '{}' });
      assert.equal(r.status, 200, r.body);
      return /^00-([0-9a-f]{32})-/.exec(String(r.headers.traceresponse))?.[1] as string;
    };
    await page.getByRole('link', { name: 'Logs' }).click();
    await page.locator('select[name="service"] option[value="pinger"]').waitFor({ state: 'attached' });
    await page.locator('select[name="service"]').selectOption('pinger');
    const logBox = page.getByRole('log', { name: 'log lines' });
    // its start-up lines first: the stream is open
    await logBox.locator('.log-line').first().waitFor();
    await page.getByLabel('stream state').getByText('following').waitFor();
    const pingLine = logBox.locator('.log-line', { hasText: 'ping from the dashboard test' });
    assert.equal(await pingLine.count(), 0);
    const traceId = await ping();
    assert.match(traceId, /^[0-9a-f]{32}$/);
    // on a machine busy with the whole suite the line can take a while; if it never comes,
    // say what the page showed (the stream's state, its last lines)
    await pingLine.waitFor({ timeout: 60_000 }).catch(async (err: Error) => {
      await shot('logs-failed');
      throw new Error(`${err.message}\nstream state: ${await page.getByLabel('stream state').innerText()}\nlines: ${(await logBox.innerText()).slice(-2_000)}`, { cause: err });
    });
    assert.equal(await pingLine.locator('.log-level').innerText(), 'INFO');
    assert.equal(await pingLine.getByRole('link', { name: 'trace' }).getAttribute('href'), `#/traces/${traceId}`);
    assert.match(await page.locator('main').innerText(), /keeps the newest 1,000 lines/);
    await shot('logs');
    // the trace id filter opens a new stream: only the line of that trace is left
    await page.getByRole('form', { name: 'log filters' }).locator('input[name="traceId"]').fill(traceId);
    await page.getByRole('form', { name: 'log filters' }).getByRole('button', { name: 'Apply' }).click();
    await logBox.locator('.log-line').nth(1).waitFor({ state: 'detached' });
    await pingLine.waitFor();

    // traces: the line's trace as a waterfall, the gateway's span over pinger's, a span's attributes
    await pingLine.getByRole('link', { name: 'trace' }).click();
    const waterfall = page.getByRole('tree', { name: 'waterfall' });
    await waterfall.locator('[data-service="gateway"]').first().waitFor();
    const pingerSpan = waterfall.locator('[data-service="pinger"]', { hasText: 'Ping' }).first();
    await pingerSpan.waitFor({ timeout: 30_000 });
    assert.equal(await page.getByRole('heading', { name: `Trace ${traceId}` }).count(), 1);
    const rootLevel = await waterfall.locator('[data-service="gateway"]').first().getAttribute('aria-level');
    assert.equal(rootLevel, '1');
    assert.ok(Number(await pingerSpan.getAttribute('aria-level')) > 1, 'pinger\'s span is under the gateway\'s');
    await pingerSpan.click();
    const attributes = page.getByLabel('span attributes');
    await attributes.waitFor();
    assert.match(await attributes.innerText(), /micro\.service\s+pinger/);
    await shot('trace');
    // the list has it; an unknown trace is a clear 404
    await page.getByRole('link', { name: 'All traces' }).click();
    await page.locator('table.list tbody tr', { hasText: traceId }).waitFor();
    await shot('traces');
    const unknown = '0'.repeat(31) + '1';
    await page.getByRole('form', { name: 'open a trace' }).locator('input').fill(unknown);
    await page.getByRole('form', { name: 'open a trace' }).getByRole('button', { name: 'Open' }).click();
    await page.getByRole('alert').getByText(`No trace ${unknown} in this namespace`).waitFor();

    // events: a topic with three events, a group that has done none of them (its lag)
    for (const n of [1, 2, 3]) await post('/v1/events/Publish', { topic: 'orders.created', payload: { order: n, note: '<b>not markup</b>' } });
    await laggingGroup(url, (tok.json as { token: string }).token, 'orders.created', 'billing');
    await page.getByRole('link', { name: 'Events' }).click();
    const topicRow = page.getByRole('table', { name: 'topics' }).locator('tbody tr', { hasText: 'orders.created' });
    await topicRow.waitFor();
    assert.equal(await topicRow.locator('td').nth(1).innerText(), '3');
    await page.getByRole('table', { name: 'consumer groups' }).first().locator('tbody tr', { hasText: 'billing' }).getByText('3', { exact: true }).waitFor();
    await topicRow.getByRole('button', { name: 'orders.created' }).click();
    const topicEvents = page.getByRole('table', { name: 'events' });
    await topicEvents.locator('tbody tr').nth(2).waitFor();
    assert.match(await topicEvents.locator('tbody tr').first().innerText(), /"order": 3/);
    assert.equal(await page.locator('main b').count(), 0);
    await shot('events');

    // metrics: pinger's calls, drawn from the change between two reads of stats.Read
    await page.getByRole('link', { name: 'Metrics' }).click();
    await page.getByRole('table', { name: 'gateway endpoints' }).locator('tr[data-endpoint="pinger.Ping"]').waitFor();
    for (let i = 0; i < 5; i++) await ping();
    await page.locator('svg[data-chart="calls/s pinger.Ping"]:not([data-last=""]):not([data-last="0"])').first().waitFor();
    assert.match(await page.getByText('history starts when this page opens').innerText(), /GET \/metrics keeps the real history/);
    await page.getByRole('table', { name: 'instances' }).locator('tbody tr', { hasText: 'pinger' }).first().waitFor();
    // a few reads more, for lines that show in the screenshot
    await page.getByLabel('samples').filter({ hasText: /: ([5-9]|\d{2,}) reads/ }).waitFor();
    await shot('metrics');

    // runtime: the service micro run started, updated (progress streamed), then killed
    await page.getByRole('link', { name: 'Runtime' }).click();
    const row = page.locator('table.list tbody tr', { hasText: 'pinger' });
    await row.locator('.state-running').waitFor();
    await row.getByRole('button', { name: 'Update' }).click();
    const progress = page.getByLabel('update progress');
    await progress.getByText('Done.').waitFor({ timeout: 60_000 });
    assert.match(await progress.locator('pre').innerText(), /^start: /m);
    await row.locator('.state-running').waitFor();
    await shot('runtime');
    page.once('dialog', (d) => void d.accept());
    await row.getByRole('button', { name: 'Kill' }).click();
    await page.getByText('Nothing runs yet').waitFor();

    await page.getByRole('link', { name: 'Store' }).click();
    await page.getByRole('button', { name: 'app' }).click();
    await page.getByRole('button', { name: 'users' }).click();
    await page.getByRole('button', { name: 'user:1' }).click();
    await page.locator('.record pre').waitFor();
    assert.equal(JSON.parse(await page.locator('.record pre').innerText()).value.name, 'Ada');
    await shot('store');

    await page.getByRole('link', { name: 'Config' }).click();
    await page.getByText('db.local').waitFor();
    assert.doesNotMatch(await page.locator('main').innerText(), /hunter2/);
    assert.match(await page.locator('main').innerText(), /"password"/);
    await shot('config');

    await page.getByRole('link', { name: 'Accounts' }).click();
    // the first column is the id (the type column may say admin too)
    await page.locator('table.list tbody tr td:first-child', { hasText: admin.id }).first().waitFor();
    await page.getByRole('heading', { name: 'Rules' }).waitFor();
    await shot('accounts');

    // the token lives in the tab's session: a reload stays logged in, log out forgets it
    await page.reload();
    await page.getByRole('heading', { name: 'Accounts' }).waitFor();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Account id').waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('micro.session')"), null);

    // an expired session is not used: the login form; a token the gateway refuses (forged,
    // or from a rotated key) ends the session at its first 401
    const stale = (token: string, expiresAt: number) =>
      page.evaluate(`sessionStorage.setItem('micro.session', ${JSON.stringify(JSON.stringify({ token, account: { id: admin.id, issuer: 'micro' }, expiresAt }))})`);
    await stale((tok.json as { token: string }).token, Math.floor(Date.now() / 1000) - 60);
    await page.reload();
    await page.getByLabel('Account id').waitFor();
    await stale('eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZG1pbiJ9.Zm9yZ2Vk', Math.floor(Date.now() / 1000) + 600);
    const refused = page.waitForResponse((r) => r.status() === 401);
    await page.reload();
    await refused;
    await page.getByLabel('Account id').waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('micro.session')"), null);

    // wrong secrets: 401s, then after five in a row a 429 that says how long to wait
    await page.getByLabel('Account id').fill('mallory');
    for (let i = 0; i < 5; i++) {
      await page.getByLabel('Secret').fill(`guess-${i}`);
      const answered = page.waitForResponse((r) => r.url().endsWith('/v1/auth/Token'));
      await page.getByRole('button', { name: 'Log in' }).click();
      assert.equal((await answered).status(), 401);
    }
    await page.getByLabel('Secret').fill('guess-5');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').getByText(/^429 .*too many wrong secrets for mallory in namespace micro: try again in \d+ s/).waitFor();

    assert.deepEqual(problems, []);

    // a tenant logs in to its namespace and never sees micro's: the gateway routes its token
    // to namespace acme (today core services are reached there only by admins of micro: the
    // page then shows the API's error, with nothing of micro)
    await post('/v1/auth/CreateAccount', { id: 'alice', namespace: 'acme', secret: 'alice-secret-123' });
    await page.getByLabel('Account id').fill('alice');
    await page.getByLabel('Secret').fill('alice-secret-123');
    await page.getByLabel('Namespace').fill('acme');
    await page.getByRole('button', { name: 'Log in' }).click();
    const listed = page.waitForResponse((r) => r.url().endsWith('/v1/registry/ListServices'));
    await page.getByRole('link', { name: 'Services' }).click();
    const answer2 = await listed;
    const services = (await answer2.json()) as { services?: { name: string; namespace?: string }[] };
    if (answer2.ok()) assert.ok(services.services?.every((s) => s.name !== 'dashtest' && s.namespace !== 'micro'), JSON.stringify(services));
    else await page.getByRole('alert').waitFor();
    assert.equal(await page.locator('nav .who').innerText().then((t) => t.split('\n').slice(0, 2).join(' ')), 'alice acme');
    assert.doesNotMatch(await page.locator('main').innerText(), /dashtest/);
    await shot('tenant-services');
    // nor micro's logs: the same API, with the tenant's token
    await page.getByRole('link', { name: 'Logs' }).click();
    await page.getByRole('log', { name: 'log lines' }).waitFor();
    await page.getByLabel('stream state').getByText(/following|stopped/).waitFor();
    await shot('tenant-logs');
    assert.doesNotMatch(await page.locator('main').innerText(), /pinger|ping from/);
    // nor micro's trace by editing the URL: the same "no trace" as for an unknown id
    await page.goto(`${url}/dashboard/#/traces/${traceId}`);
    await page.getByRole('alert').getByText(`No trace ${traceId} in this namespace`).waitFor();
    assert.doesNotMatch(await page.locator('main').innerText(), /pinger\.Ping/);
    await page.goto(`${url}/dashboard/#/metrics`);
    await page.getByLabel('samples').filter({ hasText: /namespace acme/i }).waitFor();
    assert.doesNotMatch(await page.locator('main').innerText(), /pinger|dashtest/);
    assert.deepEqual((problems as string[]).filter((p) => p.startsWith('pageerror')), []);
  } finally {
    await browser?.close();
    await svc.stop();
    await server.stop();
    if (tracing === undefined) delete process.env.MICRO_TRACING;
    else process.env.MICRO_TRACING = tracing;
    rmSync(home, { recursive: true, force: true });
  }
});
