import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

/*
 * db through the gateway as M3O's JavaScript client calls it (POST, Bearer API key), on
 * both profiles: every endpoint with M3O's shapes and behaviour, one tenant attacking
 * another's tables, and bad input.
 */

async function compat(p: Platform): Promise<void> {
  const call = async (ep: string, body: unknown, key = p.a.key) => {
    const res = await p.call(key, 'db', ep, body);
    assert.equal(res.status, 200, `${ep}: ${JSON.stringify(res.body)}`);
    await expectShape('db', ep, res.body);
    return res.body;
  };
  // ids: given, the record's own, or a new UUID written into the record
  assert.deepEqual(await call('Create', { table: 'Users-2024', id: 'ada', record: { name: 'Ada', age: 36, address: { city: 'London' } } }), { id: 'ada' });
  assert.deepEqual(await call('Create', { table: 'users_2024', record: { id: 'bob', name: 'Bob', age: 17, admin: false } }), { id: 'bob' });
  const { id } = await call('Create', { table: 'users_2024', record: { name: 'Cy', age: 52 } });
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  await call('Create', { record: { note: 'in the default table' } });

  // by id; by query; default order is creation time
  assert.deepEqual((await call('Read', { table: 'users_2024', id: 'ada' })).records, [{ id: 'ada', name: 'Ada', age: 36, address: { city: 'London' } }]);
  assert.deepEqual((await call('Read', { table: 'users_2024', id: 'nobody' })).records, []);
  const names = async (body: object) => ((await call('Read', { table: 'users_2024', ...body })).records as { name: string }[]).map((r) => r.name);
  assert.deepEqual(await names({}), ['Ada', 'Bob', 'Cy']);
  assert.deepEqual(await names({ query: 'age > 18' }), ['Ada', 'Cy']);
  assert.deepEqual(await names({ query: "age >= 17 and address.city == 'London'" }), ['Ada']);
  assert.deepEqual(await names({ query: 'admin == false' }), ['Bob']);
  assert.deepEqual(await names({ orderBy: 'age', order: 'desc' }), ['Cy', 'Ada', 'Bob']);
  assert.deepEqual(await names({ orderBy: 'name', limit: 1, offset: 1 }), ['Bob']);
  assert.deepEqual(await names({ query: "name == \"'; DROP TABLE records; --\"" }), []);

  // Update merges the top-level keys
  assert.deepEqual(await call('Update', { table: 'users_2024', id: 'ada', record: { age: 37, address: { city: 'Paris' } } }), {});
  assert.deepEqual((await call('Read', { table: 'users_2024', id: 'ada' })).records, [{ id: 'ada', name: 'Ada', age: 37, address: { city: 'Paris' } }]);
  await call('Update', { table: 'users_2024', record: { id: 'bob', admin: true } });
  assert.deepEqual(await names({ query: 'admin == true' }), ['Bob']);

  assert.deepEqual(await call('Count', { table: 'users_2024' }), { count: 3 });
  assert.deepEqual(await call('Count', {}), { count: 1 });
  assert.deepEqual(await call('ListTables', {}), { tables: ['default', 'users_2024'] });
  assert.deepEqual(await call('Delete', { table: 'users_2024', id }), {});
  assert.deepEqual(await call('Count', { table: 'users_2024' }), { count: 2 });

  assert.deepEqual(await call('RenameTable', { from: 'users_2024', to: 'people' }), {});
  assert.deepEqual((await call('ListTables', {})).tables, ['default', 'people']);
  assert.deepEqual(await names({ table: 'people' }), ['Ada', 'Bob']);
  assert.deepEqual(await call('Truncate', { table: 'people' }), {});
  assert.deepEqual(await call('Count', { table: 'people' }), { count: 0 });
  assert.deepEqual(await call('DropTable', { table: 'default' }), {});
  assert.deepEqual(await call('ListTables', {}), { tables: [] });
}

for (const profile of ['local', 'nats'] as const) {
  test(`db: every endpoint as M3O's client calls it, one tenant's tables out of another's reach, bad input (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());

    await t.test('compatibility', () => compat(p));

    await t.test('concurrency: of concurrent Creates of one id exactly one succeeds; concurrent Updates keep every field', async () => {
      const creates = await Promise.all(Array.from({ length: 8 }, (_, i) => p.call(p.a.key, 'db', 'Create', { table: 'race', id: 'one', record: { by: i } })));
      assert.deepEqual(creates.map((r) => r.status).sort(), [200, 409, 409, 409, 409, 409, 409, 409], JSON.stringify(creates.map((r) => r.body)));
      const updates = await Promise.all(Array.from({ length: 8 }, (_, i) => p.call(p.a.key, 'db', 'Update', { table: 'race', id: 'one', record: { [`f${i}`]: i } })));
      assert.deepEqual(updates.map((r) => r.status), Array(8).fill(200));
      const [record] = (await p.call(p.a.key, 'db', 'Read', { table: 'race', id: 'one' })).body.records;
      for (let i = 0; i < 8; i++) assert.equal(record[`f${i}`], i, `field f${i} of a concurrent Update is kept: ${JSON.stringify(record)}`);
    });

    await t.test('isolation: b reaches none of a\'s records through any field', async () => {
      await p.call(p.a.key, 'db', 'Create', { table: 'secrets', id: 's1', record: { v: 'of a' } });
      const tried = [
        ['Read', { table: 'secrets', id: 's1' }],
        ['Read', { table: 'secrets', query: "v == 'of a'" }],
        ['Read', { table: '../tenant-a/secrets', id: 's1' }],
        ['Read', { table: 'secrets', id: '../../tenant-a/db/secrets/s1' }],
        ['Count', { table: 'secrets' }],
        ['ListTables', {}],
        ['Update', { table: 'secrets', id: 's1', record: { v: 'b was here' } }],
        ['Delete', { table: 'secrets', id: 's1' }],
        ['Truncate', { table: 'secrets' }],
        ['DropTable', { table: 'secrets' }],
        ['RenameTable', { from: 'secrets', to: 'mine' }],
        ['Read', { table: 'secrets', id: 's1', namespace: 'tenant-a' }],
      ] as const;
      for (const [ep, body] of tried) {
        const res = await p.call(p.b.key, 'db', ep, body);
        const text = JSON.stringify(res.body);
        assert.ok(!text.includes('of a'), `${ep} ${JSON.stringify(body)} leaked: ${text}`);
        if (ep === 'Count') assert.equal(res.body.count, 0);
        if (ep === 'ListTables') assert.deepEqual(res.body.tables, []);
      }
      // b's own write of the same table and id is b's
      await p.call(p.b.key, 'db', 'Create', { table: 'secrets', id: 's1', record: { v: 'of b' } });
      assert.deepEqual((await p.call(p.a.key, 'db', 'Read', { table: 'secrets', id: 's1' })).body.records, [{ id: 's1', v: 'of a' }]);
      assert.deepEqual((await p.call(p.b.key, 'db', 'Read', { table: 'secrets', id: 's1' })).body.records, [{ id: 's1', v: 'of b' }]);
      // property: whatever table and id b names, a's record stays a's and unchanged
      await fc.assert(
        fc.asyncProperty(fc.string({ maxLength: 40 }), fc.string({ maxLength: 60 }), async (table, id) => {
          for (const ep of ['Read', 'Delete', 'Update'] as const) {
            const res = await p.call(p.b.key, 'db', ep, { table, id, record: { v: 'b' } });
            assert.ok(res.status < 500, `${ep} ${JSON.stringify({ table, id })}: ${res.status} ${JSON.stringify(res.body)}`);
            assert.ok(!JSON.stringify(res.body).includes('of a'));
          }
        }),
        { numRuns: 25 },
      );
      assert.deepEqual((await p.call(p.a.key, 'db', 'Read', { table: 'secrets', id: 's1' })).body.records, [{ id: 's1', v: 'of a' }]);
      assert.equal((await p.call(p.a.key, 'db', 'Count', { table: 'secrets' })).body.count, 1);
    });

    await t.test('bad input: a 400 in M3O\'s error shape naming the field; nothing stored', async () => {
      const before = (await p.call(p.a.key, 'db', 'Count', { table: 'bad' })).body.count;
      const bad = async (ep: string, body: unknown, detail: RegExp, status = 400) => {
        const res = await p.call(p.a.key, 'db', ep, body);
        assert.equal(res.status, status, `${ep} ${JSON.stringify(body).slice(0, 100)}: ${JSON.stringify(res.body)}`);
        assert.deepEqual(Object.keys(res.body).sort(), ['code', 'detail', 'id', 'status']);
        assert.equal(res.body.code, status);
        assert.match(res.body.detail, detail);
      };
      await bad('Create', { table: 'bad' }, /record/);
      await bad('Create', { table: 'bad', record: {} }, /record/);
      await bad('Create', { table: 'bad', record: 'text' }, /record/);
      await bad('Create', { table: 'bad', record: [1, 2] }, /record/);
      let deep: unknown = 1;
      for (let i = 0; i < 40; i++) deep = { d: deep };
      await bad('Create', { table: 'bad', record: { deep } }, /record nests deeper than 32/);
      await bad('Create', { table: 'bad', record: { big: 'x'.repeat(1_000_001) } }, /record must be at most 1000000 bytes/);
      await bad('Create', { table: 'bad; DROP TABLE records', record: { a: 1 } }, /table .* may hold only/);
      await bad('Create', { table: 'a/b', record: { a: 1 } }, /table/);
      await bad('Create', { table: 'bad', id: 'a\u0000b', record: { a: 1 } }, /id must not contain control/);
      await bad('Create', { table: 'bad', id: 'x'.repeat(600), record: { a: 1 } }, /id/);
      await bad('Create', { table: 'bad', id: 42, record: { a: 1 } }, /id/);
      await p.call(p.a.key, 'db', 'Create', { table: 'bad', id: 'dup', record: { a: 1 } });
      await bad('Create', { table: 'bad', id: 'dup', record: { a: 2 } }, /exists/, 409);
      await bad('Read', { table: 'bad', query: 'a = 1' }, /query: "=" is not an operator \(use "=="\) at position 2/);
      await bad('Read', { table: 'bad', query: "a == 'x' or 1 == 1" }, /query: expected "and" or the end of the query, found "or" at position 9/);
      await bad('Read', { table: 'bad', query: "a == ''; DROP TABLE records; --" }, /query: unexpected character ";" at position 7/);
      await bad('Read', { table: 'bad', query: 'a >' }, /query: expected a value/);
      await bad('Read', { table: 'bad', limit: 1001 }, /limit/);
      await bad('Read', { table: 'bad', limit: -1 }, /limit/);
      await bad('Read', { table: 'bad', limit: 'many' }, /limit/);
      await bad('Read', { table: 'bad', offset: -5 }, /offset/);
      await bad('Read', { table: 'bad', order: 'sideways' }, /order/);
      await bad('Read', { table: 'bad', orderBy: "age'; --" }, /orderBy/);
      await bad('Update', { table: 'bad', record: { a: 1 } }, /id/);
      await bad('Update', { table: 'bad', id: 'nobody', record: { a: 1 } }, /no record/, 404);
      await bad('Delete', { table: 'bad' }, /id/);
      await bad('RenameTable', { to: 'x' }, /from/);
      await bad('RenameTable', { from: 'bad' }, /to/);
      await bad('RenameTable', { from: 'nothing_here', to: 'x' }, /no table/, 404);
      await p.call(p.a.key, 'db', 'Create', { table: 'other', record: { a: 1 } });
      await bad('RenameTable', { from: 'bad', to: 'other' }, /exists/);
      assert.equal((await p.call(p.a.key, 'db', 'Count', { table: 'bad' })).body.count, before + 1, 'only the one good record');
      assert.deepEqual((await p.call(p.a.key, 'db', 'Read', { table: 'bad', id: 'dup' })).body.records, [{ id: 'dup', a: 1 }]);
      // no credentials
      assert.equal((await p.call(undefined, 'db', 'Count', {})).status, 401);
    });
  });
}
