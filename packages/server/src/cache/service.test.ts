import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryCache, MicroError, RemoteCache, cacheService } from '@micro/sdk';
import { cacheContract } from '@micro/sdk/testing';
import { ADMIN, serviceAccount, silent, startPlatform, tempDir } from '../config/testing.js';
import { http } from '../gateway/testing.js';
import { MicroServer } from '../server.js';
import { cacheServiceHandlers } from './handlers.js';
import { cacheCoreService } from './index.js';

/*
 * The cache service as micro server serves it: the memory engine behind the SDK's
 * handlers, the namespace rule, real signed tokens checked by the real guard, clients over
 * TCP — and once through micro server and its HTTP gateway, as the README shows it.
 */

async function platformWith(cache = new MemoryCache()) {
  const platform = await startPlatform([{ def: cacheService, handlers: cacheServiceHandlers(cache) }]);
  return {
    platform,
    close: async () => {
      await platform.close();
      await cache.close();
    },
  };
}

cacheContract('remote over the cache service (memory)', async () => {
  const { platform, close } = await platformWith();
  return { impl: new RemoteCache(await platform.clientFor(ADMIN, { timeout: 20_000 })), close };
});

const code = (err: unknown) => (err instanceof MicroError ? err.code : 0);

describe('the cache service', () => {
  test('an account acts in its own namespace only; an admin of micro may name any', async (t) => {
    const { platform, close } = await platformWith();
    t.after(close);
    const a = new RemoteCache(await platform.clientFor(serviceAccount('tenant-a')));
    const b = new RemoteCache(await platform.clientFor(serviceAccount('tenant-b', 'service:intruder')));
    await a.set('k', 'a');
    await b.set('k', 'b');
    assert.equal(await a.increment('n'), 1);
    assert.equal((await a.get('k'))?.value, 'a');
    assert.equal((await b.get('k'))?.value, 'b');
    assert.deepEqual(await b.listKeys(), ['k']);
    for (const call of [() => b.get('k', { namespace: 'tenant-a' }), () => b.set('k', 'x', { namespace: 'tenant-a' }), () => b.increment('n', 1, { namespace: 'tenant-a' }), () => b.listKeys({ namespace: 'tenant-a' }), () => b.delete('k', { namespace: 'tenant-a' })]) {
      await assert.rejects(call(), (err) => code(err) === 403 && /tenant-b may not act in namespace tenant-a/.test((err as MicroError).detail));
    }
    assert.equal((await a.get('k'))?.value, 'a', 'nothing changed in tenant-a');
    const admin = new RemoteCache(await platform.clientFor(ADMIN));
    assert.equal((await admin.get('n', { namespace: 'tenant-a' }))?.value, 1);
    assert.equal(await admin.get('k'), undefined, 'the admin acts in micro unless it names another');
  });

  test('wrong, missing, oversized and hostile requests on the wire are 4xx naming the field; the server keeps serving', async (t) => {
    const { platform, close } = await platformWith();
    t.after(close);
    const raw = await platform.clientFor(serviceAccount('tenant-a'));
    const call = (endpoint: string, body: unknown) => raw.call('cache', endpoint, body);
    const refused = async (endpoint: string, body: unknown, status: number, detail: RegExp) => {
      await assert.rejects(call(endpoint, body), (err) => {
        assert.equal(code(err), status, `${endpoint} ${JSON.stringify(body)?.slice(0, 80)}: ${(err as MicroError).detail}`);
        assert.match((err as MicroError).detail, detail);
        return true;
      });
    };
    assert.deepEqual(await call('Set', { key: 'keep', value: 1 }), { status: 'ok' });
    await refused('Set', {}, 400, /key/);
    await refused('Set', null, 400, /./);
    await refused('Set', { key: 7, value: 1 }, 400, /key/);
    await refused('Set', { key: 'k' }, 400, /value/);
    await refused('Set', { key: '', value: 1 }, 400, /key must not be empty/);
    await refused('Set', { key: 'k'.repeat(2000), value: 1 }, 400, /key/);
    await refused('Set', { key: 'é'.repeat(600), value: 1 }, 400, /key must be at most 1024 bytes/);
    await refused('Set', { key: 'a\u0000b', value: 1 }, 400, /key must not contain control characters/);
    await refused('Set', { key: 'a\r\nSET x', value: 1 }, 400, /key must not contain control characters/);
    await refused('Set', { key: 'k', value: 1, ttl: -1 }, 400, /ttl/);
    await refused('Set', { key: 'k', value: 1, ttl: 'soon' }, 400, /ttl/);
    await refused('Set', { key: 'k', value: 1, ttl: 1e12 }, 400, /ttl/);
    await refused('Set', { key: 'k', value: 'x'.repeat(1024 * 1024) }, 400, /value must be at most 1048576 bytes/);
    await refused('Set', { key: 'k', value: 1, namespace: 'n'.repeat(300) }, 400, /namespace/);
    await refused('Get', {}, 400, /key/);
    await refused('Get', { key: 'never' }, 404, /no key "never" in the cache/);
    await refused('Delete', { key: ['k'] }, 400, /key/);
    await refused('Increment', { key: 'k', value: 1.5 }, 400, /value/);
    await refused('Increment', { key: 'k', value: 'ten' }, 400, /value must be an integer/);
    await refused('Increment', { key: 'k', value: '99999999999999999999' }, 400, /value/);
    await refused('Decrement', { key: 'k', value: 2 ** 60 }, 400, /value/);
    await refused('Increment', { key: 'keep\u001b' }, 400, /key must not contain control characters/);
    await refused('ListKeys', { limit: 0 }, 400, /limit/);
    await refused('ListKeys', { limit: 1001 }, 400, /limit/);
    await refused('ListKeys', { limit: 'all' }, 400, /limit/);
    await refused('ListKeys', { prefix: 'a\u0007' }, 400, /prefix must not contain control characters/);
    await refused('ListKeys', { prefix: 'p'.repeat(5000) }, 400, /prefix/);
    // more than a frame holds: refused by the transport, nothing stored
    await assert.rejects(call('Set', { key: 'huge', value: 'x'.repeat(5 * 1024 * 1024) }), (err) => code(err) === 413);
    await call('Set', { key: 'text', value: 'x' });
    await refused('Increment', { key: 'text' }, 409, /not an integer/);
    // int64 as a JSON string, as M3O's clients send it
    assert.deepEqual(await call('Increment', { key: 'counter', value: '41' }), { key: 'counter', value: 41 });
    assert.deepEqual(await call('Decrement', { key: 'counter', value: '-1' }), { key: 'counter', value: 42 });
    assert.deepEqual(await call('Increment', { key: 'counter' }), { key: 'counter', value: 43 });
    // the same connection and server still serve, and nothing else changed
    assert.deepEqual(await call('ListKeys', {}), { keys: ['counter', 'keep', 'text'] });
    assert.deepEqual(await call('Get', { key: 'keep' }), { key: 'keep', value: 1, ttl: 0 });
  });

  test('the core service is bounded per namespace (MICRO_CACHE_MAX_KEYS) and refuses a bad bound', async (t) => {
    const factory = cacheCoreService({ maxKeys: 2 });
    const core = await factory({} as never);
    t.after(() => core.stop?.());
    const platform = await startPlatform([{ def: core.def, handlers: core.handlers }]);
    t.after(() => platform.close());
    const c = new RemoteCache(await platform.clientFor(ADMIN));
    for (const k of ['a', 'b', 'c']) await c.set(k, k);
    await c.set('x', 1, { namespace: 'other' });
    assert.deepEqual(await c.listKeys(), ['b', 'c']);
    assert.deepEqual(await c.listKeys({ namespace: 'other' }), ['x']);
    const saved = process.env.MICRO_CACHE_MAX_BYTES;
    process.env.MICRO_CACHE_MAX_BYTES = 'lots';
    try {
      assert.throws(() => cacheCoreService()({} as never), /MICRO_CACHE_MAX_BYTES must be a positive integer, not "lots"/);
    } finally {
      if (saved === undefined) delete process.env.MICRO_CACHE_MAX_BYTES;
      else process.env.MICRO_CACHE_MAX_BYTES = saved;
    }
  });
});

test('micro server serves the cache, through its gateway too (POST /v1/cache/Set)', async () => {
  const home = tempDir('micro-cache-server-');
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent }).start();
  try {
    const url = server.gatewayUrl as string;
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const json = { 'content-type': 'application/json' };
    const tok = await http(url, 'POST', '/v1/auth/Token', { headers: json, body: JSON.stringify({ id: admin.id, secret: admin.secret, namespace: 'micro' }) });
    const headers = { ...json, authorization: `Bearer ${(tok.json as { token: string }).token}` };
    const post = (path: string, body: unknown) => http(url, 'POST', path, { headers, body: JSON.stringify(body) });
    const set = await post('/v1/cache/Set', { key: 'greeting', value: { text: 'hello' }, ttl: 60 });
    assert.equal(set.status, 200, set.body);
    assert.deepEqual(set.json, { status: 'ok' });
    const got = (await post('/v1/cache/Get', { key: 'greeting' })).json as { key: string; value: unknown; ttl: number };
    assert.deepEqual({ ...got, ttl: 0 }, { key: 'greeting', value: { text: 'hello' }, ttl: 0 });
    assert.ok(got.ttl > 50 && got.ttl <= 60, `ttl ${got.ttl}`);
    assert.deepEqual((await post('/v1/cache/Increment', { key: 'hits', value: 5 })).json, { key: 'hits', value: 5 });
    assert.deepEqual((await post('/v1/cache/ListKeys', {})).json, { keys: ['greeting', 'hits'] });
    const missing = await post('/v1/cache/Get', { key: 'nope' });
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json, { id: 'micro.cache', code: 404, detail: 'no key "nope" in the cache', status: 'Not Found' });
    const bad = await post('/v1/cache/Set', { key: 'a\nb', value: 1 });
    assert.equal(bad.status, 400);
    assert.match(String((bad.json as { detail: string }).detail), /key must not contain control characters/);
    const anonymous = await http(url, 'POST', '/v1/cache/Get', { headers: json, body: '{"key":"greeting"}' });
    assert.equal(anonymous.status, 401);
  } finally {
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  }
});
