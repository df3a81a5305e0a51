import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '../errors/errors.js';
import { cacheContract } from './contract.js';
import { MemoryCache } from './memory.js';

cacheContract('memory', async () => {
  const impl = new MemoryCache();
  return { impl, close: () => impl.close() };
});

test('memory cache: TTLs follow the injected clock; a sweep drops expired keys', async () => {
  let now = 1_000_000;
  const c = new MemoryCache({ now: () => now });
  await c.set('a', 1, { ttl: 10 });
  await c.set('b', 2);
  await c.set('half', 1, { ttl: 100.5 });
  assert.equal((await c.get('half'))?.ttl, 101, 'whole seconds, rounded up');
  await c.delete('half');
  assert.equal((await c.get('a'))?.ttl, 10);
  now += 9_001;
  assert.equal((await c.get('a'))?.ttl, 1, '0.999 s left says 1');
  now += 999;
  assert.equal(await c.get('a'), undefined);
  await c.set('c', 3, { ttl: 1, namespace: 'other' });
  now += 1000;
  c.sweep();
  assert.deepEqual(c.usage('other'), { keys: 0, bytes: 0 });
  assert.deepEqual(c.usage(), { keys: 1, bytes: 2 });
});

test('memory cache: past maxKeys the least recently used key of the namespace goes; others are untouched', async () => {
  const c = new MemoryCache({ maxKeys: 3 });
  await c.set('a', 'a');
  await c.set('n', 0);
  await c.set('b', 'b');
  await c.set('z', 'z', { namespace: 'other' });
  // a get and an increment count as use: b is now the least recently used
  await c.get('a');
  await c.increment('n');
  await c.set('d', 'd');
  assert.deepEqual(await c.listKeys(), ['a', 'd', 'n']);
  // then a (used before n and d)
  await c.set('e', 'e');
  assert.deepEqual(await c.listKeys(), ['d', 'e', 'n']);
  assert.equal(c.evictions, 2);
  assert.deepEqual(await c.listKeys({ namespace: 'other' }), ['z'], 'the bound is per namespace');
  // replacing a key evicts nothing
  await c.set('d', 'again');
  assert.equal(c.evictions, 2);
});

test('memory cache: past maxBytes (keys and JSON values) the least recently used go; a value larger than the bound is a 413', async () => {
  const c = new MemoryCache({ maxBytes: 100 });
  await c.set('a', 'x'.repeat(38)); // 1 + 40 bytes
  await c.set('b', 'x'.repeat(38));
  assert.deepEqual(c.usage(), { keys: 2, bytes: 82 });
  await c.set('c', 'x'.repeat(38));
  assert.deepEqual(await c.listKeys(), ['b', 'c']);
  assert.deepEqual(c.usage(), { keys: 2, bytes: 82 });
  await assert.rejects(c.set('huge', 'x'.repeat(200)), (err) => err instanceof MicroError && err.code === 413 && /more than this cache holds/.test(err.detail));
  assert.deepEqual(await c.listKeys(), ['b', 'c'], 'a refused set evicts nothing');
  // expired keys are dropped first when met, and are not counted as evictions
  const before = c.evictions;
  let now = Date.now();
  const t = new MemoryCache({ maxKeys: 2, now: () => now });
  await t.set('old', 1, { ttl: 1 });
  await t.set('live', 1);
  now += 2000;
  await t.set('new', 1);
  assert.deepEqual(await t.listKeys(), ['live', 'new']);
  assert.equal(t.evictions, 0);
  assert.equal(c.evictions, before);
});

test('memory cache: bad bounds are refused when made; a closed cache answers 503', async () => {
  assert.throws(() => new MemoryCache({ maxKeys: 0 }), /maxKeys must be a positive integer/);
  assert.throws(() => new MemoryCache({ maxBytes: 1.5 }), /maxBytes must be a positive integer/);
  const c = new MemoryCache();
  await c.close();
  await assert.rejects(c.get('k'), (err) => err instanceof MicroError && err.code === 503);
});
