import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { isMicroError } from '@micro/sdk';
import { openSqliteQuotas } from '../quota/sqlite.js';
import { BUILT_IN_DEFAULTS } from '../quota/limits.js';
import type { Quotas } from '../quota/quotas.js';
import { SqliteEvents } from './sqlite.js';
import { eventsQuota, retentionMs } from './quota.js';
import { silent } from './testing.js';

/*
 * eventsBytes and eventRetention on the SQLite engine (local profile), with the real
 * quota engine: the bytes counted through publish, dead letters, sweep and purge; the
 * boundary held under concurrent publishes; the namespace's retention capping its topics'.
 */

const root = mkdtempSync(join(tmpdir(), 'micro-events-quota-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

function setup(t: { after: (fn: () => unknown) => void }, now?: () => number): { events: SqliteEvents; quotas: Quotas; path: string } {
  const quotas = openSqliteQuotas({ path: join(root, `quota-${n}.db`), defaults: BUILT_IN_DEFAULTS });
  const path = join(root, `events-${n++}.db`);
  const events = new SqliteEvents({ path, sweepInterval: 0, logger: silent, quota: eventsQuota({ quotas }), now });
  t.after(async () => {
    await events.close();
    await quotas.close();
  });
  return { events, quotas, path };
}

/** bytes of a payload as stored: its JSON */
const sized = (bytes: number) => 'x'.repeat(bytes - 2);

describe('events quotas on SQLite', () => {
  test('eventsBytes: N concurrent publishes with room for k store exactly k, across topics; the refusal is the quota 403', async (t) => {
    const { events, quotas } = setup(t);
    await quotas.set('acme', { eventsBytes: 1000 });
    const results = await Promise.allSettled(Array.from({ length: 25 }, (_, i) => events.publish(`t${i % 3}`, sized(100), { namespace: 'acme' })));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    assert.equal(ok, 10, 'exactly the 10 events of 100 bytes that fit');
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.ok(isMicroError(refused.reason));
    assert.equal(refused.reason.code, 403);
    assert.equal(refused.reason.id, 'quota');
    assert.match(refused.reason.detail, /eventsBytes 1000 of 1000 used in namespace acme/);
    assert.equal(events.namespaceBytes('acme'), 1000);
    // exactly at the limit passes; one byte past does not
    await quotas.set('acme', { eventsBytes: 1050 });
    await assert.rejects(events.publish('t0', sized(51), { namespace: 'acme' }), /eventsBytes 1000 of 1050/);
    await events.publish('t0', sized(50), { namespace: 'acme' });
    assert.equal(events.namespaceBytes('acme'), 1050);
    // a retried publish of a stored event is not a new one
    const first = await events.publish('t0', sized(100), { namespace: 'acme', id: 'dup' }).catch((e: unknown) => e);
    assert.ok(isMicroError(first) && first.code === 403);
    // another namespace, and micro, are not touched
    await events.publish('t0', sized(2000), { namespace: 'other' });
    await events.publish('t0', sized(10_000));
    assert.deepEqual(await quotas.usage('acme').then((u) => u.eventsBytes ?? 'not a source'), 'not a source', 'the engine alone registers nothing');
  });

  test('a retry of a stored event passes at the limit; metadata counts', async (t) => {
    const { events, quotas } = setup(t);
    await quotas.set('acme', { eventsBytes: 300 });
    await events.publish('t', sized(100), { namespace: 'acme', id: 'a', metadata: { k: 'v' } });
    const used = events.namespaceBytes('acme');
    assert.equal(used, 100 + JSON.stringify({ k: 'v' }).length);
    await quotas.set('acme', { eventsBytes: used });
    const again = await events.publish('t', sized(100), { namespace: 'acme', id: 'a', metadata: { k: 'v' } });
    assert.equal(again.offset, 1, 'the stored event, not a new one');
    await assert.rejects(events.publish('t', 1, { namespace: 'acme' }), /quota exceeded: eventsBytes/);
  });

  test('the count follows the sweep, a topic retention and the namespace purge', async (t) => {
    let now = 1_000_000;
    const { events, quotas, path } = setup(t, () => now);
    await quotas.set('acme', { eventsBytes: 550 });
    for (let i = 0; i < 5; i++) await events.publish('t', sized(100), { namespace: 'acme' });
    await events.publish('u', sized(50), { namespace: 'acme' });
    await assert.rejects(events.publish('t', sized(100), { namespace: 'acme' }), /eventsBytes 550 of 550/);
    await events.setRetention('t', { maxEvents: 2 }, { namespace: 'acme' });
    await events.sweep();
    assert.equal(events.namespaceBytes('acme'), 250, 'the sweep gave the room back');
    await events.publish('t', sized(100), { namespace: 'acme' });
    now += 1;
    const db = new Database(path, { readonly: true });
    const row = db.prepare("SELECT bytes FROM namespace_usage WHERE namespace = 'acme'").get() as { bytes: number };
    const sum = db.prepare("SELECT sum(size) AS s FROM events WHERE namespace = 'acme'").get() as { s: number };
    assert.equal(row.bytes, sum.s, 'the counter is the sum of the events held');
    db.close();
    await events.purgeNamespace('acme');
    assert.equal(events.namespaceBytes('acme'), 0);
    const check = new Database(path, { readonly: true });
    assert.equal((check.prepare("SELECT count(*) AS n FROM namespace_usage WHERE namespace = 'acme'").get() as { n: number }).n, 0, 'the purge leaves no counter behind');
    check.close();
  });

  test('a database of schema 1 gets its counts from the events it holds', async (t) => {
    const path = join(root, `events-${n++}.db`);
    const old = new SqliteEvents({ path, sweepInterval: 0, logger: silent });
    await old.publish('t', sized(100), { namespace: 'acme' });
    await old.publish('t', sized(30), { namespace: 'acme' });
    await old.close();
    const db = new Database(path);
    db.exec("DROP TRIGGER events_usage_insert; DROP TRIGGER events_usage_delete; DROP TABLE namespace_usage; UPDATE meta SET value = '1' WHERE key = 'schema_version'");
    db.close();
    const events = new SqliteEvents({ path, sweepInterval: 0, logger: silent });
    t.after(() => events.close());
    assert.equal(events.namespaceBytes('acme'), 130);
  });

  test('eventRetention: the sweep drops a namespace\'s events older than its retention, capping longer topic retention only', async (t) => {
    let now = 10_000_000;
    const { events, quotas } = setup(t, () => now);
    await quotas.set('acme', { eventRetention: 60 });
    await events.publish('long', 'old', { namespace: 'acme' });
    await events.publish('forever', 'old', { namespace: 'acme' });
    await events.setRetention('forever', { maxAge: 0 }, { namespace: 'acme' });
    await events.publish('short', 'old', { namespace: 'acme' });
    await events.setRetention('short', { maxAge: 10_000 }, { namespace: 'acme' });
    await events.publish('long', 'old', { namespace: 'other' });
    now += 30_000;
    await events.publish('long', 'new', { namespace: 'acme' });
    await events.sweep();
    const count = async (ns: string, topic: string) => (await events.read(topic, { namespace: ns })).events.length;
    assert.equal(await count('acme', 'short'), 0, 'the topic\'s own shorter retention still applies');
    assert.equal(await count('acme', 'long'), 2, 'within the namespace retention');
    now += 31_000;
    await events.sweep();
    assert.equal(await count('acme', 'long'), 1, 'past 60 s: gone; the newer one stays');
    assert.equal(await count('acme', 'forever'), 0, 'a topic kept for ever is capped too');
    assert.equal(await count('other', 'long'), 1, 'another namespace keeps the default week');
    assert.equal(events.namespaceBytes('acme'), JSON.stringify('new').length);
    // 0 keeps nothing past the next sweep
    await quotas.set('acme', { eventRetention: 0 });
    now += 1;
    await events.sweep();
    assert.equal(await count('acme', 'long'), 0);
  });

  test('a sweep whose quotas cannot be read keeps the topics\' own retention and goes on', async (t) => {
    let away = false;
    const events = new SqliteEvents({
      path: join(root, `events-${n++}.db`),
      sweepInterval: 0,
      logger: silent,
      retention: { maxEvents: 1 },
      quota: {
        limits: async () => (away ? Promise.reject(new Error('quotas away')) : { bytes: null, maxAge: 0 }),
        refuse: () => new Error('not expected'),
      },
    });
    t.after(() => events.close());
    for (let i = 0; i < 3; i++) await events.publish('t', i, { namespace: 'acme' });
    away = true;
    await events.sweep();
    assert.deepEqual((await events.read('t', { namespace: 'acme' })).events.map((e) => e.payload), [2], 'maxEvents applied, the unread retention 0 not');
  });

  test('retention in seconds becomes ms, capped at the longest a topic may have', () => {
    assert.equal(retentionMs(null), null);
    assert.equal(retentionMs(0), 0);
    assert.equal(retentionMs(60), 60_000);
    assert.equal(retentionMs(2 ** 50), 10 * 365 * 24 * 3600 * 1000);
  });
});
