import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError, RemoteSync, type Lock } from '@micro/sdk';
import { engineUrl, syncContract, testPrefix } from '@micro/sdk/testing';
import { openPostgres } from '../postgres/index.js';
import { relay } from '../postgres/testing.js';
import { ADMIN, silent, startPlatform } from '../config/testing.js';
import type { CoreContext } from '../core.js';
import { PostgresLocks, PostgresSync, postgresSyncCoreService } from './postgres.js';

/*
 * Sync on the real Postgres: the contract, two engines (two nodes, each with its own pool
 * and listening connection) competing for locks, tokens across a restart, a lost
 * connection, and the core service over RPC. Each test has a schema of its own, dropped
 * afterwards.
 */

/** A URL of the same database that makes a pool of its own: another node. */
function node(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', name);
  return u.toString();
}

async function dropSchema(url: string, prefix: string): Promise<void> {
  const db = await openPostgres({ url, prefix, max: 1 });
  await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
  await db.close();
}

// the contract registers its own tests: without Postgres they are left out (the reason printed)
const probe = await engineUrl({ skip: () => undefined }, 'postgres');
if (probe) {
  syncContract('postgres', async () => {
    const prefix = testPrefix('synccontract');
    const impl = await PostgresSync.open({ url: probe, prefix, max: 2 });
    return {
      impl,
      close: async () => {
        await impl.close();
        await dropSchema(probe, prefix);
      },
    };
  });
}

describe('locks in Postgres', () => {
  test('two nodes compete: one holder at a time, tokens increase, a release on one node wakes a waiter on the other', { timeout: 60_000 }, async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('synctwo');
    const a = await PostgresSync.open({ url: node(url, `${prefix}_a`), prefix, max: 3 });
    const b = await PostgresSync.open({ url: node(url, `${prefix}_b`), prefix, max: 3 });
    t.after(async () => {
      await a.close();
      await b.close();
      await dropSchema(url, prefix);
    });

    // the lease is far longer than the wait: only the NOTIFY of a's release can let b in
    const first = await a.lock('cross', { namespace: 'ns', ttl: 60_000 });
    const waiting = b.lock('cross', { namespace: 'ns', wait: 30_000 });
    assert.equal(await Promise.race([waiting.then(() => 'took it'), new Promise((r) => setTimeout(r, 100, 'waits'))]), 'waits');
    await first.release();
    const second = await waiting;
    assert.ok(second.token > first.token);
    await second.release();

    // many callers on both nodes: never two holders at once, each token above the last
    let holders = 0;
    let most = 0;
    const tokens: number[] = [];
    const work = async (s: PostgresSync, i: number) => {
      const lock: Lock = await s.lock('hot', { namespace: 'ns', ttl: 30_000, wait: 50_000, owner: `w${i}` });
      holders++;
      most = Math.max(most, holders);
      tokens.push(lock.token);
      await new Promise((r) => setTimeout(r, 2));
      holders--;
      await lock.release();
    };
    await Promise.all(Array.from({ length: 24 }, (_, i) => work(i % 2 ? a : b, i)));
    assert.equal(most, 1, 'never two holders at once');
    assert.equal(tokens.length, 24);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! > tokens[i - 1]!, `token ${tokens[i]} after ${tokens[i - 1]}`);
  });

  test('a lock whose holder stops renewing passes to a waiter on another node', async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('syncpass');
    const a = await PostgresSync.open({ url: node(url, `${prefix}_a`), prefix, max: 2 });
    const b = await PostgresSync.open({ url: node(url, `${prefix}_b`), prefix, max: 2 });
    t.after(async () => {
      await a.close();
      await b.close();
      await dropSchema(url, prefix);
    });
    const held = await a.lock('job', { namespace: 'ns', ttl: 200 });
    const next = await b.lock('job', { namespace: 'ns', wait: 20_000 });
    assert.ok(next.token > held.token);
    await assert.rejects(held.renew(), (err: unknown) => err instanceof MicroError && err.code === 409);
    await next.release();
  });

  test('fencing tokens never go back: not after a release, a passed lease, or a restart of the node', async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('syncfence');
    t.after(() => dropSchema(url, prefix));
    let last = 0;
    for (let round = 0; round < 3; round++) {
      const s = await PostgresSync.open({ url, prefix, max: 2 });
      const first = await s.lock('job', { namespace: 'ns', ttl: 20 });
      assert.ok(first.token > last, `round ${round}: ${first.token} after ${last}`);
      await new Promise((r) => setTimeout(r, 60)); // its lease passes; it is never released
      const second = await s.lock('job', { namespace: 'ns' });
      assert.ok(second.token > first.token);
      await second.release();
      last = second.token;
      await s.close();
    }
    const db = await openPostgres({ url, prefix, max: 1 });
    t.after(() => db.close());
    assert.equal((await db.query(`SELECT * FROM ${db.schema}.locks`)).rowCount, 0, 'released locks leave no row');
    const fence = await db.query<{ fence: string }>(`SELECT fence FROM ${db.schema}.fences WHERE namespace = 'ns'`);
    assert.equal(Number(fence.rows[0]?.fence), last);
  });

  test('a lock held when a node stops is still held when it starts again', async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('synckept');
    t.after(() => dropSchema(url, prefix));
    const a = await PostgresSync.open({ url, prefix, max: 2 });
    const held = await a.lock('kept', { namespace: 'ns', ttl: 60_000, owner: 'me' });
    await a.close();
    const b = await PostgresSync.open({ url, prefix, max: 2 });
    t.after(() => b.close());
    assert.deepEqual(await b.inspect('kept', { namespace: 'ns' }), { namespace: 'ns', name: 'kept', token: held.token, owner: 'me', expiresAt: held.expiresAt });
    await assert.rejects(b.lock('kept', { namespace: 'ns' }), /held by me/);
  });

  test('names that are not well-formed Unicode are a 400 (they would collide in UTF-8)', async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('syncbad');
    const s = await PostgresSync.open({ url, prefix, max: 2 });
    t.after(async () => {
      await s.close();
      await dropSchema(url, prefix);
    });
    for (const call of [
      () => s.lock('a\uD800', { namespace: 'ns' }),
      () => s.lock('a', { namespace: 'n\uDC00' }),
      () => s.lock('a', { namespace: 'ns', owner: '\uD800' }),
      () => s.locks({ namespace: 'ns', prefix: 'x\uDBFF' }),
    ]) {
      await assert.rejects(call(), (err: unknown) => err instanceof MicroError && err.code === 400 && /well-formed/.test(err.detail));
    }
    // quotes, wildcards and the highest code points are plain characters in names and prefixes
    const odd = await s.lock("'; DROP TABLE locks; --%_\u{10FFFF}", { namespace: 'ns' });
    assert.deepEqual((await s.locks({ namespace: 'ns', prefix: "'; DROP" })).map((l) => l.name), [odd.name]);
    assert.deepEqual(await s.locks({ namespace: 'ns', prefix: '%' }), []);
    await odd.release();
  });

  test('a lost connection is a 503 at once; locks work again, and waiters wake, when Postgres returns', { timeout: 60_000 }, async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('synclost');
    const cable = await relay(url);
    const cut = await PostgresSync.open({ url: cable.url, prefix, max: 2 });
    const other = await PostgresSync.open({ url: node(url, `${prefix}_b`), prefix, max: 2 });
    t.after(async () => {
      await cable.close();
      await cut.close();
      await other.close();
      await dropSchema(url, prefix);
    });
    const before = await cut.lock('l', { namespace: 'ns', ttl: 60_000 });
    await cable.cut();
    await assert.rejects(cut.lock('m', { namespace: 'ns' }), (err: unknown) => err instanceof MicroError && err.code === 503 && err.id === 'micro.sync');
    await assert.rejects(before.renew(), (err: unknown) => err instanceof MicroError && err.code === 503);
    // meanwhile the other node holds a lock the cut-off node will wait for
    const held = await other.lock('w', { namespace: 'ns', ttl: 60_000 });
    await cable.restore();
    const waiting = cut.lock('w', { namespace: 'ns', wait: 30_000 });
    await new Promise((r) => setTimeout(r, 100));
    await held.release();
    // heard through the NOTIFY (on the listening connection made again) or by looking again
    const taken = await waiting;
    assert.ok(taken.token > held.token);
    await taken.release();
    await before.release();
  });

  test('the core service serves the locks over RPC', async (t) => {
    const url = await engineUrl(t, 'postgres');
    if (!url) return;
    const prefix = testPrefix('syncsvc');
    const cs = await postgresSyncCoreService({ postgresUrl: url, prefix })({ logger: silent } as unknown as CoreContext);
    const platform = await startPlatform([{ def: cs.def, handlers: cs.handlers }]);
    t.after(async () => {
      await platform.close();
      await cs.stop?.();
      await dropSchema(url, prefix);
    });
    assert.equal(cs.def.name, 'sync');
    const remote = new RemoteSync(await platform.clientFor(ADMIN));
    const lock = await remote.lock('svc', { namespace: 'ns', ttl: 10_000 });
    const direct = await PostgresLocks.open({ url, prefix, max: 1 });
    t.after(() => direct.close());
    assert.equal((await direct.inspect('svc', { namespace: 'ns' }))?.token, lock.token, 'the lock is in Postgres');
    await lock.release();
    await remote.close();
  });
});
