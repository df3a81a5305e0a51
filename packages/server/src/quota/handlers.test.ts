import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMicroError, type Account, type Context } from '@micro/sdk';
import { quotaHandlers, withinPlan } from './handlers.js';
import { BUILT_IN_DEFAULTS } from './limits.js';
import { openSqliteQuotas } from './sqlite.js';

/*
 * withinPlan, the rule of quota.Set for tenants: owners and admins of a namespace set its
 * limits up to its plan's (the platform defaults without a plan), and only when the plan
 * includes per-namespace quotas; staff set anything; nobody sets another namespace's.
 */

const as = (account: Partial<Account>): Context => ({ service: 'quota', endpoint: 'Set', account: { id: 'x', issuer: 'acme', type: 'user', scopes: ['admin'], ...account } }) as unknown as Context;
/** SQLite quotas in a folder of the test's own, closed and removed after it */
function tempQuotas(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'micro-quota-handlers-'));
  const q = openSqliteQuotas({ path: join(dir, 'quota.db'), defaults: BUILT_IN_DEFAULTS });
  t.after(async () => {
    await q.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return q;
}
const forbidden = (detail: RegExp) => (err: unknown) => isMicroError(err) && err.code === 403 && detail.test(err.detail);

test('withinPlan: the plan is the ceiling; a plan without per-namespace quotas refuses owners; staff set anything', async (t) => {
  const q = tempQuotas(t);
  q.setPlans(async (ns) => {
    if (ns === 'acme') return { id: 'team', name: 'Team', limits: { services: 10 }, ownersSetLimits: true };
    if (ns === 'solo') return { id: 'developer', name: 'Developer', limits: { services: 5 }, ownersSetLimits: false };
    return undefined;
  });
  const owner = as({ issuer: 'acme' });
  await withinPlan(owner, 'acme', { services: 10 }, q);
  await assert.rejects(withinPlan(owner, 'acme', { services: 11 }, q), forbidden(/^services: 11 is more than your plan's 10 \(Team\); ask the platform's staff for more$/));
  // above the platform default but within nothing: the plan is what counts, not the defaults
  await assert.rejects(withinPlan(owner, 'acme', { apiKeys: BUILT_IN_DEFAULTS.apiKeys + 1 }, q), forbidden(/^apiKeys: \d+ is more than your plan's \d+ \(Team\)/));
  await assert.rejects(withinPlan(as({ issuer: 'solo' }), 'solo', { services: 1 }, q), forbidden(/^your plan \(Developer\) does not include per-namespace quotas/));
  // another namespace's, and a developer's own: refused before any plan is asked
  await assert.rejects(withinPlan(owner, 'solo', { services: 1 }, q), forbidden(/only admins of micro, or the owners and admins/));
  await assert.rejects(withinPlan(as({ issuer: 'acme', scopes: ['developer'] }), 'acme', { services: 1 }, q), forbidden(/only admins of micro/));
  // no plan: the platform defaults, as before plans
  await assert.rejects(withinPlan(as({ issuer: 'other' }), 'other', { services: BUILT_IN_DEFAULTS.services + 1 }, q), forbidden(/^services: \d+ is more than your plan's \d+; ask/));
  // staff: anything, anywhere
  await withinPlan(as({ issuer: 'micro' }), 'solo', { services: 1_000 }, q);
});

test('Set tells the runtime of the namespace once its limits are set; a refused Set tells it nothing', async (t) => {
  const q = tempQuotas(t);
  const told: string[] = [];
  const h = quotaHandlers(q, { changed: (namespace) => told.push(namespace) });
  const set = async (ctx: Context, namespace: string, limits: Record<string, unknown>) => h.Set({ namespace, limits } as never, ctx);
  await set(as({ issuer: 'micro' }), 'acme', { services: 3 });
  assert.deepEqual(told, ['acme']);
  assert.equal((await q.limits('acme')).services, 3);
  // another namespace's, a bad value, above the defaults: refused, nothing told
  await assert.rejects(set(as({ issuer: 'eve' }), 'acme', { services: 1 }), (err: unknown) => isMicroError(err) && err.code === 403);
  await assert.rejects(set(as({ issuer: 'micro' }), 'acme', { services: -1 }), (err: unknown) => isMicroError(err) && err.code === 400);
  await assert.rejects(set(as({ issuer: 'acme' }), 'acme', { services: BUILT_IN_DEFAULTS.services + 1 }), (err: unknown) => isMicroError(err) && err.code === 403);
  assert.deepEqual(told, ['acme']);
});
