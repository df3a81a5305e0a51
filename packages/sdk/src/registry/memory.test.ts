import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '../errors/errors.js';
import { MemoryRegistry } from './memory.js';
import type { ServiceRecord, WatchEvent, Watcher } from './registry.js';
import { LIMITS } from './util.js';

function svc(name: string, version: string, nodeIds: string[], extra: Partial<ServiceRecord> = {}): ServiceRecord {
  return {
    name,
    version,
    endpoints: [{ name: 'Call', kind: 'unary', request: { type: 'object' }, response: { type: 'object' } }],
    nodes: nodeIds.map((id) => ({ id, address: `tcp://127.0.0.1:${1000 + id.length}` })),
    ...extra,
  };
}

/** The next event of a watcher, or a failure after `ms` (a deadline, not a timing assumption). */
async function nextEvent(watcher: Watcher, ms = 2000): Promise<WatchEvent> {
  const it = watcher[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no watch event within ${ms} ms`)), ms);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    assert.equal(r.done, false, 'watcher ended instead of yielding an event');
    return r.value as WatchEvent;
  } finally {
    clearTimeout(timer);
  }
}

function isBadRequest(field: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, 400);
    assert.match(err.detail, field);
    return true;
  };
}

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

const ids = (records: ServiceRecord[]): string[] => records.flatMap((r) => r.nodes.map((n) => n.id)).sort();

describe('MemoryRegistry', () => {
  it('is named memory', () => {
    assert.equal(new MemoryRegistry().name, 'memory');
  });

  it('registers, merges nodes by id and replaces the endpoints of the version', async () => {
    const r = new MemoryRegistry();
    await r.register(svc('greeter', '1.0.0', ['a']));
    await r.register(svc('greeter', '1.0.0', ['b'], { endpoints: [], metadata: { team: 'x' } }));
    await r.register(svc('greeter', '1.0.0', ['a'], { nodes: [{ id: 'a', address: 'tcp://10.0.0.1:1' }], endpoints: [] }));
    const [record, ...rest] = await r.getService('greeter');
    assert.equal(rest.length, 0);
    assert.ok(record);
    assert.equal(record.namespace, 'micro');
    assert.deepEqual(record.endpoints, []);
    assert.equal(record.metadata, undefined, 'metadata replaced by the last registration');
    assert.deepEqual(record.nodes, [
      { id: 'a', address: 'tcp://10.0.0.1:1' },
      { id: 'b', address: 'tcp://127.0.0.1:1001' },
    ]);
    await r.close();
  });

  it('keeps versions apart and lists every version of every service', async () => {
    const r = new MemoryRegistry();
    await r.register(svc('greeter', '1', ['a']));
    await r.register(svc('greeter', '2', ['b']));
    await r.register(svc('users', '1', ['c']));
    const greeter = await r.getService('greeter');
    assert.deepEqual(greeter.map((s) => s.version).sort(), ['1', '2']);
    const all = await r.listServices();
    assert.deepEqual(all.map((s) => `${s.name}@${s.version}`).sort(), ['greeter@1', 'greeter@2', 'users@1']);
    assert.deepEqual(await r.getService('nobody'), []);
    await r.close();
  });

  it('deregisters nodes and drops a version with none left', async () => {
    const r = new MemoryRegistry();
    await r.register(svc('greeter', '1', ['a', 'b']));
    await r.deregister(svc('greeter', '1', ['a']));
    assert.deepEqual(ids(await r.getService('greeter')), ['b']);
    await r.deregister(svc('greeter', '1', ['b']));
    assert.deepEqual(await r.getService('greeter'), []);
    assert.deepEqual(await r.listServices(), []);
    // deregistering what is not there is not an error
    await r.deregister(svc('greeter', '1', ['zzz']));
    await r.close();
  });

  it('keeps namespaces apart', async () => {
    const r = new MemoryRegistry();
    await r.register(svc('greeter', '1', ['a']), { namespace: 'team-a' });
    await r.register(svc('greeter', '1', ['b']), { namespace: 'team-b' });
    assert.deepEqual(ids(await r.getService('greeter', { namespace: 'team-a' })), ['a']);
    assert.deepEqual(ids(await r.getService('greeter', { namespace: 'team-b' })), ['b']);
    assert.deepEqual(await r.getService('greeter'), [], 'nothing in the default namespace');
    assert.equal((await r.listServices({ namespace: 'team-a' }))[0]?.namespace, 'team-a');
    await r.deregister(svc('greeter', '1', ['a']), { namespace: 'team-b' });
    assert.deepEqual(ids(await r.getService('greeter', { namespace: 'team-a' })), ['a'], 'deregister in another namespace has no effect');
    await r.close();
  });

  it('hands out deep copies: callers cannot change the registry', async () => {
    const r = new MemoryRegistry();
    const input = svc('greeter', '1', ['a'], { metadata: { k: 'v' } });
    await r.register(input);
    input.nodes[0]!.address = 'tcp://evil:1';
    (input.endpoints[0]!.request as Record<string, unknown>).type = 'string';
    const [first] = await r.getService('greeter');
    assert.ok(first);
    first.nodes[0]!.address = 'tcp://changed:1';
    first.nodes.push({ id: 'x', address: 'tcp://x:1' });
    first.metadata!.k = 'changed';
    (first.endpoints[0]!.request as Record<string, unknown>).type = 'number';
    const [again] = await r.getService('greeter');
    assert.deepEqual(again?.nodes, [{ id: 'a', address: 'tcp://127.0.0.1:1001' }]);
    assert.deepEqual(again?.metadata, { k: 'v' });
    assert.deepEqual(again?.endpoints[0]?.request, { type: 'object' });
    const listed = await r.listServices();
    listed[0]!.nodes.length = 0;
    assert.equal((await r.listServices())[0]?.nodes.length, 1);
    await r.close();
  });

  it('expires nodes after their TTL unless heart-beats refresh it (injected clock)', async () => {
    const c = clock();
    const r = new MemoryRegistry({ now: c.now });
    await r.register(svc('greeter', '1', ['a', 'b']), { ttl: 1 });
    await r.register(svc('greeter', '1', ['c'])); // no TTL: never expires
    c.advance(900);
    await r.register(svc('greeter', '1', ['a']), { ttl: 1 }); // heart-beat: a now expires at 1900
    c.advance(500); // t = 1400: b is gone, a is alive
    assert.deepEqual(ids(await r.getService('greeter')), ['a', 'c']);
    c.advance(600); // t = 2000: a is gone too
    assert.deepEqual(ids(await r.getService('greeter')), ['c']);
    c.advance(1_000_000);
    assert.deepEqual(ids(await r.listServices()), ['c']);
    await r.close();
  });

  it('accepts fractional TTLs and sweeps expired nodes with a delete event, even with no reader', async () => {
    const r = new MemoryRegistry({ sweepInterval: 20 });
    const w = r.watch();
    await r.register(svc('greeter', '1', ['a']), { ttl: 0.1 });
    assert.equal((await nextEvent(w)).type, 'create');
    const gone = await nextEvent(w, 3000);
    assert.equal(gone.type, 'delete');
    assert.deepEqual(ids([gone.service]), ['a']);
    assert.deepEqual(await r.getService('greeter'), []);
    await r.close();
  });

  it('keeps a heart-beating node alive across many TTLs while the sweep runs', async () => {
    const c = clock();
    const r = new MemoryRegistry({ now: c.now });
    for (let i = 0; i < 10; i++) {
      await r.register(svc('greeter', '1', ['a']), { ttl: 0.3 });
      c.advance(200);
      r.sweep();
      assert.deepEqual(ids(await r.getService('greeter')), ['a'], `alive after heart-beat ${i}`);
    }
    c.advance(200);
    r.sweep();
    assert.deepEqual(await r.getService('greeter'), []);
    await r.close();
  });

  it('sends create, update and delete events, and none for a plain heart-beat', async () => {
    const r = new MemoryRegistry();
    const w = r.watch();
    await r.register(svc('greeter', '1', ['a']), { ttl: 30 });
    let e = await nextEvent(w);
    assert.equal(e.type, 'create');
    assert.equal(e.namespace, 'micro');
    assert.equal(e.service.name, 'greeter');
    await r.register(svc('greeter', '1', ['a']), { ttl: 30 }); // heart-beat: no event
    await r.register(svc('greeter', '1', ['b']), { ttl: 30 });
    e = await nextEvent(w);
    assert.equal(e.type, 'update');
    assert.deepEqual(ids([e.service]), ['a', 'b'], 'an update carries every node of the version');
    await r.register(svc('greeter', '1', ['b'], { description: 'new' }), { ttl: 30 });
    e = await nextEvent(w);
    assert.equal(e.type, 'update');
    assert.equal(e.service.description, 'new');
    await r.deregister(svc('greeter', '1', ['a']));
    e = await nextEvent(w);
    assert.equal(e.type, 'update');
    assert.deepEqual(ids([e.service]), ['b']);
    await r.deregister(svc('greeter', '1', ['b']));
    e = await nextEvent(w);
    assert.equal(e.type, 'delete');
    assert.deepEqual(ids([e.service]), ['b'], 'a delete carries the nodes that went');
    w.stop();
    await r.close();
  });

  it('filters events by namespace and service', async () => {
    const r = new MemoryRegistry();
    const users = r.watch({ service: 'users' });
    const other = r.watch({ namespace: 'other' });
    await r.register(svc('greeter', '1', ['a']));
    await r.register(svc('users', '1', ['b']));
    await r.register(svc('greeter', '1', ['c']), { namespace: 'other' });
    const u = await nextEvent(users);
    assert.equal(u.service.name, 'users');
    assert.equal(u.namespace, 'micro');
    const o = await nextEvent(other);
    assert.equal(o.namespace, 'other');
    assert.deepEqual(ids([o.service]), ['c']);
    users.stop();
    other.stop();
    await r.close();
  });

  it('gives each watcher its own copy of an event', async () => {
    const r = new MemoryRegistry();
    const a = r.watch();
    const b = r.watch();
    await r.register(svc('greeter', '1', ['a']));
    const ea = await nextEvent(a);
    ea.service.nodes.length = 0;
    const eb = await nextEvent(b);
    assert.equal(eb.service.nodes.length, 1);
    assert.equal((await r.getService('greeter'))[0]?.nodes.length, 1);
    await r.close();
  });

  it('stops a watcher with stop() and when a for-await loop is left', async () => {
    const r = new MemoryRegistry();
    const w = r.watch();
    const pending = w[Symbol.asyncIterator]().next();
    w.stop();
    assert.deepEqual(await pending, { value: undefined, done: true });
    // a stopped watcher gets no more events
    await r.register(svc('greeter', '1', ['a']));
    assert.equal((await w[Symbol.asyncIterator]().next()).done, true);

    const looped = r.watch();
    await r.register(svc('greeter', '1', ['b']));
    let seen = 0;
    for await (const e of looped) {
      seen++;
      assert.equal(e.type, 'update');
      break;
    }
    assert.equal(seen, 1);
    await r.register(svc('greeter', '1', ['c']));
    assert.equal((await looped[Symbol.asyncIterator]().next()).done, true, 'break stopped the watcher');
    await r.close();
  });

  it('drops a watcher that falls too far behind, with an error from its iterator', async () => {
    const r = new MemoryRegistry({ watchBuffer: 5 });
    const slow = r.watch();
    const fast = r.watch();
    const got: string[] = [];
    const reading = (async () => {
      for await (const e of fast) {
        got.push(e.service.name);
        if (got.length === 10) break;
      }
    })();
    for (let i = 0; i < 10; i++) await r.register(svc(`s${i}`, '1', ['a']));
    await reading;
    assert.equal(got.length, 10, 'a reader that keeps up gets every event');
    await assert.rejects(
      (async () => {
        for await (const _e of slow) {
          /* drain */
        }
      })(),
      (err: unknown) => err instanceof MicroError && /fell more than 5 events behind/.test(err.detail),
    );
    await r.close();
  });

  it('ends watchers and refuses calls after close()', async () => {
    const r = new MemoryRegistry();
    const w = r.watch();
    const pending = w[Symbol.asyncIterator]().next();
    await r.register(svc('greeter', '1', ['a']), { ttl: 10 });
    await pending;
    await r.close();
    assert.equal((await w[Symbol.asyncIterator]().next()).done, true);
    await assert.rejects(r.getService('greeter'), (err: unknown) => err instanceof MicroError && err.code === 503);
    await r.close(); // idempotent
  });

  it('rejects bad input with a 400 naming the field', async () => {
    const r = new MemoryRegistry();
    const long = 'x'.repeat(LIMITS.name + 1);
    await assert.rejects(r.register(svc('', '1', ['a'])), isBadRequest(/service\.name/));
    await assert.rejects(r.register(svc(long, '1', ['a'])), isBadRequest(/service\.name must be at most 255/));
    await assert.rejects(r.register(svc('greeter', '', ['a'])), isBadRequest(/service\.version/));
    await assert.rejects(r.register(svc('greeter', '1', [''])), isBadRequest(/service\.nodes\[0\]\.id/));
    await assert.rejects(r.register(svc('greeter', '1', [long])), isBadRequest(/service\.nodes\[0\]\.id/));
    await assert.rejects(
      r.register(svc('greeter', '1', [], { nodes: [{ id: 'a', address: '' }] })),
      isBadRequest(/service\.nodes\[0\]\.address/),
    );
    await assert.rejects(r.register(svc('greeter', '1', [])), isBadRequest(/service\.nodes must be a non-empty array/));
    await assert.rejects(r.register(svc('greeter', '1', ['a', 'a'])), isBadRequest(/listed twice/));
    await assert.rejects(r.register(svc('bad\u0000name', '1', ['a'])), isBadRequest(/control characters/));
    await assert.rejects(
      r.register(svc('greeter', '1', ['a'], { metadata: { k: 1 as unknown as string } })),
      isBadRequest(/service\.metadata\.k must be a string/),
    );
    await assert.rejects(
      r.register(svc('greeter', '1', ['a'], { endpoints: [{ name: 'X', kind: 'sideways' as 'unary', request: {}, response: {} }] })),
      isBadRequest(/service\.endpoints\[0\]\.kind/),
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await assert.rejects(
      r.register(svc('greeter', '1', ['a'], { endpoints: [{ name: 'X', kind: 'unary', request: cyclic, response: {} }] })),
      isBadRequest(/service\.endpoints\[0\]\.request must be JSON-serialisable/),
    );
    await assert.rejects(r.register(null as unknown as ServiceRecord), isBadRequest(/service must be an object/));
    await assert.rejects(r.register(svc('greeter', '1', ['a']), { ttl: -1 }), isBadRequest(/ttl/));
    await assert.rejects(r.register(svc('greeter', '1', ['a']), { ttl: Number.NaN }), isBadRequest(/ttl/));
    await assert.rejects(r.register(svc('greeter', '1', ['a']), { namespace: '' }), isBadRequest(/namespace/));
    await assert.rejects(r.getService(''), isBadRequest(/name/));
    await assert.rejects(r.deregister(svc('greeter', '', ['a'])), isBadRequest(/service\.version/));
    assert.throws(() => r.watch({ namespace: long }), isBadRequest(/namespace/));
    assert.deepEqual(await r.listServices(), [], 'nothing was stored by the failed calls');
    await r.close();
  });
});
