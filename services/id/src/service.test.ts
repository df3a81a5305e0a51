import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bearer, Client, remoteEngines, type Context } from '@micro/sdk';
import { expectShape, startPlatform } from '@micro/services-kit/testing';
import { ID_TYPES } from './definition.js';
import { BIGFLAKE, SNOWFLAKE, unpack } from './flake.js';
import { idHandlers, service, WorkerSlot } from './handlers.js';

const formats: Record<string, RegExp> = {
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  ulid: /^[0-9A-HJKMNP-TV-Z]{26}$/,
  ksuid: /^[0-9A-Za-z]{27}$/,
  xid: /^[0-9a-v]{20}$/,
  nanoid: /^[A-Za-z0-9_-]{21}$/,
  shortid: /^[A-Za-z0-9_-]{9}$/,
  snowflake: /^[1-9]\d{0,18}$/,
  bigflake: /^[1-9]\d{0,38}$/,
};

for (const profile of ['local', 'nats'] as const) {
  test(`id through the gateway as M3O's client calls it, and flakes unique across two instances (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());

    const types = await p.call(p.a.key, 'id', 'Types', {});
    assert.equal(types.status, 200, JSON.stringify(types.body));
    await expectShape('id', 'Types', types.body);
    assert.deepEqual(types.body.types, [...ID_TYPES]);

    for (const type of ID_TYPES) {
      const res = await p.call(p.a.key, 'id', 'Generate', { type });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await expectShape('id', 'Generate', res.body);
      assert.equal(res.body.type, type);
      assert.match(res.body.id, formats[type] as RegExp, type);
    }
    // uuid by default, type in any case
    const plain = await p.call(p.b.key, 'id', 'generate', {});
    assert.equal(plain.body.type, 'uuid');
    assert.match(plain.body.id, formats.uuid as RegExp);
    assert.equal((await p.call(p.b.key, 'ID', 'Generate', { type: 'ULID' })).body.type, 'ulid');

    // bad input: a 400 naming the field
    for (const type of ['guid', 7, '../snowflake', 'x'.repeat(100), { $ne: 1 }]) {
      const bad = await p.call(p.a.key, 'id', 'Generate', { type });
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      assert.equal(bad.body.code, 400);
      assert.match(bad.body.detail, /type/);
    }
    assert.equal((await p.call(undefined, 'id', 'Generate', {})).status, 401);

    // two more instances of the service on the server's engines (as two nodes would be):
    // each leases its own worker id, and their flakes, made at once, never collide
    const client = new Client({ address: p.server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(p.adminToken)] });
    const engines = remoteEngines(client);
    const slots = [new WorkerSlot(() => engines.sync), new WorkerSlot(() => engines.sync)];
    t.after(() => Promise.all(slots.map((s) => s.close())));
    const nodes = slots.map((slot) => idHandlers(engines, slot));
    const ctx = { tenant: 'tenant-a' } as Context;
    for (const [type, layout] of [['snowflake', SNOWFLAKE], ['bigflake', BIGFLAKE]] as const) {
      const made = await Promise.all(Array.from({ length: 3000 }, (_, i) => (nodes[i % 2] as (typeof nodes)[0]).Generate({ type }, ctx)));
      const ids = made.map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, `${type}: ${ids.length - new Set(ids).size} duplicates`);
      const workers = new Set(ids.map((id) => unpack(layout, id).worker));
      assert.equal(workers.size, 2, `${type}: workers ${[...workers].join(', ')}`);
      // and none collides with the hosted instance's worker id either
      const hosted = unpack(layout, (await p.call(p.a.key, 'id', 'Generate', { type })).body.id).worker;
      assert.ok(!workers.has(hosted), `${type}: hosted worker ${hosted} in ${[...workers].join(', ')}`);
    }
    // the leases are visible in the engine, one per instance
    const held = await engines.sync.locks({ prefix: 'id-worker/' });
    assert.equal(held.length, 3, JSON.stringify(held));
  });
}
