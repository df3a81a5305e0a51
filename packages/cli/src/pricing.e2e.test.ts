import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { browserReady, launchChromium } from '@micro/server/testing';
import { ARTIFACTS, dashboardAs, OWNER_PASSWORD, tenantWithBooks } from './books-testing.js';
import { micro, natsPlatform, ok, post, refused, startServer, stopProcess, tempDir, until } from './testing.js';

/**
 * Prices on a running micro server, as the staff and tenants meet them: a price in a
 * service's definition shows in `micro platform pricing` and /openapi.json; an admin's price
 * wins at once and `clear` brings the definition back; hostile prices are refused by the
 * CLI and by the service; tenants read prices and set none. On two nodes (nats profile), a
 * price set on one shows on the other within the refresh (1 s).
 */

type Op = { description?: string; 'x-micro-price'?: { units: number; dollars: string; freeQuota: number } };

async function operation(gateway: string, token: string, path: string): Promise<Op | undefined> {
  const res = await fetch(new URL('/openapi.json', gateway), { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  const doc = (await res.json()) as { paths: Record<string, { post?: Op; get?: Op }> };
  const item = doc.paths[path];
  return item?.post ?? item?.get;
}

test('pricing on a running micro server (local profile)', { timeout: 180_000 }, async (t) => {
  const home = tempDir('micro-pricing-e2e-');
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const server = await startServer(home, { timeout: 60_000, env: { MICRO_RUNTIME_SANDBOX: 'off' } });
  t.after(() => stopProcess(server.proc));
  const gw = server.gateway;
  const { adminToken, ownerToken } = await tenantWithBooks(t, home, server, 'acme');
  await until('books in /openapi.json', 15_000, async () => operation(gw, ownerToken, '/v1/books/Read'));
  assert.equal((await micro(home, ['env', 'add', 'tenant', server.address])).code, 0);
  const login = await micro(home, ['login', '--id', 'owner', '--secret', '-', '--namespace', 'acme'], { input: `${OWNER_PASSWORD}\n`, env: { MICRO_ENV: 'tenant' } });
  assert.equal(login.code, 0, login.stderr);
  const staff = (args: string[]) => micro(home, ['platform', 'pricing', ...args]);
  const tenant = (args: string[]) => micro(home, ['platform', 'pricing', ...args], { env: { MICRO_ENV: 'tenant' } });

  await t.test("a service's definition prices its endpoints: micro platform pricing and /openapi.json show it", async () => {
    const text = await staff(['--namespace', 'acme']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^NAMESPACE +SERVICE +ENDPOINT +PRICE +FREE\/MONTH +SOURCE +VERSIONS$/m);
    assert.match(text.stdout, /^acme +books +Read +\$0\.000100 +5 +definition +1\.0\.0$/m);
    assert.match(text.stdout, /^acme +books +Count +\$0\.00 +50 +definition +1\.0\.0$/m);
    assert.doesNotMatch(text.stdout, /Write/, 'not priced: not listed');
    const json = JSON.parse((await staff(['--namespace', 'acme', '-o', 'json'])).stdout) as { endpoint: string; price: number; freeQuota: number; source: string }[];
    assert.deepEqual(json.find((p) => p.endpoint === 'Read'), { namespace: 'acme', service: 'books', endpoint: 'Read', price: 100, freeQuota: 5, source: 'definition', definition: { price: 100, freeQuota: 5 }, versions: ['1.0.0'] });
    const read = await operation(gw, ownerToken, '/v1/books/Read');
    assert.deepEqual(read?.['x-micro-price'], { units: 100, dollars: '0.0001', freeQuota: 5 });
    assert.equal(read?.description, 'Priced: 0.0001 USD (100 units of 10^-6 USD) a successful call beyond 5 free calls a month.');
    assert.equal((await operation(gw, ownerToken, '/v1/books/Write'))?.['x-micro-price'], undefined);
  });

  await t.test("micro platform pricing set: the admin's price wins at once, in /openapi.json too; clear brings the definition back", async () => {
    const set = await staff(['set', 'books', 'Read', '--namespace', 'acme', '--price', '$0.00025', '--free', '10']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout.trim(), 'acme/books.Read: $0.000250 a call beyond 10 free calls a month (its definition: $0.000100 a call beyond 5 free calls a month)');
    assert.deepEqual((await operation(gw, ownerToken, '/v1/books/Read'))?.['x-micro-price'], { units: 250, dollars: '0.00025', freeQuota: 10 });
    const listed = await staff(['--namespace', 'acme']);
    assert.match(listed.stdout, /^acme +books +Read +\$0\.000250 +10 +admin \(definition \$0\.000100, 5 free\) +1\.0\.0$/m);
    // whole units work too, and the free quota defaults to 0
    assert.equal((await staff(['set', 'books', 'Read', '--namespace', 'acme', '--price', '300'])).code, 0);
    assert.deepEqual((await operation(gw, ownerToken, '/v1/books/Read'))?.['x-micro-price'], { units: 300, dollars: '0.0003', freeQuota: 0 });
    const cleared = await staff(['clear', 'books', 'Read', '--namespace', 'acme']);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.equal(cleared.stdout.trim(), 'cleared the price set for acme/books.Read; its definition applies: $0.000100 a call beyond 5 free calls a month');
    assert.deepEqual((await operation(gw, ownerToken, '/v1/books/Read'))?.['x-micro-price'], { units: 100, dollars: '0.0001', freeQuota: 5 });
    const again = await staff(['clear', 'books', 'Read', '--namespace', 'acme']);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /^no price was set for acme\/books\.Read/);
    // an admin may meter an endpoint its definition does not price
    assert.equal((await staff(['set', 'books', 'Write', '--namespace', 'acme', '--price', '0'])).code, 0);
    assert.deepEqual((await operation(gw, ownerToken, '/v1/books/Write'))?.['x-micro-price'], { units: 0, dollars: '0', freeQuota: 0 });
    assert.equal((await staff(['clear', 'books', 'Write', '--namespace', 'acme'])).code, 0);
  });

  await t.test('a service not running yet may be priced (said so); an endpoint a running service lacks is refused', async () => {
    const early = await staff(['set', 'films', 'Watch', '--namespace', 'acme', '--price', '$0.0003']);
    assert.equal(early.code, 0, early.stderr);
    assert.match(early.stderr, /films is not running in namespace acme; the price applies once it runs/);
    assert.match((await staff(['--namespace', 'acme'])).stdout, /^acme +films +Watch +\$0\.000300 +0 +admin +not running$/m);
    assert.equal((await staff(['clear', 'films', 'Watch', '--namespace', 'acme'])).code, 0);
    refused(await staff(['set', 'books', 'Reed', '--namespace', 'acme', '--price', '1']), /^endpoint: service books of namespace acme has no endpoint Reed; its endpoints: .*Count.*Read.*Write/m, 'a typo');
    refused(await staff(['set', 'books', 'read', '--namespace', 'acme', '--price', '1']), /no endpoint read \(did you mean Read\?\)/, 'the wrong case');
  });

  await t.test('hostile prices and quotas: refused by the CLI, and by the service with a 400 naming the field; nothing changes', async () => {
    const before = (await staff(['--namespace', 'acme'])).stdout;
    const cli: [string[], RegExp][] = [
      [['--price', '$-1'], /--price must be whole units .* not "\$-1"/],
      [['--price', '-1'], /--price must be .*not "-1"/],
      [['--price', '1e3'], /not "1e3"/],
      [['--price', 'abc'], /not "abc"/],
      [['--price', '0.5'], /for dollars write '\$0\.5'/],
      [['--price', '1152921504606846976'], /not "1152921504606846976"/],
      [['--price', '1000000000000001'], /at most 10\^15 units/],
      [['--price', '1', '--free', '-1'], /--free must be a whole number of calls a month/],
      [['--price', '1', '--free', '1.5'], /--free must be/],
      [['--price', '1', '--free', '1e3'], /--free must be/],
      [['--price', '1', '--free', String(2 ** 60)], /--free must be/],
    ];
    for (const [flags, why] of cli) refused(await staff(['set', 'books', 'Read', '--namespace', 'acme', ...flags]), why, flags.join(' '));
    refused(await staff(['set', 'books', 'Read']), /required option '--price <price>'/, 'no price');
    refused(await staff(['set', 'books', 'Read', '--namespace', '../etc', '--price', '1']), /namespace: must be a namespace name/, 'a path for a namespace');
    refused(await staff(['set', 'Books!', 'Read', '--price', '1']), /service: must be a service name/, 'a bad service name');
    const api: [Record<string, unknown>, RegExp][] = [
      [{ price: -1 }, /^invalid request: price: must be a whole number of units/],
      [{ price: 1.5 }, /price: must be/],
      [{ price: 2 ** 60 }, /price: must be/],
      [{ price: 'abc' }, /price: must be .*not "abc"/],
      [{ price: 1, freeQuota: '1e3' }, /freeQuota: must be/],
      [{ price: 1, freeQuota: -5 }, /freeQuota: must be/],
    ];
    for (const [fields, why] of api) {
      const r = await post(gw, '/v1/pricing/Set', { namespace: 'acme', service: 'books', endpoint: 'Read', ...fields }, adminToken);
      assert.equal(r.status, 400, JSON.stringify(fields));
      assert.match(String(r.body.detail), why);
    }
    assert.equal((await staff(['--namespace', 'acme'])).stdout, before, 'nothing changed');
  });

  await t.test("tenants read their own and the platform's prices and set none, by the CLI or the gateway", async () => {
    const mine = await tenant([]);
    assert.equal(mine.code, 0, mine.stderr);
    assert.match(mine.stdout, /^acme +books +Read +\$0\.000100 +5 +definition +1\.0\.0$/m);
    refused(await tenant(['set', 'books', 'Read', '--namespace', 'acme', '--price', '0']), /only the platform's staff set prices, and account owner of namespace acme is not one/, 'a tenant sets its own price');
    refused(await tenant(['clear', 'books', 'Read', '--namespace', 'acme']), /only the platform's staff set prices/, 'a tenant clears');
    refused(await tenant(['--namespace', 'globex']), /may not list the prices of namespace globex/, "another's prices");
    for (const [path, body] of [
      ['/v1/pricing/Set', { namespace: 'acme', service: 'books', endpoint: 'Read', price: 0 }],
      ['/v1/pricing/Set', { service: 'pricing', endpoint: 'List', price: 1 }],
      ['/v1/pricing/Clear', { namespace: 'acme', service: 'books', endpoint: 'Read' }],
    ] as const) {
      assert.equal((await post(gw, path, body, ownerToken)).status, 403, path);
      assert.equal((await post(gw, path, body)).status, 401, `${path} anonymous`);
    }
    assert.deepEqual((await operation(gw, ownerToken, '/v1/books/Read'))?.['x-micro-price'], { units: 100, dollars: '0.0001', freeQuota: 5 }, 'unchanged');
  });

  await t.test("the dashboard's Services page shows the price that applies and where it comes from", async (st) => {
    if (!browserReady(st)) return;
    const browser = await launchChromium();
    st.after(() => browser.close());
    const { page, problems } = await dashboardAs(browser, gw, { id: 'owner', secret: OWNER_PASSWORD, namespace: 'acme' });
    const price = (endpoint: string) => page.getByLabel(`price of books.${endpoint}`);
    await page.getByRole('button', { name: 'books' }).click();
    assert.equal((await price('Read').innerText()).trim(), 'Price: $0.000100 a call beyond 5 free calls a month from its definition');
    assert.equal((await price('Count').innerText()).trim(), 'Price: free of charge (counted), 50 calls a month in its quota from its definition');
    assert.equal(await price('Write').count(), 0, 'not priced: no price shown');
    // the staff's price wins, and the page says so once it loads again
    assert.equal((await staff(['set', 'books', 'Read', '--namespace', 'acme', '--price', '$0.00025', '--free', '10'])).code, 0);
    await page.reload();
    await page.getByRole('button', { name: 'books' }).click();
    assert.equal((await price('Read').innerText()).trim(), 'Price: $0.000250 a call beyond 10 free calls a month set by the platform');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'service-prices.png'), fullPage: true });
    assert.equal((await staff(['clear', 'books', 'Read', '--namespace', 'acme'])).code, 0);
    assert.deepEqual(problems, []);
  });
});

test('pricing on two nodes (nats profile): a price set on one shows on the other within the refresh', { timeout: 180_000 }, async (t) => {
  const platform = await natsPlatform(t, 'pricing');
  if (!platform) return;
  t.after(() => platform.drop());
  const [homeA, homeB] = [tempDir('micro-pricing-a-'), tempDir('micro-pricing-b-')];
  t.after(() => [homeA, homeB].forEach((h) => rmSync(h, { recursive: true, force: true })));
  const env = { ...platform.env, MICRO_RUNTIME_SANDBOX: 'off' };
  const a = await startServer(homeA, { timeout: 60_000, env });
  t.after(() => stopProcess(a.proc));
  const b = await startServer(homeB, { timeout: 60_000, env });
  t.after(() => stopProcess(b.proc));
  const { ownerToken } = await tenantWithBooks(t, homeA, a, 'initech');
  await until('books in the registry of node b', 20_000, async () => operation(b.gateway, ownerToken, '/v1/books/Read'));
  const set = await micro(homeA, ['platform', 'pricing', 'set', 'books', 'Read', '--namespace', 'initech', '--price', '$0.01', '--free', '0']);
  assert.equal(set.code, 0, set.stderr);
  const started = Date.now();
  await until('node b prices Read as node a set it', 10_000, async () => ((await operation(b.gateway, ownerToken, '/v1/books/Read'))?.['x-micro-price']?.units === 10_000 ? true : undefined));
  // each node reads the change counter every second: one refresh and a read at most
  assert.ok(Date.now() - started < 5_000, `seen after ${Date.now() - started} ms`);
  const listed = ok(await post(b.gateway, '/v1/pricing/List', {}, ownerToken)) as { prices: { endpoint: string; source: string; setBy?: string }[] };
  assert.deepEqual(listed.prices.find((p) => p.endpoint === 'Read')?.source, 'admin');
  assert.equal(listed.prices.find((p) => p.endpoint === 'Read')?.setBy, undefined, 'who set it is for the staff');
});
