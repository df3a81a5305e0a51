import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroError } from '../errors/errors.js';
import { FileRegistry } from '../registry/file.js';
import { MemoryRegistry } from '../registry/memory.js';
import type { NamespaceOptions, Registry, ServiceRecord, WatchOptions, Watcher } from '../registry/registry.js';
import { Selector } from './selector.js';
import type { SelectorOptions } from './selector.js';

function svc(name: string, version: string, nodeIds: string[]): ServiceRecord {
  return { name, version, endpoints: [], nodes: nodeIds.map((id) => ({ id, address: `tcp://127.0.0.1:${1000 + id.length}` })) };
}

/** A registry that counts what the selector asks of it, and can be told to fail. */
class Spy implements Registry {
  readonly name = 'spy';
  gets = 0;
  watches = 0;
  failGets = false;
  failWatch = false;
  constructor(readonly inner: Registry) {}
  register(s: ServiceRecord, o?: NamespaceOptions & { ttl?: number }): Promise<void> {
    return this.inner.register(s, o);
  }
  deregister(s: ServiceRecord, o?: NamespaceOptions): Promise<void> {
    return this.inner.deregister(s, o);
  }
  getService(name: string, o?: NamespaceOptions): Promise<ServiceRecord[]> {
    this.gets++;
    if (this.failGets) return Promise.reject(new Error('registry down'));
    return this.inner.getService(name, o);
  }
  listServices(o?: NamespaceOptions): Promise<ServiceRecord[]> {
    return this.inner.listServices(o);
  }
  watch(o?: WatchOptions): Watcher {
    this.watches++;
    if (this.failWatch) throw new Error('cannot watch');
    return this.inner.watch(o);
  }
}

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

function setup(t: TestContext, options: Partial<SelectorOptions> = {}, registry: Registry = new MemoryRegistry()) {
  const spy = new Spy(registry);
  const selector = new Selector({ registry: spy, ...options });
  t.after(async () => {
    await selector.close();
    await registry.close?.();
  });
  return { spy, selector, registry };
}

/** Polls until `check` holds; fails after `ms` (a deadline, not a timing assumption). */
async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 4000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function isError(code: number, detail: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.id, 'micro.selector');
    assert.equal(err.code, code);
    assert.match(err.detail, detail);
    return true;
  };
}

async function picks(selector: Selector, n: number, service = 'greeter'): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await selector.select(service)).id);
  return out;
}

describe('Selector', () => {
  it('throws NotFound for a service with no nodes, naming it and the namespace', async (t) => {
    const { selector } = setup(t);
    await assert.rejects(selector.select('nobody'), isError(404, /^service nobody not found in namespace micro$/));
    await assert.rejects(selector.select('nobody', { namespace: 'team' }), isError(404, /namespace team/));
    assert.throws(() => selector.selectSync('nobody'), isError(404, /not found/), 'the miss is cached too');
  });

  it('rejects a bad service name or namespace with a 400', async (t) => {
    const { selector } = setup(t);
    await assert.rejects(selector.select(''), isError(400, /service/));
    await assert.rejects(selector.select('x'.repeat(300)), isError(400, /service/));
    await assert.rejects(selector.select('greeter', { namespace: '' }), isError(400, /namespace/));
    assert.throws(() => new Selector({ registry: new MemoryRegistry(), strategy: 'fastest' as 'random' }), /unknown selector strategy/);
    assert.throws(() => new Selector({ registry: new MemoryRegistry(), breaker: { failureThreshold: 0 } }), /failureThreshold/);
  });

  it('goes round robin over every node in a steady order', async (t) => {
    const { selector, registry } = setup(t);
    await registry.register(svc('greeter', '1', ['a', 'b', 'c']));
    const order = await picks(selector, 9);
    assert.deepEqual(new Set(order.slice(0, 3)), new Set(['a', 'b', 'c']));
    for (let i = 3; i < 9; i++) assert.equal(order[i], order[i - 3], `pick ${i} repeats the cycle`);
  });

  it('answers from its cache: one registry read for many calls, concurrent misses shared', async (t) => {
    const { selector, registry, spy } = setup(t);
    await registry.register(svc('greeter', '1', ['a']));
    assert.equal(selector.selectSync('greeter'), undefined, 'nothing cached yet');
    const all = await Promise.all(Array.from({ length: 10 }, () => selector.select('greeter')));
    assert.ok(all.every((n) => n.id === 'a'));
    assert.equal(spy.gets, 1, 'concurrent misses share one read');
    for (let i = 0; i < 1000; i++) assert.equal(selector.selectSync('greeter')?.id, 'a');
    await picks(selector, 100);
    assert.equal(spy.gets, 1);
    assert.equal(spy.watches, 1, 'one watcher for the namespace');
  });

  it('hands out frozen nodes: a caller cannot change what others get', async (t) => {
    const { selector, registry } = setup(t);
    await registry.register(svc('greeter', '1', ['a']));
    const node = await selector.select('greeter');
    assert.ok(Object.isFrozen(node));
    assert.throws(() => {
      (node as { address: string }).address = 'tcp://evil:1';
    }, TypeError);
  });

  it('drops a cached service when the registry watch reports a change', async (t) => {
    const { selector, registry, spy } = setup(t);
    await registry.register(svc('greeter', '1', ['a']));
    await selector.select('greeter');
    await registry.register(svc('greeter', '1', ['b']));
    await eventually(() => selector.selectSync('greeter') === undefined, 'the create event invalidates the cache');
    assert.deepEqual(new Set(await picks(selector, 4)), new Set(['a', 'b']));
    assert.equal(spy.gets, 2);
    await registry.deregister(svc('greeter', '1', ['a']));
    await eventually(() => selector.selectSync('greeter') === undefined, 'the update event invalidates the cache');
    assert.deepEqual(await picks(selector, 3), ['b', 'b', 'b']);
    // another service's change does not touch this entry
    await registry.register(svc('other', '1', ['o']));
    await new Promise((r) => setImmediate(r));
    assert.equal(selector.selectSync('greeter')?.id, 'b');
  });

  it('re-reads after the cache max-age when no watcher can be had', async (t) => {
    const c = clock();
    const { selector, registry, spy } = setup(t, { now: c.now, cacheMaxAge: 5000 });
    spy.failWatch = true;
    await registry.register(svc('greeter', '1', ['a']));
    await selector.select('greeter');
    await registry.register(svc('greeter', '1', ['b']));
    c.advance(4999);
    assert.equal(selector.selectSync('greeter')?.id, 'a', 'still trusted');
    c.advance(1);
    assert.equal(selector.selectSync('greeter'), undefined, 'too old');
    assert.deepEqual(new Set(await picks(selector, 2)), new Set(['a', 'b']));
    assert.equal(spy.gets, 2);
  });

  it('keeps using the last known nodes while the registry fails', async (t) => {
    const c = clock();
    const { selector, registry, spy } = setup(t, { now: c.now, cacheMaxAge: 1000 });
    await registry.register(svc('greeter', '1', ['a']));
    await selector.select('greeter');
    spy.failGets = true;
    c.advance(2000);
    assert.equal((await selector.select('greeter')).id, 'a');
    assert.equal(spy.gets, 2);
    await assert.rejects(selector.select('unknown'), /registry down/, 'with nothing known, the failure shows');
  });

  it('forgets a namespace when its watcher is dropped, then watches again', async (t) => {
    const c = clock();
    const registry = new MemoryRegistry({ watchBuffer: 1 });
    const { selector, spy } = setup(t, { now: c.now }, registry);
    await registry.register(svc('greeter', '1', ['a']));
    await selector.select('greeter');
    // A burst in one tick: the first event goes to the waiting reader, the second fills the
    // one-event buffer, the third overflows it before the selector can read again.
    await Promise.all(['x', 'y', 'z'].map((name) => registry.register(svc(name, '1', [name]))));
    await eventually(() => selector.selectSync('greeter') === undefined, 'the cache is dropped with the watcher');
    c.advance(1000);
    assert.equal((await selector.select('greeter')).id, 'a');
    assert.equal(spy.watches, 2, 'a new watcher replaces the dropped one');
  });

  it('keeps namespaces and versions apart', async (t) => {
    const { selector, registry } = setup(t);
    await registry.register(svc('greeter', '1', ['v1']));
    await registry.register(svc('greeter', '2', ['v2']));
    await registry.register(svc('greeter', '1', ['team']), { namespace: 'team' });
    assert.equal((await selector.select('greeter', { namespace: 'team' })).id, 'team');
    assert.equal((await selector.select('greeter', { version: '2' })).id, 'v2');
    assert.equal((await selector.select('greeter', { version: '1' })).id, 'v1');
    assert.deepEqual(new Set(await picks(selector, 2)), new Set(['v1', 'v2']));
    await assert.rejects(selector.select('greeter', { version: '3' }), isError(404, /service greeter version 3 not found in namespace micro/));
  });

  it('skips excluded nodes and says so when every node was tried', async (t) => {
    const { selector, registry } = setup(t);
    await registry.register(svc('greeter', '1', ['a', 'b', 'c']));
    for (let i = 0; i < 6; i++) {
      const id = (await selector.select('greeter', { exclude: new Set(['a', 'c']) })).id;
      assert.equal(id, 'b');
    }
    await assert.rejects(
      selector.select('greeter', { exclude: new Set(['a', 'b', 'c']) }),
      isError(503, /every node of greeter has already been tried/),
    );
  });

  it('random picks only live, usable nodes and reaches each of them', async (t) => {
    const { selector, registry } = setup(t, { strategy: 'random', breaker: { failureThreshold: 1 } });
    await registry.register(svc('greeter', '1', ['a', 'b', 'c', 'd']));
    await registry.deregister(svc('greeter', '1', ['d']));
    selector.mark('c', false); // c's circuit is open
    const seen = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const id = (await selector.select('greeter', { exclude: new Set(['x']) })).id;
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['a', 'b'], 'never d (gone) nor c (open), and both a and b');
  });

  it('opens a node circuit after consecutive failures, half-opens for one trial, closes on success', async (t) => {
    const c = clock();
    const { selector, registry } = setup(t, { now: c.now, breaker: { failureThreshold: 3, resetTimeout: 1000 } });
    await registry.register(svc('greeter', '1', ['a', 'b']));
    await selector.select('greeter');

    // failures must be consecutive
    selector.mark('a', false);
    selector.mark('a', false);
    selector.mark('a', true);
    selector.mark('a', false);
    selector.mark('a', false);
    assert.equal(selector.breakerState('a'), 'closed');
    assert.deepEqual(new Set(await picks(selector, 2)), new Set(['a', 'b']));

    selector.mark('a', false);
    assert.equal(selector.breakerState('a'), 'open');
    assert.deepEqual(await picks(selector, 4), ['b', 'b', 'b', 'b']);
    c.advance(999);
    assert.deepEqual(await picks(selector, 2), ['b', 'b'], 'still open just before the reset timeout');

    c.advance(1);
    const afterReset = await picks(selector, 4);
    assert.equal(afterReset.filter((id) => id === 'a').length, 1, 'exactly one trial call goes to a');
    assert.equal(selector.breakerState('a'), 'half-open');
    selector.mark('a', false); // the trial failed
    assert.equal(selector.breakerState('a'), 'open');
    assert.deepEqual(await picks(selector, 3), ['b', 'b', 'b']);

    c.advance(1000);
    assert.ok((await picks(selector, 2)).includes('a'), 'another trial after another timeout');
    selector.mark('a', true); // the trial succeeded
    assert.equal(selector.breakerState('a'), 'closed');
    const later = await picks(selector, 4);
    assert.equal(later.filter((id) => id === 'a').length, 2, 'a is back in the rotation');
  });

  it('allows another trial when a half-open trial never reports back', async (t) => {
    const c = clock();
    const { selector, registry } = setup(t, { now: c.now, breaker: { failureThreshold: 1, resetTimeout: 100 } });
    await registry.register(svc('greeter', '1', ['a']));
    selector.mark('a', false);
    c.advance(100);
    assert.equal((await selector.select('greeter')).id, 'a'); // the trial, never marked
    await assert.rejects(selector.select('greeter'), isError(503, /circuit open/));
    c.advance(100);
    assert.equal((await selector.select('greeter')).id, 'a');
  });

  it('throws ServiceUnavailable when the circuit of every node is open', async (t) => {
    const { selector, registry } = setup(t, { breaker: { failureThreshold: 2 } });
    await registry.register(svc('greeter', '1', ['a', 'b']));
    for (const id of ['a', 'b']) for (let i = 0; i < 2; i++) selector.mark(id, false);
    await assert.rejects(selector.select('greeter'), isError(503, /^circuit open for every node of greeter$/));
    assert.throws(() => selector.selectSync('greeter'), isError(503, /circuit open/));
    await assert.rejects(selector.select('greeter', { exclude: new Set(['a']) }), isError(503, /circuit open/));
  });

  it('follows a FileRegistry shared with another process', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'micro-selector-'));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const dir = join(root, 'registry');
    const other = new FileRegistry({ dir });
    t.after(() => other.close());
    const { selector, registry } = setup(t, {}, new FileRegistry({ dir, pollInterval: 25 }));
    await registry.register(svc('greeter', '1', ['mine']));
    assert.equal((await selector.select('greeter')).id, 'mine');
    await other.register(svc('greeter', '1', ['theirs']));
    await eventually(async () => (await picks(selector, 2)).includes('theirs'), 'the other process’s node joins the rotation');
    await other.deregister(svc('greeter', '1', ['theirs']));
    await eventually(async () => (await picks(selector, 4)).every((id) => id === 'mine'), 'and leaves it');
  });

  it('stops its watchers and refuses to select after close()', async (t) => {
    const registry = new MemoryRegistry();
    t.after(() => registry.close());
    const selector = new Selector({ registry });
    await registry.register(svc('greeter', '1', ['a']));
    await selector.select('greeter');
    await selector.close();
    assert.equal(selector.selectSync('greeter'), undefined);
    await assert.rejects(selector.select('greeter'), isError(503, /closed/));
    await selector.close(); // idempotent
  });
});
