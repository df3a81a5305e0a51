import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBroker, MemoryStore, MemorySync, type Context } from '@micro/sdk';
import { Records, type Stamped } from './records.js';
import { MAX_LISTENERS } from './listen.js';

type Note = Stamped & { title: string };

function setup(maxRecords = 3) {
  const engines = { store: new MemoryStore(), sync: new MemorySync(), broker: new MemoryBroker() };
  const records = new Records<Note>(engines, { service: 'notes', noun: 'note', events: true, maxRecords });
  const ctx = (tenant: string, signal = new AbortController().signal) => ({ tenant, signal }) as Context;
  return { engines, records, ctx };
}

test('a tenant keeps at most maxRecords, also when creating at once; others are not counted', async () => {
  const { records, ctx } = setup(3);
  const made = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => records.create(ctx('a'), { title: `n${i}` })));
  assert.equal(made.filter((r) => r.status === 'fulfilled').length, 3);
  const refused = made.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  assert.equal(refused.reason.code, 429);
  assert.match(refused.reason.detail, /3 notes/);
  assert.equal((await records.list(ctx('a'))).length, 3);
  await records.create(ctx('b'), { title: 'of b' });
  assert.deepEqual((await records.list(ctx('b'))).map((n) => n.title), ['of b']);
});

test('concurrent updates of one record are serialised: none is lost', async () => {
  const { records, ctx } = setup();
  const note = await records.create(ctx('a'), { title: '' });
  await Promise.all(Array.from({ length: 10 }, (_, i) => records.update(ctx('a'), note.id, (n) => ({ ...n, title: n.title + String(i % 10) }))));
  assert.equal((await records.read(ctx('a'), note.id)).title.length, 10);
});

test('changes: from when it is ready, of one record or all, until the call ends', async () => {
  const { records, ctx } = setup();
  const stop = new AbortController();
  const note = await records.create(ctx('a'), { title: 'x' });
  const seen: string[] = [];
  const all = (async () => {
    for await (const c of records.changes(ctx('a', stop.signal))) seen.push(`${c.event} ${c.record.title}`);
  })();
  const ofB = records.changes(ctx('b', stop.signal), note.id);
  await assert.rejects(ofB.next(), (err: { code: number }) => err.code === 404);
  await new Promise((r) => setTimeout(r, 10));
  await records.update(ctx('a'), note.id, (n) => ({ ...n, title: 'y' }));
  await records.create(ctx('b'), { title: 'of b' });
  await records.delete(ctx('a'), note.id);
  await new Promise((r) => setTimeout(r, 10));
  stop.abort();
  await all;
  assert.deepEqual(seen, ['update y', 'delete y']);
});

test('open listeners are bounded per tenant', async () => {
  const { records, ctx } = setup();
  const stop = new AbortController();
  const open = Array.from({ length: MAX_LISTENERS }, () => records.changes(ctx('a', stop.signal)));
  for (const s of open) void s.next();
  await new Promise((r) => setTimeout(r, 10));
  await assert.rejects(records.changes(ctx('a', stop.signal)).next(), (err: { code: number }) => err.code === 429);
  // another tenant is not held back by a's
  const b = records.changes(ctx('b', stop.signal));
  const next = b.next();
  stop.abort();
  assert.equal((await next).done, true);
  await Promise.all(open.map((s) => s.return(undefined)));
});
