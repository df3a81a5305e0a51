import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { MicroError } from '../errors/errors.js';
import { engineUrl, freePort, privateNats, testPrefix } from '../engines/testing.js';
import { decodeKeySegment, encodeKeySegment, packValue, unpackValue } from '../engines/nats-kv.js';
import { acquireLink } from '../transport/nats/link.js';
import { FileRegistry } from './file.js';
import { MemoryRegistry } from './memory.js';
import { KvRegistry, openRegistry } from './nats-kv.js';
import { eventually, ids, nextEvent, registryContract, svc } from './contract.js';

// The contract runs against the in-memory registry too: it is the reference.
registryContract('memory', async () => {
  const registry = new MemoryRegistry({ sweepInterval: 50 });
  return { registry, close: () => registry.close() };
});

// ... and the registry of the files of one machine: one contract for every engine.
registryContract('file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-registry-contract-'));
  const registry = new FileRegistry({ dir, pollInterval: 25 });
  return {
    registry,
    close: async () => {
      await registry.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

// Skips (printing why) when NATS is away; MICRO_REQUIRE_ENGINES=1 makes that a failure.
const natsUrl = await engineUrl({ skip: () => undefined }, 'nats');
let shared: NatsConnection | undefined;
after(async () => {
  await shared?.close();
});

async function sharedConnection(url: string): Promise<NatsConnection> {
  shared ??= await connect({ servers: url });
  return shared;
}

/** Removes the bucket of a prefix (each test makes its own). */
async function destroyBucket(nc: NatsConnection, prefix: string): Promise<void> {
  try {
    const kv = await new Kvm(nc).open(`${prefix}_registry`, { bindOnly: true });
    await kv.destroy();
  } catch {
    // never made, or already gone
  }
}

if (natsUrl) {
  registryContract('nats kv', async () => {
    const nc = await sharedConnection(natsUrl);
    const prefix = testPrefix('regc');
    const registry = await KvRegistry.open(nc, { prefix });
    return {
      registry,
      close: async () => {
        await registry.close();
        await destroyBucket(nc, prefix);
      },
    };
  });
} else {
  test('registry contract: nats kv', async (t) => {
    await engineUrl(t, 'nats');
  });
}

describe('KV key segments', () => {
  test('keep safe characters, encode everything else reversibly, and never make . * > or empty tokens', () => {
    const names = ['greeter', 'a.b', '*', '>', 'a b', 'a/b', '=', '=41', 'ü', '日本', '🎉', '..', '-_', 'A', 'a'];
    const seen = new Set<string>();
    for (const n of names) {
      const s = encodeKeySegment(n);
      assert.match(s, /^[A-Za-z0-9_=-]+$/, `${n} -> ${s}`);
      assert.equal(decodeKeySegment(s), n);
      assert.ok(!seen.has(s), `${s} is unique`);
      seen.add(s);
    }
    assert.equal(encodeKeySegment('greeter'), 'greeter', 'plain names stay readable');
    assert.equal(encodeKeySegment('1.0.0'), '1=2E0=2E0');
  });

  test('shorten long names with a hash that keeps them apart, and refuse to decode what they did not make', () => {
    const a = encodeKeySegment('Ü'.repeat(255));
    const b = encodeKeySegment(`${'Ü'.repeat(254)}Ö`);
    assert.ok(a.length <= 160 && b.length <= 160, `${a.length} ${b.length}`);
    assert.notEqual(a, b);
    assert.match(a, /^[A-Za-z0-9_=-]+\/[0-9a-f]{40}$/);
    assert.equal(decodeKeySegment(a), undefined, 'a hashed segment is read from the value instead');
    for (const bad of ['', 'a.b', '=4', '=zz', '=41=', 'a b', '=C3', '=2e']) assert.equal(decodeKeySegment(bad), undefined, JSON.stringify(bad));
  });

  test('values: small ones plain JSON, large ones deflated, and a deflate bomb is refused', () => {
    const small = JSON.stringify({ a: 1 });
    assert.equal(Buffer.from(packValue(small)).toString('utf8'), small);
    const large = JSON.stringify({ a: 'x'.repeat(100_000) });
    const packed = packValue(large);
    assert.ok(packed.length < 10_000);
    assert.equal(unpackValue(packed), large);
    const bomb = packValue(JSON.stringify({ a: 'x'.repeat(20 * 1024 * 1024) }));
    assert.throws(() => unpackValue(bomb), /RangeError|larger than|maxOutputLength|Cannot create a Buffer/i);
  });
});

describe('KvRegistry on NATS', () => {
  test('two instances on one bucket (two server nodes) see each other\'s services and events', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const nc = await sharedConnection(url);
    const prefix = testPrefix('regtwo');
    // each node has its own connection, as two processes would
    const ncB = await connect({ servers: url });
    t.after(async () => {
      await ncB.close();
      await destroyBucket(nc, prefix);
    });
    const a = await KvRegistry.open(nc, { prefix });
    const b = await KvRegistry.open(ncB, { prefix });
    t.after(() => Promise.all([a.close(), b.close()]));
    assert.equal(a.bucket, `${prefix}_registry`);
    const watchB = b.watch({ service: 'greeter' });
    await a.register(svc('greeter', '1', ['from-a']), { ttl: 30 });
    await eventually(async () => ids(await b.getService('greeter')).join() === 'from-a', 'b sees a node registered by a');
    assert.deepEqual(ids([(await nextEvent(watchB)).service]), ['from-a']);
    await b.register(svc('greeter', '1', ['from-b']), { ttl: 30 });
    await eventually(async () => ids(await a.getService('greeter')).join() === 'from-a,from-b', 'a sees the node of b');
    await b.deregister(svc('greeter', '1', ['from-a']));
    await eventually(async () => ids(await a.getService('greeter')).join() === 'from-b', 'a sees its node deregistered by b');
    const events = [await nextEvent(watchB), await nextEvent(watchB)];
    assert.deepEqual(events.map((e) => `${e.type} ${ids([e.service]).join('+')}`), ['update from-a+from-b', 'update from-b']);
    // a node that stops heart-beating on a leaves b's registry within its TTL, with a delete event
    const watchShort = b.watch({ service: 'short' });
    await a.register(svc('short', '1', ['s']), { ttl: 0.3 });
    assert.equal((await nextEvent(watchShort)).type, 'create');
    await eventually(async () => (await b.getService('short')).length === 0, 'the node without heart-beats expires at b');
    const gone = await nextEvent(watchShort);
    assert.equal(gone.type, 'delete');
    assert.deepEqual(ids([gone.service]), ['s']);
    // a third instance opened later reads what is there at once
    const c = await KvRegistry.open(nc, { prefix });
    assert.deepEqual(ids(await c.getService('greeter')), ['from-b']);
    await c.close();
  });

  test('the bucket\'s max_age bounds every TTL: a node without TTL, or with a longer one, goes within max_age unless registered again', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const nc = await sharedConnection(url);
    const prefix = testPrefix('regage');
    t.after(() => destroyBucket(nc, prefix));
    const r = await KvRegistry.open(nc, { prefix, maxAge: 1 });
    t.after(() => r.close());
    const kv = await new Kvm(nc).open(`${prefix}_registry`, { bindOnly: true });
    assert.equal((await kv.status()).ttl, 1000, 'the bucket was made with max_age = maxAge');
    const w = r.watch();
    await r.register(svc('forever', '1', ['a']));
    await r.register(svc('long', '1', ['b']), { ttl: 3600 });
    assert.deepEqual((await r.listServices()).map((s) => s.name).sort(), ['forever', 'long']);
    const events = [await nextEvent(w), await nextEvent(w), await nextEvent(w), await nextEvent(w)];
    assert.deepEqual(events.map((e) => `${e.type} ${e.service.name}`).sort(), ['create forever', 'create long', 'delete forever', 'delete long']);
    assert.deepEqual(await r.listServices(), []);
  });

  test('openRegistry: in memory for the local profile, the shared bucket for the nats profile', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const prefix = testPrefix('regopen');
    t.after(async () => destroyBucket(await sharedConnection(url), prefix));
    const local = await openRegistry({ name: 'local' });
    assert.equal(local.name, 'memory');
    await local.close?.();
    const profile = { name: 'nats' as const, natsUrl: url, postgresUrl: '', redisUrl: '', prefix };
    const a = await openRegistry(profile);
    const b = await openRegistry(profile);
    assert.equal(a.name, 'nats');
    await a.register(svc('greeter', '1', ['a']), { ttl: 30 });
    await eventually(async () => ids(await b.getService('greeter')).join() === 'a', 'b sees a');
    await a.close?.();
    await b.close?.();
  });

  test('ignores values it did not write and keys that do not match their record', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const nc = await sharedConnection(url);
    const prefix = testPrefix('reggarb');
    t.after(() => destroyBucket(nc, prefix));
    const r = await KvRegistry.open(nc, { prefix });
    t.after(() => r.close());
    await r.register(svc('greeter', '1', ['a']));
    const kv = await new Kvm(nc).open(`${prefix}_registry`, { bindOnly: true });
    const good = unpackValue((await kv.get('micro.greeter.1.a'))!.value);
    await kv.put('micro.greeter.1.moved', good); // says node a, lives elsewhere
    await kv.put('micro.greeter.1.junk', '{not json');
    await kv.put('micro.other.1.a', good);
    await kv.put('x', JSON.stringify({ v: 99 }));
    await kv.put('micro.greeter.1.b', JSON.stringify({ ...JSON.parse(good), ttl: -1 }));
    await r.register(svc('marker', '1', ['m'])); // the mirror has seen everything before it
    assert.deepEqual(ids(await r.getService('greeter')), ['a']);
    assert.deepEqual((await r.listServices()).map((s) => s.name).sort(), ['greeter', 'marker']);
  });

  test('refuses a record larger than NATS accepts with a 413, and stores nothing', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const nc = await sharedConnection(url);
    const prefix = testPrefix('regbig');
    t.after(() => destroyBucket(nc, prefix));
    const r = await KvRegistry.open(nc, { prefix });
    t.after(() => r.close());
    // random text does not deflate below the server's max_payload
    const endpoints = Array.from({ length: 400 }, (_, i) => ({
      name: `E${i}`,
      kind: 'unary' as const,
      request: {},
      response: {},
      description: randomBytes(3000).toString('base64').slice(0, 4000),
    }));
    await assert.rejects(r.register(svc('big', '1', ['a'], { endpoints })), (err: unknown) => err instanceof MicroError && err.code === 413 && /max_payload/.test(err.detail));
    assert.deepEqual(await r.getService('big'), []);
    // a large record that deflates well is fine
    const schemas = Array.from({ length: 400 }, (_, i) => ({ name: `E${i}`, kind: 'unary' as const, request: { type: 'object', description: 'x'.repeat(4000) }, response: {} }));
    await r.register(svc('big', '1', ['a'], { endpoints: schemas }));
    assert.equal((await r.getService('big'))[0]?.endpoints.length, 400);
  });

  test('NATS down at start: the shared connection fails with a message naming the URL', async () => {
    const port = await freePort();
    await assert.rejects(acquireLink(`nats://127.0.0.1:${port}`, { maxWait: 600 }), (err: unknown) => {
      assert.match(String((err as Error).message), new RegExp(`cannot reach NATS at nats://127\\.0\\.0\\.1:${port}.*attempts? in`));
      return true;
    });
  });

  test('NATS lost while running: writes fail fast with a 503, reads answer from the mirror, and all recovers when NATS is back', async (t) => {
    const url = await engineUrl(t, 'nats'); // the machine has NATS: so it has nats-server to start our own
    if (!url) return;
    const server = await privateNats(t);
    const ownUrl = server.url;
    // two nodes: two connections that reconnect for ever, as the shared connection of each process does
    const ncA = await connect({ servers: ownUrl, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    const ncB = await connect({ servers: ownUrl, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    t.after(() => Promise.all([ncA.close(), ncB.close()]));
    const a = await KvRegistry.open(ncA, { prefix: 'micro' });
    const b = await KvRegistry.open(ncB, { prefix: 'micro' });
    t.after(() => Promise.all([a.close(), b.close()]));
    await a.register(svc('greeter', '1', ['a']), { ttl: 60 });
    await eventually(async () => ids(await b.getService('greeter')).join() === 'a', 'b sees a');

    await server.kill();
    // the client notices the lost connection; from then on a write fails at once
    await eventually(async () => {
      try {
        await a.register(svc('greeter', '1', ['x']), { ttl: 60 });
        return false;
      } catch (err) {
        assert.ok(err instanceof MicroError, String(err));
        assert.equal(err.code, 503);
        return /unreachable|NATS failed/.test(err.detail);
      }
    }, 'a write while NATS is down fails with a 503');
    const started = Date.now();
    await assert.rejects(a.deregister(svc('greeter', '1', ['a'])), (err: unknown) => err instanceof MicroError && err.code === 503);
    assert.ok(Date.now() - started < 1_000, 'fails fast, without waiting for a timeout');
    assert.deepEqual(ids(await b.getService('greeter')), ['a'], 'reads answer from the mirror');

    await server.start();
    const watchB = b.watch({ service: 'greeter' });
    await eventually(async () => {
      try {
        await a.register(svc('greeter', '1', ['after']), { ttl: 60 });
        return true;
      } catch {
        return false;
      }
    }, 'writes work again once NATS is back', 20_000);
    await eventually(async () => ids(await b.getService('greeter')).join() === 'a,after', 'b\'s feed resumed and sees the new node', 20_000);
    assert.deepEqual(ids([(await nextEvent(watchB, 10_000)).service]), ['a', 'after']);
  });
});

