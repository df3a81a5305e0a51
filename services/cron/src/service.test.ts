import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { bearer, Client, createLogger, defineService, endpoint, errors, namespacedClient, platformClient, RemoteRegistry, remoteEngines, Service, ServiceAuth, TokenSource, z, type Context } from '@micro/sdk';
import { expectShape, startPlatform, type Platform, type Tenant } from '@micro/services-kit/testing';
import { cronNode, cronService, MAX_JOBS, RUNS_KEPT } from './handlers.js';

const silent = createLogger({ level: 'silent' });

/** What a tenant's service saw of one call. */
interface Seen {
  namespace: string;
  job: string | undefined;
  tick: string | undefined;
  body: unknown;
}

const ticker = defineService({
  name: 'ticker',
  endpoints: {
    Tick: endpoint({ request: z.object({}).passthrough(), response: z.object({}) }),
    Fail: endpoint({ request: z.object({}).passthrough(), response: z.object({}) }),
  },
});

/** A service `ticker` of the tenant's own namespace, run here in the test's process (as `micro run` would, unsandboxed). */
async function tenantTicker(t: TestContext, p: Platform, tenant: Tenant): Promise<Seen[]> {
  const seen: Seen[] = [];
  const note = (req: unknown, ctx: Context) => seen.push({ namespace: ctx.namespace, job: ctx.metadata['micro-cron-job'], tick: ctx.metadata['micro-cron-tick'], body: req });
  const tokens = new TokenSource(tenant.owner, new Client({ address: p.server.address, namespace: 'micro', preferLocal: false }));
  const svc = new Service(
    ticker,
    {
      Tick: (req, ctx) => {
        note(req, ctx);
        return {};
      },
      Fail: (req, ctx) => {
        note(req, ctx);
        throw errors.Conflict('ticker', 'the teapot is busy');
      },
    },
    {
      namespace: tenant.namespace,
      registry: new RemoteRegistry(platformClient(p.server.address, [bearer(tokens)])),
      address: 'tcp://127.0.0.1:0',
      logger: silent,
      auth: new ServiceAuth({ address: p.server.address, credentials: tenant.owner, refreshInterval: 0 }),
    },
  );
  await svc.start();
  t.after(() => svc.stop());
  return seen;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeout = 15_000): Promise<void> {
  const end = Date.now() + timeout;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`waited ${timeout} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const profile of ['local', 'nats'] as const) {
  test(`cron: jobs call the tenant's own service once per tick across two nodes, keep their runs, survive a new node, stop when deleted (${profile})`, async (t) => {
    process.env.MICRO_RUNTIME_SANDBOX = 'off';
    // a clock the test moves: a minute passes when the test says so, not in a minute
    let clock = Date.parse('2030-01-01T00:00:00Z');
    const now = () => clock;
    const fast = { now, resolution: 20, refresh: 100 };
    const p = await startPlatform(t, { services: [cronService(fast)], profile });
    if (!p) return;
    t.after(() => p.close());
    const seenA = await tenantTicker(t, p, p.a);
    const seenB = await tenantTicker(t, p, p.b);

    const made = await p.call(p.a.key, 'cron', 'Schedule', { name: 'every minute', description: 'says hello', callback: 'ticker.Tick', interval: '* * * * *', request: { hello: 'a' } });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    await expectShape('cron', 'Schedule', made.body);
    const job = made.body.job;
    assert.deepEqual({ ...job, id: undefined }, { callback: 'ticker.Tick', description: 'says hello', id: undefined, interval: '* * * * *', name: 'every minute' });
    const detail = (await p.call(p.a.key, 'cron', 'Runs', { id: job.id })).body;
    assert.deepEqual(detail, { job, request: { hello: 'a' }, next: '2030-01-01T00:01:00.000Z', created: '2030-01-01T00:00:00.000Z', updated: '2030-01-01T00:00:00.000Z', runs: [] });
    // b's job, of the same name, calls b's ticker (the /v1 form)
    const bJob = (await p.call(p.b.key, 'cron', 'Schedule', { name: 'every minute', callback: '/v1/ticker/Tick', interval: '@every 1m', request: { hello: 'b' } })).body.job;

    // a second node of the service on the same engines (as another micro server of the nats profile)
    const admin = new Client({ address: p.server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(p.adminToken)] });
    // its callbacks go as the hosted services' do: the admin's token scoped to the callee by the server's auth.Scope
    const scoped = bearer(p.adminToken, { server: new Client({ address: p.server.address, namespace: 'micro', preferLocal: false, middleware: [] }) });
    const clients = new Map<string, Client>();
    const clientIn = (namespace: string) => namespacedClient(namespace, () => new Client({ namespace, registry: p.server.registry, middleware: [scoped] }), clients);
    const nodeEngines = { ...remoteEngines(admin), clientIn };
    const second = cronNode(nodeEngines, fast);
    second.scheduler.start();
    t.after(() => second.scheduler.stop());

    const ticks = 5;
    for (let i = 1; i <= ticks; i++) {
      clock += 60_000;
      await until(`tick ${i}`, () => seenA.length >= i && seenB.length >= i);
      // both nodes looked at the clock at least twice since (each tick is contested)
      await sleep(100);
    }
    await until('the runs kept', async () => (await p.call(p.a.key, 'cron', 'Runs', { id: job.id })).body.runs?.length === ticks);
    await sleep(100);
    assert.equal(seenA.length, ticks, `a's service was called ${seenA.length} times for ${ticks} ticks: ${JSON.stringify(seenA)}`);
    assert.equal(new Set(seenA.map((s) => s.tick)).size, ticks);
    assert.deepEqual(seenA[0], { namespace: 'tenant-a', job: job.id, tick: '2030-01-01T00:01:00.000Z', body: { hello: 'a' } });
    assert.equal(seenB.length, ticks);
    assert.ok(seenB.every((s) => s.namespace === 'tenant-b' && s.job === bJob.id && (s.body as { hello: string }).hello === 'b'), JSON.stringify(seenB));
    assert.ok(seenA.every((s) => s.namespace === 'tenant-a' && (s.body as { hello: string }).hello === 'a'), JSON.stringify(seenA));

    // the runs, newest first
    const runs = await p.call(p.a.key, 'cron', 'Runs', { id: job.id });
    assert.equal(runs.status, 200);
    assert.equal(runs.body.runs.length, ticks);
    assert.deepEqual(runs.body.runs.map((r: { tick: string }) => r.tick), seenA.map((s) => s.tick).reverse());
    assert.deepEqual({ ...runs.body.runs[0], duration: 0 }, { tick: '2030-01-01T00:05:00.000Z', started: '2030-01-01T00:05:00.000Z', duration: 0, status: 'ok', code: 200, error: '' });

    // a failing callback's run says how it failed; only the last RUNS_KEPT are kept
    const failing = (await p.call(p.a.key, 'cron', 'Schedule', { callback: 'ticker.fail', interval: '@every 2m' })).body.job;
    const callsOf = (id: string) => seenA.filter((s) => s.job === id).length;
    for (let i = 0; i < RUNS_KEPT; i++) {
      const called = callsOf(job.id);
      clock += 60_000;
      await until(`tick ${ticks + i + 1}`, () => callsOf(job.id) > called);
    }
    await until('the failing runs', async () => (await p.call(p.a.key, 'cron', 'Runs', { id: failing.id })).body.runs.length >= RUNS_KEPT / 2);
    const failed = (await p.call(p.a.key, 'cron', 'Runs', { id: failing.id })).body.runs[0];
    assert.equal(failed.status, 'error');
    assert.equal(failed.code, 409);
    assert.match(failed.error, /the teapot is busy/);
    await until(`${RUNS_KEPT} runs kept`, async () => (await p.call(p.a.key, 'cron', 'Runs', { id: job.id })).body.runs.length === RUNS_KEPT);
    const jobs = await p.call(p.a.key, 'cron', 'Jobs', {});
    await expectShape('cron', 'Jobs', jobs.body);
    assert.deepEqual(jobs.body.jobs.map((j: { id: string }) => j.id), [job.id, failing.id]);

    // a node that starts later (a restarted server) finds the jobs in the store and runs them
    await second.scheduler.stop();
    const third = cronNode(nodeEngines, fast);
    third.scheduler.start();
    t.after(() => third.scheduler.stop());
    const before = callsOf(job.id);
    await sleep(200);
    clock += 60_000;
    await until('the tick after the new node started', () => callsOf(job.id) === before + 1);

    // deleted: no tick of it runs once Delete answered, on any node (the calls in flight ended first)
    await sleep(200);
    assert.equal((await p.call(p.a.key, 'cron', 'Delete', { id: job.id })).status, 200);
    assert.equal((await p.call(p.a.key, 'cron', 'Delete', { id: failing.id })).status, 200);
    const calls = seenA.length;
    for (let i = 0; i < 3; i++) {
      clock += 60_000;
      await sleep(150);
    }
    assert.equal(seenA.length, calls);
    assert.deepEqual((await p.call(p.a.key, 'cron', 'Jobs', {})).body, { jobs: [] });
    assert.equal((await p.call(p.a.key, 'cron', 'Runs', { id: job.id })).status, 404);
    // b's job still runs
    assert.ok(seenB.length > ticks);
  });
}

test('cron: wrong, missing, oversized and hostile input, and another tenant\'s attacks, are clear errors', async (t) => {
  process.env.MICRO_RUNTIME_SANDBOX = 'off';
  let clock = Date.parse('2030-01-01T00:00:00Z');
  const p = await startPlatform(t, { services: [cronService({ now: () => clock, resolution: 20, refresh: 100 })] });
  if (!p) return;
  t.after(() => p.close());
  const seenA = await tenantTicker(t, p, p.a);
  const a = (body: unknown) => p.call(p.a.key, 'cron', 'Schedule', body);
  const good = { callback: 'ticker.Tick', interval: '*/5 * * * *' };

  const cases: [unknown, number, RegExp][] = [
    [{}, 400, /Missing interval/],
    [{ interval: '* * * * *' }, 400, /Missing callback/],
    [{ ...good, interval: '0 0 30 2 *' }, 400, /never fires/],
    [{ ...good, interval: '* * * * * *' }, 400, /more often than once a minute/],
    [{ ...good, interval: '@every 10s' }, 400, /more often than once a minute/],
    [{ ...good, interval: 'every day' }, 400, /not a cron expression/],
    [{ ...good, interval: 5 }, 400, /interval/],
    [{ ...good, interval: 'x'.repeat(301) }, 400, /interval/],
    [{ ...good, callback: 'https://example.com/hook' }, 400, /URLs are not called/],
    [{ ...good, callback: 'http://169.254.169.254/latest' }, 400, /URLs are not called/],
    [{ ...good, callback: 'tenant-b/ticker.Tick' }, 400, /your own namespace/],
    [{ ...good, callback: 'ticker.Nope' }, 400, /no endpoint Nope/],
    [{ ...good, callback: 'nothere.Call' }, 400, /not running in your namespace/],
    [{ ...good, callback: 'store.Read' }, 400, /not running in your namespace/],
    [{ ...good, callback: 'cron.Jobs' }, 400, /not running in your namespace/],
    [{ ...good, callback: ['ticker.Tick'] }, 400, /callback/],
    [{ ...good, request: 'hello' }, 400, /request/],
    [{ ...good, request: { big: 'x'.repeat(17 * 1024) } }, 413, /request/],
    [{ ...good, request: JSON.parse('{"a":'.repeat(20) + '1' + '}'.repeat(20)) }, 400, /request: nests deeper/],
    [{ ...good, name: 'x'.repeat(129) }, 400, /name/],
    [{ ...good, name: 'bell\u0007' }, 400, /name/],
    [{ ...good, id: '../../x' }, 400, /id/],
    [{ ...good, id: 'no-such-job' }, 404, /no job no-such-job/],
  ];
  for (const [body, code, detail] of cases) {
    const res = await a(body);
    assert.equal(res.status, code, `${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.id, 'cron');
    assert.match(res.body.detail, detail, JSON.stringify(body).slice(0, 80));
  }
  for (const endpoint of ['Delete', 'Runs']) {
    assert.match((await p.call(p.a.key, 'cron', endpoint, {})).body.detail, /Missing id/);
    assert.equal((await p.call(p.a.key, 'cron', endpoint, { id: 'nope' })).status, 404);
    assert.equal((await p.call(p.a.key, 'cron', endpoint, { id: { $ne: 1 } })).status, 400);
  }
  assert.equal((await p.call(undefined, 'cron', 'Jobs', {})).status, 401);

  // a's job; b, a stranger, can neither see, run, replace, read the runs of nor delete it
  const job = (await a({ ...good, name: 'mine', request: { secret: 'of a' } })).body.job;
  assert.ok(job.id);
  const seenB = await tenantTicker(t, p, p.b);
  assert.deepEqual((await p.call(p.b.key, 'cron', 'Jobs', {})).body, { jobs: [] });
  assert.equal((await p.call(p.b.key, 'cron', 'Delete', { id: job.id })).status, 404);
  assert.equal((await p.call(p.b.key, 'cron', 'Runs', { id: job.id })).status, 404);
  assert.equal((await p.call(p.b.key, 'cron', 'Schedule', { ...good, id: job.id, request: { stolen: true } })).status, 404);
  // b names a's namespace in every way there is: each refused, nothing of a's is called
  for (const callback of ['tenant-a/ticker.Tick', '/v1/tenant-a/ticker/Tick', 'tenant-a.ticker.Tick', '/v1/ticker/Tick?namespace=tenant-a', 'micro://tenant-a/ticker.Tick']) {
    assert.equal((await p.call(p.b.key, 'cron', 'Schedule', { callback, interval: '* * * * *' })).status, 400, callback);
  }
  // a service only a runs is not there for b
  const onlyA = (await p.call(p.b.key, 'cron', 'Schedule', { callback: 'ticker.Tick', interval: '* * * * *' })).body.job;
  assert.ok(onlyA.id, 'b schedules its own ticker');
  clock += 5 * 60_000;
  await until('both ran', () => seenA.length === 1 && seenB.length === 1);
  assert.equal(seenA[0]?.namespace, 'tenant-a');
  assert.deepEqual(seenA[0]?.body, { secret: 'of a' });
  assert.equal(seenB[0]?.namespace, 'tenant-b');
  assert.deepEqual(seenB[0]?.body, {});
  assert.equal((await p.call(p.a.key, 'cron', 'Jobs', {})).body.jobs.length, 1);

  // replacing a job: same id, new interval
  const replaced = await a({ ...good, id: job.id, interval: '@daily', name: 'daily' });
  assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
  assert.equal(replaced.body.job.id, job.id);
  assert.equal(replaced.body.job.interval, '@daily');
  const detail = (await p.call(p.a.key, 'cron', 'Runs', { id: job.id })).body;
  assert.equal(detail.next, '2030-01-02T00:00:00.000Z');
  assert.deepEqual(detail.request, {});
  assert.equal(detail.runs.length, 1);

  // at most MAX_JOBS a namespace: the next is a 429, and b is not held back by a's
  for (let i = 1; i < MAX_JOBS; i++) assert.equal((await a({ ...good, name: `job ${i}` })).status, 200);
  const over = await a(good);
  assert.equal(over.status, 429, JSON.stringify(over.body));
  assert.match(over.body.detail, /100 jobs/);
  assert.equal((await p.call(p.b.key, 'cron', 'Schedule', good)).status, 200);
});
