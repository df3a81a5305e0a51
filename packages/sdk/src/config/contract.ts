import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '../errors/errors.js';
import { CONFIG_LIMITS, SECRET_MASK, type Config, type ConfigChange, type ConfigValue } from './config.js';

/**
 * The behaviour every Config must have, as node:test cases: run it against each
 * implementation (memory, SQLite, remote over the real service, and later the
 * distributed engines).
 *
 * `make` gives a config with full rights (an admin of `micro` for a remote one, as secrets
 * are read in clear). Every test works in its own new namespace, so `make` may hand out
 * views of one shared backend. It uses no dependency beyond node (the random operations
 * come from a small seeded generator), so that it can ship with the SDK.
 */
export function configContract(name: string, make: () => Promise<{ impl: Config; close(): Promise<void> }>): void {
  describe(`config contract: ${name}`, () => {
    let n = 0;
    /** a config and a namespace of its own for one test */
    async function setup(): Promise<{ c: Config; ns: string; close(): Promise<void> }> {
      const made = await make();
      return { c: made.impl, ns: `contract-${process.pid}-${Date.now().toString(36)}-${n++}`, close: () => made.close() };
    }
    async function withConfig(fn: (c: Config, ns: string) => Promise<void>): Promise<void> {
      const { c, ns, close } = await setup();
      try {
        await fn(c, ns);
      } finally {
        await close();
      }
    }

    test('an empty namespace reads as {} at the root and nothing at a path', () =>
      withConfig(async (c, ns) => {
        assert.deepEqual(await c.get('', { namespace: ns }), {});
        assert.deepEqual(await c.get(undefined, { namespace: ns }), {});
        assert.equal(await c.get('db.host', { namespace: ns }), undefined);
      }));

    test('set and get at dotted paths, every kind of JSON value', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        await c.set('db.host', 'localhost', o);
        await c.set('db.port', 5432, o);
        await c.set('db.tls', false, o);
        await c.set('db.pool', null, o);
        await c.set('db.replicas', ['r1', 'r2'], o);
        assert.equal(await c.get('db.host', o), 'localhost');
        assert.equal(await c.get('db.port', o), 5432);
        assert.equal(await c.get('db.tls', o), false);
        assert.equal(await c.get('db.pool', o), null);
        assert.equal(await c.get('db.replicas.1', o), 'r2', 'a numeric segment indexes an array');
        assert.equal(await c.get('db.replicas.2', o), undefined);
        assert.equal(await c.get('db.replicas.x', o), undefined);
        assert.equal(await c.get('db.host.x', o), undefined, 'nothing inside a string');
        assert.deepEqual(await c.get('', o), { db: { host: 'localhost', port: 5432, tls: false, pool: null, replicas: ['r1', 'r2'] } });
        const unicode = 'grüße 日本 🎉 "quoted" \\ back';
        await c.set('text.unicode', unicode, o);
        assert.equal(await c.get('text.unicode', o), unicode);
        await c.set('ordered', { z: 1, a: { y: 2, b: 3 }, m: 4 }, o);
        assert.deepEqual(Object.keys((await c.get('ordered', o)) as object), ['z', 'a', 'm'], 'keys keep their order');
        await c.set('ordered', { k: 5, a: { c: 6 } }, o);
        assert.deepEqual(Object.keys((await c.get('ordered', o)) as object), ['z', 'a', 'm', 'k'], 'a merge keeps the order and appends');
        assert.deepEqual(Object.keys((await c.get('ordered.a', o)) as object), ['y', 'b', 'c']);
        await c.set('key with spaces.and-dashes_and:colons', 1, o);
        assert.equal(await c.get('key with spaces.and-dashes_and:colons', o), 1);
      }));

    test('objects merge deeply; anything else replaces what is at the path', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        await c.set('app', { name: 'shop', limits: { rps: 10 } }, o);
        await c.set('app', { limits: { burst: 20 }, debug: true }, o);
        assert.deepEqual(await c.get('app', o), { name: 'shop', limits: { rps: 10, burst: 20 }, debug: true });
        await c.set('app.limits', 'none', o);
        assert.deepEqual(await c.get('app', o), { name: 'shop', limits: 'none', debug: true }, 'a string replaces an object');
        await c.set('app.tags', ['a', 'b'], o);
        await c.set('app.tags', ['c'], o);
        assert.deepEqual(await c.get('app.tags', o), ['c'], 'arrays replace, they do not merge');
        await c.set('app.name.first', 'x', o);
        assert.deepEqual(await c.get('app.name', o), { first: 'x' }, 'a scalar on the way becomes an object');
        await c.set('', { top: 1 }, o);
        assert.deepEqual(await c.get('', o), { app: { name: { first: 'x' }, limits: 'none', debug: true, tags: ['c'] }, top: 1 }, 'an object at the root merges');
      }));

    test('what a caller changes in its objects after set or get changes nothing stored', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        const value = { a: { b: [1, 2] } };
        await c.set('x', value, o);
        value.a.b.push(3);
        const read = (await c.get('x', o)) as { a: { b: number[] } };
        assert.deepEqual(read, { a: { b: [1, 2] } });
        read.a.b.push(4);
        assert.deepEqual(await c.get('x', o), { a: { b: [1, 2] } });
      }));

    test('delete removes a key and says whether anything was there', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        await c.set('a', { b: { c: 1, d: 2 }, e: 3 }, o);
        assert.equal(await c.delete('a.b.c', o), true);
        assert.deepEqual(await c.get('a', o), { b: { d: 2 }, e: 3 });
        assert.equal(await c.delete('a.b.c', o), false);
        assert.equal(await c.delete('nothing.here', o), false);
        assert.equal(await c.delete('a.e.f', o), false, 'nothing inside a number');
        assert.equal(await c.delete('a', o), true);
        assert.deepEqual(await c.get('', o), {});
      }));

    test('writes through an array are refused with the path named, and change nothing', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        await c.set('list', [{ a: 1 }], o);
        await rejectsWith(c.set('list.0.a', 2, o), 400, /list\.0\.a.*array at "list"/);
        await rejectsWith(c.delete('list.0', o), 400, /array at "list"/);
        assert.deepEqual(await c.get('', o), { list: [{ a: 1 }] });
      }));

    test('invalid paths get a 400 that names the path, and change nothing', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        await c.set('keep', { me: true }, o);
        const long = 'a'.repeat(CONFIG_LIMITS.pathChars + 1);
        const deep = Array.from({ length: CONFIG_LIMITS.pathDepth + 1 }, () => 'a').join('.');
        const cases: [string, RegExp][] = [
          ['a..b', /"a\.\.b".*segment 2 is empty/],
          ['.a', /segment 1 is empty/],
          ['a.', /segment 2 is empty/],
          ['a.__proto__.b', /"a\.__proto__\.b".*__proto__/],
          ['constructor', /constructor/],
          ['x.prototype', /prototype/],
          ['a.$secret', /\$secret.*reserved/],
          ['a\u0000b', /control characters/],
          [long, /too long: 257 characters/],
          [deep, /too deep: 33 segments/],
        ];
        for (const [path, detail] of cases) {
          await rejectsWith(c.set(path, 1, o), 400, detail);
          await rejectsWith(c.get(path, o), 400, detail);
          await rejectsWith(c.delete(path, o), 400, detail);
        }
        await rejectsWith(c.delete('', o), 400, /path is required/);
        await rejectsWith(c.set('', 5, o), 400, /root/);
        await rejectsWith(c.set('', { x: 1 }, { ...o, secret: true }), 400, /secret needs a path/);
        assert.deepEqual(await c.get('', o), { keep: { me: true } });
        // exactly at the bounds is fine
        const most = Array.from({ length: CONFIG_LIMITS.pathDepth }, (_, i) => `k${i}`).join('.');
        await c.set(most, 'deep', o);
        assert.equal(await c.get(most, o), 'deep');
      }));

    test('invalid values get a 400 (413 when too big) that names what is wrong, and change nothing', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        await c.set('keep', 1, o);
        await rejectsWith(c.set('a', undefined as unknown as ConfigValue, o), 400, /value/);
        await rejectsWith(c.set('a', { 'dotted.key': 1 }, o), 400, /"dotted\.key".*contains "\."/);
        await rejectsWith(c.set('a', JSON.parse('{"ok": {"__proto__": {"polluted": true}}}') as ConfigValue, o), 400, /value\.ok.*__proto__/);
        await rejectsWith(c.set('a', { constructor: 1 }, o), 400, /constructor/);
        await rejectsWith(c.set('a', { $secret: 'forged' }, o), 400, /\$secret.*reserved/);
        await rejectsWith(c.set('a', { '': 1 }, o), 400, /is empty/);
        let deep: ConfigValue = 1;
        for (let i = 0; i < CONFIG_LIMITS.valueDepth + 1; i++) deep = [deep];
        await rejectsWith(c.set('a', deep, o), 400, /nested too deep/);
        await rejectsWith(c.set('a', 'x'.repeat(CONFIG_LIMITS.valueBytes), o), 413, /value is \d+ bytes/);
        assert.deepEqual(await c.get('', o), { keep: 1 });
        assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched');
      }));

    test('the document of a namespace is bounded: past 1 MiB a set is refused with a 413', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        const chunk = 'x'.repeat(CONFIG_LIMITS.valueBytes - 100);
        let stored = 0;
        let refused: unknown;
        for (let i = 0; i < 6 && !refused; i++) {
          try {
            await c.set(`part${i}`, chunk, o);
            stored++;
          } catch (err) {
            refused = err;
          }
        }
        assert.ok(refused instanceof MicroError && refused.code === 413 && /at most 1048576/.test(refused.detail), String(refused));
        assert.equal(stored, 4);
        assert.equal(Object.keys((await c.get('', o)) as object).length, 4, 'what was stored before is intact');
        assert.equal(await c.delete('part0', o), true, 'deleting makes room again');
        await c.set('small', 1, o);
      }));

    test('secrets read as ••••••, in clear only when asked, and stay secret when written over', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        await c.set('db', { host: 'h', user: 'u' }, o);
        await c.set('db.password', 'hunter2', { ...o, secret: true });
        assert.equal(await c.get('db.password', o), SECRET_MASK);
        assert.deepEqual(await c.get('db', o), { host: 'h', user: 'u', password: SECRET_MASK });
        assert.deepEqual(await c.get('', o), { db: { host: 'h', user: 'u', password: SECRET_MASK } });
        assert.equal(await c.get('db.password', { ...o, secrets: true }), 'hunter2');
        assert.deepEqual(await c.get('db', { ...o, secrets: true }), { host: 'h', user: 'u', password: 'hunter2' });
        // written over through a merge of the parent, without `secret`: it stays a secret
        await c.set('db', { password: 'swordfish', port: 1 }, o);
        assert.equal(await c.get('db.password', o), SECRET_MASK);
        assert.equal(await c.get('db.password', { ...o, secrets: true }), 'swordfish');
        await c.set('db.password', 'opensesame', o);
        assert.equal(await c.get('db.password', o), SECRET_MASK);
        assert.equal(await c.get('db.password', { ...o, secrets: true }), 'opensesame');
        // deleting it is how it stops being a secret
        assert.equal(await c.delete('db.password', o), true);
        await c.set('db.password', 'plain', o);
        assert.equal(await c.get('db.password', o), 'plain');
      }));

    test('a secret object is one secret: paths inside it read masked, and writes inside it keep it sealed', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        const s = { ...o, secrets: true };
        await c.set('creds', { user: 'admin', keys: ['k1', 'k2'] }, { ...o, secret: true });
        assert.equal(await c.get('creds', o), SECRET_MASK);
        assert.equal(await c.get('creds.user', o), SECRET_MASK);
        assert.equal(await c.get('creds.missing', o), undefined, 'a path that leads nowhere inside a secret is nothing');
        assert.equal(await c.get('creds.keys.1', s), 'k2');
        await c.set('creds.user', 'root', o);
        assert.equal(await c.get('creds', o), SECRET_MASK);
        assert.deepEqual(await c.get('creds', s), { user: 'root', keys: ['k1', 'k2'] });
        assert.equal(await c.delete('creds.keys', o), true);
        assert.equal(await c.get('creds', o), SECRET_MASK);
        assert.deepEqual(await c.get('creds', s), { user: 'root' });
        await c.set('creds.list', [1], o);
        await rejectsWith(c.set('creds.list.0', 2, o), 400, /array at "creds\.list"/);
        assert.deepEqual(await c.get('creds', s), { user: 'root', list: [1] });
        await c.set('other', [1, { x: 's' }], { ...o, secret: true });
        assert.deepEqual(await c.get('other', s), [1, { x: 's' }]);
        assert.deepEqual(await c.get('', o), { creds: SECRET_MASK, other: SECRET_MASK });
      }));

    test('namespaces are separate documents', () =>
      withConfig(async (c, ns) => {
        const other = `${ns}-other`;
        await c.set('shared.key', 'a', { namespace: ns });
        await c.set('shared.key', 'b', { namespace: other });
        await c.set('secret', 'sa', { namespace: ns, secret: true });
        assert.equal(await c.get('shared.key', { namespace: ns }), 'a');
        assert.equal(await c.get('shared.key', { namespace: other }), 'b');
        assert.equal(await c.get('secret', { namespace: other }), undefined);
        assert.equal(await c.delete('shared.key', { namespace: other }), true);
        assert.equal(await c.get('shared.key', { namespace: ns }), 'a');
      }));

    test('watch: first the current value, then each change of the value at the path', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        await c.set('feature', { a: true }, o);
        const w = c.watch('feature', o);
        const it = w[Symbol.asyncIterator]();
        const next = async (): Promise<ConfigChange> => {
          const r = await it.next();
          assert.equal(r.done, false, 'the watcher ended too early');
          return r.value as ConfigChange;
        };
        try {
          const first = await next();
          assert.deepEqual({ ...first, version: 0 }, { namespace: ns, path: 'feature', value: { a: true }, op: 'current', changed: 'feature', version: 0 });
          await c.set('unrelated', 1, o); // a sibling: no change at feature
          await c.set('feature.b', 2, o);
          const second = await next();
          assert.equal(second.op, 'set');
          assert.equal(second.changed, 'feature.b');
          assert.deepEqual(second.value, { a: true, b: 2 });
          assert.ok(second.version > first.version);
          await c.set('feature.b', 2, o); // the same value again: not a change
          await c.set('', { feature: { c: 3 } }, o); // a merge from above
          const third = await next();
          assert.deepEqual(third.value, { a: true, b: 2, c: 3 });
          assert.equal(third.changed, '');
          await c.set('feature.key', 'k', { ...o, secret: true });
          const fourth = await next();
          assert.deepEqual(fourth.value, { a: true, b: 2, c: 3, key: SECRET_MASK }, 'secrets are masked in changes');
          await c.set('feature.key', 'k2', o); // a new value of the secret is a change, still masked
          assert.deepEqual((await next()).value, { a: true, b: 2, c: 3, key: SECRET_MASK });
          await c.delete('feature', o);
          const gone = await next();
          assert.equal(gone.op, 'delete');
          assert.equal('value' in gone && gone.value !== undefined, false, 'no value once deleted');
          await c.set('feature', 1, { namespace: `${ns}-x` }); // another namespace
          await c.set('feature', 'back', o);
          assert.equal((await next()).value, 'back');
        } finally {
          w.stop();
        }
        assert.deepEqual(await it.next(), { value: undefined, done: true }, 'stop ends the loop');
      }));

    test('watch a path below the one that changes, and the root', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        const deep = c.watch('a.b.c', o);
        const root = c.watch('', o);
        try {
          const d = deep[Symbol.asyncIterator]();
          const r = root[Symbol.asyncIterator]();
          const first = (await d.next()).value;
          assert.equal(first?.op, 'current');
          assert.equal(first?.value, undefined, 'nothing at a.b.c yet');
          assert.deepEqual((await r.next()).value?.value, {});
          await c.set('a', { b: { c: 1 } }, o);
          assert.equal((await d.next()).value?.value, 1);
          assert.deepEqual((await r.next()).value?.value, { a: { b: { c: 1 } } });
          await c.set('a.b.other', 2, o);
          await c.set('a.b.c', 3, o);
          assert.equal((await d.next()).value?.value, 3, 'a sibling below a.b did not wake a.b.c');
        } finally {
          deep.stop();
          root.stop();
        }
      }));

    test('watch refuses an invalid path with a 400', () =>
      withConfig(async (c, ns) => {
        const attempt = async () => {
          const w = c.watch('a..b', { namespace: ns });
          try {
            await w[Symbol.asyncIterator]().next();
          } finally {
            w.stop();
          }
        };
        await rejectsWith(attempt(), 400, /segment 2 is empty/);
      }));

    test('random sets and deletes match a model of the rules (seeded, shrink-free)', () =>
      withConfig(async (c, ns) => {
        const o = { namespace: ns };
        const rnd = seeded(0xc0ff1 + n);
        let model: Model = {};
        for (let step = 0; step < 150; step++) {
          const path = randomPath(rnd, rnd() < 0.1 ? 0 : 1 + Math.floor(rnd() * 3));
          const isSet = rnd() < 0.7;
          const value = randomValue(rnd, 2);
          let expected: { model: Model; result: unknown } | { error: number };
          try {
            expected = isSet ? { model: modelSet(model, path, value), result: undefined } : modelDelete(model, path);
          } catch (err) {
            expected = { error: (err as { code: number }).code };
          }
          const label = `step ${step}: ${isSet ? `set ${JSON.stringify(path.join('.'))} ${JSON.stringify(value)}` : `delete ${JSON.stringify(path.join('.'))}`}`;
          try {
            const result = isSet ? await c.set(path.join('.'), value, o) : await c.delete(path.join('.'), o);
            assert.ok(!('error' in expected), `${label}: expected a ${'error' in expected ? expected.error : ''}`);
            if (!isSet) assert.equal(result, expected.result, label);
            model = expected.model;
          } catch (err) {
            if (err instanceof assert.AssertionError) throw err;
            assert.ok('error' in expected && err instanceof MicroError && err.code === expected.error, `${label}: ${String(err)}`);
          }
          assert.deepEqual(await c.get('', o), model, label);
          const probe = randomPath(rnd, 1 + Math.floor(rnd() * 3));
          assert.deepEqual(await c.get(probe.join('.'), o), modelGet(model, probe), `${label}; get ${probe.join('.')}`);
        }
      }));
  });
}

/** Asserts that `p` rejects with a MicroError of `code` whose detail matches. */
export async function rejectsWith(p: Promise<unknown>, code: number, detail?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.detail}`);
    if (detail) assert.match(err.detail, detail);
    return true;
  });
}

// ---- a model of the rules, for the random test ------------------------------------------

type Model = { [key: string]: ConfigValue };

function isObject(v: unknown): v is Model {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function mergeModel(current: ConfigValue | undefined, value: ConfigValue): ConfigValue {
  if (isObject(current) && isObject(value)) {
    const out = clone(current);
    for (const [k, v] of Object.entries(value)) out[k] = mergeModel(out[k], v);
    return out;
  }
  return clone(value);
}

function modelSet(model: Model, path: string[], value: ConfigValue): Model {
  if (path.length === 0) {
    if (!isObject(value)) throw { code: 400 };
    return mergeModel(model, value) as Model;
  }
  const root = clone(model);
  let node: Model = root;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i] as string;
    const child = node[key];
    if (Array.isArray(child)) throw { code: 400 };
    if (!isObject(child)) node[key] = {};
    node = node[key] as Model;
  }
  const last = path[path.length - 1] as string;
  node[last] = mergeModel(node[last], value);
  return root;
}

function modelDelete(model: Model, path: string[]): { model: Model; result: boolean } {
  if (path.length === 0) throw { code: 400 };
  const root = clone(model);
  let node: ConfigValue = root;
  for (let i = 0; i < path.length; i++) {
    if (Array.isArray(node)) throw { code: 400 };
    const key = path[i] as string;
    if (!isObject(node) || !(key in node)) return { model, result: false };
    if (i === path.length - 1) {
      delete node[key];
      return { model: root, result: true };
    }
    node = node[key] as ConfigValue;
  }
  return { model, result: false };
}

function modelGet(model: Model, path: string[]): ConfigValue | undefined {
  let node: ConfigValue | undefined = model;
  for (const key of path) {
    if (Array.isArray(node)) node = /^(0|[1-9]\d*)$/.test(key) ? node[Number(key)] : undefined;
    else if (isObject(node)) node = Object.prototype.hasOwnProperty.call(node, key) ? node[key] : undefined;
    else return undefined;
    if (node === undefined) return undefined;
  }
  return node;
}

/** mulberry32: a small seeded generator, so a failure repeats exactly. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = ['a', 'b', 'c', '0', '1'];

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)] as T;
}

function randomPath(rnd: () => number, length: number): string[] {
  return Array.from({ length }, () => pick(rnd, KEYS));
}

function randomValue(rnd: () => number, depth: number): ConfigValue {
  const r = rnd();
  if (depth > 0 && r < 0.35) {
    const out: Model = {};
    const size = Math.floor(rnd() * 3);
    for (let i = 0; i < size; i++) out[pick(rnd, KEYS)] = randomValue(rnd, depth - 1);
    return out;
  }
  if (depth > 0 && r < 0.5) return Array.from({ length: Math.floor(rnd() * 3) }, () => randomValue(rnd, depth - 1));
  if (r < 0.65) return Math.floor(rnd() * 100);
  if (r < 0.8) return pick(rnd, ['x', 'y', '', 'z z']);
  if (r < 0.9) return rnd() < 0.5;
  return null;
}
