import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPostgres } from '@micro/server/engine';
import { relay, silencedInTransaction, testPostgres } from '@micro/server/testing';
import { balanceAccount, PLATFORM_REVENUE } from '../billing/accounts.js';
import { openPgLedger } from '../ledger/postgres.js';
import { admitted, blocked, MapPricing, meterContract, meteredCall, run, topUp } from './contract.js';
import { Meter } from './meter.js';
import { PgMeterEngine, type PgMeterOptions } from './postgres.js';

/** Another spelling of the URL: a pool of its own, as another node has. */
const otherPool = (url: string, name: string) => `${url}${url.includes('?') ? '&' : '?'}application_name=${name}`;

const pricing = new MapPricing().set('acme', 'paid', 'Call', { price: 1_000, freeQuota: 0 }).set('acme', 'paid', 'Quota', { price: 1_000, freeQuota: 4 });
const payerOf = async (ns: string) => `ns.${ns}`;

async function nodes(t: test.TestContext) {
  const db = await testPostgres(t, 'metering');
  if (!db) return undefined;
  const url = db.url;
  const ledger = await openPgLedger({ url, prefix: db.prefix });
  t.after(() => ledger.close());
  let n = 0;
  const engine = async (options: PgMeterOptions = {}, at = url) => new PgMeterEngine(await openPostgres({ url: otherPool(at, `node${++n}`), prefix: db.prefix }), options);
  /** a node's meter, started (and stopped after the test), on its own pool (of `at`: a relay's URL) */
  const meter = async (options: PgMeterOptions = {}, at = url) => {
    const m = new Meter({ engine: await engine(options, at), ledger, pricing, payerOf, postEvery: 60_000 });
    await m.start();
    t.after(() => m.stop());
    return m;
  };
  return { db, ledger, engine, meter };
}

meterContract('postgres', async (t) => {
  const x = await nodes(t as test.TestContext);
  if (!x) return undefined;
  return { ledger: x.ledger, engine: () => x.engine() };
});


test('postgres: two nodes on one schema: of 40 calls in parallel with credit for 7, exactly 7 pass; of 10 free slots exactly 10', async (t) => {
  const x = await nodes(t);
  if (!x) return;
  const a = await x.meter();
  const b = await x.meter();
  await topUp(x.ledger, 'ns.acme', 7_000);
  const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => run(i % 2 ? a : b, meteredCall('acme', 'Call'))));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 7);
  for (const r of results) if (r.status === 'rejected') assert.ok(blocked('insufficient credit')(r.reason), String(r.reason));
  await a.flush();
  await b.flush();
  assert.equal(await x.ledger.balance(balanceAccount('ns.acme')), 0);
  assert.equal(await x.ledger.balance(PLATFORM_REVENUE), 7_000);
  // free slots across nodes: 4 free, then none (the balance is 0)
  const free = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => run(i % 2 ? a : b, meteredCall('acme', 'Quota'))));
  assert.equal(free.filter((r) => r.status === 'fulfilled').length, 4);
  assert.equal((await x.ledger.trialBalance()).ok, true);
});

test('postgres: the holds of a node that stopped heart-beating are released by the others; its late settle is checked again', async (t) => {
  const x = await nodes(t);
  if (!x) return;
  const fast = { heartbeat: 50, holdTtl: 300 };
  const dead = await x.meter(fast);
  const alive = await x.meter(fast);
  await topUp(x.ledger, 'ns.acme', 1_000);
  const held = await admitted(dead, meteredCall('acme', 'Call'));
  await assert.rejects(run(alive, meteredCall('acme', 'Call')), blocked('insufficient credit'));
  // the node goes silent (its heart-beat stops, as when it is killed); the other sweeps its hold
  clearInterval((dead as unknown as { engine: { timer: NodeJS.Timeout } }).engine.timer);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { rows } = await x.db.query(`SELECT COUNT(*)::int AS n FROM ${x.db.schema}.usage_holds`);
    if ((rows[0] as { n: number }).n === 0) break;
    assert.ok(Date.now() < deadline, 'the hold was not released');
    await new Promise((r) => setTimeout(r, 50));
  }
  await run(alive, meteredCall('acme', 'Call'));
  // the silent node's call ends: its credit is spent, so it is not charged (503), and nothing went below zero
  await assert.rejects(held.settle(true, 200), (err: unknown) => (err as { code?: number }).code === 503);
  await alive.flush();
  assert.equal(await x.ledger.balance(balanceAccount('ns.acme')), 0);
  assert.equal(await x.ledger.balance(PLATFORM_REVENUE), 1_000);
});

test('postgres: usage records cannot be changed, deleted or truncated, even by hand', async (t) => {
  const x = await nodes(t);
  if (!x) return;
  const m = await x.meter();
  await topUp(x.ledger, 'ns.acme', 5_000);
  await run(m, meteredCall('acme', 'Call'));
  for (const sql of ['UPDATE usage_calls SET charged = 0', 'DELETE FROM usage_calls', 'TRUNCATE usage_calls']) {
    await assert.rejects(x.db.query(sql.replace('usage_calls', `${x.db.schema}.usage_calls`)), /immutable/, sql);
  }
});

test('postgres: a settle that fails (the database lost mid-call) is not charged, and its hold is released once the database is back', async (t) => {
  const x = await nodes(t);
  if (!x) return;
  const cuttable = await relay(x.db.url);
  t.after(() => cuttable.close());
  const cut = await x.meter({ heartbeat: 50, holdTtl: 60_000 }, cuttable.url);
  const other = await x.meter();
  await topUp(x.ledger, 'ns.acme', 1_000);
  const held = await admitted(cut, meteredCall('acme', 'Call'));
  await assert.rejects(run(other, meteredCall('acme', 'Call')), blocked('insufficient credit'));
  await cuttable.cut();
  await assert.rejects(held.settle(true, 200), (err: unknown) => (err as { code?: number }).code === 503);
  await cuttable.restore();
  // the node's next heart-beat that reaches the database gives the hold back (it is alive: no other node would)
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { rows } = await x.db.query(`SELECT COUNT(*)::int AS n FROM ${x.db.schema}.usage_holds`);
    if ((rows[0] as { n: number }).n === 0) break;
    assert.ok(Date.now() < deadline, 'the hold of the failed settle was not released');
    await new Promise((r) => setTimeout(r, 50));
  }
  await run(other, meteredCall('acme', 'Call'));
  await other.flush();
  assert.equal(await x.ledger.balance(balanceAccount('ns.acme')), 0);
  const { rows } = await x.db.query(`SELECT COUNT(*)::int AS n FROM ${x.db.schema}.usage_calls WHERE charged > 0`);
  assert.equal((rows[0] as { n: number }).n, 1, 'only the second call is charged');
});

test('postgres: a node that goes silent inside a transaction (its host gone: the connection is not closed) holds its payer on the other nodes for seconds, not hours', { timeout: 60_000 }, async (t) => {
  const x = await nodes(t);
  if (!x) return;
  const cable = await relay(x.db.url);
  // the silent node's pool goes through the cable, which is frozen the moment its admission has locked the payer's row
  const db = await openPostgres({ url: otherPool(cable.url, 'silent'), prefix: x.db.prefix });
  // the timeout goes into the text of a statement: whole milliseconds only
  for (const bad of [0, -1, 1.5, Number.NaN, '5s; DROP TABLE x' as unknown as number]) assert.throws(() => new PgMeterEngine(db, { idleInTransaction: bad }), /idleInTransaction is a whole number of ms/);
  const silenced = silencedInTransaction(db, cable, /FOR UPDATE/);
  const silent = new Meter({ engine: new PgMeterEngine(silenced.db), ledger: x.ledger, pricing, payerOf, postEvery: 60_000 });
  await silent.start();
  t.after(async () => {
    await cable.close();
    await silent.stop().catch(() => undefined);
  });
  const other = await x.meter();
  await topUp(x.ledger, 'ns.acme', 5_000);
  const frozen = silenced.arm();
  // the silent node's admission never gets an answer: its host is gone
  const lost = Promise.resolve(silent.admit(meteredCall('acme', 'Call'))).catch((err: unknown) => err);
  await frozen;
  // the other node's calls of the same payer wait for the row the silent transaction locked until PostgreSQL ends
  // that session (idleInTransaction, 5 s); were it kept, they would fail with the pool's 503 after its 30 s query timeout
  const started = Date.now();
  await run(other, meteredCall('acme', 'Call'));
  t.diagnostic(`the other node's call waited ${Date.now() - started} ms for the silent node's lock`);
  // PostgreSQL ended the silent session: its admission is refused when its network is back, and it held nothing
  cable.thaw();
  const refused = await lost;
  assert.equal((refused as { code?: number }).code, 503, String(refused));
  const { rows } = await x.db.query(`SELECT COUNT(*)::int AS n FROM ${x.db.schema}.usage_holds`);
  assert.equal((rows[0] as { n: number }).n, 0);
  await other.flush();
  assert.equal(await x.ledger.balance(balanceAccount('ns.acme')), 4_000, 'only the other node\'s call is charged');
});
