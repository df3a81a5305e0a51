import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../client/client.js';
import { createClient } from '../client/typed.js';
import { createLogger } from '../logger/logger.js';
import { MemoryRegistry } from '../registry/memory.js';
import { Service } from '../service/service.js';
import { RpcServer } from '../transport/server.js';
import { MicroError } from '../errors/errors.js';
import { readBlob } from './blob.js';
import { blobStoreContract, storeContract } from './contract.js';
import { storeService } from './definition.js';
import { storeHandlers, type StoreHandlerOptions } from './handlers.js';
import { MemoryBlobStore } from './memory-blob.js';
import { MemoryStore } from './memory.js';
import { RemoteBlobStore, RemoteStore } from './remote.js';

/*
 * The remote store against the store service over a real connection (no in-process
 * shortcut), with memory engines behind it: the protocol (cut answers continued, blobs
 * as base64 streams, errors carried intact). micro server's own tests run the same
 * contract against SQLite with auth and the namespace rule.
 */

const silent = createLogger({ level: 'silent' });

async function serve(options: StoreHandlerOptions & { maxSize?: number } = {}) {
  const store = new MemoryStore();
  const blobs = new MemoryBlobStore({ maxSize: options.maxSize });
  const server = new RpcServer({ logger: silent });
  const address = await server.listen('tcp://127.0.0.1:0');
  const svc = await new Service(storeService, storeHandlers(store, blobs, options), { server, namespace: 'micro', registry: new MemoryRegistry(), logger: silent, registerTTL: 0 }).start();
  const client = new Client({ address, namespace: 'micro', preferLocal: false });
  return {
    client,
    store: new RemoteStore(client),
    blobs: new RemoteBlobStore(client),
    async close() {
      await svc.stop();
      await server.close();
      await store.close();
      await blobs.close();
    },
  };
}

storeContract('remote (memory behind the service)', async () => {
  const s = await serve();
  return { impl: s.store, close: () => s.close() };
});

blobStoreContract('remote (memory behind the service)', async () => {
  const s = await serve({ maxSize: 1024 * 1024 });
  return { impl: s.blobs, close: () => s.close(), maxSize: 1024 * 1024 };
});

test('answers cut to fit a frame are continued after the last key, in either order', async () => {
  const s = await serve({ answerBudget: 200 });
  try {
    const keys = Array.from({ length: 40 }, (_, i) => `key-${String(i).padStart(2, '0')}`);
    for (const key of keys) await s.store.write({ key, value: { text: 'x'.repeat(20) } });
    assert.deepEqual(await s.store.list({ limit: 1000 }), keys);
    assert.deepEqual(await s.store.list({ order: 'desc', limit: 25 }), [...keys].reverse().slice(0, 25));
    assert.deepEqual(await s.store.list({ offset: 5, limit: 10 }), keys.slice(5, 15));
    assert.deepEqual((await s.store.read('key-', { prefix: true, limit: 1000 })).map((r) => r.key), keys);
    assert.deepEqual((await s.store.read('key-', { prefix: true, order: 'desc', offset: 3, limit: 7 })).map((r) => r.key), [...keys].reverse().slice(3, 10));
    for (const key of keys.slice(0, 12)) await s.blobs.put(key, Buffer.from(key));
    assert.deepEqual((await s.blobs.list({ limit: 1000 })).map((b) => b.key), keys.slice(0, 12));
    // one answer of the service itself says it was cut
    const api = createClient(storeService, s.client);
    const first = await api.List({ limit: 1000 });
    assert.equal(first.more, true);
    assert.ok(first.keys.length < keys.length);
  } finally {
    await s.close();
  }
});

test('values that JSON would silently change are refused before they are sent', async () => {
  const s = await serve();
  try {
    await assert.rejects(s.store.write({ key: 'k', value: [1, Number.NaN] }), (err: MicroError) => err.code === 400 && /value\[1\]/.test(err.detail));
    await assert.rejects(s.store.write({ key: 'k', value: { a: () => 1 } }), (err: MicroError) => err.code === 400);
    assert.deepEqual(await s.store.list(), []);
  } finally {
    await s.close();
  }
});

test('Blob.Put: the first message names the key; chunks must be strict base64 of at most 64 KiB', async () => {
  const s = await serve();
  try {
    const api = createClient(storeService, s.client);
    const bad = async (messages: object[], detail: RegExp) => {
      await assert.rejects(api['Blob.Put'](messages as never), (err: MicroError) => err.code === 400 && detail.test(err.detail));
    };
    await bad([], /first message/);
    await bad([{ data: 'AAAA' }], /first message/);
    await bad([{ key: 'k', data: 'not base64!' }], /base64/);
    await bad([{ key: 'k', data: 'AAA' }], /base64/);
    await bad([{ key: 'k' }, { key: 'other', data: 'AAAA' }], /same key/);
    await bad([{ key: 'k', namespace: 'a' }, { namespace: 'b' }], /same namespace/);
    await bad([{ key: 'k', data: 'A'.repeat(200_000) }], /data/);
    assert.deepEqual(await s.blobs.list(), []);
    const info = await api['Blob.Put']([{ key: 'k' }, { data: Buffer.from('hello ').toString('base64') }, { key: 'k', data: Buffer.from('world').toString('base64') }]);
    assert.equal(info.size, 11);
    assert.equal((await readBlob(s.blobs.get('k'))).toString(), 'hello world');
  } finally {
    await s.close();
  }
});

test('a blob put cancelled by its caller leaves nothing', async () => {
  const s = await serve();
  try {
    const controller = new AbortController();
    async function* slow() {
      yield Buffer.alloc(10_000, 1);
      controller.abort();
      await new Promise((r) => setTimeout(r, 50));
      yield Buffer.alloc(10_000, 2);
    }
    const api = createClient(storeService, s.client);
    const messages = (async function* () {
      yield { key: 'cancelled' };
      for await (const chunk of slow()) yield { data: chunk.toString('base64') };
    })();
    await assert.rejects(api['Blob.Put'](messages, { signal: controller.signal }));
    // the server finishes its side; then nothing is there
    for (let i = 0; i < 50 && (await s.blobs.list()).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    await assert.rejects(readBlob(s.blobs.get('cancelled')), (err: MicroError) => err.code === 404);
  } finally {
    await s.close();
  }
});

test('a blob upload that stalls is abandoned after the idle timeout, leaving nothing', async () => {
  const s = await serve({ blobIdleTimeout: 100 });
  try {
    const api = createClient(storeService, s.client);
    let release: () => void = () => undefined;
    const stalled = new Promise<void>((r) => (release = r));
    const messages = (async function* () {
      yield { key: 'stalled', data: Buffer.from('part').toString('base64') };
      await stalled;
    })();
    await assert.rejects(api['Blob.Put'](messages), (err: MicroError) => err.code === 408 && /sent nothing/.test(err.detail));
    release();
    await assert.rejects(readBlob(s.blobs.get('stalled')), (err: MicroError) => err.code === 404);
  } finally {
    await s.close();
  }
});
