import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PriceSetting, PricingStorage } from './storage.js';

/**
 * The behaviour every engine of the pricing storage has (SQLite, PostgreSQL): run by each
 * engine's test file. `make` gives two handles on one fresh, empty storage (two processes
 * on one file, two nodes on one schema), or undefined when the engine is away (the test
 * skipped); the engine's test closes them.
 */
export type MakePricingStorage = (t: { skip(message?: string): void; after(fn: () => unknown): void }) => Promise<[PricingStorage, PricingStorage] | undefined>;

const T0 = 1_700_000_000_000;

export const setting = (endpoint: string, price: number, extra: Partial<PriceSetting> = {}): PriceSetting => ({
  namespace: 'micro',
  service: 'books',
  endpoint,
  price,
  freeQuota: 0,
  setBy: 'admin',
  setAt: T0,
  ...extra,
});

export function pricingStorageContract(engine: string, make: MakePricingStorage): void {
  const it = (name: string, fn: (a: PricingStorage, b: PricingStorage) => Promise<void>) =>
    test(`${engine}: ${name}`, async (t) => {
      const pair = await make(t);
      if (pair) await fn(...pair);
    });

  it('sets, replaces and clears; every change moves the version, reads do not', async (s) => {
    assert.deepEqual(await s.load(), { version: 0, settings: [] });
    assert.equal(await s.set(setting('Read', 100, { freeQuota: 1000 }), 10), 'set');
    const v1 = await s.version();
    assert.ok(v1 > 0);
    assert.equal(await s.version(), v1, 'reading moves nothing');
    assert.equal(await s.set(setting('Read', 250, { freeQuota: 5, setBy: 'other', setAt: T0 + 1 }), 10), 'set');
    const v2 = await s.version();
    assert.ok(v2 > v1);
    assert.deepEqual((await s.load()).settings, [setting('Read', 250, { freeQuota: 5, setBy: 'other', setAt: T0 + 1 })]);
    assert.equal(await s.clear({ namespace: 'micro', service: 'books', endpoint: 'Read' }), true);
    assert.ok((await s.version()) > v2);
    const v3 = await s.version();
    assert.equal(await s.clear({ namespace: 'micro', service: 'books', endpoint: 'Read' }), false, 'nothing left to clear');
    assert.equal(await s.version(), v3, 'a clear of nothing is no change');
    assert.deepEqual((await s.load()).settings, []);
  });

  it('keeps namespaces, services and endpoints apart, in a stable order; names are exact', async (s) => {
    const all = [
      setting('Read', 1, { namespace: 'acme' }),
      setting('Read', 2, { namespace: 'micro' }),
      setting('Read', 3, { namespace: 'micro', service: 'films' }),
      setting('read', 4),
      setting('Greeter.Hello', 5, { freeQuota: 1e12 }),
      setting('Big', 1e15),
    ];
    for (const a of [...all].reverse()) assert.equal(await s.set(a, 100), 'set');
    const { settings } = await s.load();
    assert.equal(settings.length, 6);
    const key = (x: PriceSetting) => `${x.namespace}/${x.service}/${x.endpoint}`;
    assert.deepEqual(settings.map(key), [...settings.map(key)].sort());
    assert.deepEqual(new Set(settings.map((x) => JSON.stringify(x))), new Set(all.map((x) => JSON.stringify(x))), 'values come back exactly, up to 10^15');
  });

  it('refuses a new endpoint beyond max settings, never a replacement; the refusal moves nothing', async (s) => {
    assert.equal(await s.set(setting('A', 1), 2), 'set');
    assert.equal(await s.set(setting('B', 1), 2), 'set');
    const v = await s.version();
    assert.equal(await s.set(setting('C', 1), 2), 'full');
    assert.equal(await s.version(), v);
    assert.equal(await s.set(setting('A', 7), 2), 'set', 'changing a set price is always allowed');
    assert.deepEqual((await s.load()).settings.map((x) => [x.endpoint, x.price]), [['A', 7], ['B', 1]]);
  });

  it('two handles (two nodes, two processes) see each other\'s changes, and parallel new prices stop exactly at max', async (a, b) => {
    await a.set(setting('Read', 100), 10);
    const v = await b.version();
    assert.deepEqual((await b.load()).settings.map((x) => x.price), [100]);
    await b.set(setting('Read', 200), 10);
    assert.ok((await a.version()) > v);
    assert.deepEqual((await a.load()).settings.map((x) => x.price), [200]);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).set(setting(`E${i}`, i), 5)));
    assert.equal(results.filter((r) => r === 'set').length, 4, 'Read holds one of the 5');
    assert.equal((await a.load()).settings.length, 5);
  });
}
