import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { bearer, Client, createLogger, defineService, endpoint, platformClient, RemoteRegistry, Service, ServiceAuth, TokenSource, z } from '@micro/sdk';
import { openPgLedger } from '@micro/platform';
import { gatewayCaller, startSmtpServer } from '@micro/platform/testing';
import { codeFromSmtp, micro, natsPlatform, ok, post, started, startServer, stopProcess, tempDir, until, type RunningServer } from './testing.js';

/*
 * Exactly once under kill -9 on the nats profile (issue 15, item 9): two `micro server`
 * nodes, A and B, on the real engines (NATS, PostgreSQL, Redis under a prefix of this
 * test), a customer (signed up, on Community, its rate raised by the staff) with credit
 * for CREDIT_CALLS calls of a priced service, and 16 clients calling it through BOTH
 * gateways, half of them with an Idempotency-Key (retried on the other node after an
 * answer, after a lost connection, and sent to both nodes at once now and then).
 *
 * Node A is killed with SIGKILL while calls run; the clients move to node B, which keeps
 * serving until the credit it can see is spent (A's holds keep theirs until the heart-
 * beat window releases them: checked, and B posts the charges A recorded and had not
 * posted: checked), then A starts again on the same home (its first round takes whatever
 * any node left in the outbox) and the clients spend the rest of the credit through both.
 * Then the books, read from PostgreSQL and through the services: charges equal the
 * successful calls the service served (less the calls in flight at the kill, the bound
 * metering/README.md documents), every 200 charged exactly once, no request id or key
 * charged twice, the balance never below zero in its whole history, the trial balance
 * zero, the usage service's totals and the ledger's usage postings equal to the unit, and
 * so the invoice issued for the period (by a third node whose billing clock is in the
 * next month: the period has ended for it).
 */

const PRICE = 1_000;
const CREDIT_CALLS = 3_000;
/** the 200s before node A is killed */
const KILL_AFTER = 1_000;
const PER_NODE = 8;
const CLIENTS = 2 * PER_NODE;
/** metering's defaults on the nats profile: holds of a node silent for HOLD_TTL go at the next HEARTBEAT of another */
const HOLD_TTL = 30_000;
const HEARTBEAT = 5_000;
const PASSWORD = 'correct-horse-battery';

const silent = createLogger({ level: 'silent' });

const paid = defineService({
  name: 'paid',
  version: '1.0.0',
  endpoints: { Call: endpoint({ request: z.object({ id: z.string() }), response: z.object({ id: z.string() }), price: PRICE }) },
});

type Node = 'a' | 'b';

/** One HTTP request of a client: its own id (the body's), where it went, what came back. */
interface Attempt {
  id: string;
  node: Node;
  key?: string;
  /** sent while node A was alive: if it was to A and never answered, it was in flight at the kill */
  beforeKill: boolean;
  status?: number | 'lost';
  requestId?: string;
  detail?: string;
}

const { call, close } = gatewayCaller();

/**
 * `micro server` as the command runs it, but with a billing clock `offset` ms ahead: its
 * invoices job and invoices.Issue see the periods before that clock as ended.
 */
const FUTURE_NODE = `
const { MicroServer } = await import('@micro/server');
const { platformCoreServices, PlatformHub } = await import('@micro/platform');
const offset = Number(process.env.BILLING_CLOCK_OFFSET);
const hub = new PlatformHub({ clock: () => Date.now() + offset });
const server = new MicroServer({ home: process.env.MICRO_HOME, address: 'tcp://127.0.0.1:0', gateway: '127.0.0.1:0', coreServices: platformCoreServices({ hub }) });
process.once('SIGTERM', () => server.stop().then(() => process.exit(0)));
await server.start();
process.stdout.write('READY ' + server.gatewayUrl + '\\n');
`;

function startFutureNode(home: string, env: Record<string, string>, offset: number): Promise<{ proc: RunningServer['proc']; gateway: string }> {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const proc = spawn(process.execPath, ['--input-type=module', '-e', FUTURE_NODE], { cwd: root, env: { ...process.env, ...env, MICRO_HOME: home, MICRO_LOG_LEVEL: 'silent', BILLING_CLOCK_OFFSET: String(offset) } });
  started.add(proc);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the node did not start:\n${out}`)), 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, gateway: m[1] as string });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the node exited (${code}):\n${out}`));
    });
  });
}

test('nats profile: kill -9 of one node of two under thousands of priced calls; holds released, outbox posted, every 200 charged once, usage = ledger = invoice', { timeout: 300_000 }, async (t) => {
  const platform = await natsPlatform(t, 'meternats');
  if (!platform) return;
  const prefix = platform.env.MICRO_PREFIX as string;
  const smtp = await startSmtpServer(t);
  const env = { ...platform.env, MICRO_RUNTIME_SANDBOX: 'off', MICRO_SMTP_URL: smtp.url() };
  const homes = { a: tempDir('micro-meternats-a-'), b: tempDir('micro-meternats-b-'), c: tempDir('micro-meternats-c-') };
  const db = new pg.Client({ connectionString: platform.env.MICRO_POSTGRES_URL });
  const cleanup: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
    await Promise.all([...started].map((p) => stopProcess(p, 'SIGKILL')));
    close();
    await db.end().catch(() => undefined);
    await platform.drop();
    for (const h of Object.values(homes)) rmSync(h, { recursive: true, force: true });
  });
  await db.connect();
  const q = async <R>(sql: string, params: unknown[] = []): Promise<R[]> => (await db.query(sql.replace(/\bS\./g, `"${prefix}".`), params)).rows as R[];
  const began = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - began) / 1000).toFixed(1)} s: ${what}`);

  // --- node A, its meter's id (the only node yet), then node B
  let a = await startServer(homes.a, { env, timeout: 60_000 });
  const meterOfA = (await q<{ node: string }>('SELECT node FROM S.usage_nodes')).map((r) => r.node);
  assert.equal(meterOfA.length, 1, 'one meter heart-beats: node A');
  const b = await startServer(homes.b, { env, timeout: 60_000 });
  mark('nodes A and B started');
  const staff = (args: string[], home = homes.b) => micro(home, args, { env });

  // --- the customer: signed up (Community), its rate and keys raised by the staff, credit for CREDIT_CALLS calls
  assert.equal((await staff(['platform', 'invite', 'ada@example.com'])).code, 0);
  assert.equal((await staff(['env', 'add', 'ada', b.address])).code, 0);
  const ada = (args: string[], input?: string) => micro(homes.b, args, { env: { ...env, MICRO_ENV: 'ada' }, input });
  assert.equal((await ada(['signup', '--email', 'ada@example.com'])).code, 0);
  const code = await codeFromSmtp(smtp, 'ada@example.com');
  const signed = await ada(['signup', '--email', 'ada@example.com', '--code', code, '--password', '-', '--namespace', 'acme'], `${PASSWORD}\n`);
  assert.equal(signed.code, 0, signed.stderr);
  const payer = (JSON.parse((await staff(['platform', 'customer', 'ada@example.com', '-o', 'json'])).stdout) as { id: string }).id;
  // Community's 10 requests a second would make this a test of the rate limit
  const raised = await staff(['quota', 'set', 'acme', 'requestsPerSecond=100000', 'apiKeys=100']);
  assert.equal(raised.code, 0, raised.stderr);
  const credit = await staff(['platform', 'credit', 'acme', String((CREDIT_CALLS * PRICE) / 1_000_000), '--reason', 'calls for the crash test']);
  assert.equal(credit.code, 0, credit.stderr);

  // an account and API key per client (the gateway limits each account to 50 calls a second)
  const admin = JSON.parse(readFileSync(join(homes.a, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const adminToken = ok(await post(b.gateway, '/v1/auth/Token', { ...admin, namespace: 'micro' })).token as string;
  const apiKeys: string[] = [];
  for (let c = 0; c < CLIENTS; c++) {
    const id = `client${c}`;
    ok(await post(b.gateway, '/v1/auth/CreateAccount', { id, namespace: 'acme', secret: `${id}-password-1`, scopes: ['admin'] }, adminToken));
    const token = ok(await post(b.gateway, '/v1/auth/Login', { id, password: `${id}-password-1`, namespace: 'acme' })).token as string;
    apiKeys.push(ok(await post(c % 2 ? a.gateway : b.gateway, '/v1/auth/CreateKey', { name: 'load' }, token)).key as string);
  }

  // --- the priced service, in this process, registered through node B (it outlives node A): it records every call it served
  const svcSecret = ok(await post(b.gateway, '/v1/auth/CreateAccount', { id: 'service:paid', type: 'service', namespace: 'acme' }, adminToken)).secret as string;
  const credentials = { id: 'service:paid', secret: svcSecret, namespace: 'acme' };
  const registry = new RemoteRegistry(platformClient(b.address, [bearer(new TokenSource(credentials, new Client({ address: b.address, namespace: 'micro', preferLocal: false, middleware: [] })))]));
  const served = new Map<string, number>();
  const svc = new Service(paid, { Call: ({ id }) => (served.set(id, (served.get(id) ?? 0) + 1), { id }) }, { namespace: 'acme', registry, address: 'tcp://127.0.0.1:0', nats: false, registerTTL: 0, logger: silent, auth: new ServiceAuth({ address: b.address, credentials, refreshInterval: 0 }) });
  await svc.start();
  cleanup.push(() => svc.stop());
  mark('customer, credit, keys and service ready');

  // --- the clients
  const gateways: Record<Node, string> = { a: a.gateway, b: b.gateway };
  const attempts: Attempt[] = [];
  let oks = 0;
  let killed = false;
  /** the node a retry goes to: the other one, or B while A is down */
  const other = (n: Node): Node => (killed || n === 'a' ? 'b' : 'a');
  const attempt = async (c: number, node: Node, key?: string): Promise<Attempt> => {
    const at: Attempt = { id: `t${attempts.length}`, node, key, beforeKill: !killed };
    attempts.push(at);
    const headers: Record<string, string> = { authorization: `Bearer ${apiKeys[c]}`, ...(key ? { 'idempotency-key': key } : {}) };
    try {
      const r = await call(gateways[node], '/v1/paid/Call', { id: at.id }, headers);
      Object.assign(at, { status: r.status, requestId: r.requestId, detail: r.body.detail as string | undefined });
      if (r.status === 200) assert.equal(r.body.id, at.id, 'the answer is of this call');
    } catch {
      at.status = 'lost';
    }
    return at;
  };
  /** until answered: 429 (the account's rate) is waited out, a lost call with a key is retried on the survivor */
  const answered = async (c: number, node: () => Node, key?: string): Promise<Attempt> => {
    for (;;) {
      const r = await attempt(c, node(), key);
      if (r.status === 429) await new Promise((resolve) => setTimeout(resolve, 200));
      else if (r.status === 'lost' && key) continue;
      else return r;
    }
  };
  /** calls until refused for credit; clients with a key retry some answered calls on the other node, or send them to both at once */
  const client = async (c: number, phase: number, home: Node) => {
    const node = () => (killed ? 'b' : home);
    for (let n = 0; ; n++) {
      const key = c % 2 === 0 ? `p${phase}-c${c}-${n}` : undefined;
      const both = key && n % 20 === 7 && !killed;
      const [r] = await Promise.all([answered(c, node, key), both ? attempt(c, other(node()), key) : undefined]);
      if (r.status === 'lost') continue;
      if (r.status === 403) {
        assert.equal(r.detail, 'insufficient credit');
        return;
      }
      assert.equal(r.status, 200, `${r.node}: ${r.status} ${r.detail ?? ''}`);
      oks++;
      if (key && n % 10 === 3) {
        const again = await answered(c, () => other(node()), key);
        assert.equal(again.status, 200, `a retry of an answered key: ${again.status} ${again.detail ?? ''}`);
      }
    }
  };
  const clients = (phase: number) => Array.from({ length: CLIENTS }, (_, c) => client(c, phase, c < PER_NODE ? 'a' : 'b'));

  // the service through both gateways before the load (each probe a priced call like any other)
  for (const node of ['a', 'b'] as const) await until(`paid through node ${node}`, 30_000, async () => ((await attempt(0, node)).status === 200 ? true : undefined));

  // --- phase 1: both nodes; kill -9 of node A after KILL_AFTER answers; node B serves until the credit it sees is spent
  const load = Promise.all(clients(1));
  while (oks < KILL_AFTER) await new Promise((r) => setTimeout(r, 2));
  killed = true;
  const killedAt = Date.now();
  await stopProcess(a.proc, 'SIGKILL');
  // what node A left: holds of its calls in flight, charges it recorded and had not posted
  const [held] = await q<{ n: string; amount: string }>('SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS amount FROM S.usage_holds WHERE node = $1', [meterOfA[0]]);
  const leftInOutbox = await q<{ posting: string }>('SELECT posting FROM S.usage_outbox WHERE node = $1', [meterOfA[0]]);
  mark(`node A killed after ${oks} answers: it held ${held?.n} calls (${held?.amount} units), ${leftInOutbox.length} charges unposted`);
  await load;
  const phase1 = attempts.length;
  const heldWhenRefused = Number((await q<{ n: string }>('SELECT COUNT(*) AS n FROM S.usage_holds WHERE node = $1', [meterOfA[0]]))[0]?.n);
  mark(`phase 1 over: ${phase1} requests, credit refused on node B while ${heldWhenRefused} holds of node A stood`);
  const lost = attempts.filter((x) => x.status === 'lost');
  const inFlightAtKill = lost.filter((x) => x.node === 'a' && x.beforeKill);
  assert.ok(inFlightAtKill.length > 0, 'the kill caught calls in flight');
  assert.ok(inFlightAtKill.length <= CLIENTS, 'at most one call of each client was in flight');

  // --- the heart-beat window: node B releases node A's holds within HOLD_TTL + HEARTBEAT, and posts its outbox
  const servedByB = attempts.filter((x) => x.node === 'b' && !x.beforeKill && x.status === 200).length;
  assert.ok(servedByB > 0, 'node B kept serving');
  const released = await until("node A's holds released", HOLD_TTL + HEARTBEAT + 30_000, async () => {
    const [r] = await q<{ holds: string; beats: string }>('SELECT (SELECT COUNT(*) FROM S.usage_holds WHERE node = $1) AS holds, (SELECT COUNT(*) FROM S.usage_nodes WHERE node = $1) AS beats', [meterOfA[0]]);
    return Number(r?.holds) === 0 && Number(r?.beats) === 0 ? Date.now() - killedAt : undefined;
  });
  assert.ok(released <= HOLD_TTL + HEARTBEAT + 10_000, `released ${released} ms after the kill: the window is ${HOLD_TTL + HEARTBEAT} ms`);
  mark(`node A's holds released ${released} ms after the kill`);
  // and the charges node A recorded and had not posted were posted by node B, before node A is back
  await until("node A's charges posted by node B", HEARTBEAT + 10_000, async () => {
    const [r] = await q<{ posted: string; left: string }>('SELECT (SELECT COUNT(*) FROM S.postings WHERE key = ANY($1::text[])) AS posted, (SELECT COUNT(*) FROM S.usage_outbox WHERE node = $2) AS left', [leftInOutbox.map((o) => o.posting), meterOfA[0]]);
    return Number(r?.posted) === leftInOutbox.length && Number(r?.left) === 0 ? true : undefined;
  });

  // --- node A again, on the same home: its first round would post whatever the outbox holds (B took A's rows already)
  a = await startServer(homes.a, { env, timeout: 60_000 });
  gateways.a = a.gateway;
  killed = false;
  await until('the outbox empty', 30_000, async () => (Number((await q<{ n: string }>('SELECT COUNT(*) AS n FROM S.usage_outbox'))[0]?.n) === 0 ? true : undefined));
  mark('node A restarted, the outbox empty');
  // node A's first calls may still find the credit held by its own calls in flight at the kill until node B's release is seen;
  // but when that release came before phase 1 ended (a slow machine), node B spent that credit too, and node A is refused
  const chargedSoFar = Number((await q<{ n: string }>('SELECT COUNT(*) AS n FROM S.usage_calls WHERE charged > 0'))[0]?.n);
  if (chargedSoFar < CREDIT_CALLS) {
    let lastAnswer = '';
    await until('paid through node A again', 60_000, async () => {
      const r = await answered(1, () => 'a');
      lastAnswer = `${r.status} ${r.detail ?? ''}`;
      return r.status === 200 ? true : undefined;
    }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; its last answer: ${lastAnswer}`);
    });
  } else {
    const r = await answered(1, () => 'a');
    assert.equal(`${r.status} ${r.detail ?? ''}`, '403 insufficient credit', 'node A, back, refuses for the credit node B spent');
    mark(`node B spent all ${CREDIT_CALLS} calls' credit (node A's holds were released before phase 1 ended): node A, back, refuses for credit`);
  }

  // --- phase 2: the lost calls with a key, retried; then both nodes spend the rest of the credit
  for (const [i, x] of lost.filter((l) => l.key).entries()) {
    const r = await answered(i % CLIENTS, () => (i % 2 ? 'a' : 'b'), x.key);
    assert.ok(r.status === 200 || (r.status === 403 && r.detail === 'insufficient credit'), `a lost key retried: ${r.status} ${r.detail ?? ''}`);
  }
  await Promise.all(clients(2));
  // with no credit left, retries of answered keys are still answered, and charged nothing
  const answeredKeys = [...new Set(attempts.filter((x) => x.status === 200 && x.key).map((x) => x.key as string))];
  for (const [i, key] of answeredKeys.slice(0, 20).entries()) {
    const r = await answered(i % CLIENTS, () => (i % 2 ? 'a' : 'b'), key);
    assert.equal(r.status, 200, `a retry with no credit left: ${r.status} ${r.detail ?? ''}`);
  }
  mark(`phase 2 over: ${attempts.length - phase1} requests`);
  assert.equal(attempts.filter((x) => x.status === 'lost').length, lost.length, 'nothing lost but with node A');
  const unexpected = attempts.filter((x) => x.status !== 200 && x.status !== 403 && x.status !== 429 && x.status !== 'lost');
  assert.deepEqual(unexpected, [], 'every request was answered 200, 403 or 429, or lost with node A');
  assert.ok(attempts.filter((x) => x.status === 'lost').every((x) => x.node === 'a'), 'only calls to node A were lost');

  // --- the usage service, through the CLI of the staff (each period the calls fall in: a test across a month's end has two)
  await until('the outbox empty', 30_000, async () => (Number((await q<{ n: string }>('SELECT COUNT(*) AS n FROM S.usage_outbox'))[0]?.n) === 0 ? true : undefined));
  const periods = (await q<{ period: string }>('SELECT DISTINCT period FROM S.usage_calls ORDER BY period')).map((r) => r.period);
  const usage = { calls: 0, ok: 0, charged: 0 };
  for (const period of periods) {
    const r = await staff(['usage', '--namespace', 'acme', '--period', period, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const read = JSON.parse(r.stdout) as { payer: string; totals: typeof usage };
    assert.equal(read.payer, payer);
    for (const k of ['calls', 'ok', 'charged'] as const) usage[k] += read.totals[k];
  }

  // --- both nodes stop; the books as PostgreSQL holds them
  await stopProcess(a.proc);
  await stopProcess(b.proc);
  mark('nodes stopped');
  const records = await q<{ request_id: string; outcome: string; charged: string; idem_key: string | null; posting: string | null }>('SELECT request_id, outcome, charged, idem_key, posting FROM S.usage_calls');
  const byId = new Map(records.map((r) => [r.request_id, r]));
  const okRecords = records.filter((r) => r.outcome === 'ok');
  const charged = records.filter((r) => Number(r.charged) > 0);
  assert.deepEqual(await q('SELECT * FROM S.usage_holds'), [], 'no hold left');
  assert.deepEqual(await q('SELECT * FROM S.usage_outbox'), [], 'nothing left to post');

  // the ledger's usage postings are the charged records, one each, to the unit
  const balance = `customer:${payer}:balance`;
  const postings = await q<{ key: string; request_id: string; account: string; amount: string }>(
    "SELECT p.key, p.metadata::jsonb->>'request_id' AS request_id, e.account, e.amount FROM S.postings p JOIN S.entries e ON e.posting = p.id WHERE p.metadata::jsonb->>'kind' = 'usage' AND e.account LIKE 'customer:%'",
  );
  assert.ok(postings.every((p) => p.account === balance), 'every usage posting was taken from the balance (none against due)');
  assert.equal(postings.length, charged.length, 'one usage posting per charged record');
  assert.equal(new Set(postings.map((p) => p.request_id)).size, postings.length, 'no request id charged twice');
  assert.equal(new Set(postings.map((p) => p.key)).size, postings.length, 'no posting key twice');
  const ledgerUsage = -postings.reduce((n, p) => n + Number(p.amount), 0);
  const recordedCharges = charged.reduce((n, r) => n + Number(r.charged), 0);
  assert.equal(ledgerUsage, recordedCharges, 'records and postings agree to the unit');
  const postingOf = new Map(postings.map((p) => [p.key, p]));
  for (const r of charged) assert.equal(postingOf.get(r.posting as string)?.request_id, r.request_id, `the charge of ${r.request_id} is in the ledger`);
  assert.deepEqual(usage, { calls: records.length, ok: okRecords.length, charged: ledgerUsage }, 'the usage service says what the records and the ledger say');

  // every 200 a client saw is a recorded success; charged once per call without a key, once per key in all
  const ok200 = attempts.filter((x) => x.status === 200);
  for (const x of ok200) {
    const r = byId.get(x.requestId as string);
    assert.equal(r?.outcome, 'ok', `the 200 of ${x.id} (${x.requestId}) was recorded`);
    if (!x.key) assert.equal(Number(r?.charged), PRICE, `the 200 of ${x.id} was charged`);
  }
  const keys = new Set(attempts.filter((x) => x.key).map((x) => x.key as string));
  const answeredKey = new Set(ok200.filter((x) => x.key).map((x) => x.key as string));
  const chargesOfKey = new Map<string, number>();
  for (const r of charged) if (r.idem_key) chargesOfKey.set(r.idem_key, (chargesOfKey.get(r.idem_key) ?? 0) + 1);
  for (const key of keys) assert.equal(chargesOfKey.get(key) ?? 0, answeredKey.has(key) ? 1 : 0, `key ${key} charged ${answeredKey.has(key) ? 'once' : 'never'}`);
  assert.equal(charged.length, okRecords.filter((r) => !r.idem_key).length + new Set(okRecords.filter((r) => r.idem_key).map((r) => r.idem_key)).size, 'one charge per successful call, one per key');

  // what the service served: every recorded success, and beyond them only calls in flight at the kill
  const servedCalls = [...served.values()].reduce((n, v) => n + v, 0);
  assert.equal(servedCalls, served.size, 'each request reached the service once');
  for (const x of ok200) assert.ok(served.has(x.id), `the 200 of ${x.id} was served`);
  const inFlight = new Set(inFlightAtKill.map((x) => x.id));
  const answeredIds = new Set(ok200.map((x) => x.id));
  const servedUnanswered = [...served.keys()].filter((id) => !answeredIds.has(id));
  assert.ok(servedUnanswered.every((id) => inFlight.has(id)), 'served without a 200: only calls in flight at the kill');
  assert.ok(served.size >= okRecords.length, `served ${served.size}, recorded ${okRecords.length}`);
  assert.ok(served.size - okRecords.length <= inFlightAtKill.length, `served ${served.size} − recorded ${okRecords.length} is more than the ${inFlightAtKill.length} calls in flight at the kill`);
  assert.ok(okRecords.length - ok200.length <= inFlightAtKill.length, 'recorded successes whose answer the kill lost are at most the calls in flight');

  // the credit spent exactly, never below zero in the whole history, the ledger balances
  const ledger = await openPgLedger({ url: platform.env.MICRO_POSTGRES_URL as string, prefix });
  cleanup.push(() => ledger.close());
  assert.equal(charged.length, CREDIT_CALLS, 'the credit bought exactly CREDIT_CALLS calls');
  assert.equal(await ledger.balance(balance), 0);
  assert.equal(await ledger.balance(`customer:${payer}:due`), 0);
  let entries = 0;
  let before: number | undefined;
  do {
    const page = await ledger.history(balance, { limit: 200, ...(before === undefined ? {} : { before }) });
    for (const e of page.items) assert.ok(e.balanceAfter >= 0, `the balance went to ${e.balanceAfter} at entry ${e.id}`);
    entries += page.items.length;
    before = page.next;
  } while (before !== undefined);
  assert.equal(entries, charged.length + 1, 'the credit and one entry per charge');
  const trial = await ledger.trialBalance();
  assert.equal(trial.ok, true, JSON.stringify(trial));
  assert.equal(trial.total, '0');
  assert.deepEqual(trial.mismatched, []);

  // --- the invoice of each period, issued by a node whose billing clock is in the month after the last
  const last = periods.at(-1) as string;
  const [y, m] = last.split('-').map(Number) as [number, number];
  const c = await startFutureNode(homes.c, env, Date.UTC(y, m, 1, 1) - Date.now());
  cleanup.push(() => stopProcess(c.proc));
  const invoiced = { amount: 0, calls: 0 };
  for (const period of periods) {
    const issue = ok(await post(c.gateway, '/v1/invoices/Issue', { period, payer }, adminToken)) as { issued: { number: string }[]; existing: { number: string }[] };
    const number = (issue.issued[0] ?? issue.existing[0])?.number as string;
    assert.ok(number, `an invoice of ${period}`);
    const invoice = ok(await post(c.gateway, '/v1/invoices/Read', { number }, adminToken)) as { invoice: { lines: { kind: string; amount: number; calls?: number; service?: string }[] } };
    for (const l of invoice.invoice.lines.filter((x) => x.kind === 'usage')) {
      assert.equal(l.service, 'paid');
      invoiced.amount += l.amount;
      invoiced.calls += l.calls ?? 0;
    }
  }
  assert.deepEqual(invoiced, { amount: ledgerUsage, calls: charged.length }, 'the invoices show the usage of the ledger, to the unit and the call');
  mark('books checked');
  const nodesOfKey = new Map<string, Set<Node>>();
  for (const x of ok200) if (x.key) nodesOfKey.set(x.key, (nodesOfKey.get(x.key) ?? new Set()).add(x.node));
  const acrossNodes = [...nodesOfKey.values()].filter((n) => n.size === 2).length;
  assert.ok(acrossNodes > 0, 'keys answered by both nodes');
  t.diagnostic(`idempotency: ${keys.size} keys, ${answeredKey.size} answered, ${acrossNodes} answered by both nodes, ${ok200.filter((x) => x.key).length - answeredKey.size} answers charged nothing (retries)`);
  t.diagnostic(
    `${attempts.length} requests (${ok200.length} answered 200, ${lost.length} lost with node A, ${inFlightAtKill.length} of them in flight at the kill); ${records.length} records, ${okRecords.length} successes, ${charged.length} charged; served ${served.size}`,
  );
});
