import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { openPostgres } from '../postgres/index.js';
import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';

/*
 * Store.query over 100,000 records: the fields queried often get an index, and the
 * planner uses it (shown with EXPLAIN, not with timings: speed is bench/'s business).
 * Hostile input stays data.
 */

const N = 100_000;
const scope = { namespace: 'tenant-q', database: 'db', table: 'people' };
const value = (i: number) => JSON.stringify({ created: i, data: { age: i % 100, name: `p${i}` } });

test('SQLite: 100,000 records, fields queried often are indexed and the index serves the query', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-store-query-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = new SqliteStore({ path: join(dir, 'store.db'), purgeInterval: 0, indexAfter: 2 });
  t.after(() => s.close());
  const insert = s.db.prepare('INSERT INTO records (namespace, "database", tbl, key, rkey, value) VALUES (?, ?, ?, ?, ?, ?)');
  s.db.transaction(() => {
    for (let i = 0; i < N; i++) insert.run(scope.namespace, scope.database, scope.table, `k${i}`, `${i}k`, value(i));
    // another tenant's table of the same name, which no index of tenant-q covers
    for (let i = 0; i < 1000; i++) insert.run('tenant-other', scope.database, scope.table, `k${i}`, `${i}k`, value(i));
  })();
  const where = { field: 'data.age', op: '==', value: 42 } as const;
  const q = { ...scope, where, orderBy: 'created', limit: 10 };
  assert.doesNotMatch(s.explainQuery(q).join('\n'), /records_q_/, 'no index of its own yet');
  for (let i = 0; i < 2; i++) await s.query(q);
  await s.indexed();
  const plan = s.explainQuery(q).join('\n');
  assert.match(plan, /USING INDEX records_q_/, plan);
  const ranged = s.explainQuery({ ...scope, where: { field: 'data.age', op: '>', value: 97 } }).join('\n');
  assert.match(ranged, /USING INDEX records_q_\w+ \(namespace=\? AND database=\? AND tbl=\? AND <expr>>\?\)/, ranged);
  // what the index finds is what a scan finds
  const found = await s.query(q);
  assert.deepEqual(found.map((r) => r.key), ['k42', 'k142', 'k242', 'k342', 'k442', 'k542', 'k642', 'k742', 'k842', 'k942']);
  assert.equal(await s.count({ ...scope, where }), N / 100);
  assert.equal(await s.count({ ...scope, namespace: 'tenant-other', where }), 10);
  // bounded: two indexes (data.age, created) for this table, in the books
  const rows = s.db.prepare('SELECT path FROM query_indexes WHERE namespace = ? ORDER BY path').all(scope.namespace);
  assert.deepEqual(rows, [{ path: 'created' }, { path: 'data.age' }]);
});

test('SQLite: hostile names and values are data, and a namespace with quotes gets no index', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-store-query-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = new SqliteStore({ path: join(dir, 'store.db'), purgeInterval: 0, indexAfter: 1 });
  t.after(() => s.close());
  const namespace = "x'; DROP TABLE records; --";
  const hostile = "'); DROP TABLE records; --";
  await s.write({ key: 'k', value: { note: hostile } }, { namespace });
  assert.deepEqual((await s.query({ namespace, where: { field: 'note', op: '==', value: hostile } })).map((r) => r.key), ['k']);
  await s.indexed();
  assert.equal((s.db.prepare('SELECT count(*) AS n FROM query_indexes').get() as { n: number }).n, 0);
  assert.equal((s.db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n, 1);
});

test('SQLite: at most 8 query indexes per table', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-store-query-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = new SqliteStore({ path: join(dir, 'store.db'), purgeInterval: 0, indexAfter: 1 });
  t.after(() => s.close());
  await s.write({ key: 'k', value: { f0: 1 } }, scope);
  for (let i = 0; i < 12; i++) await s.query({ ...scope, where: { field: `f${i}`, op: '==', value: 1 } });
  await s.indexed();
  assert.equal((s.db.prepare('SELECT count(*) AS n FROM query_indexes').get() as { n: number }).n, 8);
  assert.equal((s.db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'index' AND name LIKE 'records_q_%'").get() as { n: number }).n, 8);
  assert.equal((await s.query({ ...scope, where: { field: 'f0', op: '==', value: 1 } })).length, 1);
});

test('PostgreSQL: 100,000 records, fields queried often are indexed and the index serves the query', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const prefix = testPrefix('storequery');
  const s = await PostgresStore.open({ url, prefix, purgeInterval: 0, indexAfter: 2, max: 4 });
  t.after(async () => {
    await s.close();
    const db = await openPostgres({ url, prefix, max: 1 });
    await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
    await db.close();
  });
  const sch = s.db.schema;
  // the usage triggers count row by row: a test's bulk load goes without them
  await s.db.pool.query(`ALTER TABLE ${sch}.records DISABLE TRIGGER USER`);
  await s.db.query(
    `INSERT INTO ${sch}.records (namespace, db, tbl, key, rkey, value)
     SELECT $1, $2, $3, 'k' || i, i || 'k', json_build_object('created', i, 'data', json_build_object('age', i % 100, 'name', 'p' || i))::text FROM generate_series(0, $4::int - 1) AS i`,
    [scope.namespace, scope.database, scope.table, N],
  );
  await s.db.query(`INSERT INTO ${sch}.records (namespace, db, tbl, key, rkey, value) SELECT 'tenant-other', $1, $2, 'k' || i, i || 'k', '{"data":{"age":42}}' FROM generate_series(0, 999) AS i`, [scope.database, scope.table]);
  const where = { field: 'data.age', op: '==', value: 42 } as const;
  const q = { ...scope, where, orderBy: 'created', limit: 10 };
  for (let i = 0; i < 2; i++) await s.query(q);
  await s.indexed();
  const plan = (await s.explainQuery(q)).join('\n');
  assert.match(plan, /Index (Only )?Scan( Backward)? using records_q_|Bitmap Index Scan on records_q_/, plan);
  const eq = (await s.explainQuery({ ...scope, where, limit: 1000 })).join('\n');
  assert.match(eq, /records_q_/, eq);
  assert.doesNotMatch(eq, /Seq Scan/, eq);
  const found = await s.query(q);
  assert.deepEqual(found.map((r) => r.key), ['k42', 'k142', 'k242', 'k342', 'k442', 'k542', 'k642', 'k742', 'k842', 'k942']);
  assert.equal(await s.count({ ...scope, where }), N / 100);
  assert.equal(await s.count({ ...scope, namespace: 'tenant-other', where }), 1000);
  // hostile values are parameters
  const hostile = "'); DROP TABLE records; --";
  await s.write({ key: 'h', value: { note: hostile } }, scope);
  assert.deepEqual((await s.query({ ...scope, where: { field: 'note', op: '==', value: hostile } })).map((r) => r.key), ['h']);
  assert.equal(await s.count(scope), N + 1);
});
