import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MicroError } from '../errors/errors.js';
import { createLogger } from '../logger/logger.js';
import { eventsContract } from './contract.js';
import { jsonDepth } from './checks.js';
import { EventsEngine, type EngineConsumer } from './engine.js';
import type { Delivery } from './events.js';
import { MemoryEvents, MemoryStorage } from './memory.js';

const silent = createLogger({ level: 'silent' });

eventsContract('memory', async () => {
  const events = new MemoryEvents({ sweepInterval: 0, logger: silent });
  return { impl: events, close: () => events.close(), sweep: () => events.sweep() };
});

async function rejectsWith(p: Promise<unknown>, code: number, detail?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MicroError, String(err));
    assert.equal(err.code, code, err.detail);
    if (detail) assert.match(err.detail, detail);
    return true;
  });
}

async function take(c: EngineConsumer): Promise<Delivery> {
  const r = await c.next();
  assert.equal(r.done, false);
  return r.value as Delivery;
}

test('the nesting depth of a JSON text skips what is inside strings', () => {
  assert.equal(jsonDepth('1'), 0);
  assert.equal(jsonDepth('[]'), 1);
  assert.equal(jsonDepth('{"a":[{"b":[]}]}'), 4);
  assert.equal(jsonDepth('["[[[[", "\\"[[", {"k]]": "{{"}]'), 2);
  assert.equal(jsonDepth('"\\\\"'), 0);
});

describe('events engine (memory)', () => {
  test('settling a delivery the consumer never had is a 404; a closed consumer refuses with a 410', async () => {
    const e = new MemoryEvents({ sweepInterval: 0 });
    await e.publish('t', 1);
    const c = await e.consume('t', { group: 'g', offset: 'earliest' });
    await rejectsWith(c.ack('1.7'), 404, /no delivery 1\.7/);
    await rejectsWith(c.ack('x'.repeat(10_000)), 404);
    await rejectsWith(c.nack('nope'), 404);
    const d = await take(c);
    await c.close();
    await rejectsWith(d.ack(), 410);
    await rejectsWith(c.ack('2.1'), 410, /closed/);
    await e.close();
  });

  test('a released delivery goes back without counting as an attempt', async () => {
    const e = new MemoryEvents({ sweepInterval: 0 });
    await e.publish('t', 'a');
    const c = await e.consume('t', { group: 'g', offset: 'earliest', maxRetries: 0 });
    const d = await take(c);
    await c.release(d.id);
    await rejectsWith(d.ack(), 409, /given back/);
    const again = await take(c);
    assert.equal(again.attempt, 1, 'still the first attempt');
    await again.ack();
    assert.deepEqual(await e.topics(), [{ name: 't', count: 1, bytes: 3, first: 1, last: 1, lastTimestamp: (await e.read('t')).events[0]?.timestamp }]);
    await e.close();
  });

  test('concurrent next() calls are served in turn, in offset order', async () => {
    const e = new MemoryEvents({ sweepInterval: 0 });
    const c = await e.consume('t', { group: 'g' });
    const pending = [c.next(), c.next(), c.next()];
    for (let i = 1; i <= 3; i++) await e.publish('t', i);
    const got = await Promise.all(pending);
    assert.deepEqual(got.map((r) => r.value?.event.offset), [1, 2, 3]);
    await e.close();
  });

  test('consumers joining a new group at once end up in one live group, whatever closes meanwhile', async () => {
    const e = new MemoryEvents({ sweepInterval: 0 });
    const joining = e.consume('t', { group: 'g' });
    const b = await e.consume('t', { group: 'g' });
    await b.close();
    const a = await joining;
    const waiting = a.next();
    await e.publish('t', 'x');
    assert.equal((await waiting).value?.event.payload, 'x');
    assert.deepEqual((await e.groups('t')).map((g) => g.members), [1]);
    await e.close();
  });

  test('closing the engine ends its consumers; later calls are a 503', async () => {
    const e = new MemoryEvents({ sweepInterval: 0 });
    const c = await e.consume('t', { group: 'g' });
    const waiting = c.next();
    await e.close();
    assert.equal((await waiting).done, true);
    assert.equal((await c.next()).done, true, 'and stays ended');
    await rejectsWith(e.publish('t', 1), 503, /closed/);
    await rejectsWith(e.consume('t', { group: 'g' }), 503);
    await e.close();
  });

  test('a failed commit fails the publish and the consumers with a 503; the engine goes on', async () => {
    const storage = new MemoryStorage();
    let failNext = false;
    const commit = storage.commit.bind(storage);
    storage.commit = () => {
      if (!failNext) return commit();
      failNext = false;
      return Promise.reject(new Error('disk I/O error'));
    };
    const e = new EventsEngine('flaky', storage, { sweepInterval: 0, logger: silent });
    const c = await e.consume('t', { group: 'g' });
    const waiting = c.next();
    failNext = true;
    await rejectsWith(e.publish('t', 1), 503, /disk I\/O error/);
    await rejectsWith(waiting, 503);
    const c2 = await e.consume('t', { group: 'g', offset: 'earliest' });
    await e.publish('t', 2);
    // memory storage keeps what a failed commit wrote: the group sees both
    assert.deepEqual([(await take(c2)).event.payload, (await take(c2)).event.payload], [1, 2]);
    await e.close();
  });

  test('retention by age follows the clock, by a periodic sweep', async () => {
    let now = 1_000_000;
    const e = new MemoryEvents({ now: () => now, sweepInterval: 10, retention: { maxAge: 60_000 } });
    await e.publish('t', 'old');
    now += 30_000;
    await e.publish('t', 'new');
    now += 40_000;
    for (let i = 0; i < 200 && (await e.read('t')).events.length > 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual((await e.read('t')).events.map((x) => x.payload), ['new']);
    await e.close();
  });

  test('engine-wide retention defaults apply per field under a topic policy', async () => {
    const e = new MemoryEvents({ sweepInterval: 0, retention: { maxEvents: 2 } });
    for (let i = 1; i <= 5; i++) await e.publish('t', i);
    for (let i = 1; i <= 5; i++) await e.publish('u', i);
    await e.setRetention('u', { maxEvents: 0 });
    await e.sweep();
    assert.deepEqual((await e.read('t')).events.map((x) => x.payload), [4, 5]);
    assert.equal((await e.read('u')).events.length, 5, '0 = no limit for this topic');
    assert.throws(() => new MemoryEvents({ retention: { maxEvents: -1 } }), /maxEvents/);
    await e.close();
  });

  test('property: whatever members do, every group sees every event, and committed ends at the last offset', async () => {
    type Op = { kind: 'publish' } | { kind: 'take'; member: number; settle: 'ack' | 'nack' | 'none' } | { kind: 'close'; member: number };
    const op = fc.oneof(
      fc.constant<Op>({ kind: 'publish' }),
      fc.record({ kind: fc.constant('take' as const), member: fc.nat(3), settle: fc.constantFrom('ack' as const, 'nack' as const, 'none' as const) }),
      fc.record({ kind: fc.constant('close' as const), member: fc.nat(3) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
        const e = new MemoryEvents({ sweepInterval: 0 });
        const seen = new Map<string, Set<number>>([['a', new Set()], ['b', new Set()]]);
        const groupOf = (i: number) => (i % 2 === 0 ? 'a' : 'b');
        const members: Array<EngineConsumer | undefined> = [];
        const open = async (i: number) => (members[i] ??= await e.consume('p', { group: groupOf(i), offset: 'earliest', maxRetries: 1000, ackWait: 60_000 }));
        let published = 0;
        const holding = new Map<number, Delivery[]>();
        for (const o of ops) {
          if (o.kind === 'publish') {
            await e.publish('p', ++published);
          } else if (o.kind === 'take') {
            const c = await open(o.member);
            // take only what is there now: a member never waits in this model
            const r = await Promise.race([c.next(), new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined)))]);
            if (!r) {
              await c.close();
              members[o.member] = undefined;
              holding.delete(o.member);
              continue;
            }
            const d = r.value as Delivery;
            seen.get(groupOf(o.member))?.add(d.event.offset);
            if (o.settle === 'ack') await d.ack();
            else if (o.settle === 'nack') await d.nack();
            else holding.set(o.member, [...(holding.get(o.member) ?? []), d]);
          } else if (o.kind === 'close') {
            await members[o.member]?.close();
            members[o.member] = undefined;
            holding.delete(o.member);
          }
        }
        for (const c of members) await c?.close();
        // drain: one fresh member per group acknowledges everything left
        for (const group of ['a', 'b']) {
          const c = await e.consume('p', { group, offset: 'earliest', maxRetries: 1000 });
          for (;;) {
            const [info] = (await e.groups('p')).filter((g) => g.name === group);
            if (!info || info.committed === published) break;
            const d = await take(c);
            seen.get(group)?.add(d.event.offset);
            await d.ack();
          }
          await c.close();
        }
        for (const group of ['a', 'b']) assert.equal(seen.get(group)?.size, published, `group ${group} saw every event`);
        if (published > 0) {
          const infos = await e.groups('p');
          for (const g of infos) assert.deepEqual([g.committed, g.pending, g.inflight], [published, 0, 0]);
        }
        await e.close();
      }),
      { numRuns: 60 },
    );
  });
});
