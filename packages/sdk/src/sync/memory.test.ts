import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLocks, MemorySync } from './memory.js';
import { syncContract, rejectsWith } from './contract.js';
import { SYNC_LIMITS } from './sync.js';

syncContract('memory', async () => {
  const impl = new MemorySync();
  return { impl, close: () => impl.close() };
});

test('the default namespace is micro', async () => {
  const s = new MemorySync();
  const l = await s.lock('x');
  assert.equal(l.namespace, 'micro');
  await s.close();
});

test('renew and release need the holder’s proof, not the public token', async () => {
  const engine = new MemoryLocks();
  const lease = await engine.acquire('x', { namespace: 'ns' });
  await rejectsWith(engine.renew('x', 'not-the-holder', { namespace: 'ns' }), 409, /not yours: it is held \(token 1\)/);
  await rejectsWith(engine.release('x', String(lease.token), { namespace: 'ns' }), 409, /not yours/);
  await rejectsWith(engine.release('x', '', { namespace: 'ns' }), 400, /holder/);
  await engine.release('x', lease.holder, { namespace: 'ns' });
  await engine.close();
});

test('a lease that passed more than a minute ago cannot be renewed', async (t) => {
  const engine = new MemoryLocks();
  const lease = await engine.acquire('x', { ttl: 10 });
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() + SYNC_LIMITS.renewGrace + 1_000 });
  await rejectsWith(engine.renew('x', lease.holder), 409, /the lease of lock x passed at .*: take the lock again/);
  t.mock.timers.reset();
  await engine.close();
});

test('a namespace holds at most 10,000 locks at once; passed leases do not count', async () => {
  const engine = new MemoryLocks();
  for (let i = 0; i < SYNC_LIMITS.locksPerNamespace; i++) await engine.acquire(`l${i}`, { namespace: 'full', ttl: i === 0 ? 10 : 60_000 });
  await new Promise((r) => setTimeout(r, 30));
  await engine.acquire('one-more', { namespace: 'full' }); // l0 passed: its place is free
  await rejectsWith(engine.acquire('too-many', { namespace: 'full' }), 429, /holds 10000 locks already/);
  await engine.acquire('elsewhere', { namespace: 'other' });
  await engine.close();
});

test('closing the sync resigns its elections and stops waiters with an error', async () => {
  const s = new MemorySync();
  const a = await s.elect('e', { id: 'a' });
  const b = await s.elect('e', { id: 'b' });
  assert.equal(a.isLeader, true);
  const held = await s.lock('w', { ttl: 60_000 });
  const waiting = s.lock('w', { wait: 30_000 });
  await s.close();
  assert.equal(a.isLeader, false);
  assert.equal(b.isLeader, false);
  await rejectsWith(waiting, 503, /closed/);
  await rejectsWith(held.release(), 503, /closed/);
});

test('a waiter gives up when its signal aborts', async () => {
  const s = new MemorySync();
  await s.lock('w', { ttl: 60_000 });
  const controller = new AbortController();
  const waiting = s.lock('w', { wait: 30_000, signal: controller.signal });
  controller.abort();
  await rejectsWith(waiting, 499, /stopped waiting/);
  await s.close();
});

test('a listener that throws does not stop the others', async () => {
  const s = new MemorySync();
  const a = await s.elect('e', { id: 'a' });
  const seen: boolean[] = [];
  a.onChange(() => {
    throw new Error('listener bug');
  });
  a.onChange((c) => seen.push(c.leader));
  await a.resign();
  assert.deepEqual(seen, [false]);
  await s.close();
});

test('a namespace may have at most 1000 callers waiting at once; others are not affected', async () => {
  const engine = new MemoryLocks();
  await engine.acquire('busy', { namespace: 'a', ttl: 60_000 });
  const waiting = Array.from({ length: SYNC_LIMITS.waitersPerNamespace }, () => engine.acquire('busy', { namespace: 'a', wait: 30_000 }).catch((err: unknown) => err));
  await rejectsWith(engine.acquire('busy', { namespace: 'a', wait: 30_000 }), 429, /1000 callers of namespace a wait for locks already/);
  await engine.acquire('busy', { namespace: 'b', ttl: 60_000 });
  const other = engine.acquire('busy', { namespace: 'b', wait: 30_000 }).catch((err: unknown) => err);
  await engine.close();
  for (const err of await Promise.all([...waiting, other])) assert.equal((err as { code: number }).code, 503);
});
