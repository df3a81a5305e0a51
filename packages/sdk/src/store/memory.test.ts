import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from './memory.js';
import { MemoryBlobStore } from './memory-blob.js';
import { blobStoreContract, storeContract } from './contract.js';
import { readBlob } from './blob.js';

storeContract('memory', async () => {
  const impl = new MemoryStore();
  return { impl, close: () => impl.close() };
});

blobStoreContract('memory', async () => {
  const impl = new MemoryBlobStore({ maxSize: 1024 * 1024 });
  return { impl, close: () => impl.close(), maxSize: 1024 * 1024 };
});

test('memory store: TTLs follow the injected clock, and a sweep drops expired records', async () => {
  let now = 1_000_000;
  const s = new MemoryStore({ now: () => now });
  await s.write({ key: 'a', value: 1 }, { ttl: 10 });
  await s.write({ key: 'b', value: 2 });
  assert.equal((await s.read('a'))[0]?.expiry, 1_010_000);
  now += 9_999;
  assert.equal((await s.read('a')).length, 1);
  now += 1;
  assert.deepEqual(await s.read('a'), []);
  await s.write({ key: 'c', value: 3 }, { ttl: 1, table: 't' });
  now += 1000;
  s.sweep();
  assert.deepEqual(await s.tables(), ['default']);
  assert.deepEqual(await s.list(), ['b']);
});

test('memory store: defaults name the database and table of calls that name none', async () => {
  const s = new MemoryStore({ database: 'billing', table: 'invoices' });
  await s.write({ key: 'k', value: 1 });
  assert.deepEqual(await s.databases(), ['billing']);
  assert.deepEqual(await s.tables(), ['invoices']);
  assert.deepEqual(await s.read('k', { database: 'billing', table: 'invoices' }), [{ key: 'k', value: 1 }]);
  assert.throws(() => new MemoryStore({ database: '../x' }), /database/);
});

test('memory store: a closed store refuses calls with a 503', async () => {
  const s = new MemoryStore();
  await s.close();
  await assert.rejects(s.read('k'), (err: { code?: number }) => err.code === 503);
  const b = new MemoryBlobStore();
  await b.close();
  await assert.rejects(readBlob(b.get('k')), (err: { code?: number }) => err.code === 503);
  assert.throws(() => new MemoryBlobStore({ maxSize: 0 }), /maxSize/);
});
