import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { createLogger, defineService, endpoint, errors, serverStream, Service, ServiceAuth, z } from '@micro/sdk';
import { MicroServer } from '@micro/server';
import type { CoreService } from '@micro/server/engine';
import { balanceAccount, PLATFORM_REVENUE } from '../billing/accounts.js';
import { periodOf } from '../billing/periods.js';
import { PlatformHub } from '../hub.js';
import type { Ledger } from '../ledger/index.js';
import { usageCoreService } from '../usage/index.js';
import { MapPricing, topUp } from './contract.js';
import { requestPosting } from './core.js';
import type { Meter } from './meter.js';
import type { CallRecord, MeterEngine } from './storage.js';

/*
 * Metering through the gateway of a real micro server (local profile), over real HTTP,
 * server-sent events and WebSockets: a tenant's priced service, the usage core service
 * with its meter, the ledger in billing.db. What a tenant can do to be billed less, or to
 * bill another, is tried here and must fail.
 */

const silent = createLogger({ level: 'silent' });

const paid = defineService({
  name: 'paid',
  version: '1.0.0',
  endpoints: {
    Call: endpoint({ request: z.object({ fail: z.boolean().optional() }), response: z.object({ n: z.number() }) }),
    Quota: endpoint({ request: z.object({ fail: z.boolean().optional() }), response: z.object({ n: z.number() }) }),
    Open: endpoint({ request: z.object({}), response: z.object({ n: z.number() }) }),
    Public: endpoint({ request: z.object({}), response: z.object({ n: z.number() }) }),
    Count: serverStream({ request: z.object({ n: z.number(), fail: z.boolean().optional() }), response: z.object({ i: z.number() }), readonly: true }),
    Forever: serverStream({ request: z.object({}), response: z.object({ i: z.number() }), readonly: true }),
  },
});

const PRICE = 1_000;

interface Answer {
  status: number;
  body: Record<string, unknown>;
  requestId: string | null;
}

describe('metering at the gateway of micro server', () => {
  let home: string;
  let server: MicroServer;
  let gw: string;
  let ledger: Ledger;
  let meter: Meter;
  let engine: MeterEngine;
  let admin: string;
  let acme: string;
  let acmeKey: string;
  let acmeKeyId: string;
  let globex: string;
  /** a tenant that never topped up */
  let initech: string;
  const served: Record<string, number> = {};
  const services: Service[] = [];
  const pricing = new MapPricing()
    .set('acme', 'paid', 'Call', { price: PRICE, freeQuota: 0 })
    .set('acme', 'paid', 'Quota', { price: 500, freeQuota: 2 })
    .set('acme', 'paid', 'Public', { price: PRICE, freeQuota: 0 })
    .set('acme', 'paid', 'Count', { price: 2_000, freeQuota: 0 })
    .set('acme', 'paid', 'Forever', { price: 2_000, freeQuota: 0 })
    .set('globex', 'paid', 'Call', { price: PRICE, freeQuota: 0 })
    .set('initech', 'paid', 'Count', { price: 2_000, freeQuota: 0 });
  let cap: number | null = null;

  const post = async (path: string, body: unknown, token?: string, headers: Record<string, string> = {}): Promise<Answer> => {
    const res = await fetch(new URL(path, gw), { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, requestId: res.headers.get('x-request-id') };
  };
  const records = async (namespace = 'acme'): Promise<CallRecord[]> => engine.calls({ namespace, from: '2000-01-01', to: '2100-12-31' }, 100_000);
  const recordOf = async (requestId: string | null) => (await records()).find((r) => r.requestId === requestId) ?? (await records('globex')).find((r) => r.requestId === requestId);
  const balance = async (payer = 'ns.acme') => {
    await meter.flush();
    return ledger.balance(balanceAccount(payer));
  };
  /** Brings the payer's balance to `units` (a top-up, or a spend to revenue: test money only). */
  const setBalance = async (units: number, payer = 'ns.acme') => {
    const now = await balance(payer);
    if (now < units) await topUp(ledger, payer, units - now);
    if (now > units) await ledger.post({ key: `test-spend-${randomUUID()}`, reason: 'test: spend the balance', entries: [{ account: balanceAccount(payer), amount: units - now }, { account: PLATFORM_REVENUE, amount: now - units }] });
    assert.equal(await balance(payer), units);
  };
  const login = async (namespace: string, id: string): Promise<string> => {
    const made = await post('/v1/auth/CreateAccount', { id, namespace, secret: `${id}-password-1`, scopes: ['admin'] }, admin);
    assert.equal(made.status, 200, JSON.stringify(made.body));
    return (await post('/v1/auth/Login', { id, password: `${id}-password-1`, namespace })).body.token as string;
  };

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'micro-metering-gw-'));
    const hub = new PlatformHub();
    let usage: CoreService | undefined;
    const factory = usageCoreService({ hub, pricing, usageCap: (payer) => (payer === 'ns.acme' ? cap : null), postEvery: 60_000 });
    server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent, sandbox: { mode: 'off' }, coreServices: [async (ctx) => (usage = await factory(ctx))] });
    await server.start();
    gw = server.gatewayUrl as string;
    meter = usage?.meter as Meter;
    engine = (meter as unknown as { engine: MeterEngine }).engine;
    ledger = (await hub.billing({ profile: { name: 'local' }, dataDir: join(home, 'data') })).ledger;
    const a = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    admin = (await post('/v1/auth/Token', { ...a, namespace: 'micro' })).body.token as string;
    acme = await login('acme', 'owner');
    globex = await login('globex', 'owner');
    initech = await login('initech', 'owner');
    const key = await post('/v1/auth/CreateKey', { name: 'ci' }, acme);
    acmeKey = key.body.key as string;
    acmeKeyId = (key.body.info as { id: string }).id;
    // anonymous callers may reach Public (a public rule): a priced endpoint still needs a payer
    assert.equal((await post('/v1/auth/CreateRule', { id: 'public', namespace: 'acme', resource: 'service:paid:Public', scope: '', access: 'granted', priority: 1 }, admin)).status, 200);
    for (const namespace of ['acme', 'globex', 'initech']) {
      const creds = await server.serviceCredentials('paid', namespace);
      const count = (name: string) => (served[`${namespace}.${name}`] = (served[`${namespace}.${name}`] ?? 0) + 1);
      const svc = new Service(
        paid,
        {
          Call: ({ fail }) => {
            if (fail) throw errors.BadRequest('paid', 'asked to fail');
            return { n: count('Call') };
          },
          Quota: ({ fail }) => {
            if (fail) throw errors.InternalServerError('paid', 'asked to fail');
            return { n: count('Quota') };
          },
          Open: () => ({ n: count('Open') }),
          Public: () => ({ n: count('Public') }),
          async *Count({ n, fail }) {
            for (let i = 0; i < n; i++) yield { i };
            if (fail) throw errors.Conflict('paid', 'the stream broke');
            count('Count');
          },
          async *Forever(_req, ctx) {
            for (let i = 0; !ctx.signal.aborted; i++) {
              yield { i };
              await new Promise((r) => setTimeout(r, 20));
            }
          },
        },
        { namespace, registry: server.registry, logger: silent, auth: new ServiceAuth({ address: server.address, credentials: { ...creds, namespace }, refreshInterval: 0 }) },
      );
      await svc.start();
      services.push(svc);
    }
  });

  after(async () => {
    for (const svc of services) await svc.stop();
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  });

  test('a priced call is charged its price once, under its request id; X-Request-Id on every answer', async () => {
    await topUp(ledger, 'ns.acme', 10_000);
    const start = await balance();
    const r = await post('/v1/paid/Call', {}, acme);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.requestId ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const record = await recordOf(r.requestId);
    assert.equal(record?.charged, PRICE);
    assert.equal(record?.outcome, 'ok');
    assert.equal(await balance(), start - PRICE);
    assert.ok(await ledger.posting(requestPosting('ns.acme', r.requestId as string)));
    // refusals carry one too, and each answer its own
    const refused = await post('/v1/paid/Call', {}, 'not-a-token');
    assert.equal(refused.status, 401);
    assert.match(refused.requestId ?? '', /^[0-9a-f-]{36}$/);
    assert.notEqual(refused.requestId, r.requestId);
  });

  test('a call made with an API key is recorded with the key id; an unpriced endpoint is not recorded at all', async () => {
    const r = await post('/v1/paid/Call', {}, acmeKey);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const record = await recordOf(r.requestId);
    assert.equal(record?.keyId, acmeKeyId);
    assert.equal(record?.account, 'owner');
    const open = await post('/v1/paid/Open', {}, acme);
    assert.equal(open.status, 200);
    assert.equal(await recordOf(open.requestId), undefined);
  });

  test('a failed call is recorded with its status and not charged', async () => {
    const start = await balance();
    const r = await post('/v1/paid/Call', { fail: true }, acme);
    assert.equal(r.status, 400);
    const record = await recordOf(r.requestId);
    assert.deepEqual([record?.outcome, record?.code, record?.charged, record?.posting], ['error', 400, 0, null]);
    assert.equal(await balance(), start);
  });

  test('the free quota: exactly its calls are free, failures use none, the next is charged', async () => {
    const start = await balance();
    const results: Answer[] = [];
    results.push(await post('/v1/paid/Quota', { fail: true }, acme));
    for (let i = 0; i < 3; i++) results.push(await post('/v1/paid/Quota', {}, acme));
    const recs = await Promise.all(results.map((r) => recordOf(r.requestId)));
    assert.deepEqual(recs.map((r) => [r?.outcome, r?.free, r?.charged]), [
      ['error', false, 0],
      ['ok', true, 0],
      ['ok', true, 0],
      ['ok', false, 500],
    ]);
    assert.equal(await balance(), start - 500);
    const read = await post('/v1/usage/Read', {}, acme);
    assert.equal(read.status, 200, JSON.stringify(read.body));
    const quota = (read.body.quotas as { service: string; endpoint: string; used: number; left: number; freeQuota: number }[]).find((q) => q.endpoint === 'Quota');
    assert.deepEqual(quota, { service: 'paid', endpoint: 'Quota', price: 500, freeQuota: 2, used: 2, left: 0 });
  });

  test('an Idempotency-Key retried is charged once, and the call runs each time', async () => {
    const start = await balance();
    const before = served['acme.Call'] ?? 0;
    const key = { 'idempotency-key': 'invoice-2027-01-7' };
    const first = await post('/v1/paid/Call', {}, acme, key);
    const again = await post('/v1/paid/Call', {}, acme, key);
    const both = await Promise.all([post('/v1/paid/Call', {}, acme, key), post('/v1/paid/Call', {}, acme, key)]);
    for (const r of [first, again, ...both]) assert.equal(r.status, 200);
    assert.equal(served['acme.Call'], before + 4);
    assert.equal(await balance(), start - PRICE);
    const charged = await Promise.all([first, again, ...both].map(async (r) => (await recordOf(r.requestId))?.charged));
    assert.deepEqual(charged.sort(), [0, 0, 0, PRICE]);
    // the same key from another payer is that payer's own call
    await topUp(ledger, 'ns.globex', 5_000);
    const other = await post('/v1/paid/Call', {}, globex, key);
    assert.equal((await recordOf(other.requestId))?.charged, PRICE);
  });

  test('a bad Idempotency-Key is a 400 before anything is called or recorded', async () => {
    const before = served['acme.Call'] ?? 0;
    for (const value of ['x'.repeat(201), 'caf\u00e9', 'tab\there']) {
      const res = await fetch(new URL('/v1/paid/Call', gw), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${acme}`, 'idempotency-key': Buffer.from(value, 'latin1').toString('latin1') }, body: '{}' });
      const body = (await res.json()) as { detail: string };
      assert.equal(res.status, 400, value);
      assert.match(body.detail, /^idempotency-key: 1 to 200 printable ASCII characters/);
    }
    assert.equal(served['acme.Call'] ?? 0, before);
    // 200 characters is fine
    assert.equal((await post('/v1/paid/Call', {}, acme, { 'idempotency-key': 'k'.repeat(200) })).status, 200);
  });

  test('credit for k calls and N > k in parallel: exactly k succeed; the others are 403 v1.blocked "insufficient credit"', async () => {
    const k = 6;
    await setBalance(k * PRICE);
    const before = served['acme.Call'] ?? 0;
    const results = await Promise.all(Array.from({ length: 30 }, () => post('/v1/paid/Call', {}, acme)));
    assert.equal(results.filter((r) => r.status === 200).length, k);
    for (const r of results.filter((x) => x.status !== 200)) {
      assert.equal(r.status, 403);
      assert.deepEqual(r.body, { id: 'v1.blocked', code: 403, detail: 'insufficient credit', status: 'Forbidden' });
      assert.equal((await recordOf(r.requestId))?.requestId, undefined, 'a refused call is not made and not recorded');
    }
    assert.equal(served['acme.Call'], before + k);
    assert.equal(await balance(), 0);
  });

  test('the usage cap: 403 v1.blocked "usage cap exceeded"', async () => {
    await topUp(ledger, 'ns.acme', 100_000);
    const period = periodOf(Date.now()).id;
    const spent = (await records()).filter((r) => r.period === period).reduce((n, r) => n + r.charged, 0);
    cap = spent + PRICE;
    try {
      assert.equal((await post('/v1/paid/Call', {}, acme)).status, 200);
      const r = await post('/v1/paid/Call', {}, acme);
      assert.equal(r.status, 403);
      assert.deepEqual(r.body, { id: 'v1.blocked', code: 403, detail: 'usage cap exceeded', status: 'Forbidden' });
    } finally {
      cap = null;
    }
  });

  test('a tenant cannot bill another: a Micro-Namespace header, another namespace\'s service, a forged or revoked key', async () => {
    const globexBefore = await balance('ns.globex');
    const globexRecords = (await records('globex')).length;
    const header = await post('/v1/paid/Call', {}, acme, { 'micro-namespace': 'globex' });
    assert.equal(header.status, 403);
    const forged = await post('/v1/paid/Call', {}, 'mk_0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    assert.equal(forged.status, 401);
    const key = await post('/v1/auth/CreateKey', { name: 'gone' }, globex);
    assert.equal((await post('/v1/auth/RevokeKey', { id: (key.body.info as { id: string }).id }, globex)).status, 200);
    assert.equal((await post('/v1/paid/Call', {}, key.body.key as string)).status, 401);
    // globex's key calls globex's service and bills globex, whatever acme names
    const own = await post('/v1/paid/Call', {}, globex);
    assert.equal(own.status, 200);
    assert.equal((await recordOf(own.requestId))?.payer, 'ns.globex');
    assert.equal(await balance('ns.globex'), globexBefore - PRICE);
    assert.equal((await records('globex')).length, globexRecords + 1);
    // the usage of another namespace is not a tenant's to read
    assert.equal((await post('/v1/usage/Read', { namespace: 'globex' }, acme)).status, 403);
    assert.equal((await post('/v1/usage/Export', { namespace: 'globex' }, acme)).status, 403);
  });

  test('anonymous callers of a priced endpoint get the 401 "credentials required"; staff of micro are not metered', async () => {
    const r = await post('/v1/paid/Public', {}, undefined, { 'micro-namespace': 'acme' });
    assert.equal(r.status, 401);
    assert.match(String(r.body.detail), /^credentials required/);
    assert.equal(await recordOf(r.requestId), undefined);
    const staff = await post('/v1/paid/Call', {}, admin, { 'micro-namespace': 'acme' });
    assert.equal(staff.status, 200, JSON.stringify(staff.body));
    assert.equal(await recordOf(staff.requestId), undefined);
  });

  test('server-sent events: a stream is one call, charged when it ends normally, not when it breaks or the client leaves', async () => {
    await topUp(ledger, 'ns.acme', 100_000);
    const start = await balance();
    const sse = async (body: unknown) => {
      const res = await fetch(new URL('/v1/paid/Count', gw), { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${acme}` }, body: JSON.stringify(body) });
      return { requestId: res.headers.get('x-request-id'), text: await res.text() };
    };
    const ok = await sse({ n: 3 });
    assert.match(ok.text, /event: end/);
    assert.equal((await recordOf(ok.requestId))?.charged, 2_000);
    const broken = await sse({ n: 2, fail: true });
    assert.match(broken.text, /event: error/);
    const brokenRecord = await recordOf(broken.requestId);
    assert.deepEqual([brokenRecord?.outcome, brokenRecord?.code, brokenRecord?.charged], ['error', 409, 0]);
    // a client that leaves an endless stream
    const abort = new AbortController();
    const res = await fetch(new URL('/v1/paid/Forever', gw), { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${acme}` }, body: '{}', signal: abort.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    abort.abort();
    const left = res.headers.get('x-request-id');
    const deadline = Date.now() + 10_000;
    while (!(await recordOf(left))) {
      assert.ok(Date.now() < deadline, 'the stream the client left was not recorded');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual([(await recordOf(left))?.code, (await recordOf(left))?.charged], [499, 0]);
    assert.equal(await balance(), start - 2_000);
  });

  test('WebSocket: one call from open to close, charged when it ends normally; refused at the handshake without credit', async () => {
    await topUp(ledger, 'ns.acme', 100_000);
    const start = await balance();
    const ws = (path: string, token = acme) =>
      new Promise<{ socket: WebSocket; requestId: string | undefined }>((resolve, reject) => {
        const socket = new WebSocket(`${gw.replace(/^http/, 'ws')}${path}`, { headers: { authorization: `Bearer ${token}` } });
        socket.once('upgrade', (res) => resolve({ socket, requestId: res.headers['x-request-id'] as string | undefined }));
        socket.once('unexpected-response', (_req, res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown })));
        });
        socket.once('error', reject);
      });
    const closed = (socket: WebSocket) => new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    const ok = await ws('/v1/paid/Count');
    const okClosed = closed(ok.socket);
    ok.socket.send(JSON.stringify({ n: 2 }));
    assert.equal(await okClosed, 1000);
    assert.equal((await recordOf(ok.requestId as string))?.charged, 2_000);
    const broken = await ws('/v1/paid/Count');
    const brokenClosed = closed(broken.socket);
    broken.socket.send(JSON.stringify({ n: 1, fail: true }));
    assert.equal(await brokenClosed, 4409);
    const brokenRecord = await recordOf(broken.requestId as string);
    assert.deepEqual([brokenRecord?.outcome, brokenRecord?.code, brokenRecord?.charged], ['error', 409, 0]);
    const left = await ws('/v1/paid/Forever');
    left.socket.send('{}');
    await new Promise((r) => left.socket.once('message', r));
    left.socket.terminate();
    const deadline = Date.now() + 10_000;
    while (!(await recordOf(left.requestId as string))) {
      assert.ok(Date.now() < deadline, 'the stream the client left was not recorded');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual([(await recordOf(left.requestId as string))?.code, (await recordOf(left.requestId as string))?.charged], [499, 0]);
    assert.equal(await balance(), start - 2_000);
    // no credit: refused at the handshake with the same 403 as a call
    await assert.rejects(ws('/v1/paid/Count', initech), (err: { status?: number; body?: unknown }) => {
      assert.equal(err.status, 403);
      assert.deepEqual(err.body, { id: 'v1.blocked', code: 403, detail: 'insufficient credit', status: 'Forbidden' });
      return true;
    });
  });

  test('usage.Read and Export: a tenant reads its own; bad filters are 400s naming the field; admins read any', async () => {
    const read = await post('/v1/usage/Read', { by: 'key' }, acme);
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.equal(read.body.namespace, 'acme');
    assert.equal(read.body.payer, 'ns.acme');
    const rows = read.body.rows as { key: string; charged: number }[];
    assert.ok(rows.some((r) => r.key === acmeKeyId));
    const all = await records();
    assert.equal((read.body.totals as { charged: number }).charged, all.reduce((n, r) => n + r.charged, 0));
    assert.equal((read.body.totals as { calls: number }).calls, all.length);
    const exported = await post('/v1/usage/Export', {}, acme);
    assert.equal(exported.status, 200);
    const lines = (exported.body.csv as string).trim().split('\n');
    assert.equal(lines[0], 'request_id,at,namespace,account,key,service,endpoint,outcome,code,free,price,charged');
    assert.equal(lines.length, all.length + 1);
    assert.match(String(exported.body.filename), /^usage-acme-\d{4}-\d{2}-01-\d{4}-\d{2}-\d{2}\.csv$/);
    const bad: [unknown, RegExp][] = [
      [{ period: '2027-13' }, /period/],
      [{ from: '2027-01-01' }, /^to: from and to go together/],
      [{ from: '2027-02-30', to: '2027-03-01' }, /^from: "2027-02-30" is not a day/],
      [{ from: '2027-03-01', to: '2027-02-01' }, /^to: 2027-02-01 is before from/],
      [{ from: '2026-01-01', to: '2027-12-31' }, /^to: at most 366 days/],
      [{ period: '2027-01', from: '2027-01-01', to: '2027-01-02' }, /^period: give a period or from and to/],
      [{ by: 'hour' }, /by/],
      [{ service: '' }, /service/],
      [{ nope: 1 }, /nope|unrecognized/i],
    ];
    for (const [body, detail] of bad) {
      const r = await post('/v1/usage/Read', body, acme);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(String(r.body.detail), detail, JSON.stringify(body));
    }
    assert.equal((await post('/v1/usage/Read', {})).status, 401);
    const staff = await post('/v1/usage/Read', { namespace: 'globex' }, admin);
    assert.equal(staff.status, 200);
    assert.equal(staff.body.payer, 'ns.globex');
  });

  test('records and the ledger agree to the unit; the trial balance is zero', async () => {
    await meter.flush();
    const all = [...(await records()), ...(await records('globex'))];
    // the charged calls of one group commit, payer and endpoint share a posting: it is their sum and counts them
    const byPosting = new Map<string, { units: number; calls: number }>();
    for (const r of all.filter((x) => x.charged > 0)) {
      const sum = byPosting.get(r.posting as string) ?? { units: 0, calls: 0 };
      byPosting.set(r.posting as string, { units: sum.units + r.charged, calls: sum.calls + 1 });
    }
    assert.ok(byPosting.size > 0);
    for (const [key, sum] of byPosting) {
      const p = await ledger.posting(key);
      assert.equal(p?.entries.find((e) => e.account === PLATFORM_REVENUE)?.amount, sum.units, key);
      assert.equal(p?.metadata.calls, String(sum.calls), key);
    }
    assert.equal((await ledger.trialBalance()).ok, true);
  });
});
