import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { ConfigCipher, MicroError, RemoteConfig, SECRET_MASK, configService, type ConfigChange, type ConfigWatcher } from '@micro/sdk';
import { configContract, engineUrl, freePort, privateNats, testPrefix } from '@micro/sdk/testing';
import { KvConfig, configCoreServiceFor } from './kv.js';
import { configCoreService } from './index.js';
import { ADMIN, silent, startPlatform, tempDir } from './testing.js';
import type { CoreContext } from '../core.js';

/*
 * Config on a NATS KV bucket: the contract, two instances on one bucket (two server
 * nodes), secrets at rest, the shared key, hostile namespaces, and NATS lost while running.
 * Each test has its own bucket (testPrefix) and destroys it.
 */

// Skips (printing why) when NATS is away; MICRO_REQUIRE_ENGINES=1 makes that a failure.
const natsUrl = await engineUrl({ skip: () => undefined }, 'nats');
let shared: NatsConnection | undefined;
after(async () => {
  await shared?.close();
});

async function nc(url: string): Promise<NatsConnection> {
  shared ??= await connect({ servers: url });
  return shared;
}

async function destroyBucket(conn: NatsConnection, prefix: string): Promise<void> {
  try {
    await (await new Kvm(conn).open(`${prefix}_config`, { bindOnly: true })).destroy();
  } catch {
    // never made
  }
}

if (natsUrl) {
  configContract('nats kv', async () => {
    const conn = await nc(natsUrl);
    const prefix = testPrefix('cfgc');
    const impl = await KvConfig.open(conn, { prefix, cipher: ConfigCipher.random() });
    return {
      impl,
      close: async () => {
        await impl.close();
        await destroyBucket(conn, prefix);
      },
    };
  });
} else {
  test('config contract: nats kv', async (t) => {
    await engineUrl(t, 'nats');
  });
}

/** The next change of a watcher, or a failure after `ms` (a deadline, not a timing assumption). */
async function next(w: ConfigWatcher, ms = 5_000): Promise<ConfigChange> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      w[Symbol.asyncIterator]().next(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no change within ${ms} ms`)), ms))),
    ]);
    assert.equal(r.done, false, 'the watcher ended');
    return r.value as ConfigChange;
  } finally {
    clearTimeout(timer);
  }
}

async function eventually(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('KvConfig on NATS', () => {
  test('two instances on one bucket (two server nodes): changes of one reach the watchers of the other, no write is lost', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const prefix = testPrefix('cfgtwo');
    const cipher = ConfigCipher.random();
    const ncB = await connect({ servers: url });
    const a = await KvConfig.open(await nc(url), { prefix, cipher });
    const b = await KvConfig.open(ncB, { prefix, cipher });
    t.after(async () => {
      await a.close();
      await b.close();
      await ncB.close();
      await destroyBucket(await nc(url), prefix);
    });
    assert.equal(a.bucket, `${prefix}_config`);
    const o = { namespace: 'shop' };
    await a.set('feature', { on: false }, o);
    const w = b.watch('feature', o);
    assert.deepEqual((await next(w)).value, { on: false }, 'starts with the value a wrote');
    await a.set('feature.on', true, o);
    const change = await next(w);
    assert.deepEqual({ op: change.op, changed: change.changed, value: change.value }, { op: 'set', changed: 'feature.on', value: { on: true } });
    await a.set('feature.key', 'k', { ...o, secret: true });
    assert.deepEqual((await next(w)).value, { on: true, key: SECRET_MASK }, 'secrets masked in changes from the other node');
    assert.equal(await b.get('feature.key', { ...o, secrets: true }), 'k', 'b opens a secret a sealed (same key)');
    await b.delete('feature.on', o);
    assert.equal((await next(w)).op, 'delete');
    w.stop();

    // both nodes write the same document at once: every write lands (optimistic retries)
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).set(`counts.k${i}`, i, o)));
    const counts = (await a.get('counts', o)) as Record<string, number>;
    assert.equal(Object.keys(counts).length, 20);
    assert.deepEqual(await b.get('counts', o), counts);
  });

  test('secrets are encrypted at rest in the bucket, and a node with another key does not start', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const conn = await nc(url);
    const prefix = testPrefix('cfgkey');
    t.after(() => destroyBucket(conn, prefix));
    const c = await KvConfig.open(conn, { prefix, cipher: ConfigCipher.random() });
    await c.set('db.password', 'hunter2-plaintext', { secret: true, namespace: 'ns' });
    await c.close();
    const kv = await new Kvm(conn).open(`${prefix}_config`, { bindOnly: true });
    const raw = (await kv.get('ns.ns'))!.string();
    assert.doesNotMatch(raw, /hunter2/);
    assert.match(raw, /"\$secret":/);
    const fingerprint = (await kv.get('meta.key_fingerprint'))!.string();
    assert.match(fingerprint, /^[0-9a-f]{32}$/, 'the bucket keeps a fingerprint, not the key');
    await assert.rejects(KvConfig.open(conn, { prefix, cipher: new ConfigCipher(Buffer.alloc(32, 7), 'MICRO_CONFIG_SECRET_KEY') }), (err: Error) => {
      assert.match(err.message, new RegExp(`encrypted with another key than MICRO_CONFIG_SECRET_KEY.*same MICRO_CONFIG_SECRET_KEY.*nats kv del ${prefix}_config meta\\.key_fingerprint`));
      return true;
    });
  });

  test('hostile namespaces: dots, wildcards, spaces and long names are separate documents, and watches do not leak across them', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const conn = await nc(url);
    const prefix = testPrefix('cfgns');
    t.after(() => destroyBucket(conn, prefix));
    const c = await KvConfig.open(conn, { prefix, cipher: ConfigCipher.random() });
    t.after(() => c.close());
    const names = ['a', 'a.b', 'a.*', 'a.>', '*', '>', 'with space', 'x'.repeat(255), `${'Ü'.repeat(254)}Ö`, `${'Ü'.repeat(254)}Ä`];
    const star = c.watch('k', { namespace: 'a.*' });
    assert.equal((await next(star)).op, 'current');
    for (const ns of names) await c.set('k', ns, { namespace: ns });
    for (const ns of names) assert.equal(await c.get('k', { namespace: ns }), ns);
    const seen = await next(star);
    assert.equal(seen.value, 'a.*', 'the watch of "a.*" hears only its own namespace');
    await c.set('k', 'again', { namespace: 'a.>' });
    await c.set('k', 'mine', { namespace: 'a.*' });
    assert.equal((await next(star)).value, 'mine');
    star.stop();
    await assert.rejects(c.get('k', { namespace: 'x'.repeat(256) }), (err: unknown) => err instanceof MicroError && err.code === 400);
  });

  test('a key written by something else is a 500 naming the bucket, not a crash', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const conn = await nc(url);
    const prefix = testPrefix('cfgbad');
    t.after(() => destroyBucket(conn, prefix));
    const c = await KvConfig.open(conn, { prefix, cipher: ConfigCipher.random() });
    t.after(() => c.close());
    const kv = await new Kvm(conn).open(`${prefix}_config`, { bindOnly: true });
    await kv.put('ns.broken', '{not json');
    await assert.rejects(c.get('', { namespace: 'broken' }), (err: unknown) => err instanceof MicroError && err.code === 500 && err.detail.includes(`${prefix}_config`));
    await assert.rejects(c.set('a', 1, { namespace: 'broken' }), (err: unknown) => err instanceof MicroError && err.code === 500);
    await c.set('a', 1, { namespace: 'fine' });
  });

  test('served as the config service of micro server in the nats profile (configCoreServiceFor), over RPC', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const conn = await nc(url);
    const prefix = testPrefix('cfgsvc');
    const home = tempDir('micro-config-kv-');
    t.after(async () => {
      await destroyBucket(conn, prefix);
      rmSync(home, { recursive: true, force: true });
    });
    const profile = { name: 'nats' as const, natsUrl: url, postgresUrl: '', redisUrl: '', prefix };
    assert.equal(configCoreServiceFor({ name: 'local' }), configCoreService, 'the local profile keeps SQLite');
    const core = await configCoreServiceFor(profile)({ home, dataDir: home, logger: silent } as CoreContext);
    assert.equal(core.def, configService);
    const platform = await startPlatform([{ def: core.def, handlers: core.handlers }]);
    t.after(async () => {
      await platform.close();
      await core.stop?.();
    });
    const remote = new RemoteConfig(await platform.clientFor(ADMIN));
    await remote.set('db.host', 'h', { namespace: 'svc' });
    await remote.set('db.password', 'p', { namespace: 'svc', secret: true });
    assert.deepEqual(await remote.get('db', { namespace: 'svc' }), { host: 'h', password: SECRET_MASK });
    assert.equal(await remote.get('db.password', { namespace: 'svc', secrets: true }), 'p');
  });

  test('NATS down at start: the config service does not start, and the error names the URL', async () => {
    const port = await freePort();
    const home = tempDir('micro-config-kv-');
    try {
      const profile = { name: 'nats' as const, natsUrl: `nats://127.0.0.1:${port}`, postgresUrl: '', redisUrl: '', prefix: 'micro' };
      await assert.rejects(async () => configCoreServiceFor(profile, { maxWait: 500 })({ home, dataDir: home, logger: silent } as CoreContext), (err: Error) => {
        assert.match(err.message, new RegExp(`cannot reach NATS at nats://127\\.0\\.0\\.1:${port}`));
        return true;
      });
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test('NATS lost while running: calls fail fast with a 503, and work again (watchers too) when NATS is back', async (t) => {
    const url = await engineUrl(t, 'nats'); // the machine has NATS: so it has nats-server to start our own
    if (!url) return;
    const server = await privateNats(t);
    const own = server.url;
    const ncA = await connect({ servers: own, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    const ncB = await connect({ servers: own, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    t.after(() => Promise.all([ncA.close(), ncB.close()]));
    const cipher = ConfigCipher.random();
    const a = await KvConfig.open(ncA, { cipher });
    const b = await KvConfig.open(ncB, { cipher });
    t.after(() => Promise.all([a.close(), b.close()]));
    await a.set('x', 1);
    const w = b.watch('x');
    assert.equal((await next(w)).value, 1);

    await server.kill();
    await eventually(async () => {
      try {
        await a.set('x', 2);
        return false;
      } catch (err) {
        assert.ok(err instanceof MicroError, String(err));
        assert.equal(err.code, 503);
        return true;
      }
    }, 'a set while NATS is down fails with a 503');
    const started = Date.now();
    await assert.rejects(a.get('x'), (err: unknown) => err instanceof MicroError && err.code === 503 && /unreachable/.test(err.detail));
    assert.ok(Date.now() - started < 1_000, 'fails fast, without waiting for a timeout');

    await server.start();
    // what was acknowledged before the kill -9 of nats-server is there
    await eventually(async () => {
      try {
        assert.equal(await a.get('x'), 1);
        return true;
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        return false;
      }
    }, 'reads work again once NATS is back', 20_000);
    await eventually(async () => {
      try {
        await a.set('x', 3);
        return true;
      } catch {
        return false;
      }
    }, 'sets work again once NATS is back', 20_000);
    // b reconnects on its own schedule: until then its calls fail fast, after that they see the new value
    await eventually(async () => {
      try {
        return (await b.get('x')) === 3;
      } catch (err) {
        assert.ok(err instanceof MicroError && err.code === 503, String(err));
        return false;
      }
    }, 'the other node reads the value written after the restart', 20_000);
    assert.equal((await next(w, 20_000)).value, 3, 'the watcher on the other node resumed');
    w.stop();
  });
});

