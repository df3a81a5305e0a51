import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '../errors/errors.js';
import type { Registry, ServiceRecord, WatchEvent, Watcher } from './registry.js';
import { LIMITS } from './util.js';

/**
 * The behaviour every Registry must have, as node:test cases, with real time only (an
 * engine on a server cannot take an injected clock): run it against each implementation.
 * `make` gives a new, empty registry; `close` ends it and removes what it made.
 */
export function registryContract(name: string, make: () => Promise<{ registry: Registry; close(): Promise<void> }>): void {
  describe(`registry contract: ${name}`, () => {
    async function withRegistry(fn: (r: Registry) => Promise<void>): Promise<void> {
      const { registry, close } = await make();
      try {
        await fn(registry);
      } finally {
        await close();
      }
    }

    test('registers, merges nodes by id and replaces the endpoints of the version', () =>
      withRegistry(async (r) => {
        await r.register(svc('greeter', '1.0.0', ['a']));
        await r.register(svc('greeter', '1.0.0', ['b'], { endpoints: [], metadata: { team: 'x' } }));
        await r.register(svc('greeter', '1.0.0', ['a'], { nodes: [{ id: 'a', address: 'tcp://10.0.0.1:1' }], endpoints: [] }));
        const [record, ...rest] = await r.getService('greeter');
        assert.equal(rest.length, 0);
        assert.equal(record?.namespace, 'micro');
        assert.deepEqual(record?.endpoints, []);
        assert.equal(record?.metadata, undefined, 'metadata replaced by the last registration');
        assert.deepEqual(record?.nodes, [
          { id: 'a', address: 'tcp://10.0.0.1:1' },
          { id: 'b', address: 'tcp://127.0.0.1:1001' },
        ]);
      }));

    test('keeps what an endpoint says of itself (the gateway lets GET reach read-only ones only)', () =>
      withRegistry(async (r) => {
        const endpoints = [
          { name: 'Read', kind: 'unary' as const, request: { type: 'object' }, response: { type: 'object' }, idempotent: true, readonly: true, description: 'a read' },
          { name: 'Write', kind: 'unary' as const, request: { type: 'object' }, response: { type: 'object' }, readonly: false },
          { name: 'Buy', kind: 'unary' as const, request: { type: 'object' }, response: { type: 'object' }, price: 100, freeQuota: 0 },
        ];
        await r.register(svc('books', '1.0.0', ['a'], { endpoints }));
        assert.deepEqual((await r.getService('books'))[0]?.endpoints, endpoints);
        await assert.rejects(r.register(svc('books', '1.0.0', ['a'], { endpoints: [{ ...endpoints[1], readonly: 'yes' } as never] })), isBadRequest(/service\.endpoints\[0\]\.readonly must be a boolean/));
        // prices (units, free calls a month): whole, 0 to 10^15 and 10^12
        for (const [extra, detail] of [
          [{ price: -1 }, /service\.endpoints\[0\]\.price must be a whole number of units/],
          [{ price: 1.5 }, /price must be/],
          [{ price: 1e15 + 1 }, /price must be/],
          [{ price: '100' }, /price must be .*not "100"/],
          [{ freeQuota: -1 }, /service\.endpoints\[0\]\.freeQuota must be a whole number of calls/],
          [{ freeQuota: 2 ** 60 }, /freeQuota must be/],
        ] as const) {
          await assert.rejects(r.register(svc('books', '1.0.0', ['a'], { endpoints: [{ ...endpoints[2], ...extra } as never] })), isBadRequest(detail), JSON.stringify(extra));
        }
        assert.deepEqual((await r.getService('books'))[0]?.endpoints, endpoints, 'refused registrations change nothing');
      }));

    test('keeps versions apart and lists every version of every service', () =>
      withRegistry(async (r) => {
        await r.register(svc('greeter', '1', ['a']));
        await r.register(svc('greeter', '2', ['b']));
        await r.register(svc('users', '1', ['c']));
        assert.deepEqual((await r.getService('greeter')).map((s) => s.version).sort(), ['1', '2']);
        assert.deepEqual((await r.listServices()).map((s) => `${s.name}@${s.version}`).sort(), ['greeter@1', 'greeter@2', 'users@1']);
        assert.deepEqual(await r.getService('nobody'), []);
      }));

    test('deregisters nodes and drops a version with none left', () =>
      withRegistry(async (r) => {
        await r.register(svc('greeter', '1', ['a', 'b']));
        await r.deregister(svc('greeter', '1', ['a']));
        assert.deepEqual(ids(await r.getService('greeter')), ['b']);
        await r.deregister(svc('greeter', '1', ['b']));
        assert.deepEqual(await r.getService('greeter'), []);
        assert.deepEqual(await r.listServices(), []);
        await r.deregister(svc('greeter', '1', ['zzz'])); // not there: no error
      }));

    test('keeps namespaces apart', () =>
      withRegistry(async (r) => {
        await r.register(svc('greeter', '1', ['a']), { namespace: 'team-a' });
        await r.register(svc('greeter', '1', ['b']), { namespace: 'team-b' });
        assert.deepEqual(ids(await r.getService('greeter', { namespace: 'team-a' })), ['a']);
        assert.deepEqual(ids(await r.getService('greeter', { namespace: 'team-b' })), ['b']);
        assert.deepEqual(await r.getService('greeter'), [], 'nothing in the default namespace');
        assert.equal((await r.listServices({ namespace: 'team-a' }))[0]?.namespace, 'team-a');
        await r.deregister(svc('greeter', '1', ['a']), { namespace: 'team-b' });
        assert.deepEqual(ids(await r.getService('greeter', { namespace: 'team-a' })), ['a'], 'deregister in another namespace has no effect');
      }));

    test('names with dots, wildcards, spaces, slashes and unicode, and names as long as allowed, stay apart and read back', () =>
      withRegistry(async (r) => {
        const names = ['a.b', 'a', 'a.*', 'a.>', '*', '>', 'with space', 'a/b', '=41', 'A', '..', 'ü', 'x'.repeat(LIMITS.name), 'Ü'.repeat(LIMITS.name), `${'y'.repeat(200)}.`];
        for (const [i, n] of names.entries()) {
          await r.register(svc(n, n, [n], { nodes: [{ id: n, address: `tcp://h:${i + 1}` }] }), { namespace: n });
        }
        for (const [i, n] of names.entries()) {
          const records = await r.getService(n, { namespace: n });
          assert.equal(records.length, 1, `one record for ${JSON.stringify(n.slice(0, 20))}`);
          assert.equal(records[0]?.name, n);
          assert.equal(records[0]?.version, n);
          assert.deepEqual(records[0]?.nodes, [{ id: n, address: `tcp://h:${i + 1}` }]);
          assert.equal((await r.listServices({ namespace: n })).length, 1, 'a wildcard-like namespace lists only itself');
        }
      }));

    test('hands out deep copies: callers cannot change the registry', () =>
      withRegistry(async (r) => {
        const input = svc('greeter', '1', ['a'], { metadata: { k: 'v' } });
        await r.register(input);
        input.nodes[0]!.address = 'tcp://evil:1';
        const [first] = await r.getService('greeter');
        first!.nodes[0]!.address = 'tcp://changed:1';
        first!.metadata!.k = 'changed';
        (first!.endpoints[0]!.request as Record<string, unknown>).type = 'number';
        const [again] = await r.getService('greeter');
        assert.deepEqual(again?.nodes, [{ id: 'a', address: 'tcp://127.0.0.1:1001' }]);
        assert.deepEqual(again?.metadata, { k: 'v' });
        assert.deepEqual(again?.endpoints[0]?.request, { type: 'object' });
      }));

    test('drops nodes whose TTL passes without a heart-beat, keeps heart-beating ones and those without TTL, and tells watchers', () =>
      withRegistry(async (r) => {
        const w = r.watch({ service: 'greeter' });
        await r.register(svc('greeter', '1', ['a', 'b']), { ttl: 0.5 });
        await r.register(svc('greeter', '1', ['c'])); // no TTL
        // heart-beats keep a alive while b, which gets none, goes
        await eventually(async () => {
          await r.register(svc('greeter', '1', ['a']), { ttl: 0.5 });
          return ids(await r.getService('greeter')).join() === 'a,c';
        }, 'b expires while a is heart-beating');
        await eventually(async () => ids(await r.getService('greeter')).join() === 'c', 'a expires once the heart-beats stop');
        const types: string[] = [];
        for (;;) {
          const e = await nextEvent(w);
          types.push(`${e.type} ${ids([e.service]).join('+')}`);
          if (ids([e.service]).join() === 'c') break;
        }
        // Events tell the states a watcher can see; an engine may join changes close in time
        // (a polling one, or a network one where each node is its own write) but never skip
        // a state that lasted: here a+c held for many heart-beats.
        assert.equal(types[0]?.split(' ')[0], 'create', types.join(', '));
        assert.ok(types.includes('update a+c'), `b left with an update: ${types.join(', ')}`);
        assert.equal(types.at(-1), 'update c');
        w.stop();
      }));

    test('sends create, update and delete events, and none for a plain heart-beat', () =>
      withRegistry(async (r) => {
        const w = r.watch();
        await r.register(svc('greeter', '1', ['a']), { ttl: 30 });
        let e = await nextEvent(w);
        assert.equal(e.type, 'create');
        assert.equal(e.namespace, 'micro');
        assert.equal(e.service.namespace, 'micro');
        await r.register(svc('greeter', '1', ['a']), { ttl: 30 }); // heart-beat: no event
        await r.register(svc('greeter', '1', ['b']), { ttl: 30 });
        e = await nextEvent(w);
        assert.equal(e.type, 'update');
        assert.deepEqual(ids([e.service]), ['a', 'b'], 'an update carries every node of the version');
        await r.register(svc('greeter', '1', ['b'], { description: 'new' }), { ttl: 30 });
        e = await nextEvent(w);
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
      }));

    test('filters events by namespace and service, and gives each watcher its own copy', () =>
      withRegistry(async (r) => {
        const users = r.watch({ service: 'users' });
        const other = r.watch({ namespace: 'other' });
        const all = r.watch();
        const all2 = r.watch();
        await r.register(svc('greeter', '1', ['a']));
        await r.register(svc('users', '1', ['b']));
        await r.register(svc('greeter', '1', ['c']), { namespace: 'other' });
        const u = await nextEvent(users);
        assert.equal(u.service.name, 'users');
        assert.equal(u.namespace, 'micro');
        const o = await nextEvent(other);
        assert.equal(o.namespace, 'other');
        assert.deepEqual(ids([o.service]), ['c']);
        const ea = await nextEvent(all);
        ea.service.nodes.length = 0;
        const eb = await nextEvent(all2);
        assert.equal(eb.service.nodes.length, 1);
        for (const w of [users, other, all, all2]) w.stop();
      }));

    test('stops a watcher with stop() and when a for-await loop is left', () =>
      withRegistry(async (r) => {
        const w = r.watch();
        const pending = w[Symbol.asyncIterator]().next();
        w.stop();
        assert.deepEqual(await pending, { value: undefined, done: true });
        await r.register(svc('greeter', '1', ['a']));
        assert.equal((await w[Symbol.asyncIterator]().next()).done, true);
        const looped = r.watch();
        await r.register(svc('greeter', '1', ['b']));
        let seen = 0;
        // a deadline (an engine's own timers are unref'd: this one also keeps the test process up)
        const deadline = setTimeout(() => looped.stop(), 5_000);
        for await (const e of looped) {
          seen++;
          assert.equal(e.service.name, 'greeter');
          break;
        }
        clearTimeout(deadline);
        assert.equal(seen, 1);
        assert.equal((await looped[Symbol.asyncIterator]().next()).done, true, 'break stopped the watcher');
      }));

    test('rejects bad input with a 400 naming the field, and stores nothing', () =>
      withRegistry(async (r) => {
        const long = 'x'.repeat(LIMITS.name + 1);
        await assert.rejects(r.register(svc('', '1', ['a'])), isBadRequest(/service\.name/));
        await assert.rejects(r.register(svc(long, '1', ['a'])), isBadRequest(/service\.name must be at most 255/));
        await assert.rejects(r.register(svc('greeter', '', ['a'])), isBadRequest(/service\.version/));
        await assert.rejects(r.register(svc('greeter', '1', [long])), isBadRequest(/service\.nodes\[0\]\.id/));
        await assert.rejects(r.register(svc('greeter', '1', [], { nodes: [{ id: 'a', address: '' }] })), isBadRequest(/service\.nodes\[0\]\.address/));
        await assert.rejects(r.register(svc('greeter', '1', [])), isBadRequest(/non-empty array/));
        await assert.rejects(r.register(svc('greeter', '1', ['a', 'a'])), isBadRequest(/listed twice/));
        await assert.rejects(r.register(svc('bad\u0000name', '1', ['a'])), isBadRequest(/control characters/));
        await assert.rejects(r.register(null as unknown as ServiceRecord), isBadRequest(/service must be an object/));
        await assert.rejects(r.register(svc('greeter', '1', ['a']), { ttl: -1 }), isBadRequest(/ttl/));
        await assert.rejects(r.register(svc('greeter', '1', ['a']), { ttl: Number.NaN }), isBadRequest(/ttl/));
        await assert.rejects(r.register(svc('greeter', '1', ['a']), { namespace: '' }), isBadRequest(/namespace/));
        await assert.rejects(r.getService(''), isBadRequest(/name/));
        await assert.rejects(r.deregister(svc('greeter', '', ['a'])), isBadRequest(/service\.version/));
        assert.throws(() => r.watch({ namespace: long }), isBadRequest(/namespace/));
        assert.throws(() => r.watch({ service: '' }), isBadRequest(/service/));
        assert.deepEqual(await r.listServices(), []);
      }));

    test('ends watchers and refuses calls after close()', async () => {
      const { registry: r, close } = await make();
      try {
        const w = r.watch();
        await r.register(svc('greeter', '1', ['a']), { ttl: 10 });
        await r.close?.();
        assert.equal((await w[Symbol.asyncIterator]().next()).done, true);
        await assert.rejects(r.getService('greeter'), (err: unknown) => err instanceof MicroError && err.code === 503);
        await assert.rejects(r.register(svc('greeter', '1', ['a'])), (err: unknown) => err instanceof MicroError && err.code === 503);
        assert.throws(() => r.watch(), (err: unknown) => err instanceof MicroError && err.code === 503);
        await r.close?.(); // idempotent
      } finally {
        await close();
      }
    });
  });
}

export function svc(name: string, version: string, nodeIds: string[], extra: Partial<ServiceRecord> = {}): ServiceRecord {
  return {
    name,
    version,
    endpoints: [{ name: 'Call', kind: 'unary', request: { type: 'object' }, response: { type: 'object' } }],
    nodes: nodeIds.map((id) => ({ id, address: `tcp://127.0.0.1:${1000 + id.length}` })),
    ...extra,
  };
}

export const ids = (records: ServiceRecord[]): string[] => records.flatMap((r) => r.nodes.map((n) => n.id)).sort();

/** The next event of a watcher, or a failure after `ms` (a deadline, not a timing assumption). */
export async function nextEvent(watcher: Watcher, ms = 5000): Promise<WatchEvent> {
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

/** Polls `check` until it holds; fails after `ms` (a deadline for something that must happen). */
export async function eventually(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
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
