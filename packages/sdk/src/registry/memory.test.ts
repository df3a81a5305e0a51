import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '../errors/errors.js';
import { MemoryRegistry } from './memory.js';
import type { ServiceRecord, WatchEvent, Watcher } from './registry.js';

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

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

const ids = (records: ServiceRecord[]): string[] => records.flatMap((r) => r.nodes.map((n) => n.id)).sort();

// The behaviour every registry shares runs from registryContract (contract.ts) against
// this one too (see nats-kv.test.ts); what is left here is the memory registry's own:
// its injected clock, fractional TTLs, the sweep, slow watchers.
describe('MemoryRegistry', () => {
  it('is named memory', () => {
    assert.equal(new MemoryRegistry().name, 'memory');
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

});
