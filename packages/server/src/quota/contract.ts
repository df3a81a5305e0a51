/*
 * The behaviour every Quotas engine must have, as node:test cases: SQLite (sqlite.test.ts)
 * and PostgreSQL (postgres.test.ts) run the same suite. A fresh engine per test.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { isMicroError } from '@micro/sdk';
import { BUILT_IN_DEFAULTS, type LimitKey } from './limits.js';
import type { Quotas } from './quotas.js';

/** Opens a fresh engine with these defaults, or undefined when its database is away (the test skips). */
export type MakeQuotas = (t: test.TestContext, defaults: Readonly<Record<LimitKey, number>>) => Promise<Quotas | undefined>;

const DEFAULTS = { ...BUILT_IN_DEFAULTS, apiKeys: 3, services: 5 };

function refusal(limit: string, detail: RegExp) {
  return (err: unknown) => isMicroError(err) && err.code === 403 && err.detail.includes(`quota exceeded: ${limit}`) && detail.test(err.detail);
}

export function quotaContract(name: string, make: MakeQuotas): void {
  async function open(t: test.TestContext): Promise<Quotas | undefined> {
    const q = await make(t, DEFAULTS);
    if (q) t.after(() => q.close());
    return q;
  }

  test(`${name}: limits are the defaults until set, settings replace only their keys`, async (t) => {
    const q = await open(t);
    if (!q) return;
    assert.deepEqual(await q.limits('acme'), DEFAULTS);
    const after = await q.set('acme', { storeBytes: 10, apiKeys: 0 });
    assert.deepEqual(after, { ...DEFAULTS, storeBytes: 10, apiKeys: 0 });
    await q.set('acme', { storeBytes: 20 });
    assert.deepEqual(await q.settings('acme'), { storeBytes: 20, apiKeys: 0 });
    // another namespace is untouched
    assert.deepEqual(await q.limits('globex'), DEFAULTS);
    await q.reset('acme');
    assert.deepEqual(await q.limits('acme'), DEFAULTS);
  });

  test(`${name}: namespace micro is unlimited, whatever is set`, async (t) => {
    const q = await open(t);
    if (!q) return;
    await q.set('micro', { apiKeys: 0 });
    assert.ok(Object.values(await q.limits('micro')).every((v) => v === null));
    await q.take('micro', 'apiKeys', 1000);
    assert.equal((await q.usage('micro')).apiKeys, 1000);
  });

  test(`${name}: take counts up to the limit exactly, give makes room`, async (t) => {
    const q = await open(t);
    if (!q) return;
    assert.equal((await q.usage('acme')).apiKeys ?? 0, 0);
    for (let i = 0; i < 3; i++) await q.take('acme', 'apiKeys');
    await assert.rejects(q.take('acme', 'apiKeys'), refusal('apiKeys', /apiKeys 3 of 3 used in namespace acme; revoke API keys or ask for a larger quota \(micro quota\)/));
    assert.equal((await q.usage('acme')).apiKeys, 3);
    await q.give('acme', 'apiKeys');
    await q.take('acme', 'apiKeys');
    await q.give('acme', 'apiKeys', 10);
    assert.equal((await q.usage('acme')).apiKeys, 0, 'never below zero');
    await assert.rejects(q.take('acme', 'services', 6), refusal('services', /services 0 of 5/));
    assert.equal((await q.usage('acme')).services ?? 0, 0, 'a refused take takes nothing');
  });

  test(`${name}: N concurrent takes with room for k: exactly k succeed`, async (t) => {
    const q = await open(t);
    if (!q) return;
    await q.set('acme', { services: 7 });
    const results = await Promise.allSettled(Array.from({ length: 25 }, () => q.take('acme', 'services')));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 7);
    for (const r of results) if (r.status === 'rejected') assert.ok(refusal('services', /of 7/)(r.reason), String(r.reason));
    assert.equal((await q.usage('acme')).services, 7);
  });

  test(`${name}: a lowered limit refuses growth but keeps what is used`, async (t) => {
    const q = await open(t);
    if (!q) return;
    await q.take('acme', 'services', 4);
    await q.set('acme', { services: 2 });
    await assert.rejects(q.take('acme', 'services'), refusal('services', /services 4 of 2/));
    await q.give('acme', 'services', 3);
    await q.take('acme', 'services');
    assert.equal((await q.usage('acme')).services, 2);
  });

  test(`${name}: usage adds the sources'`, async (t) => {
    const q = await open(t);
    if (!q) return;
    q.addSource(async (ns) => (ns === 'acme' ? { storeBytes: 5, storeRecords: 1 } : {}));
    await q.take('acme', 'apiKeys');
    assert.deepEqual(await q.usage('acme'), { apiKeys: 1, storeBytes: 5, storeRecords: 1 });
    assert.deepEqual(await q.usage('globex'), {});
  });

  test(`${name}: a plan source gives a namespace its plan's limits under its own settings; micro stays unlimited`, async (t) => {
    const q = await open(t);
    if (!q) return;
    const asked: string[] = [];
    q.setPlans(async (ns) => {
      asked.push(ns);
      return ns === 'acme' ? { id: 'dev', name: 'Developer', limits: { services: 2, requestsPerSecond: 7 }, ownersSetLimits: false } : undefined;
    });
    assert.deepEqual(await q.limits('acme'), { ...DEFAULTS, services: 2, requestsPerSecond: 7 });
    assert.deepEqual(await q.planLimits('acme'), { ...DEFAULTS, services: 2, requestsPerSecond: 7 });
    assert.equal((await q.plan('acme'))?.id, 'dev');
    // a namespace without a plan keeps the platform defaults
    assert.deepEqual(await q.limits('globex'), DEFAULTS);
    // its own settings win over the plan; unset brings the plan's back
    await q.set('acme', { services: 9, apiKeys: 1 });
    assert.equal((await q.limits('acme')).services, 9);
    assert.equal((await q.planLimits('acme')).services, 2);
    await q.unset('acme', ['services']);
    assert.deepEqual(await q.settings('acme'), { apiKeys: 1 });
    assert.equal((await q.limits('acme')).services, 2);
    // take is held to the plan's limit
    await q.take('acme', 'services', 2);
    await assert.rejects(q.take('acme', 'services'), refusal('services', /services 2 of 2 used in namespace acme/));
    // micro is never asked and never limited
    assert.ok(Object.values(await q.limits('micro')).every((v) => v === null));
    assert.equal(await q.plan('micro'), undefined);
    assert.ok(!asked.includes('micro'));
    // without a source, every namespace is back on the defaults
    q.setPlans(undefined);
    assert.deepEqual(await q.limits('acme'), { ...DEFAULTS, apiKeys: 1 });
    assert.equal(await q.plan('acme'), undefined);
  });

  test(`${name}: bad namespaces and amounts are 400s`, async (t) => {
    const q = await open(t);
    if (!q) return;
    const is400 = (err: unknown) => isMicroError(err) && err.code === 400;
    for (const ns of ['', 'a b', 'x'.repeat(129), "'; DROP TABLE quota_settings; --", '../etc']) {
      await assert.rejects(q.limits(ns), is400, ns);
      await assert.rejects(q.set(ns, { apiKeys: 1 }), is400, ns);
    }
    await assert.rejects(q.take('acme', 'apiKeys', -1), is400);
    await assert.rejects(q.take('acme', 'apiKeys', 1.5), is400);
    await assert.rejects(q.give('acme', 'apiKeys', Number.NaN), is400);
  });
}
