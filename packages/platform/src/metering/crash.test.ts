import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bearer, Client, createLogger, defineService, endpoint, platformClient, RemoteRegistry, Service, ServiceAuth, TokenSource, z } from '@micro/sdk';
import { balanceAccount, dueAccount, PLATFORM_REVENUE } from '../billing/accounts.js';
import { openSqliteLedger } from '../ledger/sqlite.js';
import { topUp } from './contract.js';
import { gatewayCaller, type GatewayAnswer } from './testing.js';

/*
 * Exactly once under kill -9 (local profile): a real micro server process (the platform's
 * services with a pricing of the test: the one `micro server` runs, priced) serves a
 * tenant's priced service to concurrent clients; it is killed with SIGKILL while calls
 * are in flight, then started again on the same home. Afterwards the records and the
 * ledger must agree to the unit, every 200 a client got must be charged once, retries of
 * an Idempotency-Key once in all, nothing below zero, and the credit spent exactly.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const silent = createLogger({ level: 'silent' });
const PRICE = 1_000;
/** credit for this many calls: phase 1 spends part, the crash, phase 2 spends the rest */
const CALLS_OF_CREDIT = 3_000;
const KILL_AFTER = 1_200;
const CLIENTS = 16;

const paid = defineService({
  name: 'paid',
  version: '1.0.0',
  endpoints: { Call: endpoint({ request: z.object({}), response: z.object({ n: z.number() }) }) },
});

/** micro server as `micro server` runs it, with the platform's services priced by METER_TEST_PRICES */
const SERVER = `
const { MicroServer } = await import('@micro/server');
const { platformCoreServices } = await import('@micro/platform');
const prices = JSON.parse(process.env.METER_TEST_PRICES);
const pricing = { priceOf: (home, service, ep) => prices[home + '/' + service + '.' + ep.name] };
const server = new MicroServer({ address: 'tcp://127.0.0.1:0', gateway: '127.0.0.1:0', coreServices: platformCoreServices({ pricing }) });
process.once('SIGTERM', () => server.stop().then(() => process.exit(0)));
await server.start();
process.stdout.write('READY ' + server.address + ' ' + server.gatewayUrl + '\\n');
`;

interface Running {
  proc: ChildProcessWithoutNullStreams;
  address: string;
  gateway: string;
}

function startServer(home: string): Promise<Running> {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', SERVER], {
    cwd: root,
    // the namespace's requests a second are not what this test is about
    env: { ...process.env, MICRO_HOME: home, MICRO_LOG_LEVEL: 'silent', MICRO_RUNTIME_SANDBOX: 'off', MICRO_QUOTA_DEFAULTS: '{"requestsPerSecond":1000000}', METER_TEST_PRICES: JSON.stringify({ [`acme/paid.Call`]: { price: PRICE, freeQuota: 0 } }) },
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`micro server did not start:\n${out}`)), 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+) (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, address: m[1] as string, gateway: m[2] as string });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`micro server exited (${code}):\n${out}`));
    });
  });
}

function exited(proc: ChildProcessWithoutNullStreams): Promise<void> {
  return proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : new Promise((resolve) => proc.once('exit', () => resolve()));
}

const caller = gatewayCaller();
const call = caller.call;
type Answer = GatewayAnswer;

/** The tenant's priced service, in this process, registered with the server at `address`; it counts what it served. */
async function servePaid(address: string, creds: { id: string; secret: string }, served: { n: number }): Promise<Service> {
  const credentials = { ...creds, namespace: 'acme' };
  const registry = new RemoteRegistry(platformClient(address, [bearer(new TokenSource(credentials, new Client({ address, namespace: 'micro', preferLocal: false, middleware: [] })))]));
  const svc = new Service(paid, { Call: () => ({ n: ++served.n }) }, { namespace: 'acme', registry, address: 'tcp://127.0.0.1:0', registerTTL: 0, logger: silent, auth: new ServiceAuth({ address, credentials, refreshInterval: 0 }) });
  await svc.start();
  return svc;
}

interface Outcome {
  status: number | 'lost';
  requestId?: string;
  key?: string;
  detail?: string;
}

test('kill -9 with thousands of priced calls in flight: charges equal the recorded successes, every 200 charged once, the ledger balances', { timeout: 300_000 }, async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'micro-metering-crash-'));
  const running = new Set<ChildProcessWithoutNullStreams>();
  const services: Service[] = [];
  t.after(async () => {
    for (const svc of services) await svc.stop().catch(() => undefined);
    for (const p of running) p.kill('SIGKILL');
    await Promise.all([...running].map(exited));
    caller.close();
    rmSync(home, { recursive: true, force: true });
  });
  const began = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - began) / 1000).toFixed(1)} s: ${what}`);
  const start = async () => {
    const r = await startServer(home);
    mark('server started');
    running.add(r.proc);
    return r;
  };

  // --- phase 1: a tenant with credit for CALLS_OF_CREDIT calls, its key, its service
  let server = await start();
  const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const adminToken = (await call(server.gateway, '/v1/auth/Token', { ...admin, namespace: 'micro' })).body.token as string;
  const asAdmin = { authorization: `Bearer ${adminToken}` };
  // an account and API key per client: the gateway limits each account's rate (50 a second)
  const apiKeys: string[] = [];
  for (let c = 0; c < CLIENTS; c++) {
    const id = `user${c}`;
    assert.equal((await call(server.gateway, '/v1/auth/CreateAccount', { id, namespace: 'acme', secret: `${id}-password-1`, scopes: ['admin'] }, asAdmin)).status, 200);
    const token = (await call(server.gateway, '/v1/auth/Login', { id, password: `${id}-password-1`, namespace: 'acme' })).body.token as string;
    apiKeys.push((await call(server.gateway, '/v1/auth/CreateKey', { name: 'load' }, { authorization: `Bearer ${token}` })).body.key as string);
  }
  const svcAccount = (await call(server.gateway, '/v1/auth/CreateAccount', { id: 'service:paid', type: 'service', namespace: 'acme' }, asAdmin)).body as { secret: string };
  const creds = { id: 'service:paid', secret: svcAccount.secret };
  // the top-up, by the ledger of billing.db from this process (SQLite takes a second writer)
  const ledger = openSqliteLedger(join(home, 'data', 'billing.db'));
  await topUp(ledger, 'ns.acme', CALLS_OF_CREDIT * PRICE, 'topup:crash-test');
  await ledger.close();
  const served = { n: 0 };
  services.push(await servePaid(server.address, creds, served));

  const outcomes: Outcome[] = [];
  let ok = 0;
  let killed = false;
  /** one client: calls until the server goes away (or, in phase 2, the credit is spent); even clients send an Idempotency-Key */
  const client = async (gateway: string, c: number, phase: number, stopAt: () => boolean) => {
    const auth = { authorization: `Bearer ${apiKeys[c]}` };
    for (let n = 0; !stopAt(); n++) {
      const key = c % 2 === 0 ? `p${phase}-c${c}-${n}` : undefined;
      let r: Answer;
      try {
        r = await call(gateway, '/v1/paid/Call', {}, key ? { ...auth, 'idempotency-key': key } : auth);
      } catch {
        outcomes.push({ status: 'lost', key });
        return;
      }
      // past the account's rate: wait as told (the call was not made)
      if (r.status === 429) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      outcomes.push({ status: r.status, requestId: r.requestId, key, detail: r.body.detail as string | undefined });
      if (r.status === 403) return;
      if (r.status !== 200) throw new Error(`unexpected answer ${r.status}: ${JSON.stringify(r.body)}`);
      ok++;
    }
  };
  const kill = (async () => {
    while (ok < KILL_AFTER) await new Promise((r) => setTimeout(r, 5));
    killed = true;
    server.proc.kill('SIGKILL');
  })();
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(server.gateway, c, 1, () => killed)));
  await kill;
  await exited(server.proc);
  running.delete(server.proc);
  const lost = outcomes.filter((o) => o.status === 'lost');
  assert.ok(lost.length > 0, 'the kill caught calls in flight');
  const okBeforeKill = ok;
  mark('killed');

  // --- phase 2: the same home again; the lost and some answered idempotent calls are retried; then the credit is spent
  await services.pop()?.stop();
  mark('service stopped');
  server = await start();
  services.push(await servePaid(server.address, creds, served));
  const retried = [...lost.filter((o) => o.key), ...outcomes.filter((o) => o.status === 200 && o.key).slice(0, 20)];
  for (const [i, o] of retried.entries()) {
    const r = await call(server.gateway, '/v1/paid/Call', {}, { authorization: `Bearer ${apiKeys[i % CLIENTS]}`, 'idempotency-key': o.key as string });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    outcomes.push({ status: r.status, requestId: r.requestId, key: o.key });
  }
  mark('retried');
  // each client calls until it is refused: the credit is spent
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(server.gateway, c, 2, () => false)));
  assert.equal(outcomes.filter((o) => o.status === 'lost').length, lost.length, 'nothing lost without a kill');
  for (const o of outcomes.filter((x) => x.status === 403)) assert.equal(o.detail, 'insufficient credit');
  mark('credit spent');
  // a graceful stop, then a start that posts whatever the outbox still holds, and a last stop
  server.proc.kill('SIGTERM');
  await exited(server.proc);
  running.delete(server.proc);
  mark('stopped');
  for (const svc of services.splice(0)) await svc.stop();
  mark('service stopped');
  server = await start();
  server.proc.kill('SIGTERM');
  await exited(server.proc);
  running.delete(server.proc);

  mark('stopped again');
  // --- the books
  const check = openSqliteLedger(join(home, 'data', 'billing.db'));
  t.after(() => check.close());
  const db = check.db;
  const records = db.prepare('SELECT request_id, outcome, charged, idem_key, posting FROM usage_calls').all() as { request_id: string; outcome: string; charged: number; idem_key: string | null; posting: string | null }[];
  const byId = new Map(records.map((r) => [r.request_id, r]));
  const charged = records.filter((r) => r.charged > 0);
  const okRecords = records.filter((r) => r.outcome === 'ok');
  // the ledger has caught up with the records, exactly
  assert.equal((db.prepare('SELECT COUNT(*) AS n FROM usage_outbox').get() as { n: number }).n, 0, 'the outbox is empty');
  const usage = db.prepare("SELECT p.key, p.metadata, e.amount FROM postings p JOIN entries e ON e.posting = p.id WHERE e.account = ? AND json_extract(p.metadata, '$.kind') = 'usage'").all(balanceAccount('ns.acme')) as { key: string; metadata: string; amount: number }[];
  // one posting per group commit, payer and endpoint: its amount and calls are those of the records that name it
  const byPosting = new Map<string, { units: number; calls: number }>();
  for (const r of charged) {
    const sum = byPosting.get(r.posting as string) ?? { units: 0, calls: 0 };
    sum.units += r.charged;
    sum.calls++;
    byPosting.set(r.posting as string, sum);
  }
  assert.equal(usage.length, byPosting.size, 'one usage posting per posting the charged records name');
  assert.equal(new Set(usage.map((u) => u.key)).size, usage.length, 'no posting key twice');
  for (const u of usage) {
    const sum = byPosting.get(u.key);
    assert.ok(sum, `the usage posting ${u.key} is named by charged records`);
    assert.equal(-u.amount, sum.units, `the posting ${u.key} is the sum of its records`);
    assert.equal(Number((JSON.parse(u.metadata) as { calls: string }).calls), sum.calls, `the posting ${u.key} counts its records`);
  }
  assert.equal(-usage.reduce((n, u) => n + u.amount, 0), charged.reduce((n, r) => n + r.charged, 0), 'records and postings agree to the unit');
  // every 200 a client got is a recorded success; one charge per request without a key, one per key in all
  const answered = outcomes.filter((o) => o.status === 200);
  for (const o of answered) {
    const r = byId.get(o.requestId as string);
    assert.equal(r?.outcome, 'ok', `the 200 of ${o.requestId} was recorded`);
    if (!o.key) assert.equal(r?.charged, PRICE, `the 200 of ${o.requestId} was charged`);
  }
  const keys = new Set(answered.filter((o) => o.key).map((o) => o.key as string));
  for (const key of keys) {
    const ofKey = records.filter((r) => r.idem_key === key && r.outcome === 'ok');
    assert.equal(ofKey.filter((r) => r.charged > 0).length, 1, `key ${key} charged once`);
  }
  // the service served every recorded success; what it served beyond them is the window of the kill
  assert.ok(served.n >= okRecords.length, `served ${served.n}, recorded ${okRecords.length}`);
  assert.ok(served.n - okRecords.length <= CLIENTS, `served ${served.n} − recorded ${okRecords.length} is more than the ${CLIENTS} calls in flight at the kill`);
  assert.ok(okRecords.length - answered.length <= CLIENTS, 'successes recorded whose answer the kill lost are at most the calls in flight');
  // the credit spent exactly, never below zero, nothing owed, the ledger balances
  assert.equal(charged.length, CALLS_OF_CREDIT);
  assert.equal(await check.balance(balanceAccount('ns.acme')), 0);
  assert.equal(await check.balance(dueAccount('ns.acme')), 0);
  assert.equal(await check.balance(PLATFORM_REVENUE), CALLS_OF_CREDIT * PRICE);
  const trial = await check.trialBalance();
  assert.equal(trial.ok, true, JSON.stringify(trial));
  t.diagnostic(`before the kill: ${okBeforeKill} answered 200, ${lost.length} lost in flight; in all ${okRecords.length} successes recorded, ${served.n} served, ${records.length} records`);
});
