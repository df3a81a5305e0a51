import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { z } from 'zod';
import { MicroError } from '../errors/errors.js';
import { MemoryStore } from './memory.js';
import { model, type Query } from './model.js';
import { compareKeys } from './util.js';
import type { Indexable } from './encode.js';

const User = z.object({
  id: z.string(),
  email: z.string(),
  age: z.number(),
  score: z.number().optional(),
  active: z.boolean(),
  bio: z.string().optional(),
});
type User = z.output<typeof User>;
const INDEXES = ['email', 'age', 'score', 'active'] as const;

function users(store = new MemoryStore()) {
  return { store, users: model(store, { name: 'users', schema: User, indexes: [...INDEXES] }) };
}

const code = (err: unknown) => (err as MicroError).code;
const u = (id: string, over: Partial<User> = {}): User => ({ id, email: `${id}@x.io`, age: 30, active: true, ...over });

test('create, read, update, upsert and delete', async () => {
  const { users: m } = users();
  assert.deepEqual(await m.create(u('1')), u('1'));
  assert.deepEqual(await m.read('1'), u('1'));
  await assert.rejects(m.create(u('1')), (e) => code(e) === 409);
  await assert.rejects(m.update(u('2')), (e) => code(e) === 404);
  await m.update(u('1', { age: 31 }));
  assert.equal((await m.read('1'))?.age, 31);
  await m.upsert(u('2'));
  assert.equal((await m.list()).length, 2);
  await m.delete('1');
  await m.delete('1');
  assert.equal(await m.read('1'), undefined);
  assert.deepEqual((await m.list()).map((x) => x.id), ['2']);
});

test('values are checked with the schema; a 400 names the field', async () => {
  const { users: m, store } = users();
  await assert.rejects(m.create({ ...u('1'), age: 'old' as never }), (e) => code(e) === 400 && /age/.test((e as MicroError).detail));
  await assert.rejects(m.create({ ...u('1'), id: undefined as never }), (e) => code(e) === 400 && /id/.test((e as MicroError).detail));
  await assert.rejects(m.create(u('a\u0001b')), (e) => code(e) === 400 && /id.*control/.test((e as MicroError).detail));
  await assert.rejects(m.create(u('')), (e) => code(e) === 400);
  await assert.rejects(m.create(u('x'.repeat(2000))), (e) => code(e) === 400 && /id/.test((e as MicroError).detail));
  await assert.rejects(m.create(u('1', { email: 'e'.repeat(1100) })), (e) => code(e) === 400 && /email.*too long/.test((e as MicroError).detail));
  await assert.rejects(m.read(''), (e) => code(e) === 400);
  assert.deepEqual(await store.list({ table: 'users' }), [], 'nothing written');
  assert.throws(() => model(store, { name: 'users', schema: User, indexes: ['nope' as never] }), /nope/);
  assert.throws(() => model(store, { name: 'users', schema: User, key: 'missing' as never }), /missing/);
  assert.throws(() => model(store, { name: 'bad name', schema: User }), /table/);
});

test('queries: equality, ranges, order, limit and offset on indexed fields', async () => {
  const { users: m } = users();
  for (const [i, age] of [40, 18, 25, 18, 60, -3, 2.5].entries()) await m.create(u(`u${i}`, { age, active: i % 2 === 0, email: `e${i}@x.io` }));
  const ids = (list: User[]) => list.map((x) => x.id);
  assert.deepEqual(ids(await m.list({ where: { age: 18 } })), ['u1', 'u3']);
  assert.deepEqual(ids(await m.list({ where: { age: { gte: 18, lt: 40 } } })), ['u1', 'u3', 'u2']);
  assert.deepEqual(ids(await m.list({ where: { age: { gt: 18 } }, order: 'desc' })), ['u4', 'u0', 'u2']);
  assert.deepEqual(ids(await m.list({ orderBy: 'age', limit: 3 })), ['u5', 'u6', 'u1']);
  assert.deepEqual(ids(await m.list({ orderBy: 'age', order: 'desc', offset: 1, limit: 2 })), ['u0', 'u2']);
  assert.deepEqual(ids(await m.list({ where: { active: true }, orderBy: 'age' })), ['u6', 'u2', 'u0', 'u4']);
  assert.deepEqual(ids(await m.list({ where: { active: false, age: 18 } })), ['u1', 'u3']);
  assert.deepEqual(ids(await m.list({ where: { email: 'e4@x.io' } })), ['u4']);
  assert.deepEqual(ids(await m.list({ where: { id: 'u4' } })), ['u4']);
  assert.deepEqual(ids(await m.list({ where: { id: { gte: 'u4' } } })), ['u4', 'u5', 'u6']);
  assert.deepEqual(ids(await m.list({ where: { id: { gt: 'u1', lte: 'u3' } }, order: 'desc' })), ['u3', 'u2']);
  // missing values are null: they sort first and equal null
  assert.deepEqual(ids(await m.list({ where: { score: null }, limit: 2 })), ['u0', 'u1']);
  // a range stays among values of its kind
  assert.deepEqual(ids(await m.list({ where: { email: { lt: 'e2' } } })), ['u0', 'u1']);
});

test('bad queries are 400s naming the field', async () => {
  const { users: m } = users();
  const bad = async (q: Query<User>, detail: RegExp) => assert.rejects(m.list(q), (e) => code(e) === 400 && detail.test((e as MicroError).detail));
  await bad({ where: { bio: 'x' } }, /where\.bio.*not indexed/);
  await bad({ orderBy: 'bio' }, /orderBy.*not indexed/);
  await bad({ where: { age: { near: 3 } as never } }, /where\.age.*operator/);
  await bad({ where: { age: { gte: 1, lte: 'z' } as never } }, /where\.age.*one kind/);
  await bad({ where: { age: {} } }, /where\.age/);
  await bad({ where: { age: [1] as never } }, /where\.age/);
  await bad({ where: { age: { gte: null } as never } }, /where\.age\.gte/);
  await bad({ limit: 0 }, /limit/);
  await bad({ limit: 5000 }, /limit/);
  await bad({ offset: -1 }, /offset/);
  await bad({ order: 'up' as never }, /order/);
});

test('stale index entries (a write cut short) are skipped, never returned', async () => {
  const { users: m, store } = users();
  await m.create(u('1', { age: 20 }));
  await m.update(u('1', { age: 21 }));
  assert.deepEqual(await m.list({ where: { age: 20 } }), []);
  // as if a write had put its new index entry and then died before the entity
  const [entry] = await store.list({ table: 'users', prefix: 'ix:age:' });
  const id = (entry as string).slice((entry as string).indexOf('\u0001'));
  await store.write({ key: `ix:age:d0000000000000000${id}`, value: null }, { table: 'users' });
  await store.write({ key: 'ix:email:eghost\u00011', value: null }, { table: 'users' });
  await store.write({ key: 'ix:email:eorphan\u0001nobody', value: null }, { table: 'users' });
  assert.deepEqual((await m.list({ orderBy: 'age' })).map((x) => x.age), [21]);
  assert.deepEqual(await m.list({ where: { email: 'ghost' } }), []);
  assert.deepEqual(await m.list({ where: { email: 'orphan' } }), []);
  assert.deepEqual((await m.list({ orderBy: 'email' })).map((x) => x.id), ['1']);
});

test('models keep to their namespace and database', async () => {
  const store = new MemoryStore();
  const a = model(store, { name: 'users', schema: User, namespace: 'a', database: 'app' });
  await a.create(u('1'));
  await a.create(u('2'), { namespace: 'b' });
  assert.deepEqual(await store.databases({ namespace: 'a' }), ['app']);
  assert.equal(await a.read('2'), undefined);
  assert.deepEqual((await a.list({}, { namespace: 'b' })).map((x) => x.id), ['2']);
});

// ---- property: the model answers as a naive filter-and-sort over its entities would ----

const kindRank = (v: Indexable) => (v === null ? 0 : v === false ? 1 : v === true ? 2 : typeof v === 'number' ? 3 : 4);
function natural(a: Indexable, b: Indexable): number {
  const k = kindRank(a) - kindRank(b);
  if (k !== 0) return k;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return compareKeys(a, b);
  return 0;
}
type Cond = Indexable | { gt?: Indexable; gte?: Indexable; lt?: Indexable; lte?: Indexable };

function oracle(entities: Map<string, User>, q: Query<User>): User[] {
  const where = Object.entries(q.where ?? {}) as [keyof User, Cond][];
  const get = (e: User, f: keyof User) => (e[f] ?? null) as Indexable;
  const holds = (e: User) =>
    where.every(([f, c]) => {
      const v = get(e, f);
      if (c === null || typeof c !== 'object') return natural(v, c) === 0;
      const bound = (c.gt ?? c.gte ?? c.lt ?? c.lte) as Indexable;
      const kind = (x: Indexable) => (x === null ? 'null' : typeof x);
      if (kind(v) !== kind(bound)) return false;
      return (c.gt === undefined || natural(v, c.gt) > 0) && (c.gte === undefined || natural(v, c.gte) >= 0) && (c.lt === undefined || natural(v, c.lt) < 0) && (c.lte === undefined || natural(v, c.lte) <= 0);
    });
  const driver = q.orderBy ?? where.find(([, c]) => c === null || typeof c !== 'object')?.[0] ?? where[0]?.[0] ?? 'id';
  const sorted = [...entities.values()].filter(holds).sort((a, b) => natural(get(a, driver), get(b, driver)) || compareKeys(a.id, b.id));
  if (q.order === 'desc') sorted.reverse();
  return sorted.slice(q.offset ?? 0, (q.offset ?? 0) + (q.limit ?? 100));
}

test('property: queries match a naive filter and sort, after any writes and deletes', async () => {
  const idArb = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'aa', 'é', '😀');
  const emailArb = fc.constantFrom('', 'x', 'xy', 'x\u0000', 'x\u0001', 'x\u0002y', 'y', 'é', '😀', '\uFFFF');
  const ageArb = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.5, -0.5, 1e9, -1e-9));
  const userArb = fc.record({
    id: idArb,
    email: emailArb,
    age: ageArb,
    score: fc.option(ageArb, { nil: undefined }),
    active: fc.boolean(),
  });
  const op = fc.oneof(
    { weight: 4, arbitrary: userArb.map((x) => ({ upsert: x as User })) },
    { weight: 1, arbitrary: idArb.map((id) => ({ remove: id })) },
  );
  const field = fc.constantFrom('email', 'age', 'score', 'active', 'id') as fc.Arbitrary<keyof User>;
  const valueFor = (f: keyof User): fc.Arbitrary<Indexable> => (f === 'email' ? emailArb : f === 'id' ? idArb : f === 'active' ? fc.boolean() : ageArb);
  const condFor = (f: keyof User): fc.Arbitrary<Cond> =>
    fc.oneof(
      f === 'score' ? fc.oneof(valueFor(f), fc.constant(null)) : valueFor(f),
      fc.record({ gt: valueFor(f), lt: valueFor(f) }, { requiredKeys: [] }),
      fc.record({ gte: valueFor(f), lte: valueFor(f) }, { requiredKeys: [] }),
    ).filter((c) => c === null || typeof c !== 'object' || Object.keys(c).length > 0);
  const queryArb = fc.record(
    {
      where: fc.uniqueArray(field, { maxLength: 2 }).chain((fs) => (fs.length === 0 ? fc.constant({}) : fc.tuple(...fs.map((f) => condFor(f).map((c) => [f, c] as const))).map((pairs) => Object.fromEntries(pairs)))),
      orderBy: field,
      order: fc.constantFrom('asc', 'desc') as fc.Arbitrary<'asc' | 'desc'>,
      limit: fc.integer({ min: 1, max: 6 }),
      offset: fc.integer({ min: 0, max: 3 }),
    },
    { requiredKeys: ['where'] },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 25 }), fc.array(queryArb, { minLength: 1, maxLength: 5 }), async (ops, queries) => {
      const { users: m } = users();
      const truth = new Map<string, User>();
      for (const o of ops) {
        if ('upsert' in o) {
          await m.upsert(o.upsert);
          truth.set(o.upsert.id, JSON.parse(JSON.stringify(o.upsert)) as User);
        } else {
          await m.delete(o.remove);
          truth.delete(o.remove);
        }
      }
      for (const q of queries) {
        const got = await m.list(q as Query<User>);
        assert.deepEqual(got.map((x) => x.id), oracle(truth, q as Query<User>).map((x) => x.id), JSON.stringify(q));
      }
    }),
    { numRuns: 300 },
  );
});

test('queries that span many pages of the index agree with the naive answer', async () => {
  const { users: m } = users();
  const truth = new Map<string, User>();
  for (let i = 0; i < 300; i++) {
    const user = u(`id${String((i * 7919) % 300).padStart(3, '0')}`, { age: i % 17, active: i % 3 === 0, email: `m${i % 5}`, score: i % 4 === 0 ? undefined : i / 10 });
    await m.upsert(user);
    truth.set(user.id, JSON.parse(JSON.stringify(user)) as User);
  }
  const queries: Query<User>[] = [
    { where: { active: true }, orderBy: 'age', offset: 60, limit: 20 },
    { where: { active: true }, orderBy: 'age', order: 'desc', offset: 70, limit: 30 },
    { where: { email: 'm3', age: { gte: 5, lt: 9 } }, limit: 1000 },
    { where: { id: { gte: 'id100', lt: 'id200' }, active: false }, order: 'desc', limit: 1000 },
    { where: { id: { gte: 'id150' } }, offset: 10, limit: 100 },
    { orderBy: 'score', order: 'desc', offset: 200, limit: 200 },
    { where: { score: { gt: 5 } }, orderBy: 'email', limit: 1000 },
  ];
  for (const q of queries) assert.deepEqual((await m.list(q)).map((x) => x.id), oracle(truth, q).map((x) => x.id), JSON.stringify(q));
});

test('concurrent writes of one key through one model are serialized: one create wins, the index is exact', async () => {
  const { users: m, store } = users();
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => m.create(u('same', { age: i }))));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  assert.ok(results.filter((r) => r.status === 'rejected').every((r) => code((r as PromiseRejectedResult).reason) === 409));
  await Promise.all(Array.from({ length: 20 }, (_, i) => m.upsert(u('same', { age: i % 3, email: `e${i % 2}` }))));
  const final = (await m.read('same')) as User;
  const entries = await store.list({ table: 'users', prefix: 'ix:' });
  assert.equal(entries.length, INDEXES.length, `one entry per index: ${entries.join(', ')}`);
  assert.deepEqual((await m.list({ where: { age: final.age } })).map((x) => x.id), ['same']);
  assert.deepEqual((await m.list({ where: { email: final.email } })).map((x) => x.id), ['same']);
});
