import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MicroError } from '@micro/sdk';
import { type Delivery, type EngineConsumer } from '@micro/sdk';
import { eventsContract } from '@micro/sdk/testing';
import { EVENTS_SCHEMA_VERSION, SqliteEvents, SqliteStorage } from './sqlite.js';
import { retentionFromEnv } from './index.js';
import { silent } from './testing.js';

const root = mkdtempSync(join(tmpdir(), 'micro-events-sqlite-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(root, `events-${n++}.db`);

eventsContract('sqlite', async () => {
  const events = new SqliteEvents({ path: freshPath(), sweepInterval: 0, logger: silent });
  return { impl: events, close: () => events.close(), sweep: () => events.sweep() };
});

/**
 * What a kill -9 leaves on disk: the database and its WAL as they are now (everything
 * committed so far), copied while the engine still runs; the copy is opened as the
 * restarted server would open the original.
 */
function crashCopy(path: string): string {
  const copy = freshPath();
  copyFileSync(path, copy);
  if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${copy}-wal`);
  return copy;
}

async function take(c: EngineConsumer): Promise<Delivery> {
  const r = await c.next();
  assert.equal(r.done, false);
  return r.value as Delivery;
}

describe('events in SQLite', () => {
  test('the database is in WAL mode with synchronous = FULL, at the schema version', async () => {
    const path = freshPath();
    const events = new SqliteEvents({ path, sweepInterval: 0, logger: silent });
    await events.publish('t', 1);
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal((db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value, String(EVENTS_SCHEMA_VERSION));
    db.close();
    // synchronous is per connection: ask the engine's own
    const storage = new SqliteStorage(freshPath());
    assert.equal((storage as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true }), 2);
    storage.close();
    await events.close();
  });

  test('a database of a newer schema is refused with what to do', () => {
    const path = freshPath();
    new SqliteStorage(path).close();
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
    db.close();
    assert.throws(() => new SqliteEvents({ path, sweepInterval: 0 }), (err: MicroError) => err.code === 503 && /schema version 99.*upgrade micro/.test(err.detail));
  });

  test('everything survives a reopen: events, offsets, groups, retention, ids', async () => {
    const path = freshPath();
    let events = new SqliteEvents({ path, sweepInterval: 0, logger: silent });
    await events.publish('orders', { n: 1 }, { id: 'o-1', metadata: { k: 'v' } });
    await events.publish('orders', { n: 2 });
    await events.setRetention('orders', { maxEvents: 100 });
    const c = await events.consume('orders', { group: 'billing', offset: 'earliest' });
    await (await take(c)).ack();
    await c.close();
    await events.close();

    events = new SqliteEvents({ path, sweepInterval: 0, logger: silent });
    const page = await events.read('orders');
    assert.deepEqual(page.events.map((e) => [e.offset, e.payload, e.metadata]), [[1, { n: 1 }, { k: 'v' }], [2, { n: 2 }, undefined]]);
    assert.equal((await events.publish('orders', { n: 1 }, { id: 'o-1', metadata: { k: 'v' } })).offset, 1, 'the id is still known');
    assert.equal((await events.publish('orders', { n: 3 })).offset, 3);
    assert.deepEqual((await events.topics())[0]?.retention, { maxEvents: 100 });
    assert.deepEqual((await events.groups('orders')).map((g) => [g.name, g.committed]), [['billing', 1]]);
    const again = await events.consume('orders', { group: 'billing', offset: 'earliest' });
    assert.deepEqual([(await take(again)).event.offset, (await take(again)).event.offset], [2, 3]);
    await events.close();
  });

  test('after a crash, deliveries that were held are due again at once, their attempts counted', async () => {
    const crashed = new SqliteEvents({ path: freshPath(), sweepInterval: 0, logger: silent });
    await crashed.publish('jobs', 'a');
    await crashed.publish('jobs', 'b');
    const c = await crashed.consume('jobs', { group: 'g', offset: 'earliest', ackWait: 3_600_000 });
    const held = [await take(c), await take(c)];
    await held[1]?.ack();
    // the process dies: no consumer closes, nothing is given back; the database stays
    const path = crashCopy(crashed.path);
    await crashed.close();

    const events = new SqliteEvents({ path, sweepInterval: 0, logger: silent });
    const again = await events.consume('jobs', { group: 'g', ackWait: 3_600_000 });
    const d = await take(again);
    assert.deepEqual([d.event.payload, d.attempt], ['a', 2]);
    await d.ack();
    assert.deepEqual((await events.groups('jobs')).map((g) => [g.committed, g.inflight]), [[2, 0]]);
    await events.close();
  });

  test('a crash on the last attempt sends the event to the dead letters', async () => {
    const crashed = new SqliteEvents({ path: freshPath(), sweepInterval: 0, logger: silent });
    await crashed.publish('jobs', 'poison');
    const c = await crashed.consume('jobs', { group: 'g', offset: 'earliest', ackWait: 3_600_000, maxRetries: 0 });
    await take(c);
    // the hand-out is committed on the next turn of the event loop
    await new Promise((r) => setImmediate(r));
    const path = crashCopy(crashed.path);
    await crashed.close();

    const events = new SqliteEvents({ path, sweepInterval: 0, logger: silent });
    const again = await events.consume('jobs', { group: 'g', maxRetries: 0 });
    const waiting = again.next();
    await events.publish('jobs', 'next');
    assert.equal((await waiting).value?.event.payload, 'next');
    const dead = await events.read('jobs.dead');
    assert.deepEqual(dead.events.map((e) => [e.payload, e.metadata?.['dead.attempts']]), [['poison', '1']]);
    await events.close();
  });

  test('a delayed nack stays delayed across a restart, then comes', async () => {
    const path = freshPath();
    let events = new SqliteEvents({ path, sweepInterval: 0, logger: silent });
    await events.publish('later', 'x');
    const c = await events.consume('later', { group: 'g', offset: 'earliest' });
    await (await take(c)).nack(300, 'not yet');
    await events.close();

    events = new SqliteEvents({ path, sweepInterval: 0, logger: silent });
    const again = await events.consume('later', { group: 'g' });
    const t = Date.now();
    const d = await take(again);
    assert.deepEqual([d.event.payload, d.attempt], ['x', 2]);
    assert.ok(Date.now() - t >= 100, 'it waited for its delay');
    await events.close();
  });

  test('concurrent publishes are committed together and keep distinct offsets', async () => {
    const events = new SqliteEvents({ path: freshPath(), sweepInterval: 0, logger: silent });
    const published = await Promise.all(Array.from({ length: 500 }, (_, i) => events.publish('burst', i)));
    assert.deepEqual(published.map((e) => e.offset).sort((a, b) => a - b), Array.from({ length: 500 }, (_, i) => i + 1));
    const all = [];
    for (let offset: number | undefined = 1; offset !== undefined; ) {
      const page = await events.read('burst', { offset, limit: 1000 });
      all.push(...page.events);
      offset = page.next;
    }
    assert.equal(all.length, 500);
    for (const e of published) assert.deepEqual(all[e.offset - 1]?.payload, e.payload);
    await events.close();
  });

  test('the engine-wide retention comes from the environment, and bad values say what to fix', () => {
    assert.deepEqual(retentionFromEnv({}), {});
    assert.deepEqual(retentionFromEnv({ MICRO_EVENTS_MAX_AGE: '2d', MICRO_EVENTS_MAX_EVENTS: '1000', MICRO_EVENTS_MAX_BYTES: '512MB' }), {
      maxAge: 2 * 86_400_000,
      maxEvents: 1000,
      maxBytes: 512 * 1024 * 1024,
    });
    assert.deepEqual(retentionFromEnv({ MICRO_EVENTS_MAX_AGE: '0' }), { maxAge: 0 });
    assert.throws(() => retentionFromEnv({ MICRO_EVENTS_MAX_AGE: 'a week' }), /MICRO_EVENTS_MAX_AGE=a week is not a duration/);
    assert.throws(() => retentionFromEnv({ MICRO_EVENTS_MAX_EVENTS: '-1' }), /MICRO_EVENTS_MAX_EVENTS/);
    assert.throws(() => retentionFromEnv({ MICRO_EVENTS_MAX_BYTES: '5 parsecs' }), /MICRO_EVENTS_MAX_BYTES/);
    assert.throws(() => new SqliteEvents({ path: freshPath(), retention: { maxAge: -5 } }), /maxAge/);
  });
});
