import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { MicroError, type Account, type EndpointRecord } from '@micro/sdk';
import type { MeteredCall, MeterTicket } from '@micro/server/engine';
import { balanceAccount, dueAccount, EXTERNAL_PAYMENTS, openPayerAccounts, PLATFORM_REVENUE } from '../billing/accounts.js';
import type { Ledger } from '../ledger/index.js';
import type { EndpointPrice, Pricing, PricedEndpoint } from '../pricing/pricing.js';
import { BLOCKED_ID, idemPosting, requestPosting } from './core.js';
import { Meter, type MeterOptions } from './meter.js';
import type { MeterEngine, UsageFilter } from './storage.js';

/**
 * The behaviour every engine of the meter has (SQLite, PostgreSQL), through the Meter the
 * gateway calls: run by each engine's test file. `make` gives a fresh store with its real
 * ledger; `engine()` opens another engine on it (a restart, or another node).
 */
export interface MeterSetup {
  ledger: Ledger;
  /** a new engine on the same tables: a restarted process, or another node of the platform */
  engine(): Promise<MeterEngine>;
}

export type MakeSetup = (t: { skip(message?: string): void; after(fn: () => unknown): void }) => Promise<MeterSetup | undefined>;

/** A pricing from a map of `home/service.Endpoint`, for tests (the platform's own is the pricing service's). */
export class MapPricing implements Pricing {
  private readonly prices = new Map<string, EndpointPrice>();

  set(home: string, service: string, endpoint: string, price: EndpointPrice): this {
    this.prices.set(`${home}/${service}.${endpoint}`, price);
    return this;
  }

  delete(home: string, service: string, endpoint: string): void {
    this.prices.delete(`${home}/${service}.${endpoint}`);
  }

  priceOf(home: string, service: string, endpoint: PricedEndpoint): EndpointPrice | undefined {
    return this.prices.get(`${home}/${service}.${endpoint.name}`);
  }
}

export const T0 = Date.UTC(2027, 0, 15, 12);

export function account(issuer: string, id = 'owner', key?: string): Account {
  return key ? { id, type: 'apikey', issuer, scopes: [], metadata: { key } } : { id, type: 'user', issuer, scopes: [] };
}

export function meteredCall(namespace: string, endpoint: string, extra: Partial<MeteredCall> = {}): MeteredCall {
  const acct = extra.account === undefined && 'account' in extra ? undefined : (extra.account ?? account(namespace));
  return {
    requestId: randomUUID(),
    idempotencyKey: undefined,
    keyId: undefined,
    namespace,
    home: namespace,
    service: 'paid',
    endpoint: { name: endpoint, kind: 'unary', request: {}, response: {} } as EndpointRecord,
    stream: false,
    ...extra,
    account: acct,
  };
}

export const blocked = (detail: string) => (err: unknown) => err instanceof MicroError && err.code === 403 && err.id === BLOCKED_ID && err.detail === detail;
const status = (code: number) => (err: unknown) => err instanceof MicroError && err.code === code;

/** `ns.<namespace>` pays (no customer owns the test's namespaces) */
const payerOf = async (namespace: string) => `ns.${namespace}`;

export async function topUp(ledger: Ledger, payer: string, amount: number, key = `topup:${randomUUID()}`): Promise<void> {
  await openPayerAccounts(ledger, payer);
  await ledger.openAccount({ id: EXTERNAL_PAYMENTS, allowNegative: true });
  await ledger.openAccount({ id: PLATFORM_REVENUE });
  await ledger.post({ key, reason: 'top-up', entries: [{ account: balanceAccount(payer), amount }, { account: EXTERNAL_PAYMENTS, amount: -amount }], metadata: { kind: 'topup' } });
}

/** The ticket of an admission that must be metered. */
export async function admitted(meter: Meter, call: MeteredCall): Promise<MeterTicket> {
  const t = await meter.admit(call);
  assert.ok(t, `${call.service}.${call.endpoint.name} is metered`);
  return t;
}

/** One whole call: admitted, then settled with `ok`. */
export async function run(meter: Meter, call: MeteredCall, ok = true): Promise<void> {
  const t = await admitted(meter, call);
  await t.settle(ok, ok ? 200 : 500);
}

const month = (namespace: string, from = '2027-01-01', to = '2027-01-31'): UsageFilter => ({ namespace, from, to });

export function meterContract(engineName: string, make: MakeSetup): void {
  const it = (name: string, fn: (x: { setup: MeterSetup; meter: (o?: Partial<MeterOptions>) => Promise<Meter>; pricing: MapPricing; clock: { now: number } }) => Promise<void>) =>
    test(`${engineName}: ${name}`, async (t) => {
      const setup = await make(t);
      if (!setup) return;
      const clock = { now: T0 };
      const pricing = new MapPricing()
        .set('acme', 'paid', 'Call', { price: 1_000, freeQuota: 0 })
        .set('acme', 'paid', 'Quota', { price: 500, freeQuota: 3 })
        .set('acme', 'paid', 'Zero', { price: 0, freeQuota: 0 })
        .set('globex', 'paid', 'Call', { price: 1_000, freeQuota: 0 });
      const meters: Meter[] = [];
      t.after(async () => {
        for (const m of meters) await m.stop();
      });
      const meter = async (o: Partial<MeterOptions> = {}) => {
        const m = new Meter({ engine: await setup.engine(), ledger: setup.ledger, pricing, payerOf, clock: () => clock.now, postEvery: 60_000, ...o });
        meters.push(m);
        await m.start();
        return m;
      };
      await fn({ setup, meter, pricing, clock });
    });

  it('a priced call: held, recorded once as charged, posted to the ledger under its key; the trial balance stays zero', async ({ setup, meter }) => {
    const m = await meter();
    const engine = (m as unknown as { engine: MeterEngine }).engine;
    await topUp(setup.ledger, 'ns.acme', 10_000);
    const call = meteredCall('acme', 'Call', { keyId: 'mk_0123456789abcdef', account: account('acme', 'alice', 'mk_0123456789abcdef') });
    await run(m, call);
    await m.flush();
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 9_000);
    const posting = await setup.ledger.posting(requestPosting('ns.acme', call.requestId));
    assert.deepEqual(posting?.entries, [
      { account: balanceAccount('ns.acme'), amount: -1_000 },
      { account: PLATFORM_REVENUE, amount: 1_000 },
    ]);
    assert.deepEqual(posting?.metadata, { kind: 'usage', period: '2027-01', service: 'paid', endpoint: 'Call', calls: '1', request_id: call.requestId });
    const [record] = await engine.calls(month('acme'), 10);
    assert.deepEqual(record, {
      requestId: call.requestId,
      at: T0,
      period: '2027-01',
      day: '2027-01-15',
      payer: 'ns.acme',
      namespace: 'acme',
      account: 'alice',
      keyId: 'mk_0123456789abcdef',
      home: 'acme',
      service: 'paid',
      endpoint: 'Call',
      price: 1_000,
      freeQuota: 0,
      free: false,
      charged: 1_000,
      outcome: 'ok',
      code: 200,
      idemKey: null,
      posting: requestPosting('ns.acme', call.requestId),
    });
    assert.equal((await setup.ledger.trialBalance()).ok, true);
  });

  it('what is not priced, calls of micro, and strangers', async ({ meter }) => {
    const m = await meter();
    // not priced: undefined at once, no promise (the gateway makes no await)
    assert.equal(m.admit(meteredCall('acme', 'Other')), undefined);
    assert.equal(m.admit(meteredCall('acme', 'Call', { account: account('micro', 'admin') })), undefined);
    assert.throws(() => m.admit(meteredCall('acme', 'Call', { account: undefined })), status(401));
    // an account of one namespace is never billed for another's
    assert.throws(() => m.admit(meteredCall('acme', 'Call', { account: account('globex') })), status(403));
  });

  it('failures are not charged and give their hold back at once', async ({ setup, meter }) => {
    const m = await meter();
    await topUp(setup.ledger, 'ns.acme', 1_000);
    // one call's worth of credit: a failed call holds it only while it runs
    for (let i = 0; i < 3; i++) {
      const t = await admitted(m, meteredCall('acme', 'Call'));
      await assert.rejects((async () => m.admit(meteredCall('acme', 'Call')))(), blocked('insufficient credit'));
      await t.settle(false, 502);
    }
    await run(m, meteredCall('acme', 'Call'));
    await m.flush();
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 0);
    const rows = await (m as unknown as { engine: MeterEngine }).engine.usage(month('acme'), 'endpoint');
    assert.deepEqual(rows, [{ service: 'paid', endpoint: 'Call', calls: 4, ok: 1, failed: 3, free: 0, charged: 1_000 }]);
  });

  it('the free quota: exactly freeQuota successful calls a period are free; failures use none; a new period starts again', async ({ setup, meter, clock }) => {
    const m = await meter();
    await topUp(setup.ledger, 'ns.acme', 10_000);
    // a ms apart: the records list in this order
    const next = async (ok = true) => {
      clock.now++;
      await run(m, meteredCall('acme', 'Quota'), ok);
    };
    await next(false);
    for (let i = 0; i < 3; i++) await next();
    await next();
    await m.flush();
    const engine = (m as unknown as { engine: MeterEngine }).engine;
    const calls = await engine.calls(month('acme'), 10);
    assert.deepEqual(calls.map((c) => [c.outcome, c.free, c.charged]), [
      ['error', false, 0],
      ['ok', true, 0],
      ['ok', true, 0],
      ['ok', true, 0],
      ['ok', false, 500],
    ]);
    assert.deepEqual(await engine.quotas('ns.acme', '2027-01'), [{ service: 'paid', endpoint: 'Quota', price: 500, freeQuota: 3, used: 3 }]);
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 9_500);
    // the quota is the payer's per endpoint: another endpoint has its own
    clock.now = Date.UTC(2027, 1, 1);
    await run(m, meteredCall('acme', 'Quota'));
    const february = await engine.calls(month('acme', '2027-02-01', '2027-02-28'), 10);
    assert.deepEqual(february.map((c) => [c.period, c.free, c.charged]), [['2027-02', true, 0]]);
  });

  it('free slots held by calls in flight count: of 5 parallel calls with 3 free, exactly 3 are free', async ({ setup, meter }) => {
    const m = await meter();
    await topUp(setup.ledger, 'ns.acme', 10_000);
    const tickets = await Promise.all(Array.from({ length: 5 }, () => admitted(m, meteredCall('acme', 'Quota'))));
    await Promise.all(tickets.map((t) => t.settle(true, 200)));
    await m.flush();
    const calls = await (m as unknown as { engine: MeterEngine }).engine.calls(month('acme'), 10);
    assert.equal(calls.filter((c) => c.free).length, 3);
    assert.equal(calls.reduce((n, c) => n + c.charged, 0), 1_000);
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 9_000);
  });

  it('an Idempotency-Key is charged once however often the call runs; per endpoint; a failed first try charges the retry', async ({ setup, meter }) => {
    const m = await meter();
    await topUp(setup.ledger, 'ns.acme', 10_000);
    const key = { idempotencyKey: 'order-42' };
    await run(m, meteredCall('acme', 'Call', key));
    await run(m, meteredCall('acme', 'Call', key));
    // concurrent retries: one charge among them
    await Promise.all([run(m, meteredCall('acme', 'Call', key)), run(m, meteredCall('acme', 'Call', key))]);
    // the same key on another endpoint is another call
    await run(m, meteredCall('acme', 'Quota', key));
    // a key whose first try failed is charged on the retry that succeeds
    await run(m, meteredCall('acme', 'Call', { idempotencyKey: 'order-43' }), false);
    await run(m, meteredCall('acme', 'Call', { idempotencyKey: 'order-43' }));
    await m.flush();
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 8_000);
    const posting = await setup.ledger.posting(idemPosting('ns.acme', 'paid', 'Call', 'order-42'));
    assert.equal(posting?.entries[0]?.amount, -1_000);
    const calls = await (m as unknown as { engine: MeterEngine }).engine.calls(month('acme'), 20);
    const of42 = calls.filter((c) => c.idemKey === 'order-42' && c.endpoint === 'Call');
    assert.deepEqual(of42.map((c) => c.charged).sort(), [0, 0, 0, 1_000]);
    // after a replay the balance may be 0: a retry of a call made needs no credit
    await topUp(setup.ledger, 'ns.globex', 1_000);
    await run(m, meteredCall('globex', 'Call', { idempotencyKey: 'x' }));
    await m.flush();
    await run(m, meteredCall('globex', 'Call', { idempotencyKey: 'x' }));
    await assert.rejects(run(m, meteredCall('globex', 'Call')), blocked('insufficient credit'));
  });

  it('k of N: with credit for 5 calls and 40 in parallel exactly 5 are admitted and charged; the balance ends at 0', async ({ setup, meter }) => {
    const m = await meter();
    await topUp(setup.ledger, 'ns.acme', 5_000);
    const results = await Promise.allSettled(Array.from({ length: 40 }, () => run(m, meteredCall('acme', 'Call'))));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
    for (const r of results) if (r.status === 'rejected') assert.ok(blocked('insufficient credit')(r.reason), String(r.reason));
    await m.flush();
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 0);
    assert.equal(await setup.ledger.balance(PLATFORM_REVENUE), 5_000);
    assert.equal((await setup.ledger.trialBalance()).ok, true);
  });

  it('a top-up is seen by the next call that would be refused; a price of 0 needs no credit', async ({ setup, meter }) => {
    const m = await meter();
    await topUp(setup.ledger, 'ns.acme', 1_000);
    await run(m, meteredCall('acme', 'Call'));
    await assert.rejects(run(m, meteredCall('acme', 'Call')), blocked('insufficient credit'));
    await run(m, meteredCall('acme', 'Zero'));
    await topUp(setup.ledger, 'ns.acme', 2_000);
    await run(m, meteredCall('acme', 'Call'));
    await run(m, meteredCall('acme', 'Call'));
    await assert.rejects(run(m, meteredCall('acme', 'Call')), blocked('insufficient credit'));
    await m.flush();
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 0);
  });

  it('the usage cap: charges this period and calls in flight never pass it', async ({ setup, meter }) => {
    const m = await meter({ usageCap: (payer) => (payer === 'ns.acme' ? 2_500 : null) });
    await topUp(setup.ledger, 'ns.acme', 10_000);
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => run(m, meteredCall('acme', 'Call'))));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 2);
    for (const r of results) if (r.status === 'rejected') assert.ok(blocked('usage cap exceeded')(r.reason), String(r.reason));
    // free calls are not capped
    await run(m, meteredCall('acme', 'Quota'));
  });

  it('charges recorded but not posted (the ledger away, then a restart) reach the ledger exactly once at the next start', async ({ setup, meter }) => {
    await topUp(setup.ledger, 'ns.acme', 10_000);
    // a ledger that refuses postings: the records are made, the postings are not
    const away = Object.create(setup.ledger) as Ledger;
    away.post = () => Promise.reject(new Error('the ledger is away'));
  away.postMany = () => Promise.reject(new Error('the ledger is away'));
    away.postMany = () => Promise.reject(new Error('the ledger is away'));
    const m = await meter({ ledger: away });
    const calls = Array.from({ length: 4 }, () => meteredCall('acme', 'Call'));
    for (const c of calls) await run(m, c);
    await assert.rejects(m.flush(), /the ledger is away/);
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 10_000);
    // the unposted charges still count: 6 more calls' worth of credit, not 10
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => run(m, meteredCall('acme', 'Call'))));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 6);
    // a new process on the same tables posts what was left, once
    await meter();
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 0);
    for (const c of calls) assert.ok(await setup.ledger.posting(requestPosting('ns.acme', c.requestId)));
    assert.equal(await setup.ledger.balance(PLATFORM_REVENUE), 10_000);
    assert.equal((await setup.ledger.trialBalance()).ok, true);
  });

  it('a charge the balance can no longer cover (lowered outside metering) goes to the due account, never below zero', async ({ setup, meter }) => {
    await topUp(setup.ledger, 'ns.acme', 2_000);
    const m = await meter();
    const t = await admitted(m, meteredCall('acme', 'Call'));
    // a chargeback takes the whole balance while the call runs
    await setup.ledger.post({ key: 'chargeback', reason: 'chargeback', entries: [{ account: balanceAccount('ns.acme'), amount: -2_000 }, { account: EXTERNAL_PAYMENTS, amount: 2_000 }] });
    await t.settle(true, 200);
    await m.flush();
    assert.equal(await setup.ledger.balance(balanceAccount('ns.acme')), 0);
    assert.equal(await setup.ledger.balance(dueAccount('ns.acme')), -1_000);
    assert.equal(await setup.ledger.balance(PLATFORM_REVENUE), 1_000);
    // and the meter knows the balance is gone
    await assert.rejects(run(m, meteredCall('acme', 'Call')), blocked('insufficient credit'));
  });

  it('the balance observer hears the balance after usage postings', async ({ setup, meter }) => {
    const heard: [string, number][] = [];
    const m = await meter({ onBalance: (payer, balance) => heard.push([payer, balance]) });
    await topUp(setup.ledger, 'ns.acme', 3_000);
    await run(m, meteredCall('acme', 'Call'));
    await m.flush();
    await run(m, meteredCall('acme', 'Call'));
    await m.flush();
    assert.deepEqual(heard, [
      ['ns.acme', 2_000],
      ['ns.acme', 1_000],
    ]);
  });

  it('usage rows by endpoint, day and key; calls of other namespaces stay out', async ({ setup, meter, clock }) => {
    const m = await meter();
    await topUp(setup.ledger, 'ns.acme', 100_000);
    await topUp(setup.ledger, 'ns.globex', 100_000);
    await run(m, meteredCall('acme', 'Call', { keyId: 'mk_a', account: account('acme', 'owner', 'mk_a') }));
    await run(m, meteredCall('acme', 'Call'), false);
    clock.now = Date.UTC(2027, 0, 16, 8);
    await run(m, meteredCall('acme', 'Call'));
    await run(m, meteredCall('globex', 'Call'));
    const engine = (m as unknown as { engine: MeterEngine }).engine;
    assert.deepEqual(await engine.usage(month('acme'), 'day'), [
      { service: 'paid', endpoint: 'Call', day: '2027-01-15', calls: 2, ok: 1, failed: 1, free: 0, charged: 1_000 },
      { service: 'paid', endpoint: 'Call', day: '2027-01-16', calls: 1, ok: 1, failed: 0, free: 0, charged: 1_000 },
    ]);
    assert.deepEqual(await engine.usage(month('acme'), 'key'), [
      { service: 'paid', endpoint: 'Call', key: '', calls: 2, ok: 1, failed: 1, free: 0, charged: 1_000 },
      { service: 'paid', endpoint: 'Call', key: 'mk_a', calls: 1, ok: 1, failed: 0, free: 0, charged: 1_000 },
    ]);
    assert.deepEqual(await engine.usage({ ...month('acme'), key: 'mk_a' }, 'endpoint'), [{ service: 'paid', endpoint: 'Call', calls: 1, ok: 1, failed: 0, free: 0, charged: 1_000 }]);
    assert.deepEqual(await engine.usage({ ...month('acme', '2027-01-16', '2027-01-16') }, 'endpoint'), [{ service: 'paid', endpoint: 'Call', calls: 1, ok: 1, failed: 0, free: 0, charged: 1_000 }]);
    assert.deepEqual(await engine.usage({ ...month('acme'), service: 'other' }, 'endpoint'), []);
    assert.equal((await engine.calls(month('globex'), 10)).length, 1);
    assert.equal((await engine.calls(month('acme'), 2)).length, 2);
  });
}
