import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RuntimeService } from '@micro/sdk';
import { testPostgres } from '../postgres/testing.js';
import { PostgresRuntimeDirectory } from './directory.js';

function service(name: string, namespace = 'micro'): RuntimeService {
  const at = new Date().toISOString();
  return { name, namespace, version: '1.0.0', source: `/src/${name}`, state: 'running', instances: [{ id: 'i1', pid: 42, state: 'running', restarts: 0 }], desiredInstances: 1, env: {}, createdAt: at, updatedAt: at };
}

const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));

test('runtime directory: each node publishes what it runs and reads what the others run', async (t) => {
  const db = await testPostgres(t, 'rtdir');
  if (!db) return;
  const url = process.env.MICRO_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';
  // two nodes on one schema (their migrations race: one runs it, the other finds it done)
  const [a, b] = await Promise.all([
    PostgresRuntimeDirectory.open({ url, prefix: db.prefix, node: 'node-a', flushInterval: 10 }),
    PostgresRuntimeDirectory.open({ url, prefix: db.prefix, node: 'node-b', flushInterval: 10 }),
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
  const first = await PostgresRuntimeDirectory.open({ url, prefix: db.prefix, node: 'node-a', flushInterval: 10 });
  first.publish([service('greeter')]);
  await first.close();
  // the same node restarted, with heart-beats before its runtime has published: its rows stay
  const again = await PostgresRuntimeDirectory.open({ url, prefix: db.prefix, node: 'node-a', flushInterval: 10, heartbeat: 20 });
  const reader = await PostgresRuntimeDirectory.open({ url, prefix: db.prefix, node: 'reader' });
  t.after(async () => {
    await again.close();
    await reader.close();
  });
  await settle(100);
  assert.deepEqual((await reader.others({})).map((o) => o.service.name), ['greeter']);
  // closing flushes a publish still waiting for its interval
  const slow = await PostgresRuntimeDirectory.open({ url, prefix: db.prefix, node: 'node-c', flushInterval: 60_000 });
  slow.publish([service('late')]);
  await slow.close();
  assert.deepEqual((await reader.others({ name: 'late' })).map((o) => o.node), ['node-c']);
});
