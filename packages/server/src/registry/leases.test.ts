import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryRegistry, type ServiceRecord } from '@micro/sdk';
import { SERVER_NODE_KEY, withoutEndedServers } from './leases.js';

function record(name: string, nodes: [id: string, server?: string][]): ServiceRecord {
  return {
    name,
    version: '1.0.0',
    endpoints: [],
    nodes: nodes.map(([id, server]) => ({ id, address: `nats:${id}`, metadata: { pid: '1', ...(server ? { [SERVER_NODE_KEY]: server } : {}) } })),
  };
}

test('the registry as micro services reads it leaves out the nodes of servers whose lease ended, and only those', async () => {
  const inner = new MemoryRegistry();
  const leases = new Map<string, boolean | undefined>([['dead', true], ['alive', false]]);
  const registry = withoutEndedServers(inner, (server) => leases.get(server));
  await registry.register(record('store', [['s-dead', 'dead'], ['s-alive', 'alive']]), { namespace: 'micro' });
  await registry.register(record('auth', [['a-dead', 'dead']]), { namespace: 'micro' });
  // a service a runtime runs carries no server id: it may outlive its server, its TTL decides
  await registry.register(record('demo', [['d1'], ['d2']]), { namespace: 'micro' });
  // a server the lease table does not know (or cannot be read): kept
  await registry.register(record('config', [['c-unknown', 'unknown']]), { namespace: 'micro' });
  const list = await registry.listServices({ namespace: 'micro' });
  const nodes = Object.fromEntries(list.map((r) => [r.name, r.nodes.map((n) => n.id).sort()]));
  assert.deepEqual(nodes, { store: ['s-alive'], demo: ['d1', 'd2'], config: ['c-unknown'] }, 'auth has no node left: left out');
  assert.deepEqual((await registry.getService('store', { namespace: 'micro' })).flatMap((r) => r.nodes.map((n) => n.id)), ['s-alive']);
  assert.deepEqual(await registry.getService('auth', { namespace: 'micro' }), []);
  // the registry itself keeps them (their TTL removes them), and they show again if the lease is held again
  assert.equal((await inner.getService('auth', { namespace: 'micro' })).length, 1);
  leases.set('dead', false);
  assert.deepEqual((await registry.getService('auth', { namespace: 'micro' })).flatMap((r) => r.nodes.map((n) => n.id)), ['a-dead']);
  await inner.close?.();
});
