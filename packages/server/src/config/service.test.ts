import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { Client, ConnectionPool, MicroError, type Account } from '@micro/sdk';
import { ConfigCipher, RemoteConfig, SECRET_MASK, configService, type ConfigValue } from '@micro/sdk';
import { configContract } from '@micro/sdk/testing';
import { SqliteConfig } from './sqlite.js';
import { SECRETS_SCOPE, configHandlers } from './handlers.js';
import { ADMIN, serviceAccount, startPlatform, tempDir, type TestPlatform } from './testing.js';

/*
 * The config service over real RPC, with micro server's authentication in front: the
 * contract through RemoteConfig, who may read secrets, the namespace rule (a property
 * test: an account of one namespace can neither read nor change another's), and how a
 * watch ends when the server goes.
 */

let platform: TestPlatform;
let engine: SqliteConfig;
const dir = tempDir('micro-config-service-');

before(async () => {
  engine = new SqliteConfig({ path: join(dir, 'config.db'), cipher: ConfigCipher.random() });
  platform = await startPlatform([{ def: configService, handlers: configHandlers(engine) }]);
});

after(async () => {
  await platform.close();
  await engine.close();
  rmSync(dir, { recursive: true, force: true });
});

const remoteAs = async (account: Account) => new RemoteConfig(await platform.clientFor(account));

configContract('remote over the config service', async () => ({ impl: await remoteAs(ADMIN), close: async () => undefined }));

describe('the config service', () => {
  test('calls without a namespace act in the account’s own', async () => {
    const ns = `own-${Date.now().toString(36)}`;
    const c = await remoteAs(serviceAccount(ns));
    await c.set('x', 1);
    assert.equal(await engine.get('x', { namespace: ns }), 1);
    assert.equal(await c.get('x'), 1);
    assert.equal(await c.get('x', { namespace: ns }), 1, 'naming its own namespace is fine');
  });

  test('secrets in clear: admins of micro and accounts with scope config:secrets; others get a 403 and masks', async () => {
    const ns = `secrets-${Date.now().toString(36)}`;
    const plain = await remoteAs(serviceAccount(ns));
    await plain.set('db.password', 'pw', { secret: true });
    assert.equal(await plain.get('db.password'), SECRET_MASK);
    await assert.rejects(plain.get('db.password', { secrets: true }), (err: unknown) => {
      assert.ok(err instanceof MicroError);
      assert.equal(err.code, 403);
      assert.match(err.detail, /reading secrets in clear needs an admin of micro or scope config:secrets; account service:app has \["service"\]/);
      return true;
    });
    await assert.rejects(plain.get('', { secrets: true }), (err: MicroError) => err.code === 403);
    const reader = await remoteAs(serviceAccount(ns, 'service:deployer', [SECRETS_SCOPE]));
    assert.equal(await reader.get('db.password', { secrets: true }), 'pw');
    const admin = await remoteAs(ADMIN);
    assert.equal(await admin.get('db.password', { namespace: ns, secrets: true }), 'pw');
    // the scope reaches only its own namespace
    await assert.rejects(reader.get('db.password', { namespace: 'micro', secrets: true }), (err: MicroError) => err.code === 403);
    // a namespace admin who is not an admin of micro does not read secrets in clear without the scope
    const nsAdmin = await remoteAs(serviceAccount(ns, 'ops', ['admin']));
    await assert.rejects(nsAdmin.get('db.password', { secrets: true }), (err: MicroError) => err.code === 403);
  });

  test('requests the schema refuses get a 400 naming the field', async () => {
    const client = await platform.clientFor(ADMIN);
    const cases: [string, unknown, RegExp][] = [
      ['Get', { path: 5 }, /path/],
      ['Get', { secrets: 'yes' }, /secrets/],
      ['Get', { path: 'x'.repeat(257) }, /path/],
      ['Set', { path: 'a' }, /value/],
      ['Set', { value: 1 }, /path/],
      ['Set', { path: 'a', value: 1, secret: 1 }, /secret/],
      ['Set', { path: 'a', value: 1, namespace: '' }, /namespace/],
      ['Delete', {}, /path/],
      ['Delete', { path: ['a'] }, /path/],
    ];
    for (const [endpoint, request, field] of cases) {
      await assert.rejects(client.call('config', endpoint, request), (err: unknown) => {
        assert.ok(err instanceof MicroError, String(err));
        assert.equal(err.code, 400, `${endpoint} ${JSON.stringify(request)}: ${err.detail}`);
        assert.match(err.detail, field);
        return true;
      });
    }
    const pool = new ConnectionPool();
    try {
      for (const metadata of [{}, { authorization: 'Bearer forged' }, { authorization: 'Basic abc' }] as Record<string, string>[]) {
        const anonymous = new Client({ address: platform.address, namespace: 'micro', preferLocal: false, pool, retries: 0, metadata });
        await assert.rejects(anonymous.call('config', 'Get', {}), (err: MicroError) => err.code === 401);
      }
    } finally {
      pool.close();
    }
  });

  test('property: an account of namespace A can neither read nor change anything of namespace B', async () => {
    const run = Date.now().toString(36);
    const nsA = `tenant-a-${run}`;
    const nsB = `tenant-b-${run}`;
    const admin = await remoteAs(ADMIN);
    const secretA = `secret-of-a-${run}`;
    const plainA = `plain-of-a-${run}`;
    await admin.set('db', { host: plainA, password: secretA }, { namespace: nsA });
    await admin.set('db.password', secretA, { namespace: nsA, secret: true });
    await admin.set('api.key', secretA, { namespace: nsA, secret: true });
    const documentA = await admin.get('', { namespace: nsA, secrets: true });
    const b = await remoteAs(serviceAccount(nsB, 'service:intruder', ['service', SECRETS_SCOPE]));

    const op = fc.record({
      kind: fc.constantFrom('get', 'set', 'delete', 'watch'),
      namespace: fc.constantFrom(undefined, nsA, nsB, 'micro', `${nsA} `, nsA.toUpperCase()),
      path: fc.constantFrom('', 'db', 'db.password', 'db.host', 'api', 'api.key', 'new.key', 'db.password.x'),
      value: fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null), fc.dictionary(fc.constantFrom('host', 'password', 'x'), fc.string({ maxLength: 4 }), { maxKeys: 2 })),
      secret: fc.boolean(),
      secrets: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
        for (const o of ops) {
          const options = { namespace: o.namespace };
          let seen: unknown;
          try {
            if (o.kind === 'get') seen = await b.get(o.path, { ...options, secrets: o.secrets });
            else if (o.kind === 'set') seen = await b.set(o.path === '' ? 'root' : o.path, o.value as ConfigValue, { ...options, secret: o.secret });
            else if (o.kind === 'delete') seen = await b.delete(o.path === '' ? 'db' : o.path, options);
            else {
              const w = b.watch(o.path, options);
              try {
                seen = (await w[Symbol.asyncIterator]().next()).value;
              } finally {
                w.stop();
              }
            }
            // it succeeded: only in B's own namespace
            assert.ok(o.namespace === undefined || o.namespace === nsB, `${o.kind} in ${o.namespace} succeeded for an account of ${nsB}`);
          } catch (err) {
            assert.ok(err instanceof MicroError, String(err));
            if (o.namespace !== undefined && o.namespace !== nsB) assert.equal(err.code, 403, err.detail);
            else assert.ok(err.code === 400 || err.code === 403, err.detail);
            seen = err.detail;
          }
          const text = JSON.stringify(seen) ?? '';
          assert.ok(!text.includes(secretA) && !text.includes(plainA), `what B saw holds A's data: ${text}`);
        }
        assert.deepEqual(await admin.get('', { namespace: nsA, secrets: true }), documentA, "A's document is unchanged");
      }),
      { numRuns: 40 },
    );
  });
});

describe('a config watch over RPC when the server goes', () => {
  test('it ends with an error that says the config is closing when micro server stops', async () => {
    const own = tempDir('micro-config-stop-');
    const e = new SqliteConfig({ path: join(own, 'config.db'), cipher: ConfigCipher.random() });
    const p = await startPlatform([{ def: configService, handlers: configHandlers(e) }]);
    try {
      const c = new RemoteConfig(await p.clientFor(ADMIN));
      const it = c.watch('a', { namespace: 'ns' })[Symbol.asyncIterator]();
      assert.equal((await it.next()).value?.op, 'current');
      const pending = it.next();
      // micro server stops its core services' engines, then drains
      await e.close();
      await assert.rejects(pending, (err: unknown) => err instanceof MicroError && err.code === 503 && /config watch ended: the config \(sqlite\) is closing/.test(err.detail));
      assert.deepEqual(await it.next(), { value: undefined, done: true });
    } finally {
      await p.close();
      await e.close();
      rmSync(own, { recursive: true, force: true });
    }
  });

  test('it ends with an error that says the connection was lost when the server dies', async () => {
    const own = tempDir('micro-config-crash-');
    const e = new SqliteConfig({ path: join(own, 'config.db'), cipher: ConfigCipher.random() });
    const p = await startPlatform([{ def: configService, handlers: configHandlers(e) }]);
    try {
      const c = new RemoteConfig(await p.clientFor(ADMIN));
      const w = c.watch('', { namespace: 'ns' });
      const it = w[Symbol.asyncIterator]();
      await it.next();
      const pending = it.next();
      await p.crash();
      await assert.rejects(pending, (err: unknown) => err instanceof MicroError && err.code === 503 && /config watch ended: the connection to micro server was lost/.test(err.detail));
      w.stop();
    } finally {
      await p.close();
      await e.close();
      rmSync(own, { recursive: true, force: true });
    }
  });
});
