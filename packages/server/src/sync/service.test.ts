import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { MicroError, errors, type Account } from '@micro/sdk';
import { LockSync, RemoteLocks, RemoteSync, syncService, type Lease, type LockEngine, type LockInfo } from '@micro/sdk';
import { syncContract } from '@micro/sdk/testing';
import { SqliteLocks } from './sqlite.js';
import { syncHandlers } from './handlers.js';
import { ADMIN, serviceAccount, startPlatform, tempDir, type TestPlatform } from '../config/testing.js';

/*
 * The sync service over real RPC with micro server's authentication in front: the
 * contract through RemoteSync, two clients contending for one lock, leader failover
 * between clients, tokens across a restart of the server, and the namespace rule as a
 * property test.
 */

const dir = tempDir('micro-sync-service-');
let platform: TestPlatform;
let engine: SqliteLocks;

before(async () => {
  engine = new SqliteLocks({ path: join(dir, 'sync.db') });
  platform = await startPlatform([{ def: syncService, handlers: syncHandlers(engine) }]);
});

after(async () => {
  await platform.close();
  await engine.close();
  rmSync(dir, { recursive: true, force: true });
});

const remoteAs = async (account: Account) => new RemoteSync(await platform.clientFor(account, { timeout: 30_000 }));
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

syncContract('remote over the sync service', async () => {
  const impl = await remoteAs(ADMIN);
  return { impl, close: () => impl.close() };
});

/** A lock engine whose link to the server can be cut, as a network partition would. */
class Partitionable implements LockEngine {
  readonly name = 'partitionable';
  cut = false;
  constructor(private readonly inner: LockEngine) {}
  private check(): void {
    if (this.cut) throw errors.ServiceUnavailable('micro.sync', 'partitioned');
  }
  async acquire(...args: Parameters<LockEngine['acquire']>): Promise<Lease> {
    this.check();
    return this.inner.acquire(...args);
  }
  async renew(...args: Parameters<LockEngine['renew']>): Promise<Lease> {
    this.check();
    return this.inner.renew(...args);
  }
  async release(...args: Parameters<LockEngine['release']>): Promise<void> {
    this.check();
    return this.inner.release(...args);
  }
  async inspect(...args: Parameters<LockEngine['inspect']>): Promise<LockInfo | undefined> {
    this.check();
    return this.inner.inspect(...args);
  }
  async list(...args: Parameters<LockEngine['list']>): Promise<LockInfo[]> {
    this.check();
    return this.inner.list(...args);
  }
}

describe('the sync service', () => {
  test('two clients contend for one lock: one holder at a time, tokens in order', { timeout: 30_000 }, async () => {
    const ns = `contend-${Date.now().toString(36)}`;
    const clients = [await remoteAs(serviceAccount(ns, 'service:a')), await remoteAs(serviceAccount(ns, 'service:b'))];
    let inside = 0;
    const tokens: number[] = [];
    await Promise.all(
      clients.map(async (s, i) => {
        for (let round = 0; round < 10; round++) {
          const l = await s.lock('mutex', { wait: 20_000, owner: `client-${i}` });
          inside++;
          assert.equal(inside, 1, 'two holders at once');
          tokens.push(l.token);
          await delay(2);
          inside--;
          await l.release();
        }
      }),
    );
    assert.equal(tokens.length, 20);
    for (let i = 1; i < tokens.length; i++) assert.ok((tokens[i] as number) > (tokens[i - 1] as number), tokens.join(','));
    await Promise.all(clients.map((c) => c.close()));
  });

  test('leader failover between clients when the leader stops renewing (cut off from the server)', { timeout: 30_000 }, async () => {
    const ns = `failover-${Date.now().toString(36)}`;
    const link = new Partitionable(new RemoteLocks(await platform.clientFor(serviceAccount(ns, 'service:a'))));
    const a = await new LockSync(link).elect('primary', { id: 'a', ttl: 300 });
    const bSync = await remoteAs(serviceAccount(ns, 'service:b'));
    const b = await bSync.elect('primary', { id: 'b', ttl: 300 });
    assert.equal(a.isLeader, true);
    assert.equal(b.isLeader, false);
    const aToken = a.token as number;
    const aSteppedDown = new Promise<void>((resolve) => a.onChange((c) => !c.leader && resolve()));
    const bLeads = new Promise<number>((resolve) => b.onChange((c) => c.leader && resolve(c.token as number)));
    link.cut = true;
    await aSteppedDown;
    assert.equal(a.isLeader, false, 'a stops believing it leads once its lease could have passed');
    const bToken = await bLeads;
    assert.ok(bToken > aToken, 'the new leader has a larger fencing token');
    assert.equal((await bSync.inspect('primary'))?.owner, 'b');
    // a, back on the network, campaigns again but follows: b renews
    link.cut = false;
    await delay(600);
    assert.equal(a.isLeader, false);
    assert.equal(b.isLeader, true);
    await a.resign();
    await bSync.close();
    assert.equal(await engine.inspect('primary', { namespace: ns }), undefined);
  });

  test('fencing tokens keep growing across a restart of the server', async () => {
    const own = tempDir('micro-sync-restart-');
    const path = join(own, 'sync.db');
    let last = 0;
    for (let round = 0; round < 2; round++) {
      const e = new SqliteLocks({ path });
      const p = await startPlatform([{ def: syncService, handlers: syncHandlers(e) }]);
      const s = new RemoteSync(await p.clientFor(serviceAccount('restart')));
      const l = await s.lock('job', { ttl: 20 });
      assert.ok(l.token > last);
      await delay(60);
      const m = await s.lock('job');
      assert.ok(m.token > l.token);
      last = m.token;
      await m.release();
      await p.close();
      await e.close();
    }
    rmSync(own, { recursive: true, force: true });
  });

  test('a Lock that waits stops waiting when its caller goes', async () => {
    const ns = `gone-${Date.now().toString(36)}`;
    const s = await remoteAs(serviceAccount(ns));
    const held = await s.lock('busy', { ttl: 60_000 });
    const controller = new AbortController();
    const waiting = s.lock('busy', { wait: 30_000, signal: controller.signal });
    await delay(50);
    controller.abort();
    await assert.rejects(waiting, (err: unknown) => err instanceof MicroError && err.code === 499);
    await held.release();
    // the server-side waiter is gone too: the lock is free for the next caller at once
    const next = await s.lock('busy');
    await next.release();
  });

  test('requests the schema refuses get a 400 naming the field', async () => {
    const client = await platform.clientFor(ADMIN);
    const cases: [string, unknown, RegExp][] = [
      ['Lock', {}, /name/],
      ['Lock', { name: 'x', ttl: '10' }, /ttl/],
      ['Lock', { name: 'x', wait: 60_001 }, /wait/],
      ['Renew', { name: 'x' }, /holder/],
      ['Renew', { name: 'x', holder: 'h'.repeat(65) }, /holder/],
      ['Release', { holder: 'h' }, /name/],
      ['List', { limit: 1001 }, /limit/],
      ['Get', { name: 7 }, /name/],
    ];
    for (const [endpoint, request, field] of cases) {
      await assert.rejects(client.call('sync', endpoint, request), (err: unknown) => {
        assert.ok(err instanceof MicroError, String(err));
        assert.equal(err.code, 400, `${endpoint}: ${err.detail}`);
        assert.match(err.detail, field);
        return true;
      });
    }
  });

  test('property: an account of namespace A can neither see nor change the locks of namespace B', { timeout: 60_000 }, async () => {
    const run = Date.now().toString(36);
    const nsA = `tenant-a-${run}`;
    const nsB = `tenant-b-${run}`;
    const admin = await remoteAs(ADMIN);
    const aLocks = [await admin.lock('db-migration', { namespace: nsA, ttl: 600_000, owner: 'a-owner' }), await admin.lock('leader', { namespace: nsA, ttl: 600_000 })];
    const snapshot = await admin.locks({ namespace: nsA });
    // B knows the names, the tokens, even (hypothetically) a holder proof of its own
    const bEngine = new RemoteLocks(await platform.clientFor(serviceAccount(nsB, 'service:intruder', ['service', 'admin'])));
    const op = fc.record({
      kind: fc.constantFrom('acquire', 'renew', 'release', 'inspect', 'list'),
      namespace: fc.constantFrom(undefined, nsA, nsB, 'micro', nsA.toUpperCase(), `${nsA}\u200b`),
      name: fc.constantFrom('db-migration', 'leader', 'other'),
      holder: fc.constantFrom('x', 'holder-guess', 'AAAAAAAAAAAAAAAAAAAAAAAA'),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 10 }), async (ops) => {
        for (const o of ops) {
          const options = { namespace: o.namespace };
          let seen: unknown;
          try {
            if (o.kind === 'acquire') {
              const lease = await bEngine.acquire(o.name, { ...options, ttl: 1_000 });
              seen = lease;
              await bEngine.release(o.name, lease.holder, { namespace: lease.namespace });
            } else if (o.kind === 'renew') seen = await bEngine.renew(o.name, o.holder, options);
            else if (o.kind === 'release') seen = await bEngine.release(o.name, o.holder, options);
            else if (o.kind === 'inspect') seen = await bEngine.inspect(o.name, options);
            else seen = await bEngine.list(options);
            assert.ok(o.namespace === undefined || o.namespace === nsB, `${o.kind} in ${o.namespace} succeeded for an account of ${nsB}`);
            assert.ok(!(JSON.stringify(seen) ?? '').includes(nsA), `B saw something of A: ${JSON.stringify(seen)}`);
          } catch (err) {
            assert.ok(err instanceof MicroError, String(err));
            if (o.namespace !== undefined && o.namespace !== nsB) assert.equal(err.code, 403, err.detail);
            else assert.ok(err.code === 409, `${o.kind}: ${err.code} ${err.detail}`);
            assert.ok(!err.detail.includes('a-owner'), `B saw the holder of A's lock: ${err.detail}`);
          }
        }
        assert.deepEqual(await admin.locks({ namespace: nsA }), snapshot, "A's locks are unchanged");
      }),
      { numRuns: 40 },
    );
    for (const l of aLocks) await l.release();
    await admin.close();
  });
});
