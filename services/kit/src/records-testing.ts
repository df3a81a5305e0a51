// The tests every records-with-events service (recordService: notes, lists, comments)
// must pass, once: through the gateway as M3O's JavaScript client calls them, on both
// profiles; one tenant attacking another's records; bad input. Each service's test file
// runs them with a sample of its own fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { HostedService } from '@micro/server';
import { callPatiently, expectShape, startPlatform, untilHeard, type Platform } from './testing.js';

export interface RecordSuite {
  service: HostedService;
  /** the record's field in responses (`note`) and List's (`notes`) */
  one: string;
  many: string;
  /** a Create request */
  sample: Record<string, unknown>;
  /** fields an Update sets */
  change: Record<string, unknown>;
  /** the field Create needs */
  required: string;
  /** a field and a value one past its bound */
  oversized: [string, unknown];
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export function recordServiceTests(suite: RecordSuite): void {
  const name = suite.service.def.name;
  for (const profile of ['local', 'nats'] as const) {
    test(`${name}: every endpoint as M3O's clients call it, Events over the WebSocket (${profile})`, async (t) => {
      const p = await startPlatform(t, { services: [suite.service], profile });
      if (!p) return;
      t.after(() => p.close());
      await crud(p, suite);
      await eventsOfAll(p, suite);
      await eventsOfOne(p, suite);
    });
  }

  test(`${name}: another tenant cannot read, change, delete or stream a tenant's records`, async (t) => {
    const p = await startPlatform(t, { services: [suite.service] });
    if (!p) return;
    t.after(() => p.close());
    await isolation(p, suite);
  });

  test(`${name}: bad input is a 400 naming the field, and nothing is stored`, async (t) => {
    const p = await startPlatform(t, { services: [suite.service] });
    if (!p) return;
    t.after(() => p.close());
    await badInput(p, suite);
  });
}

async function ok(p: Platform, key: string, name: string, endpoint: string, body: unknown) {
  const res = await p.call(key, name, endpoint, body);
  assert.equal(res.status, 200, `${name}.${endpoint}: ${JSON.stringify(res.body)}`);
  await expectShape(name, endpoint, res.body);
  return res.body;
}

async function crud(p: Platform, s: RecordSuite): Promise<void> {
  const name = s.service.def.name;
  const made = (await ok(p, p.a.key, name, 'Create', s.sample))[s.one];
  assert.match(made.id, /^[0-9a-f-]{36}$/);
  assert.match(made.created, RFC3339);
  assert.equal(made.updated, made.created);
  for (const [k, v] of Object.entries(s.sample)) assert.deepEqual(made[k], v, k);

  assert.deepEqual((await ok(p, p.a.key, name, 'Read', { id: made.id }))[s.one], made);
  assert.deepEqual((await ok(p, p.a.key, name, 'List', {}))[s.many], [made]);

  // a client sends back the record it read with its fields changed; created is kept
  await new Promise((r) => setTimeout(r, 5));
  const changed = (await ok(p, p.a.key, name, 'Update', { [s.one]: { ...made, ...s.change } }))[s.one];
  assert.deepEqual(changed, { ...made, ...s.change, updated: changed.updated });
  assert.ok(changed.updated > made.created, `${changed.updated} after ${made.created}`);
  assert.deepEqual((await ok(p, p.a.key, name, 'Read', { id: made.id }))[s.one], changed);

  assert.deepEqual((await ok(p, p.a.key, name, 'Delete', { id: made.id }))[s.one], changed);
  const gone = await p.call(p.a.key, name, 'Read', { id: made.id });
  assert.equal(gone.status, 404);
  assert.deepEqual((await ok(p, p.a.key, name, 'List', {}))[s.many], []);
}

/** Events {}: every change of every record after the stream opened, in order. */
async function eventsOfAll(p: Platform, s: RecordSuite): Promise<void> {
  const name = s.service.def.name;
  const probe = (await ok(p, p.a.key, name, 'Create', s.sample))[s.one];
  const stream = p.stream(p.a.key, name, 'Events', {}, { timeout: 30_000 });
  await stream.opened;
  // the stream says nothing until something changes: change the probe until it is heard
  await untilHeard(stream, () => p.call(p.a.key, name, 'Update', { [s.one]: { id: probe.id } }));
  const skip = stream.received.length;
  const made = (await ok(p, p.a.key, name, 'Create', s.sample))[s.one];
  const changed = (await ok(p, p.a.key, name, 'Update', { [s.one]: { id: made.id, ...s.change } }))[s.one];
  await ok(p, p.a.key, name, 'Delete', { id: made.id });
  const frames = await waitFor(stream, skip + 3);
  for (const f of frames) await expectShape(name, 'Events', f);
  assert.deepEqual(
    frames.slice(skip, skip + 3).map((f) => [f.event, f[s.one]]),
    [['create', made], ['update', changed], ['delete', changed]],
  );
  stream.close();
  await ok(p, p.a.key, name, 'Delete', { id: probe.id });
}

/** Events {id}: the changes of that record only. */
async function eventsOfOne(p: Platform, s: RecordSuite): Promise<void> {
  const name = s.service.def.name;
  const mine = (await ok(p, p.a.key, name, 'Create', s.sample))[s.one];
  const stream = p.stream(p.a.key, name, 'Events', { id: mine.id }, { timeout: 30_000 });
  await stream.opened;
  await untilHeard(stream, () => p.call(p.a.key, name, 'Update', { [s.one]: { id: mine.id } }));
  const skip = stream.received.length;
  const other = (await ok(p, p.a.key, name, 'Create', s.sample))[s.one];
  await ok(p, p.a.key, name, 'Delete', { id: other.id });
  const changed = (await ok(p, p.a.key, name, 'Update', { [s.one]: { id: mine.id, ...s.change } }))[s.one];
  await ok(p, p.a.key, name, 'Delete', { id: mine.id });
  const frames = await waitFor(stream, skip + 2);
  assert.deepEqual(
    frames.slice(skip).map((f) => [f.event, f[s.one].id]),
    [['update', mine.id], ['delete', mine.id]],
  );
  assert.deepEqual(frames[skip][s.one], changed);
  stream.close();
}

async function waitFor(stream: { received: readonly unknown[] }, n: number, timeout = 10_000): Promise<any[]> { // eslint-disable-line @typescript-eslint/no-explicit-any -- frames as the tests read them
  const until = Date.now() + timeout;
  while (stream.received.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.ok(stream.received.length >= n, `${stream.received.length} frames, expected ${n}: ${JSON.stringify(stream.received).slice(0, 500)}`);
  // a moment more: nothing else may come (events of other records, duplicates)
  await new Promise((r) => setTimeout(r, 200));
  return [...stream.received];
}

async function isolation(p: Platform, s: RecordSuite): Promise<void> {
  const name = s.service.def.name;
  const theirs = (await ok(p, p.a.key, name, 'Create', s.sample))[s.one];
  // a's stream hears a's changes; b's streams of all and of a's id do not
  const aStream = p.stream(p.a.key, name, 'Events', {});
  const bAll = p.stream(p.b.key, name, 'Events', {});
  const bOne = p.stream(p.b.key, name, 'Events', { id: theirs.id });
  await Promise.all([aStream.opened, bAll.opened, bOne.opened]);
  await untilHeard(aStream, () => p.call(p.a.key, name, 'Update', { [s.one]: { id: theirs.id } }));
  // b streaming a's record by id: told there is no such record, in-band, then closed
  const [refused] = await bOne.frames;
  assert.equal(refused.error.code, 404, JSON.stringify(refused));

  for (const [endpoint, body] of [
    ['Read', { id: theirs.id }],
    ['Update', { [s.one]: { ...theirs, ...s.change } }],
    ['Delete', { id: theirs.id }],
  ] as const) {
    const res = await p.call(p.b.key, name, endpoint, body);
    assert.equal(res.status, 404, `${endpoint}: ${JSON.stringify(res.body)}`);
  }
  assert.deepEqual((await ok(p, p.b.key, name, 'List', {}))[s.many], []);

  // ids of any shape, with path and wildcard characters too: never a's record
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom(theirs.id, `${theirs.id}/..`, '*', '>', `../${theirs.id}`, `${name}.records.*`)), async (id) => {
      for (const endpoint of ['Read', 'Delete'] as const) {
        const res = await callPatiently(p, p.b.key, name, endpoint, { id });
        assert.ok([400, 404].includes(res.status), `${endpoint} ${JSON.stringify(id)}: ${res.status} ${JSON.stringify(res.body)}`);
      }
      const res = await callPatiently(p, p.b.key, name, 'Update', { [s.one]: { id, ...s.change } });
      assert.ok([400, 404].includes(res.status), `Update ${JSON.stringify(id)}: ${res.status}`);
    }),
    { numRuns: 40 },
  );

  // a's record is as it was, and b's stream of all heard nothing of it
  assert.deepEqual(
    { ...(await ok(p, p.a.key, name, 'Read', { id: theirs.id }))[s.one], updated: '' },
    { ...theirs, updated: '' },
  );
  assert.ok(aStream.received.length > 0);
  assert.deepEqual(bAll.received, []);
  aStream.close();
  bAll.close();
}

async function badInput(p: Platform, s: RecordSuite): Promise<void> {
  const name = s.service.def.name;
  const [field, tooBig] = s.oversized;
  const made = (await ok(p, p.a.key, name, 'Create', s.sample))[s.one];
  const cases: [string, unknown, RegExp][] = [
    ['Create', { ...s.sample, [s.required]: undefined }, new RegExp(`Missing ${s.required}`)],
    ['Create', { ...s.sample, [field]: tooBig }, new RegExp(field)],
    ['Create', { ...s.sample, [s.required]: { deep: [[[[{}]]]] } }, new RegExp(s.required)],
    ['Create', { ...s.sample, [s.required]: 42 }, new RegExp(s.required)],
    ['Create', '[1,2', /./],
    ['Read', {}, /Missing id/],
    ['Read', { id: '../../etc/passwd' }, /id/],
    ['Read', { id: "x' OR '1'='1" }, /id/],
    ['Read', { id: 'a'.repeat(65) }, /id/],
    ['Delete', { id: '' }, /Missing id/],
    ['Delete', { id: ['x'] }, /id/],
    ['Events', { id: 'a.b.>' }, /id/],
    ['Update', {}, new RegExp(`Missing ${s.one}.id`)],
    ['Update', { [s.one]: { ...s.change } }, new RegExp(`Missing ${s.one}.id`)],
    ['Update', { [s.one]: { id: made.id, [field]: tooBig } }, new RegExp(field)],
    ['Update', { [s.one]: 'not an object' }, new RegExp(s.one)],
  ];
  for (const [endpoint, body, detail] of cases) {
    const res = endpoint === 'Events' ? { status: 400, body: (await p.stream(p.a.key, name, endpoint, body).frames)[0]?.error } : await p.call(p.a.key, name, endpoint, body);
    assert.equal(res.status, 400, `${endpoint} ${JSON.stringify(body).slice(0, 100)}: ${res.status} ${JSON.stringify(res.body)}`);
    assert.equal(res.body.code, 400, `${endpoint}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.status, 'Bad Request');
    assert.match(res.body.detail, detail, `${endpoint} ${JSON.stringify(body).slice(0, 100)}`);
  }
  // nothing stored, nothing changed
  assert.deepEqual((await ok(p, p.a.key, name, 'List', {}))[s.many], [made]);
  assert.equal((await p.call(undefined, name, 'List', {})).status, 401);
}
