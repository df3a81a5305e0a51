import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RuntimeService } from '@micro/sdk';
import { testPostgres } from '../postgres/testing.js';
import { markLost, PostgresRuntimeDirectory } from './directory.js';

function service(name: string, namespace = 'micro'): RuntimeService {
  const at = new Date().toISOString();
  return { name, namespace, version: '1.0.0', source: `/src/${name}`, state: 'running', instances: [{ id: 'i1', pid: 42, state: 'running', startedAt: at, restarts: 0 }], desiredInstances: 1, env: {}, createdAt: at, updatedAt: at };
}

const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));
/** the platform's master key of these tests (it seals the env in the desired state) */
const AUTH_KEY = 'directory-test-key-0123456789abcdef';

test('runtime directory: each node publishes what it runs and reads what the others run', async (t) => {
  const db = await testPostgres(t, 'rtdir');
  if (!db) return;
  const url = process.env.MICRO_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';
  // two nodes on one schema (their migrations race: one runs it, the other finds it done)
  const [a, b] = await Promise.all([
    PostgresRuntimeDirectory.open({ url, authKey: AUTH_KEY, prefix: db.prefix, node: 'node-a', flushInterval: 10 }),
    PostgresRuntimeDirectory.open({ url, authKey: AUTH_KEY, prefix: db.prefix, node: 'node-b', flushInterval: 10 }),
  ]);
  t.after(async () => {
    await a.close();
    await b.close();
  });

  a.publish([service('greeter'), service('billing', 'acme')]);
  b.publish([service('greeter')]);
  await settle();

  // a node sees the others', not its own
  const fromA = await a.others({});
  assert.deepEqual(fromA.map((o) => [o.node, o.service.namespace, o.service.name]), [['node-b', 'micro', 'greeter']]);
  const fromB = await b.others({ namespace: 'acme' });
  assert.deepEqual(fromB.map((o) => [o.node, o.service.name, o.service.instances[0]?.pid]), [['node-a', 'billing', 42]]);
  assert.ok(Date.now() - (fromB[0]?.seenAt ?? 0) < 60_000);
  assert.deepEqual(await b.others({ namespace: 'micro', name: 'nosuch' }), []);

  // what a node stops running leaves the directory at its next write
  a.publish([service('greeter')]);
  await settle();
  assert.deepEqual(await b.others({ namespace: 'acme' }), []);
  assert.equal((await b.others({ namespace: 'micro' })).length, 1);

  // hostile names are values, never SQL
  a.publish([service("x'; DROP TABLE runtime_services; --"), service('greeter')]);
  await settle();
  assert.deepEqual((await b.others({ namespace: 'micro' })).map((o) => o.service.name).sort(), ["x'; DROP TABLE runtime_services; --", 'greeter'].sort());
});

test('runtime directory: a node that has not published yet erases nothing; close writes what is pending', async (t) => {
  const db = await testPostgres(t, 'rtdir2');
  if (!db) return;
  const url = process.env.MICRO_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const first = await PostgresRuntimeDirectory.open({ url, authKey: AUTH_KEY, prefix: db.prefix, node: 'node-a', flushInterval: 10 });
  first.publish([service('greeter')]);
  await first.close();
  // the same node restarted, with heart-beats before its runtime has published: its rows stay
  const again = await PostgresRuntimeDirectory.open({ url, authKey: AUTH_KEY, prefix: db.prefix, node: 'node-a', flushInterval: 10, heartbeat: 20 });
  const reader = await PostgresRuntimeDirectory.open({ url, authKey: AUTH_KEY, prefix: db.prefix, node: 'reader' });
  t.after(async () => {
    await again.close();
    await reader.close();
  });
  await settle(100);
  assert.deepEqual((await reader.others({})).map((o) => o.service.name), ['greeter']);
  // closing flushes a publish still waiting for its interval
  const slow = await PostgresRuntimeDirectory.open({ url, authKey: AUTH_KEY, prefix: db.prefix, node: 'node-c', flushInterval: 60_000 });
  slow.publish([service('late')]);
  await slow.close();
  assert.deepEqual((await reader.others({ name: 'late' })).map((o) => o.node), ['node-c']);
});

test('runtime directory: the services of a node without a lease, or published before its restart, read back as lost; its first publish after a restart is the truth', async (t) => {
  const db = await testPostgres(t, 'rtdir3');
  if (!db) return;
  const url = process.env.MICRO_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const reader = await PostgresRuntimeDirectory.open({ url, authKey: AUTH_KEY, prefix: db.prefix, node: 'reader' });
  const a = await PostgresRuntimeDirectory.open({ url, authKey: AUTH_KEY, prefix: db.prefix, node: 'node-a', flushInterval: 10 });
  const restarted: PostgresRuntimeDirectory[] = [];
  t.after(async () => {
    await a.close();
    for (const d of restarted) await d.close();
    await reader.close();
  });
  const view = async () => {
    const [o] = await reader.others({ name: 'greeter' });
    assert.ok(o);
    return o;
  };
  a.publish([service('greeter')]);
  await settle();
  let o = await view();
  assert.equal(o.live, true);
  assert.equal(o.service.state, 'running');
  assert.equal(o.service.instances[0]?.pid, 42);

  // node-a stops (its lease ends with it): nothing of it shows as running, no uptime counts
  await a.close();
  o = await view();
  assert.equal(o.live, false);
  assert.equal(o.service.state, 'lost');
  assert.deepEqual(o.service.instances, [{ id: 'i1', state: 'lost', restarts: 0 }]);

  // node-a again: its lease is live at once, but its rows are from before its restart until it publishes
  const again = await PostgresRuntimeDirectory.open({ url, authKey: AUTH_KEY, prefix: db.prefix, node: 'node-a', flushInterval: 10 });
  restarted.push(again);
  assert.equal(again.lease.holdsLease(), true);
  o = await view();
  assert.equal(o.service.state, 'lost', 'stale rows never show as running');
  again.publish([{ ...service('greeter'), state: 'starting', instances: [{ id: 'i2', state: 'starting', restarts: 0 }] }]);
  await settle();
  o = await view();
  assert.equal(o.live, true);
  assert.equal(o.service.state, 'starting');
  again.publish([{ ...service('greeter'), instances: [{ id: 'i2', pid: 43, state: 'running', restarts: 0 }] }]);
  await settle();
  assert.deepEqual((await view()).service.instances.map((i) => [i.id, i.state, i.pid]), [['i2', 'running', 43]]);
});

test('markLost: every instance lost, no pid or start time; errors and the build stay', () => {
  const s = service('greeter');
  s.instances.push({ id: 'i9', state: 'crashed', restarts: 3, lastError: 'boom' });
  s.build = { id: 'b1', error: 'tsc failed' };
  const lost = markLost(s);
  assert.equal(lost.state, 'lost');
  assert.deepEqual(lost.instances, [
    { id: 'i1', state: 'lost', restarts: 0 },
    { id: 'i9', state: 'lost', restarts: 3, lastError: 'boom' },
  ]);
  assert.deepEqual(lost.build, { id: 'b1', error: 'tsc failed' });
  assert.equal(s.state, 'running', 'the published view itself is not changed');
});
