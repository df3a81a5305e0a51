import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { isMicroError } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { openSqliteQuotas } from '../quota/sqlite.js';
import { BUILT_IN_DEFAULTS } from '../quota/limits.js';
import type { Quotas } from '../quota/quotas.js';
import { JetStreamEvents } from './jetstream.js';
import { eventsQuota } from './quota.js';
import { silent } from './testing.js';

/*
 * eventsBytes and eventRetention on JetStream (nats profile), on the NATS of this machine:
 * each topic's stream gets max_bytes (discard new: JetStream itself refuses, answered as the
 * quota 403) and max_age from its namespace's limits; a changed limit reaches a stream at
 * its next publish. The quotas are the SQLite engine's: the events engine only reads limits.
 */

const natsUrl = await engineUrl({ skip: () => undefined }, 'nats');
const root = mkdtempSync(join(tmpdir(), 'micro-events-jsquota-'));
let nc: NatsConnection | undefined;
after(async () => {
  await nc?.close();
  rmSync(root, { recursive: true, force: true });
});
let n = 0;

async function setup(t: { after: (fn: () => unknown) => void }): Promise<{ events: JetStreamEvents; quotas: Quotas; streamOf: (ns: string, topic: string) => Promise<import('@nats-io/jetstream').StreamInfo> }> {
  nc ??= await connect({ servers: new URL(natsUrl as string).host });
  const conn = nc;
  const prefix = testPrefix('jsquota');
  const quotas = openSqliteQuotas({ path: join(root, `quota-${n++}.db`), defaults: BUILT_IN_DEFAULTS });
  const events = await JetStreamEvents.open(conn, { prefix, logger: silent, quota: eventsQuota({ quotas }) });
  const jsm = await jetstreamManager(conn);
  t.after(async () => {
    await events.close();
    await quotas.close();
    for await (const name of jsm.streams.names(`${prefix}.events.>`)) await jsm.streams.delete(name).catch(() => undefined);
  });
  const streamOf = async (ns: string, topic: string) => {
    for await (const info of jsm.streams.list(`${prefix}.events.${ns}.${topic}`)) return info;
    throw new Error(`no stream of ${ns}/${topic}`);
  };
  return { events, quotas, streamOf };
}

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + 15_000;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`not within 15 s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('events quotas on JetStream', () => {
  test('eventsBytes: the stream refuses past it (discard new) with the quota 403; concurrent publishes never pass it', async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const { events, quotas, streamOf } = await setup(t);
    await quotas.set('acme', { eventsBytes: 2000 });
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => events.publish('orders', 'x'.repeat(200), { namespace: 'acme' })));
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.ok(refused.length > 0, 'some were refused');
    for (const r of refused) {
      assert.ok(isMicroError(r.reason), String(r.reason));
      assert.equal(r.reason.code, 403);
      assert.equal(r.reason.id, 'quota');
      assert.match(r.reason.detail, /quota exceeded: eventsBytes \d+ of 2000 used in namespace acme/);
    }
    const info = await streamOf('acme', 'orders');
    assert.equal(info.config.max_bytes, 2000);
    assert.equal(info.config.discard, DiscardPolicy.New);
    assert.ok(info.state.bytes <= 2000, `the stream holds ${info.state.bytes} bytes`);
    assert.equal(info.state.messages, results.length - refused.length, 'every success is stored, no refused one is');
    // per topic: another topic of the namespace has its own 2000 bytes; usage sums them
    await events.publish('payments', 'y', { namespace: 'acme' });
    assert.equal(await events.namespaceBytes('acme'), info.state.bytes + (await streamOf('acme', 'payments')).state.bytes);
    // another namespace is untouched, micro is unlimited
    await events.publish('orders', 'x'.repeat(3000), { namespace: 'other' });
    assert.equal((await streamOf('micro', 'orders').catch(() => undefined)) === undefined, true);
    await events.publish('orders', 'x'.repeat(5000));
    assert.equal((await streamOf('micro', 'orders')).config.max_bytes, -1);
  });

  test('a changed limit reaches an existing stream at its next publish; 0 refuses every event', async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const { events, quotas, streamOf } = await setup(t);
    await quotas.set('acme', { eventsBytes: 500 });
    await events.publish('t', 'x'.repeat(300), { namespace: 'acme' });
    await assert.rejects(events.publish('t', 'x'.repeat(300), { namespace: 'acme' }), /eventsBytes \d+ of 500/);
    await quotas.set('acme', { eventsBytes: 5000 });
    await events.publish('t', 'x'.repeat(300), { namespace: 'acme' });
    assert.equal((await streamOf('acme', 't')).config.max_bytes, 5000);
    await quotas.set('acme', { eventsBytes: 0 });
    await assert.rejects(events.publish('u', 1, { namespace: 'acme' }), (err: unknown) => isMicroError(err) && err.code === 403 && /eventsBytes \d+ of 0/.test(err.detail));
    assert.equal((await streamOf('acme', 'u')).state.messages, 0);
  });

  test('a topic with its own maxEvents or a tighter maxBytes keeps dropping its oldest', async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const { events, quotas, streamOf } = await setup(t);
    await quotas.set('acme', { eventsBytes: 1500 });
    await events.publish('counted', 1, { namespace: 'acme' });
    await events.setRetention('counted', { maxEvents: 100 }, { namespace: 'acme' });
    for (let i = 0; i < 15; i++) await events.publish('counted', 'x'.repeat(200), { namespace: 'acme' });
    const counted = await streamOf('acme', 'counted');
    assert.deepEqual([counted.config.max_bytes, counted.config.discard], [1500, DiscardPolicy.Old]);
    assert.ok(counted.state.bytes <= 1500);
    await events.publish('small', 1, { namespace: 'acme' });
    await events.setRetention('small', { maxBytes: 600 }, { namespace: 'acme' });
    for (let i = 0; i < 5; i++) await events.publish('small', 'x'.repeat(200), { namespace: 'acme' });
    const small = await streamOf('acme', 'small');
    assert.deepEqual([small.config.max_bytes, small.config.discard], [600, DiscardPolicy.Old]);
  });

  test('eventRetention: each stream of the namespace gets it as max_age (capping a longer own maxAge) and JetStream drops older events', async (t) => {
    if (!(await engineUrl(t, 'nats'))) return;
    const { events, quotas, streamOf } = await setup(t);
    await quotas.set('acme', { eventRetention: 1 });
    await events.publish('short', 'a', { namespace: 'acme' });
    await events.publish('long', 'a', { namespace: 'acme' });
    await events.setRetention('long', { maxAge: 3_600_000 }, { namespace: 'acme' });
    await events.publish('other', 'a', { namespace: 'other' });
    assert.equal((await streamOf('acme', 'short')).config.max_age, 1e9);
    assert.equal((await streamOf('acme', 'long')).config.max_age, 1e9, 'setRetention keeps the cap');
    assert.equal((await streamOf('other', 'other')).config.max_age, 7 * 24 * 3600 * 1e9, 'the default week');
    await until('the events older than 1 s are gone', async () => (await streamOf('acme', 'short')).state.messages === 0 && (await streamOf('acme', 'long')).state.messages === 0);
    assert.equal((await streamOf('other', 'other')).state.messages, 1);
    // a raised retention reaches the stream at its next publish
    await quotas.set('acme', { eventRetention: 3600 });
    await events.publish('short', 'b', { namespace: 'acme' });
    assert.equal((await streamOf('acme', 'short')).config.max_age, 3600 * 1e9);
  });
});
