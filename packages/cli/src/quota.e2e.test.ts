import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { micro, natsPlatform, ok, post, startServer, stopProcess, tempDir, until } from './testing.js';

/**
 * Quotas on a running micro server, as tenants meet them: the 403s of the store and of API
 * keys at the boundary, quota.Read and Set with their rules (a tenant cannot read or set
 * another namespace's quota), hostile input to Set, and `micro quota` itself. The same on
 * the nats profile, where the limits and usage live in PostgreSQL.
 */

async function quotaScenario(t: test.TestContext, env: Record<string, string>): Promise<void> {
  const home = tempDir('micro-quota-e2e-');
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const server = await startServer(home, { timeout: 60_000, env: { MICRO_QUOTA_DEFAULTS: '{"apiKeys":2}', ...env } });
  t.after(() => stopProcess(server.proc));
  const gw = server.gateway;
  const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const adminToken = ok(await post(gw, '/v1/auth/Token', { ...admin, namespace: 'micro' })).token as string;
  const tenant = async (namespace: string) => {
    ok(await post(gw, '/v1/auth/CreateAccount', { id: 'owner', namespace, secret: 'owner-password-1' }, adminToken));
    return ok(await post(gw, '/v1/auth/Login', { id: 'owner', password: 'owner-password-1', namespace })).token as string;
  };
  const acme = await tenant('acme');
  const globex = await tenant('globex');

  await t.test('micro quota set and micro quota: an admin limits a namespace and sees it', async () => {
    const set = await micro(home, ['quota', 'set', 'acme', 'storeRecords=3', 'storeBytes=100000', '-o', 'json']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal((JSON.parse(set.stdout) as { limits: { storeRecords: number } }).limits.storeRecords, 3);
    const shown = await micro(home, ['quota', '--namespace', 'acme']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /storeRecords\s+0\s+3\s+set/);
    assert.match(shown.stdout, /apiKeys\s+0\s+2\s+default/);
    const mine = JSON.parse((await micro(home, ['quota', '-o', 'json'])).stdout) as { namespace: string; limits: Record<string, unknown> };
    assert.equal(mine.namespace, 'micro');
    assert.equal(mine.limits.storeRecords, null, 'micro is unlimited');
    const bad = await micro(home, ['quota', 'set', 'acme', 'storeRecords=-1']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /storeRecords must be a whole number/);
  });

  await t.test('store: 8 parallel writes with room for 3: exactly 3 pass, the rest are 403s that say what to do', async () => {
    const writes = await Promise.all(Array.from({ length: 8 }, (_, i) => post(gw, '/v1/store/Write', { record: { key: `k${i}`, value: i } }, acme)));
    assert.equal(writes.filter((r) => r.status === 200).length, 3, JSON.stringify(writes));
    for (const r of writes.filter((w) => w.status !== 200)) {
      assert.equal(r.status, 403);
      assert.equal(r.body.detail, 'quota exceeded: storeRecords 3 of 3 used in namespace acme; delete records or ask for a larger quota (micro quota)');
    }
    const read = ok(await post(gw, '/v1/quota/Read', {}, acme)) as { usage: { storeRecords: number } };
    assert.equal(read.usage.storeRecords, 3);
  });

  await t.test('API keys: the third key of a namespace allowed 2 is a 403', async () => {
    ok(await post(gw, '/v1/auth/CreateKey', { name: 'one' }, acme));
    ok(await post(gw, '/v1/auth/CreateKey', { name: 'two' }, acme));
    const third = await post(gw, '/v1/auth/CreateKey', { name: 'three' }, acme);
    assert.equal(third.status, 403);
    assert.equal(third.body.detail, 'quota exceeded: apiKeys 2 of 2 used in namespace acme; revoke API keys or ask for a larger quota (micro quota)');
    assert.equal((ok(await post(gw, '/v1/quota/Read', {}, acme)) as { usage: { apiKeys: number } }).usage.apiKeys, 2);
  });

  await t.test('requestsPerSecond: past the rate a namespace\'s calls are 429 with Retry-After naming the limit', async () => {
    assert.equal((await micro(home, ['quota', 'set', 'globex', 'requestsPerSecond=3'])).code, 0);
    await rateScenario([gw], globex, 'globex', 3);
    // another namespace is not slowed by it
    ok(await post(gw, '/v1/quota/Read', {}, acme));
    // globex calls again below: its rate back up, once the gateway has read the new limit (at most 5 s)
    assert.equal((await micro(home, ['quota', 'set', 'globex', 'requestsPerSecond=1000'])).code, 0);
    await until('globex at full rate again', 20_000, async () => {
      const burst = await Promise.all(Array.from({ length: 6 }, () => post(gw, '/v1/quota/Read', {}, globex)));
      return burst.every((r) => r.status === 200) ? true : undefined;
    });
  });

  await t.test("a tenant cannot read or set another namespace's quota, nor its own", async () => {
    assert.equal((await post(gw, '/v1/quota/Read', { namespace: 'globex' }, acme)).status, 403);
    assert.equal((await post(gw, '/v1/quota/Set', { namespace: 'globex', limits: { storeRecords: 0 } }, acme)).status, 403);
    assert.equal((await post(gw, '/v1/quota/Set', { namespace: 'acme', limits: { storeRecords: 1_000_000 } }, acme)).status, 403);
    assert.equal((await post(gw, '/v1/quota/Read', {})).status, 401);
    const limits = (ok(await post(gw, '/v1/quota/Read', { namespace: 'acme' }, adminToken)) as { limits: { storeRecords: number } }).limits;
    assert.equal(limits.storeRecords, 3, 'unchanged');
  });

  await t.test("a namespace's owners and admins set its limits within their plan (the defaults), never above, never another's", async () => {
    ok(await post(gw, '/v1/auth/CreateAccount', { id: 'boss', namespace: 'acme', secret: 'boss-password-1', scopes: ['admin'] }, adminToken));
    const boss = ok(await post(gw, '/v1/auth/Login', { id: 'boss', password: 'boss-password-1', namespace: 'acme' })).token as string;
    const within = await post(gw, '/v1/quota/Set', { namespace: 'acme', limits: { apiKeys: 1 } }, boss);
    assert.equal(within.status, 200, JSON.stringify(within.body));
    assert.equal((within.body.limits as { apiKeys: number }).apiKeys, 1);
    const above = await post(gw, '/v1/quota/Set', { namespace: 'acme', limits: { apiKeys: 3 } }, boss);
    assert.equal(above.status, 403);
    assert.equal(above.body.detail, "apiKeys: 3 is more than your plan's 2; ask the platform's staff for more");
    assert.equal((await post(gw, '/v1/quota/Set', { namespace: 'globex', limits: { apiKeys: 1 } }, boss)).status, 403);
    // as it was, for what follows
    ok(await post(gw, '/v1/quota/Set', { namespace: 'acme', limits: { apiKeys: 2 } }, adminToken));
  });

  await t.test('hostile input to Set is a 400 naming the field, and changes nothing', async () => {
    const cases: [unknown, RegExp][] = [
      [{ storeBytes: -1 }, /storeBytes must be a whole number/],
      [{ storeBytes: 1.5 }, /storeBytes must be a whole number/],
      [{ storeBytes: 2 ** 60 }, /storeBytes must be a whole number from 0 to/],
      [{ storeBytes: '10' }, /storeBytes must be a whole number/],
      [{ storeBytes: 5, rootAccess: 1 }, /rootAccess is not a limit/],
      [{ eventsBytes: -5 }, /eventsBytes must be a whole number/],
      [{ eventRetention: 0.5 }, /eventRetention must be a whole number/],
      [{ eventRetention: 2 ** 51 }, /eventRetention must be a whole number from 0 to/],
      [{ eventsBytes: null }, /eventsBytes must be a whole number/],
      [{ __proto__: { x: 1 }, constructor: 1 }, /constructor is not a limit/],
    ];
    for (const [limits, detail] of cases) {
      const r = await post(gw, '/v1/quota/Set', { namespace: 'acme', limits }, adminToken);
      assert.equal(r.status, 400, JSON.stringify(limits));
      assert.match(String(r.body.detail), detail);
    }
    for (const namespace of ['', '../x', 'a'.repeat(200)]) {
      assert.equal((await post(gw, '/v1/quota/Set', { namespace, limits: {} }, adminToken)).status, 400, namespace);
    }
    assert.equal((await post(gw, '/v1/quota/Set', { namespace: 'acme', limits: [1] }, adminToken)).status, 400);
    const limits = (ok(await post(gw, '/v1/quota/Read', { namespace: 'acme' }, adminToken)) as { limits: { storeBytes: number } }).limits;
    assert.equal(limits.storeBytes, 100000, 'unchanged');
  });

  await t.test('cacheBytes: the Set past the limit is a 403; the other tenant is untouched', async () => {
    assert.equal((await micro(home, ['quota', 'set', 'acme', 'cacheBytes=40'])).code, 0);
    ok(await post(gw, '/v1/cache/Set', { key: 'a', value: 'x'.repeat(20) }, acme)); // 1 + 22 bytes
    const over = await post(gw, '/v1/cache/Set', { key: 'b', value: 'x'.repeat(20) }, acme);
    assert.equal(over.status, 403);
    assert.equal(over.body.detail, 'quota exceeded: cacheBytes 23 of 40 used in namespace acme; delete cache keys or ask for a larger quota (micro quota)');
    ok(await post(gw, '/v1/cache/Set', { key: 'b', value: 'x'.repeat(20) }, globex));
    assert.equal((ok(await post(gw, '/v1/quota/Read', {}, acme)) as { usage: { cacheBytes: number } }).usage.cacheBytes, 23);
    ok(await post(gw, '/v1/cache/Delete', { key: 'a' }, acme));
    ok(await post(gw, '/v1/cache/Set', { key: 'b', value: 'x'.repeat(20) }, acme));
  });

  await t.test('eventsBytes: the publish past the limit is a 403 naming it; usage in quota.Read; the other tenant is untouched', async () => {
    assert.equal((await micro(home, ['quota', 'set', 'acme', 'eventsBytes=1000', 'eventRetention=3600'])).code, 0);
    // JetStream counts its headers and subject too (quota README): publish until refused
    let stored = 0;
    let over: Awaited<ReturnType<typeof post>> | undefined;
    while (!over && stored < 10) {
      const r = await post(gw, '/v1/events/Publish', { topic: 'orders', payload: 'x'.repeat(300) }, acme);
      if (r.status === 200) stored++;
      else over = r;
    }
    assert.ok(stored >= 1 && over, `${stored} stored before a refusal`);
    assert.equal(over.status, 403);
    assert.match(String(over.body.detail), /^quota exceeded: eventsBytes \d+ of 1000 used in namespace acme; let retention remove events \(micro events retention\) or ask for a larger quota \(micro quota\)$/);
    ok(await post(gw, '/v1/events/Publish', { topic: 'orders', payload: 'x'.repeat(3000) }, globex));
    const usage = (ok(await post(gw, '/v1/quota/Read', {}, acme)) as { usage: { eventsBytes: number } }).usage.eventsBytes;
    assert.ok(usage >= stored * 302 && usage <= 1000, `usage ${usage}`);
  });

  await t.test('requestsPerMonth: counted, then a 403 naming the reset; admins of micro still reach the namespace', async () => {
    const read = async () => (ok(await post(gw, '/v1/quota/Read', {}, acme)) as { usage: { requestsPerMonth: number } }).usage.requestsPerMonth;
    const before = await read();
    assert.ok(before > 0, 'the namespace\'s own calls are counted');
    assert.equal(await read(), before + 1);
    assert.equal((await micro(home, ['quota', 'set', 'acme', 'requestsPerMonth=0'])).code, 0);
    // the gateway reads a limit at most every 5 s
    const refused = await until('the monthly limit applies', 15_000, async () => {
      const r = await post(gw, '/v1/quota/Read', {}, acme);
      return r.status === 403 ? r : undefined;
    });
    assert.match(String(refused.body.detail), /^quota exceeded: requestsPerMonth \d+ of 0 used in namespace acme; wait for the next month or ask for a larger quota \(micro quota\); the count resets at \d{4}-\d\d-01T00:00:00\.000Z$/);
    ok(await post(gw, '/v1/quota/Read', { namespace: 'acme' }, adminToken));
  });
}

/**
 * 30 parallel calls of a namespace allowed `rate` a second, spread over the gateways:
 * `rate` pass at once, and at most what refilled while they ran (measured, so no timing
 * assumption); the rest are 429s naming the limit, with Retry-After.
 */
async function rateScenario(gateways: string[], token: string, namespace: string, rate: number): Promise<void> {
  const started = Date.now();
  const calls = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      fetch(new URL('/v1/quota/Read', gateways[i % gateways.length]), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{}' }).then(async (res) => ({
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        body: (await res.json()) as { id?: string; detail?: string },
      })),
    ),
  );
  const seconds = (Date.now() - started) / 1000;
  const passed = calls.filter((c) => c.status === 200).length;
  assert.ok(passed >= rate && passed <= rate + Math.ceil(seconds * rate), `${passed} passed in ${seconds} s`);
  for (const c of calls.filter((c) => c.status !== 200)) {
    assert.equal(c.status, 429, JSON.stringify(c));
    assert.equal(c.body.id, 'quota');
    assert.match(String(c.body.detail), new RegExp(`^quota exceeded: requestsPerSecond ${rate} of ${rate} used in namespace ${namespace}; slow down or ask for a larger quota \\(micro quota\\); retry in \\d+ s$`));
    assert.match(String(c.retryAfter), /^[1-9]\d*$/);
  }
}

test('quotas on a running micro server (local profile: SQLite)', { timeout: 180_000 }, (t) => quotaScenario(t, {}));

test('quotas on a running micro server (nats profile: PostgreSQL)', { timeout: 180_000 }, async (t) => {
  const platform = await natsPlatform(t, 'quota');
  if (!platform) return;
  t.after(() => platform.drop());
  await quotaScenario(t, platform.env);
});

test('requestsPerSecond holds across two nodes (nats profile: the buckets are in Redis)', { timeout: 180_000 }, async (t) => {
  const platform = await natsPlatform(t, 'quotarps');
  if (!platform) return;
  t.after(() => platform.drop());
  const [homeA, homeB] = [tempDir('micro-quota-rps-a-'), tempDir('micro-quota-rps-b-')];
  t.after(() => [homeA, homeB].forEach((h) => rmSync(h, { recursive: true, force: true })));
  const a = await startServer(homeA, { timeout: 60_000, env: platform.env });
  t.after(() => stopProcess(a.proc));
  const b = await startServer(homeB, { timeout: 60_000, env: platform.env });
  t.after(() => stopProcess(b.proc));
  const admin = JSON.parse(readFileSync(join(homeA, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const adminToken = ok(await post(a.gateway, '/v1/auth/Token', { ...admin, namespace: 'micro' })).token as string;
  ok(await post(a.gateway, '/v1/auth/CreateAccount', { id: 'owner', namespace: 'initech', secret: 'owner-password-1' }, adminToken));
  ok(await post(a.gateway, '/v1/quota/Set', { namespace: 'initech', limits: { requestsPerSecond: 4 } }, adminToken));
  const token = ok(await post(b.gateway, '/v1/auth/Login', { id: 'owner', password: 'owner-password-1', namespace: 'initech' })).token as string;
  // half of the calls to each node: per-node limits would let 2 × 4 through at once
  await rateScenario([a.gateway, b.gateway], token, 'initech', 4);
});
