import assert from 'node:assert/strict';
import { test } from 'node:test';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { migrate, openPostgres } from '../postgres/index.js';
import { relay, testPostgres } from '../postgres/testing.js';
import { RUNTIME_MIGRATIONS } from './directory.js';
import { NodeLease } from './lease.js';

async function until<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('node leases: held, read by the others with the database clock, ended on close, taken by a second server with the same id', async (t) => {
  const db = await testPostgres(t, 'rtlease');
  if (!db) return;
  await migrate(db, 'runtime', RUNTIME_MIGRATIONS);
  // an injected clock: the others' leases are judged by time elapsed since a reading
  let now = 1_000_000;
  const clock = () => now;
  const a = await NodeLease.acquire(db, { node: 'node-a', address: 'tcp://a', leaseMs: 60_000, renewEvery: 60_000, clock });
  const b = await NodeLease.acquire(db, { node: 'node-b', address: 'tcp://b', leaseMs: 60_000, renewEvery: 60_000 });
  t.after(async () => {
    await a.close();
    await b.close();
  });
  assert.equal(a.holdsLease(), true);
  // a read the table when it took its lease: node-b came after, unknown until the next reading
  assert.equal(a.ended('node-b'), undefined);
  assert.equal(a.ended('node-a'), false, 'its own lease never counts as ended for itself');
  await (a as unknown as { read(): Promise<void> }).read();
  assert.equal(a.ended('node-b'), false);
  assert.equal(a.ended('nosuch'), undefined);
  // nothing but the clock moves: 59 s later still live, 61 s later too old a reading to judge
  now += 59_000;
  assert.equal(a.ended('node-b'), false);
  assert.equal(a.holdsLease(), true);
  now += 2_000;
  assert.equal(a.ended('node-b'), undefined);
  assert.equal(a.holdsLease(), false, 'not renewed for a whole lease by its own clock: it no longer counts on it');

  // a node that stops ends its lease at once (by the database's now())
  await b.close();
  await (a as unknown as { read(): Promise<void> }).read();
  assert.equal(a.ended('node-b'), true);
  assert.deepEqual((await a.nodes()).map((n) => [n.node, n.address, n.live]), [['node-a', 'tcp://a', true], ['node-b', 'tcp://b', false]]);

  // a second server with node-a's id takes the lease; the first one loses it at its next renewal and says so
  const lost: string[] = [];
  a.on('lost', (reason) => lost.push(reason));
  const twin = await NodeLease.acquire(db, { node: 'node-a', address: 'tcp://twin', leaseMs: 60_000, renewEvery: 60_000 });
  t.after(() => twin.close());
  await (a as unknown as { tick(): Promise<void> }).tick();
  assert.equal(a.holdsLease(), false);
  assert.match(lost[0] ?? '', /another server took this node's id/);
  assert.equal(twin.holdsLease(), true);
  assert.deepEqual((await twin.nodes()).find((n) => n.node === 'node-a')?.address, 'tcp://twin');
  // closing the first one does not end the twin's lease
  await a.close();
  assert.equal((await twin.nodes()).find((n) => n.node === 'node-a')?.live, true);
});

test('node leases: a node cut off from PostgreSQL loses its lease when it runs out, and holds it again when PostgreSQL returns', { timeout: 60_000 }, async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const prefix = testPrefix('rtleasecut');
  const cable = await relay(url);
  const direct = await openPostgres({ url, prefix, max: 2 });
  await migrate(direct, 'runtime', RUNTIME_MIGRATIONS);
  const cutDb = await openPostgres({ url: cable.url, prefix, max: 2, queryTimeout: 1_000 });
  const lease = await NodeLease.acquire(cutDb, { node: 'node-a', address: 'tcp://a', leaseMs: 1_500, renewEvery: 200 });
  const other = await NodeLease.acquire(direct, { node: 'node-b', address: 'tcp://b', leaseMs: 60_000, renewEvery: 200 });
  t.after(async () => {
    await lease.close();
    await other.close();
    await cable.close();
    await cutDb.close();
    await direct.query(`DROP SCHEMA IF EXISTS ${direct.schema} CASCADE`).catch(() => undefined);
    await direct.close();
  });
  const events: string[] = [];
  lease.on('lost', () => events.push('lost'));
  lease.on('held', () => events.push('held'));
  await until('node-b sees node-a live', 5_000, () => (other.ended('node-a') === false ? true : undefined));
  assert.equal(lease.holdsLease(), true);

  await cable.cut();
  // the holder knows without asking anyone: its own reckoning ends no later than the table's lease
  await until('the lost event', 10_000, () => (events.includes('lost') ? true : undefined));
  assert.equal(lease.holdsLease(), false);
  await until('node-b sees node-a ended', 10_000, () => (other.ended('node-a') === true ? true : undefined));
  // judged by the database's clock too
  assert.equal((await other.nodes()).find((n) => n.node === 'node-a')?.live, false);

  await cable.restore();
  await until('the held event', 20_000, () => (events.includes('held') ? true : undefined));
  assert.equal(lease.holdsLease(), true);
  assert.deepEqual(events, ['lost', 'held']);
  await until('node-b sees node-a live again', 5_000, () => (other.ended('node-a') === false ? true : undefined));
});

test('node leases: a deadline timer that fires before the deadline by the lease clock waits for the rest and then says lost', async (t) => {
  const db = await testPostgres(t, 'rtleaseearly');
  if (!db) return;
  await migrate(db, 'runtime', RUNTIME_MIGRATIONS);
  // a clock that stands still while the timers run: every firing is early by this clock
  let now = 5_000;
  const lease = await NodeLease.acquire(db, { node: 'node-a', address: 'tcp://a', leaseMs: 150, renewEvery: 60_000, clock: () => now });
  t.after(() => lease.close());
  const lost: string[] = [];
  lease.on('lost', (reason) => lost.push(reason));
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual(lost, [], 'not lost before its deadline by the lease clock');
  assert.equal(lease.holdsLease(), true);
  now += 150;
  await until('the lost event', 5_000, () => (lost.length > 0 ? true : undefined));
  assert.match(lost[0]!, /the lease ran out/);
  assert.equal(lease.holdsLease(), false);
});
