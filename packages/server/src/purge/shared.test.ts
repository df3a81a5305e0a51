import assert from 'node:assert/strict';
import test from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { ConfigCipher } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { RedisCache } from '../cache/redis.js';
import { KvConfig } from '../config/kv.js';
import { JetStreamEvents } from '../events/jetstream.js';

/*
 * The purge on the shared engines of the nats profile: a namespace whose name starts with
 * the purged one (`acme-2`, `acme.x` for `acme`) keeps everything, as does the neighbour.
 * (PostgreSQL's store: purge.test.ts; auth, runtime and quotas on PostgreSQL: the e2e test.)
 */

const NAMESPACES = ['acme', 'acme-2', 'acme.x', 'globex'];

async function nats(t: test.TestContext, prefix: string): Promise<NatsConnection | undefined> {
  const url = await engineUrl(t, 'nats');
  if (!url) return undefined;
  const nc = await connect({ servers: url });
  t.after(async () => {
    const jsm = await jetstreamManager(nc);
    for await (const s of jsm.streams.list()) if (s.config.name.includes(prefix)) await jsm.streams.delete(s.config.name).catch(() => undefined);
    await nc.close();
  });
  return nc;
}

test('JetStream events: the purge deletes the streams of the namespace only; its consumers here end', async (t) => {
  const prefix = testPrefix('purgeevents');
  const nc = await nats(t, prefix);
  if (!nc) return;
  const events = await JetStreamEvents.open(nc, { prefix });
  t.after(() => events.close());
  for (const ns of NAMESPACES) for (const topic of ['orders', 'mail']) await events.publish(topic, { ns }, { namespace: ns });
  const live = await events.consume('orders', { namespace: 'acme', group: 'live' });
  const others = await Promise.all(NAMESPACES.slice(1).map((ns) => events.namespaceBytes(ns)));
  assert.ok((await events.namespaceBytes('acme')) > 0);
  await events.purgeNamespace('acme');
  assert.deepEqual(await events.topics({ namespace: 'acme' }), []);
  assert.equal(await events.namespaceBytes('acme'), 0, 'its eventsBytes usage goes with its streams');
  assert.deepEqual(await Promise.all(NAMESPACES.slice(1).map((ns) => events.namespaceBytes(ns))), others, 'look-alike namespaces keep theirs');
  assert.equal((await live.next()).done, true);
  for (const ns of NAMESPACES.slice(1)) assert.deepEqual((await events.topics({ namespace: ns })).map((x) => x.name), ['mail', 'orders'], ns);
  // the name starts afresh: a new stream, offset 1, none of the old events
  assert.equal((await events.publish('orders', { n: 'new' }, { namespace: 'acme' })).offset, 1);
  assert.deepEqual((await events.read('orders', { namespace: 'acme' })).events.map((e) => e.payload), [{ n: 'new' }]);
});

test('KV config: the purge removes the document and its history; the others keep theirs', async (t) => {
  const prefix = testPrefix('purgeconfig');
  const nc = await nats(t, prefix);
  if (!nc) return;
  const config = await KvConfig.open(nc, { prefix, cipher: ConfigCipher.random() });
  t.after(() => config.close());
  for (const ns of NAMESPACES) {
    await config.set('db.password', `pw-${ns}`, { namespace: ns, secret: true });
    await config.set('db.password', `pw2-${ns}`, { namespace: ns, secret: true });
  }
  await config.purgeNamespace('acme');
  assert.deepEqual(await config.get('', { namespace: 'acme', secrets: true }), {});
  for (const ns of NAMESPACES.slice(1)) assert.equal(await config.get('db.password', { namespace: ns, secrets: true }), `pw2-${ns}`);
  // what the bucket's stream keeps of the key is the purge marker: no sealed secret left
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(`KV_${prefix}_config`, { subjects_filter: '>' });
  const subject = Object.keys(info.state.subjects ?? {}).find((s) => s.endsWith('.ns.acme'));
  assert.ok(subject, JSON.stringify(info.state.subjects));
  assert.equal((info.state.subjects as Record<string, number>)[subject], 1);
  const last = await jsm.streams.getMessage(`KV_${prefix}_config`, { last_by_subj: subject });
  assert.equal(last?.header.get('KV-Operation'), 'PURGE');
  assert.equal(last?.data.length, 0);
});

test('Redis cache: the purge deletes every key of the namespace, and only those', async (t) => {
  const url = await engineUrl(t, 'redis');
  if (!url) return;
  const prefix = testPrefix('purgecache');
  const cache = await RedisCache.connect({ url, prefix, timeout: 10_000 });
  const redis = new Redis(url);
  t.after(async () => {
    await cache.close();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
  });
  // more keys than one SCAN call returns: the purge goes to the end of the keyspace
  for (const ns of NAMESPACES) for (let i = 0; i < (ns === 'acme' ? 2500 : 5); i++) await cache.set(`k${i}`, i, { namespace: ns });
  assert.equal(await cache.purgeNamespace('acme'), 2500);
  assert.deepEqual(await cache.listKeys({ namespace: 'acme' }), []);
  for (const ns of NAMESPACES.slice(1)) assert.equal((await cache.listKeys({ namespace: ns })).length, 5, ns);
});
