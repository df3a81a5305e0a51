import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Client, MemoryRegistry, MicroError, RpcServer, Service, bearer, createLogger, z, type Account } from '@micro/sdk';
import { authenticate } from '../auth/guard.js';
import { Tokens } from '../auth/tokens.js';
import { FileBlobStore } from './blobs.js';
import { storeServiceHandlers } from './handlers.js';
import { RemoteBlobStore, RemoteStore, model, readBlob, storeService, type StoreRecord } from '@micro/sdk';
import { blobStoreContract, storeContract } from '@micro/sdk/testing';
import { SqliteStore } from './sqlite.js';

/*
 * The store service as micro server serves it: SQLite and files behind the SDK's
 * handlers, the namespace rule, real signed tokens checked by the real guard, and
 * clients over TCP. The contract runs here as an admin of micro (who may name any
 * namespace); the isolation property as two accounts of two namespaces.
 */

const silent = createLogger({ level: 'silent' });
const root = mkdtempSync(join(tmpdir(), 'micro-store-service-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

const ADMIN: Account = { id: 'admin', type: 'admin', issuer: 'micro', scopes: ['admin'] };
const A: Account = { id: 'service:shop', type: 'service', issuer: 'tenant-a', scopes: ['service'] };
const B: Account = { id: 'service:intruder', type: 'service', issuer: 'tenant-b', scopes: ['service'] };

interface StoreServer {
  address: string;
  tokens: Tokens;
  client(account: Account | undefined, tokens?: Tokens): Promise<Client>;
  close(): Promise<void>;
}

async function startStoreServer(options: { blobMaxSize?: number } = {}): Promise<StoreServer> {
  const dir = join(root, `s${dirs++}`);
  mkdirSync(join(dir, 'blobs'), { recursive: true });
  const tokens = await Tokens.load(join(dir, 'keys.json'));
  const store = new SqliteStore({ path: join(dir, 'store.db') });
  const blobs = new FileBlobStore({ db: store.db, dir: join(dir, 'blobs'), maxSize: options.blobMaxSize });
  const rpc = new RpcServer({ logger: silent });
  const address = await rpc.listen('tcp://127.0.0.1:0');
  const svc = await new Service(storeService, storeServiceHandlers(store, blobs), {
    server: rpc,
    namespace: 'micro',
    registry: new MemoryRegistry(),
    logger: silent,
    registerTTL: 0,
    middleware: [authenticate(tokens, new Set(['Debug.Health']))],
  }).start();
  return {
    address,
    tokens,
    async client(account, signer = tokens) {
      const middleware = account ? [bearer((await signer.issue(account)).token)] : [];
      return new Client({ address, namespace: 'micro', preferLocal: false, middleware, timeout: 20_000 });
    },
    async close() {
      await svc.stop();
      await rpc.close();
      await blobs.close();
      await store.close();
    },
  };
}

storeContract('remote over the store service (SQLite)', async () => {
  const server = await startStoreServer();
  return { impl: new RemoteStore(await server.client(ADMIN)), close: () => server.close() };
});

blobStoreContract('remote over the store service (files)', async () => {
  const server = await startStoreServer({ blobMaxSize: 1024 * 1024 });
  return { impl: new RemoteBlobStore(await server.client(ADMIN)), maxSize: 1024 * 1024, close: () => server.close() };
});

const code = (err: unknown) => (err instanceof MicroError ? err.code : 0);

describe('the store service', () => {
  test('calls need a valid token; an account acts in its own namespace only', async () => {
    const server = await startStoreServer();
    try {
      const anonymous = new RemoteStore(await server.client(undefined));
      await assert.rejects(anonymous.list(), (err) => code(err) === 401);
      const forger = await Tokens.load(join(root, `forger-${dirs++}.json`));
      const forged = new RemoteStore(await server.client(ADMIN, forger));
      await assert.rejects(forged.list(), (err) => code(err) === 401);

      const a = new RemoteStore(await server.client(A));
      await a.write({ key: 'k', value: 'a' });
      assert.deepEqual(await a.read('k'), [{ key: 'k', value: 'a' }]);
      assert.deepEqual(await a.read('k', { namespace: 'tenant-a' }), [{ key: 'k', value: 'a' }]);
      await assert.rejects(a.read('k', { namespace: 'tenant-b' }), (err) => code(err) === 403 && /tenant-a may not act in namespace tenant-b/.test((err as MicroError).detail));
      await assert.rejects(a.databases({ namespace: 'micro' }), (err) => code(err) === 403);
      const admin = new RemoteStore(await server.client(ADMIN));
      assert.deepEqual(await admin.read('k', { namespace: 'tenant-a' }), [{ key: 'k', value: 'a' }]);
      assert.deepEqual(await admin.read('k'), [], 'the admin acts in micro unless it names another');
    } finally {
      await server.close();
    }
  });

  test('wrong, missing, oversized and hostile requests on the wire are 4xx naming the field; the server keeps serving', async () => {
    const server = await startStoreServer();
    try {
      const raw = await server.client(A);
      const call = (endpoint: string, body: unknown) => raw.call('store', endpoint, body);
      const refused = async (endpoint: string, body: unknown, status: number, detail: RegExp) => {
        await assert.rejects(call(endpoint, body), (err) => {
          assert.equal(code(err), status, `${endpoint} ${JSON.stringify(body)?.slice(0, 80)}: ${(err as MicroError).detail}`);
          assert.match((err as MicroError).detail, detail);
          return true;
        });
      };
      await call('Write', { record: { key: 'keep', value: 1 } });
      await refused('Write', {}, 400, /record/);
      await refused('Write', { record: 'x' }, 400, /record/);
      await refused('Write', { record: { key: 1, value: 1 } }, 400, /record\.key/);
      await refused('Write', { record: { key: 'k' } }, 400, /record\.value/);
      await refused('Write', { record: { key: 'k', value: 1, metadata: { a: { b: 1 } } } }, 400, /metadata/);
      await refused('Write', { record: { key: 'k', value: 1 }, ttl: -5 }, 400, /ttl/);
      await refused('Write', { record: { key: 'k', value: 1 }, database: 'x'.repeat(500) }, 400, /database/);
      await refused('Write', { record: { key: 'k', value: 1 }, table: '../../etc' }, 400, /table/);
      await refused('Write', { record: { key: 'k'.repeat(2000), value: 1 } }, 400, /key/);
      await refused('Read', { key: 'k', limit: 'many', prefix: true }, 400, /limit/);
      await refused('Read', { key: 'k', prefix: 1 }, 400, /prefix/);
      await refused('Read', {}, 400, /key/);
      await refused('Read', null, 400, /./);
      await refused('List', { offset: 1e12 }, 400, /offset/);
      await refused('List', { namespace: 'n'.repeat(300) }, 400, /namespace/);
      await refused('Delete', { key: '' }, 400, /key/);
      await refused('Tables', { database: '%' }, 400, /database/);
      const stream = raw.stream('store', 'Blob.Get', 'server', { key: 7 }) as AsyncIterable<unknown>;
      await assert.rejects(
        (async () => {
          for await (const _ of stream) assert.fail('no chunk of a bad request');
        })(),
        (err) => code(err) === 400 && /key/.test((err as MicroError).detail),
      );
      await refused('Blob.Delete', { key: 7 }, 400, /key/);
      // more than a frame holds: refused by the transport, nothing written
      await assert.rejects(call('Write', { record: { key: 'huge', value: 'x'.repeat(5 * 1024 * 1024) } }), (err) => code(err) === 413);
      // the same connection and server still serve, and nothing changed
      assert.deepEqual(await new RemoteStore(raw).list(), ['keep']);
    } finally {
      await server.close();
    }
  });

  test('blobs of several MiB travel as streams; the server bound applies', async () => {
    const server = await startStoreServer({ blobMaxSize: 4 * 1024 * 1024 });
    try {
      const blobs = new RemoteBlobStore(await server.client(A));
      const data = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < data.length; i++) data[i] = (i * 131) & 0xff;
      const info = await blobs.put('big', data);
      assert.equal(info.sha256, createHash('sha256').update(data).digest('hex'));
      const back = await readBlob(blobs.get('big'));
      assert.ok(back.equals(data));
      await assert.rejects(blobs.put('too-big', Buffer.alloc(4 * 1024 * 1024 + 1)), (err) => code(err) === 413);
      assert.deepEqual((await blobs.list()).map((b) => b.key), ['big']);
    } finally {
      await server.close();
    }
  });

  test('a model works over the remote store', async () => {
    const server = await startStoreServer();
    try {
      const Order = z.object({ id: z.string(), customer: z.string(), total: z.number() });
      const orders = model(new RemoteStore(await server.client(A)), { name: 'orders', schema: Order, indexes: ['customer', 'total'] });
      for (let i = 0; i < 30; i++) await orders.create({ id: `o${i}`, customer: i % 2 ? 'ann' : 'bob', total: i * 10 });
      const big = await orders.list({ where: { customer: 'ann', total: { gte: 100 } }, orderBy: 'total', order: 'desc', limit: 3 });
      assert.deepEqual(big.map((o) => o.id), ['o29', 'o27', 'o25']);
      await assert.rejects(orders.create({ id: 'o1', customer: 'x', total: 1 }), (err) => code(err) === 409);
      await assert.rejects(orders.create({ id: 'o99', customer: 'x', total: 'lots' as never }), (err) => code(err) === 400 && /total/.test((err as MicroError).detail));
    } finally {
      await server.close();
    }
  });

  test('property: an account of namespace B can neither read nor change anything of namespace A', async () => {
    const server = await startStoreServer({ blobMaxSize: 1024 * 1024 });
    try {
      const admin = new RemoteStore(await server.client(ADMIN));
      const adminBlobs = new RemoteBlobStore(await server.client(ADMIN));
      const a = new RemoteStore(await server.client(A));
      const aBlobs = new RemoteBlobStore(await server.client(A));
      const bClient = await server.client(B);
      const b = new RemoteStore(bClient);
      const bBlobs = new RemoteBlobStore(bClient);

      const MARK = 'SECRET-OF-A';
      const keys = ['a-1', 'a-2', 'shared', 'users/1', 'x'];
      for (const database of ['micro', 'shop']) {
        for (const table of ['default', 'users']) {
          for (const key of keys) await a.write({ key, value: { secret: `${MARK}-${database}-${table}-${key}` }, metadata: { mark: MARK } }, { database, table });
        }
      }
      for (const key of keys) await aBlobs.put(key, Buffer.from(`${MARK}-blob-${key}`));

      /** Everything of namespace A, as the admin sees it. */
      const snapshot = async () => {
        const out: Record<string, StoreRecord[] | string> = {};
        for (const database of await admin.databases({ namespace: 'tenant-a' })) {
          for (const table of await admin.tables({ namespace: 'tenant-a', database })) {
            out[`${database}/${table}`] = await admin.read('', { namespace: 'tenant-a', database, table, prefix: true, limit: 1000 });
          }
        }
        for (const info of await adminBlobs.list({ namespace: 'tenant-a' })) {
          out[`blob:${info.key}`] = `${info.sha256}:${(await readBlob(adminBlobs.get(info.key, { namespace: 'tenant-a' }))).toString()}`;
        }
        return out;
      };
      const before = await snapshot();
      assert.equal(Object.keys(before).length, 4 + keys.length);

      const namespaceArb = fc.constantFrom(undefined, undefined, 'tenant-b', 'tenant-a', 'micro', 'TENANT-A', 'tenant-a ', ' tenant-a', 'tenant-a\u0000', '', '*', '..');
      const databaseArb = fc.constantFrom(undefined, 'micro', 'shop', 'other');
      const tableArb = fc.constantFrom(undefined, 'default', 'users', 'other');
      const keyArb = fc.oneof(fc.constantFrom(...keys, '', 'a-', '-1', 'users/', '%', '_'), fc.string({ maxLength: 8 }));
      const scope = fc.record({ namespace: namespaceArb, database: databaseArb, table: tableArb });
      const opArb = fc.oneof(
        fc.record({ op: fc.constant('read'), key: keyArb, prefix: fc.boolean(), suffix: fc.boolean(), scope }),
        fc.record({ op: fc.constant('write'), key: keyArb, ttl: fc.constantFrom(undefined, 0, 60), scope }),
        fc.record({ op: fc.constant('delete'), key: keyArb, scope }),
        fc.record({ op: fc.constant('list'), key: keyArb, scope }),
        fc.record({ op: fc.constant('databases'), scope }),
        fc.record({ op: fc.constant('tables'), scope }),
        fc.record({ op: fc.constant('blobPut'), key: keyArb, scope }),
        fc.record({ op: fc.constant('blobGet'), key: keyArb, scope }),
        fc.record({ op: fc.constant('blobDelete'), key: keyArb, scope }),
        fc.record({ op: fc.constant('blobList'), key: keyArb, scope }),
        fc.record({ op: fc.constant('raw'), key: keyArb, scope }),
      );
      type Op = { op: string; key?: string; prefix?: boolean; suffix?: boolean; ttl?: number; scope: { namespace?: string; database?: string; table?: string } };

      const run = async (o: Op): Promise<unknown> => {
        const key = o.key ?? '';
        const s = o.scope;
        switch (o.op) {
          case 'read':
            return b.read(key, { ...s, prefix: o.prefix, suffix: o.suffix, limit: 1000 });
          case 'write':
            return b.write({ key, value: { by: 'B' }, metadata: { by: 'B' } }, { ...s, ttl: o.ttl });
          case 'delete':
            return b.delete(key, s);
          case 'list':
            return b.list({ ...s, prefix: key, limit: 1000 });
          case 'databases':
            return b.databases({ namespace: s.namespace });
          case 'tables':
            return b.tables({ namespace: s.namespace, database: s.database });
          case 'blobPut':
            return bBlobs.put(key, Buffer.from('by B'), { namespace: s.namespace });
          case 'blobGet':
            return (await readBlob(bBlobs.get(key, { namespace: s.namespace }))).toString();
          case 'blobDelete':
            return bBlobs.delete(key, { namespace: s.namespace });
          case 'blobList':
            return bBlobs.list({ namespace: s.namespace, prefix: key });
          default:
            // the request as a hostile client shapes it: extra fields claiming another identity
            return bClient.call('store', 'Read', { key, prefix: true, namespace: s.namespace, account: A, issuer: 'tenant-a', metadata: { authorization: 'x' } });
        }
      };

      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 8 }), async (ops) => {
          for (const o of ops as Op[]) {
            const elsewhere = o.scope.namespace !== undefined && o.scope.namespace !== 'tenant-b';
            let result: unknown;
            try {
              result = await run(o);
            } catch (err) {
              const status = code(err);
              assert.ok(status >= 400 && status < 500, `${o.op} failed with ${status}: ${String(err)}`);
              // a malformed request may be refused (400) before its namespace is looked at
              if (elsewhere) assert.ok(status === 403 || status === 400, `${o.op} in namespace ${JSON.stringify(o.scope.namespace)} is forbidden, not ${status}`);
              assert.ok(!String((err as MicroError).detail).includes(MARK));
              continue;
            }
            assert.ok(!elsewhere, `${o.op} in namespace ${JSON.stringify(o.scope.namespace)} must be refused`);
            assert.ok(!JSON.stringify(result ?? null).includes(MARK), `${o.op} returned something of A: ${String(JSON.stringify(result ?? null)).slice(0, 200)}`);
          }
          assert.deepEqual(await snapshot(), before);
        }),
        { numRuns: 60 },
      );
    } finally {
      await server.close();
    }
  });
});
