import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MicroError } from '@micro/sdk';
import { engineUrl, freePort, testPrefix } from '@micro/sdk/testing';
import { isConnectionError, latestVersion, migrate, openPostgres, SchemaVersionError, type Migration } from './index.js';
import { relay, testPostgres } from './testing.js';

const MIGRATIONS: Migration[] = [
  // the insert shows how many times the migration ran: once, whoever ran it
  { version: 1, description: 'items', up: 'CREATE TABLE items (id integer PRIMARY KEY); CREATE TABLE runs (n integer); INSERT INTO runs VALUES (1);' },
  {
    version: 2,
    description: 'items.name',
    up: async (client, schema) => {
      await client.query(`ALTER TABLE ${schema}.items ADD COLUMN name text`);
      await client.query(`INSERT INTO ${schema}.runs VALUES (2)`);
    },
  },
];

/** A URL of the same database that makes a pool of its own (pools are one per URL). */
function otherPool(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', name);
  return u.toString();
}

test('migrate: creates the schema and the tables, records the version, runs each migration once', async (t) => {
  const db = await testPostgres(t, 'pgmig');
  if (!db) return;
  assert.equal(await migrate(db, 'demo', MIGRATIONS), 0);
  assert.equal(await migrate(db, 'demo', MIGRATIONS), 2, 'the second start finds the work done');
  const runs = await db.query<{ n: number }>(`SELECT n FROM ${db.schema}.runs ORDER BY n`);
  assert.deepEqual(runs.rows.map((r) => r.n), [1, 2]);
  const v = await db.query<{ component: string; version: number }>(`SELECT component, version FROM ${db.schema}.schema_version`);
  assert.deepEqual(v.rows, [{ component: 'demo', version: 2 }]);
  await db.query(`INSERT INTO ${db.schema}.items (id, name) VALUES (1, 'one')`);
});

test('migrate: two pools (two nodes) starting at once migrate once', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const prefix = testPrefix('pgrace');
  const a = await openPostgres({ url: otherPool(url, `${prefix}_a`), prefix, max: 2 });
  const b = await openPostgres({ url: otherPool(url, `${prefix}_b`), prefix, max: 2 });
  t.after(async () => {
    await a.query(`DROP SCHEMA IF EXISTS ${a.schema} CASCADE`);
    await a.close();
    await b.close();
  });
  assert.notEqual(a.pool, b.pool);
  const before = await Promise.all([migrate(a, 'demo', MIGRATIONS), migrate(b, 'demo', MIGRATIONS), migrate(a, 'demo', MIGRATIONS), migrate(b, 'demo', MIGRATIONS)]);
  // exactly one found the schema empty; the others waited on the lock and found version 2
  assert.deepEqual(before.sort(), [0, 2, 2, 2]);
  const runs = await b.query<{ n: number }>(`SELECT n FROM ${b.schema}.runs ORDER BY n`);
  assert.deepEqual(runs.rows.map((r) => r.n), [1, 2]);
});

test('migrate: a database of a newer schema version is refused with a clear error', async (t) => {
  const db = await testPostgres(t, 'pgnewer');
  if (!db) return;
  await migrate(db, 'demo', MIGRATIONS);
  await assert.rejects(migrate(db, 'demo', MIGRATIONS.slice(0, 1)), (err: unknown) => {
    assert.ok(err instanceof SchemaVersionError);
    assert.match(err.message, /database schema of demo is version 2 .*, this micro server knows up to 1: upgrade it/);
    return true;
  });
  // the refusal changed nothing
  const v = await db.query<{ version: number }>(`SELECT version FROM ${db.schema}.schema_version WHERE component = 'demo'`);
  assert.equal(v.rows[0]?.version, 2);
});

test('migrate: a migration that fails leaves nothing half done', async (t) => {
  const db = await testPostgres(t, 'pgfail');
  if (!db) return;
  await migrate(db, 'demo', MIGRATIONS.slice(0, 1));
  const broken: Migration[] = [...MIGRATIONS.slice(0, 1), { version: 2, description: 'broken', up: 'CREATE TABLE more (id integer); SELECT no_such_function();' }];
  await assert.rejects(migrate(db, 'demo', broken), /no_such_function/);
  const more = await db.query(`SELECT to_regclass('${db.prefix}.more') AS t`);
  assert.equal(more.rows[0]?.t, null, 'the table of the failed migration was rolled back');
  assert.equal(await migrate(db, 'demo', MIGRATIONS), 1, 'still at version 1, and the fixed list applies');
});

test('migrate: components have their own versions', async (t) => {
  const db = await testPostgres(t, 'pgcomp');
  if (!db) return;
  await migrate(db, 'demo', MIGRATIONS);
  assert.equal(await migrate(db, 'other', [{ version: 1, description: 'x', up: 'CREATE TABLE other_items (id integer)' }]), 0);
  const v = await db.query<{ component: string; version: number }>(`SELECT component, version FROM ${db.schema}.schema_version ORDER BY component`);
  assert.deepEqual(v.rows, [
    { component: 'demo', version: 2 },
    { component: 'other', version: 1 },
  ]);
});

test('migrate and open: bad input is refused before any SQL', async (t) => {
  assert.throws(() => latestVersion('demo', [{ version: 2, description: 'gap', up: '' }]), /numbered 1, 2, 3/);
  assert.throws(() => latestVersion('demo', [MIGRATIONS[0]!, MIGRATIONS[0]!]), /numbered 1, 2, 3/);
  for (const prefix of ['', 'Upper', '1abc', 'a"; DROP SCHEMA public; --', 'a'.repeat(49), 'a-b']) {
    await assert.rejects(openPostgres({ url: 'postgres://127.0.0.1:1/none', prefix }), /schema \(the prefix\) must be lower-case/, prefix);
  }
  const db = await testPostgres(t, 'pgbad');
  if (!db) return;
  await assert.rejects(migrate(db, 'demo', [{ version: 1, description: 'dup', up: 'x' }, { version: 1, description: 'dup', up: 'y' }]), /numbered 1, 2, 3/);
});

test('open: wrong credentials fail at once with the URL named (no 30 s of retries)', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const wrong = new URL(url);
  wrong.username = 'no_such_role_micro';
  wrong.password = 'secret';
  await assert.rejects(openPostgres({ url: wrong.toString(), prefix: 'micro' }), (err: Error) => {
    assert.match(err.message, /cannot reach postgres at postgres:\/\/no_such_role_micro:\*\*\*@127\.0\.0\.1:5432\/test/);
    assert.match(err.message, /no_such_role_micro/);
    assert.match(err.message, /after 1 attempt /);
    assert.doesNotMatch(err.message, /secret/);
    return true;
  });
  const missing = new URL(url);
  missing.pathname = '/no_such_database_micro';
  await assert.rejects(openPostgres({ url: missing.toString(), prefix: 'micro' }), /cannot reach postgres at .*no_such_database_micro .*does not exist.* after 1 attempt /);
});

test('open: an unreachable Postgres is retried with backoff, then a clear error naming the URL', async () => {
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/test`;
  const retries: string[] = [];
  await assert.rejects(
    openPostgres({ url, prefix: 'micro', backoff: { maxWait: 600, initialDelay: 50, onRetry: (m) => retries.push(m) } }),
    new RegExp(`cannot reach postgres at postgres://postgres@127\\.0\\.0\\.1:${port}/test .*ECONNREFUSED.* after \\d+ attempts`),
  );
  assert.ok(retries.length >= 2, 'it retried before giving up');
  assert.match(retries[0] ?? '', /retrying in 50 ms/);
});

test('a lost connection is a 503 at once, and calls work again when Postgres returns', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const cable = await relay(url);
  const prefix = testPrefix('pglost');
  t.after(() => cable.close());
  const db = await openPostgres({ url: cable.url, prefix, errorId: 'micro.test', max: 2 });
  t.after(() => db.close());
  assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);

  await cable.cut();
  for (const call of [() => db.query('SELECT 1'), () => db.transaction((c) => c.query('SELECT 1'))]) {
    await assert.rejects(call(), (err: unknown) => {
      assert.ok(err instanceof MicroError, String(err));
      assert.equal(err.code, 503);
      assert.equal(err.id, 'micro.test');
      assert.match(err.detail, /postgres at postgres:\/\/postgres@127\.0\.0\.1:\d+\/test is unavailable/);
      return true;
    });
  }

  await cable.restore();
  assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
  assert.equal(await db.transaction(async (c) => (await c.query<{ two: number }>('SELECT 2 AS two')).rows[0]?.two), 2);
});

test('a connection lost between the statements of a transaction fails it with a 503, and does not end the process', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const cable = await relay(url);
  t.after(() => cable.close());
  const db = await openPostgres({ url: cable.url, prefix: testPrefix('pgmidtx'), errorId: 'micro.test', max: 2 });
  t.after(() => db.close());
  await assert.rejects(
    db.transaction(async (c) => {
      await c.query('SELECT 1');
      // the client is idle between statements when the connection goes: it emits 'error'
      await cable.cut();
      await new Promise((r) => setTimeout(r, 100));
      await c.query('SELECT 2');
    }),
    (err: unknown) => err instanceof MicroError && err.code === 503,
  );
  await cable.restore();
  assert.equal(await db.transaction(async (c) => (await c.query<{ two: number }>('SELECT 2 AS two')).rows[0]?.two), 2);
});

test('transaction idleTimeout: a session Postgres ended for sitting idle in a transaction (the network lost) fails it with a 503, and the pool goes on', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const cable = await relay(url);
  t.after(() => cable.close());
  const db = await openPostgres({ url: cable.url, prefix: testPrefix('pgidletx'), errorId: 'micro.test', max: 2 });
  t.after(() => db.close());
  await assert.rejects(
    db.transaction(async (c) => {
      await c.query('SELECT 1');
      // the network goes silent: the next statement waits in it while Postgres ends the
      // session, and gets the session's end (25P03) for an answer once the network is back
      cable.freeze();
      const next = c.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 1_000));
      cable.thaw();
      await next;
    }, { idleTimeout: 100 }),
    (err: unknown) => err instanceof MicroError && err.code === 503,
  );
  for (const bad of [0, -1, 1.5, Number.NaN, '100; DROP SCHEMA x' as unknown as number]) await assert.rejects(db.transaction(async () => 1, { idleTimeout: bad }), /idleTimeout is a whole number of ms/);
  assert.equal(await db.transaction(async (c) => (await c.query<{ two: number }>('SELECT 2 AS two')).rows[0]?.two), 2);
});

test('a Postgres that stops answering fails calls after the query timeout, and they work again when it answers', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const cable = await relay(url);
  t.after(() => cable.close());
  const db = await openPostgres({ url: cable.url, prefix: testPrefix('pgfrozen'), errorId: 'micro.test', max: 2, queryTimeout: 300 });
  t.after(() => db.close());
  assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
  cable.freeze();
  await assert.rejects(db.query('SELECT 1'), (err: unknown) => err instanceof MicroError && err.code === 503 && /timeout/i.test(err.detail));
  cable.thaw();
  // the connection that timed out was dropped: a new one serves the next call
  assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
});

test('transaction: rolls back when the function throws, and passes statement errors as they are', async (t) => {
  const db = await testPostgres(t, 'pgtx');
  if (!db) return;
  await migrate(db, 'demo', MIGRATIONS);
  await assert.rejects(
    db.transaction(async (c) => {
      await c.query(`INSERT INTO ${db.schema}.items (id) VALUES (7)`);
      throw new Error('changed my mind');
    }),
    /changed my mind/,
  );
  assert.equal((await db.query(`SELECT * FROM ${db.schema}.items`)).rowCount, 0);
  await db.query(`INSERT INTO ${db.schema}.items (id) VALUES (1)`);
  await assert.rejects(db.query(`INSERT INTO ${db.schema}.items (id) VALUES (1)`), (err: Error) => {
    assert.ok(!(err instanceof MicroError), 'a constraint is not an outage');
    assert.equal((err as { code?: string }).code, '23505');
    assert.equal(isConnectionError(err), false);
    return true;
  });
});

test('handles share one pool per URL, which ends with the last handle', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const own = otherPool(url, testPrefix('pgshare'));
  const a = await openPostgres({ url: own, prefix: 'micro', max: 2 });
  const b = await openPostgres({ url: own, prefix: 'other', max: 2 });
  assert.equal(a.pool, b.pool);
  await a.close();
  await a.close();
  // b still works after a closed
  assert.equal((await b.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
  await assert.rejects(a.query('SELECT 1'), (err: unknown) => err instanceof MicroError && err.code === 503);
  await b.close();
  assert.equal(b.pool.ending, true);
});

test('transaction pipeline: statements and the COMMIT go out together; a statement that fails makes the COMMIT behind it roll back', async (t) => {
  const db = await testPostgres(t, 'pgpipe');
  if (!db) return;
  await db.query(`CREATE SCHEMA IF NOT EXISTS ${db.schema}`);
  await db.query(`CREATE TABLE ${db.schema}.piped (n integer PRIMARY KEY)`);
  const count = async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${db.schema}.piped`)).rows[0]?.n);
  const written = await db.transaction(
    async (c, commit) => {
      const first = c.query(`INSERT INTO ${db.schema}.piped VALUES (1)`);
      // not waiting for the first answer: both are on the wire, and the COMMIT behind them
      const second = c.query(`INSERT INTO ${db.schema}.piped VALUES (2) RETURNING n`);
      const [, r] = await Promise.all([first, second, commit()]);
      return r.rows[0]?.n;
    },
    { pipeline: true, noJit: true, idleTimeout: 5_000 },
  );
  assert.deepEqual([written, await count()], [2, 2]);

  await assert.rejects(
    db.transaction(
      async (c, commit) => {
        const ok = c.query(`INSERT INTO ${db.schema}.piped VALUES (3)`);
        const duplicate = c.query(`INSERT INTO ${db.schema}.piped VALUES (1)`);
        await Promise.all([ok, duplicate, commit()]);
      },
      { pipeline: true },
    ),
    (err: unknown) => (err as { code?: string }).code === '23505',
  );
  assert.equal(await count(), 2, 'the row inserted before the failure was rolled back with it');
  // the connection went back to the pool ready for statements one at a time
  assert.equal(await db.transaction(async (c) => (await c.query<{ two: number }>('SELECT 2 AS two')).rows[0]?.two), 2);
  assert.equal(await count(), 2);
});
