import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Sealer } from '../auth/crypto.js';
import { migrate } from '../postgres/index.js';
import { testPostgres } from '../postgres/testing.js';
import { RUNTIME_MIGRATIONS } from './directory.js';
import { NodeLease } from './lease.js';
import { plan, PostgresPlacement, type DesiredService, type Slot, type SlotChange } from './placement.js';
import { PLACEMENT_SPEC } from './testing.js';

const svc = (name: string, instances: number, generation = 1): DesiredService => ({ namespace: 'micro', name, instances, generation });
const slot = (name: string, n: number, node: string, more: Partial<Slot> = {}): Slot => ({ namespace: 'micro', name, slot: n, node, next: null, nextReady: false, avoid: [], ...more });

/** Applies a plan's changes to a list of slots, as PostgresPlacement.schedule writes them. */
function apply(slots: Slot[], changes: SlotChange[]): Slot[] {
  const byKey = new Map(slots.map((s) => [`${s.namespace}/${s.name}#${s.slot}`, s]));
  for (const c of changes) {
    if (c.kind === 'drop') byKey.delete(`${c.namespace}/${c.name}#${c.slot}`);
    else byKey.set(`${c.slot.namespace}/${c.slot.name}#${c.slot.slot}`, c.slot);
  }
  return [...byKey.values()].sort((a, b) => a.name.localeCompare(b.name) || a.slot - b.slot);
}

/** Runs passes until nothing changes; each pass, every hand-over whose instance is in `readyOn` is made ready first. */
function settle(desired: DesiredService[], slots: Slot[], live: string[], passes = 50): Slot[] {
  let current = slots;
  for (let i = 0; i < passes; i++) {
    current = current.map((s) => (s.next !== null && live.includes(s.next) ? { ...s, nextReady: true } : s));
    const changes = plan(desired, current, live);
    if (changes.length === 0) return current;
    current = apply(current, changes);
  }
  throw new Error('the placement does not settle');
}

const count = (slots: Slot[], node: string, name?: string) => slots.filter((s) => s.node === node && (name === undefined || s.name === name)).length;

test('placement: instances of one service spread over the nodes, the first on the node that built it', () => {
  const changes = plan([svc('demo', 2)], [], ['b', 'a'], { prefer: { node: 'b', services: new Set(['micro/demo']) } });
  const slots = apply([], changes);
  assert.deepEqual(
    slots.map((s) => [s.slot, s.node]),
    [
      [0, 'b'],
      [1, 'a'],
    ],
  );
  // three instances on three nodes: one each; five: two, two, one
  assert.deepEqual(new Set(apply([], plan([svc('x', 3)], [], ['a', 'b', 'c'])).map((s) => s.node)), new Set(['a', 'b', 'c']));
  const five = apply([], plan([svc('x', 5)], [], ['a', 'b', 'c']));
  assert.deepEqual(['a', 'b', 'c'].map((n) => count(five, n)).sort(), [1, 2, 2]);
  // nothing to do on a second pass
  assert.deepEqual(plan([svc('x', 5)], five, ['a', 'b', 'c']), []);
});

test('placement: the slots of a node that is gone move at once to the nodes that remain, spread', () => {
  const before = apply([], plan([svc('one', 1), svc('two', 2), svc('three', 3)], [], ['a', 'b', 'c']));
  const onC = before.filter((s) => s.node === 'c');
  assert.ok(onC.length > 0);
  const after = apply(before, plan([svc('one', 1), svc('two', 2), svc('three', 3)], before, ['a', 'b']));
  assert.equal(after.filter((s) => s.node === 'c').length, 0, 'nothing stays on the dead node');
  assert.equal(after.length, 6, 'every instance still placed');
  for (const s of onC) {
    const now = after.find((x) => x.name === s.name && x.slot === s.slot);
    assert.ok(now && now.node !== 'c' && now.next !== 'c', 'moved at once, not handed over');
  }
  // a service of two instances runs on both survivors
  assert.deepEqual(new Set(after.filter((s) => s.name === 'two').map((s) => s.node)), new Set(['a', 'b']));
  // no live node at all: nothing moves, nothing is lost
  assert.deepEqual(apply(before, plan([svc('one', 1)], before, [])).filter((s) => s.name === 'one'), before.filter((s) => s.name === 'one'));
});

test('placement: a node that returns is given instances back by hand-overs, one per service at a time, never more than two instances a slot', () => {
  const desired = [svc('one', 1), svc('two', 2), svc('four', 4), svc('five', 1)];
  const onTwo = settle(desired, [], ['a', 'b']);
  assert.deepEqual([count(onTwo, 'a'), count(onTwo, 'b')].sort(), [4, 4]);
  // c returns: the first pass starts hand-overs, it moves nothing by itself
  const first = apply(onTwo, plan(desired, onTwo, ['a', 'b', 'c']));
  assert.ok(first.some((s) => s.next === 'c'), 'c is handed instances');
  assert.equal(count(first, 'c'), 0, 'a slot moves only once its new instance is ready');
  for (const name of ['one', 'two', 'four', 'five']) assert.ok(first.filter((s) => s.name === name && s.next !== null).length <= 1, `one hand-over of ${name} at a time`);
  // a hand-over not yet ready stays as it is
  assert.deepEqual(plan(desired, first, ['a', 'b', 'c']).filter((c) => c.kind === 'put' && c.slot.next === null && c.slot.node === 'c'), []);
  const settled = settle(desired, onTwo, ['a', 'b', 'c']);
  const loads = ['a', 'b', 'c'].map((n) => count(settled, n));
  assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, `even: ${loads.join(',')}`);
  assert.deepEqual(new Set(settled.filter((s) => s.name === 'four').map((s) => s.node)), new Set(['a', 'b', 'c']), 'four spreads over the three');
  assert.equal(settled.length, 8);
});

test('placement: a hand-over to a node that dies is called off; a node that refused a slot is not given it again; extra slots go', () => {
  const handing = [slot('demo', 0, 'a', { next: 'b' })];
  const off = apply(handing, plan([svc('demo', 1)], handing, ['a']));
  assert.deepEqual(off.map((s) => [s.node, s.next]), [['a', null]]);
  // b could not build demo: its slot goes to a, and the hand-back never offers it to b again
  const refused = [slot('demo', 0, 'b', { avoid: ['b'] }), slot('demo', 1, 'a')];
  const moved = settle([svc('demo', 2)], refused, ['a', 'b']);
  assert.deepEqual(
    moved.map((s) => s.node),
    ['a', 'a'],
  );
  // every live node refused it: it stays where it was rather than on nobody
  const nowhere = [slot('demo', 0, 'a', { avoid: ['a', 'b'] })];
  assert.deepEqual(apply(nowhere, plan([svc('demo', 1)], nowhere, ['a', 'b'])).map((s) => s.node), ['a']);
  // fewer instances asked (or the service gone): the extra slots are dropped
  const three = [slot('demo', 0, 'a'), slot('demo', 1, 'b'), slot('demo', 2, 'a')];
  assert.deepEqual(plan([svc('demo', 2)], three, ['a', 'b']), [{ kind: 'drop', namespace: 'micro', name: 'demo', slot: 2 }]);
  assert.equal(plan([], three, ['a', 'b']).filter((c) => c.kind === 'drop').length, 3);
});

test('placement: hostile names and many services settle without a loop', () => {
  const desired = Array.from({ length: 200 }, (_, i) => svc(`s-${i}' OR 1=1; --`, (i % 5) + 1));
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  const settled = settle(desired, [], nodes, 200);
  assert.equal(settled.length, desired.reduce((n, d) => n + d.instances, 0));
  const loads = nodes.map((n) => count(settled, n));
  assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, loads.join(','));
});

const SPEC = PLACEMENT_SPEC;

test('placement in PostgreSQL: create places by the leases, env sealed, updates count generations, kill cascades, one name once', async (t) => {
  const db = await testPostgres(t, 'rtplace');
  if (!db) return;
  await migrate(db, 'runtime', RUNTIME_MIGRATIONS);
  const leases = await Promise.all(['node-a', 'node-b'].map((node) => NodeLease.acquire(db, { node, address: '', leaseMs: 60_000, renewEvery: 60_000 })));
  t.after(() => Promise.all(leases.map((l) => l.close())));
  const placement = new PostgresPlacement(db, new Sealer('placement-test-key-0123456789abcdef'));

  assert.equal(await placement.create('tenant1', 'demo', SPEC, 2, 'node-b'), true);
  assert.equal(await placement.create('tenant1', 'demo', SPEC, 1, 'node-a'), false, 'a name is taken once');
  const onB = await placement.assigned('node-b');
  assert.deepEqual(onB.map((a) => [a.namespace, a.name, a.slots.map((s) => s.slot), a.generation]), [['tenant1', 'demo', [0], 1]]);
  assert.deepEqual(onB[0]?.spec.env, SPEC.env);
  assert.deepEqual((await placement.assigned('node-a'))[0]?.slots.map((s) => s.slot), [1]);
  // the env is sealed in the table: no --env value in the clear
  const raw = await db.query<{ spec: unknown }>(`SELECT spec FROM ${db.schema}.runtime_desired`);
  assert.doesNotMatch(JSON.stringify(raw.rows), /s3cr3t-value|GREETING/);
  // a sealed env copied to another service's row does not open there
  await placement.create('tenant2', 'demo', { ...SPEC, env: {} }, 1, 'node-a');
  await db.query(`UPDATE ${db.schema}.runtime_desired SET spec = (SELECT spec FROM ${db.schema}.runtime_desired WHERE namespace = 'tenant1') WHERE namespace = 'tenant2'`);
  await assert.rejects(placement.get('tenant2', 'demo'));
  assert.deepEqual((await placement.assigned('node-a')).map((a) => a.namespace), ['tenant1'], 'a row that does not open is left out');
  await placement.remove('tenant2', 'demo');

  assert.equal(await placement.update('tenant1', 'demo', { ...SPEC, build: { ...SPEC.build, id: 'b2' } }), 2);
  assert.equal((await placement.get('tenant1', 'demo'))?.spec.build.id, 'b2');
  assert.equal(await placement.update('tenant1', 'nosuch', SPEC), undefined);

  // node-a refuses its slot: it goes to node-b, and node-a is no longer given it
  await placement.refuse('tenant1', 'demo', [1], 'node-a');
  assert.deepEqual(await placement.assigned('node-a'), []);
  await placement.schedule();
  assert.deepEqual((await placement.assigned('node-b'))[0]?.slots.map((s) => s.slot), [0, 1]);

  assert.equal(await placement.remove('tenant1', 'demo'), true);
  assert.equal(await placement.remove('tenant1', 'demo'), false);
  const left = await db.query(`SELECT * FROM ${db.schema}.runtime_slots`);
  assert.equal(left.rowCount, 0, 'the slots go with the service');
});

test('placement in PostgreSQL: a node whose lease ends loses its slots at the next pass; passes of several nodes at once agree', async (t) => {
  const db = await testPostgres(t, 'rtplace2');
  if (!db) return;
  await migrate(db, 'runtime', RUNTIME_MIGRATIONS);
  const [a, b, c] = await Promise.all(['node-a', 'node-b', 'node-c'].map((node) => NodeLease.acquire(db, { node, address: '', leaseMs: 60_000, renewEvery: 60_000 })));
  t.after(() => Promise.all([a, b, c].map((l) => l?.close())));
  const placement = new PostgresPlacement(db, new Sealer('placement-test-key-0123456789abcdef'));
  for (const [i, n] of [1, 2, 3].entries()) await placement.create('micro', `svc${i}`, SPEC, n, 'node-c');
  // many passes at once (as every node runs them): one at a time, the same outcome
  await Promise.all(Array.from({ length: 8 }, () => placement.schedule()));
  const slotsOf = async () => (await db.query<{ node: string; next_node: string | null }>(`SELECT node, next_node FROM ${db.schema}.runtime_slots`)).rows;
  assert.equal((await slotsOf()).length, 6);
  await c?.close();
  await placement.schedule();
  const after = await slotsOf();
  assert.equal(after.length, 6);
  assert.ok(after.every((s) => s.node !== 'node-c'), JSON.stringify(after));
});
