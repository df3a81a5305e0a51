import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createLogger } from '@micro/sdk';
import { freePort } from '@micro/sdk/testing';
import { MicroServer } from '@micro/server';
import { PlatformHub } from '../hub.js';
import { MemoryMailer } from '../mail/mailer.js';
import { signupCoreService } from '../signup/index.js';
import { billingCoreService } from './index.js';

/*
 * Plans drive the quotas of a running micro server: the gateway's requestsPerSecond of a
 * customer's namespace is its plan's (429 with Retry-After past it, as the quota README
 * says), a Developer namespace at Developer's rate, a Community one at Community's; a
 * namespace no customer owns keeps the platform default.
 */

const silent = createLogger({ level: 'silent' });

async function post(url: string, path: string, body: unknown, token?: string) {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), json: (await res.json()) as Record<string, unknown> };
}

/** `n` calls at once with `token`; what passed, and the refusals. */
async function burst(url: string, token: string, n: number) {
  const started = Date.now();
  const calls = await Promise.all(Array.from({ length: n }, () => post(url, '/v1/quota/Read', {}, token)));
  return { passed: calls.filter((c) => c.status === 200).length, refused: calls.filter((c) => c.status !== 200), seconds: (Date.now() - started) / 1000 };
}

function atRate(r: Awaited<ReturnType<typeof burst>>, rate: number, namespace: string): void {
  assert.ok(r.passed >= rate && r.passed <= rate + Math.ceil(r.seconds * rate), `${r.passed} passed in ${r.seconds} s at ${rate}/s`);
  assert.ok(r.refused.length > 0, 'the burst passed the rate');
  for (const c of r.refused) {
    assert.equal(c.status, 429, JSON.stringify(c.json));
    assert.match(String(c.json.detail), new RegExp(`^quota exceeded: requestsPerSecond ${rate} of ${rate} used in namespace ${namespace}; slow down`));
    assert.match(String(c.retryAfter), /^[1-9]\d*$/);
  }
}

test('the gateway gives a Developer namespace the Developer rate, a Community one the Community rate', { timeout: 60_000 }, async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'micro-plans-gw-'));
  const mailer = new MemoryMailer();
  const hub = new PlatformHub();
  const server = await new MicroServer({
    home,
    address: 'tcp://127.0.0.1:0',
    gateway: `127.0.0.1:${await freePort()}`,
    logger: silent,
    coreServices: [signupCoreService({ hub, mailer }), billingCoreService({ hub })],
  }).start();
  t.after(async () => {
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  });
  const gw = server.gatewayUrl as string;
  const adminFile = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const admin = (await post(gw, '/v1/auth/Token', adminFile)).json.token as string;
  const signUp = async (email: string, namespace: string) => {
    assert.equal((await post(gw, '/v1/signup/Invite', { email }, admin)).status, 200);
    assert.equal((await post(gw, '/v1/signup/SendCode', { email })).status, 200);
    const code = /code is:\s*([0-9]{6})/.exec(mailer.lastTo(email)?.text ?? '')?.[1];
    const done = await post(gw, '/v1/signup/CompleteSignup', { email, code, password: 'correct horse battery', namespace });
    assert.equal(done.status, 200, JSON.stringify(done.json));
    return done.json.token as string;
  };
  const dev = await signUp('dev@example.com', 'devspace');
  const free = await signUp('free@example.com', 'freespace');
  // staff move dev to Developer: their calls are not the namespace's, so its rate is read afresh at dev's first call
  const changed = await post(gw, '/v1/billing/ChangePlan', { customer: 'dev@example.com', plan: 'developer' }, admin);
  assert.equal(changed.status, 200, JSON.stringify(changed.json));

  const limits = (await post(gw, '/v1/quota/Read', { namespace: 'devspace' }, admin)).json.limits as Record<string, number>;
  assert.deepEqual([limits.requestsPerSecond, limits.members, limits.services], [50, 1, 20]);
  // below the gateway's per-caller burst (100): every refusal is the namespace's rate
  atRate(await burst(gw, dev, 90), 50, 'devspace');
  atRate(await burst(gw, free, 40), 10, 'freespace');
});
