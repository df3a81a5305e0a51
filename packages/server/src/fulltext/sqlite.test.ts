import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { MicroError, RemoteFulltext } from '@micro/sdk';
import { fulltextContract } from '@micro/sdk/testing';
import { ADMIN, serviceAccount, startPlatform, tempDir } from '../config/testing.js';
import { fulltextServiceHandlers } from './handlers.js';
import { fulltextCore, SqliteFulltext } from './index.js';
import { fulltextService } from '@micro/sdk';

/*
 * Full-text search on SQLite FTS5: the contract directly and over RPC (the fulltext core
 * service behind the real guard), the namespace rule, purge, and a reopen.
 */

function fresh() {
  const dir = tempDir('micro-fulltext-');
  const impl = new SqliteFulltext({ path: join(dir, 'fulltext.db') });
  return { impl, dir, close: async () => { await impl.close(); rmSync(dir, { recursive: true, force: true }); } };
}

fulltextContract('sqlite', async () => fresh());

fulltextContract('remote over the fulltext service (sqlite)', async () => {
  const engine = fresh();
  const platform = await startPlatform([{ def: fulltextService, handlers: fulltextServiceHandlers(engine.impl) }]);
  return {
    impl: new RemoteFulltext(await platform.clientFor(ADMIN, { timeout: 20_000 })),
    close: async () => {
      await platform.close();
      await engine.close();
    },
  };
});

test('sqlite fulltext: an account acts in its own namespace only; naming another is a 403', async (t) => {
  const engine = fresh();
  const platform = await startPlatform([{ def: fulltextService, handlers: fulltextServiceHandlers(engine.impl) }]);
  t.after(async () => {
    await platform.close();
    await engine.close();
  });
  const a = new RemoteFulltext(await platform.clientFor(serviceAccount('tenant-a')));
  const b = new RemoteFulltext(await platform.clientFor(serviceAccount('tenant-b', 'service:intruder')));
  await a.put('docs', { id: 'secret', data: { t: 'the plans of a' } });
  assert.deepEqual(await b.listIndexes(), []);
  await assert.rejects(b.search('docs', "t == 'plans'"), (err) => err instanceof MicroError && err.code === 404);
  const other = { namespace: 'tenant-a' };
  for (const call of [() => b.search('docs', "t == '*'", other), () => b.put('docs', { id: 'secret', data: { t: 'x' } }, other), () => b.delete('docs', 'secret', other), () => b.deleteIndex('docs', other), () => b.listIndexes(other), () => b.createIndex('x', other)]) {
    await assert.rejects(call(), (err) => err instanceof MicroError && err.code === 403 && /may not act in namespace tenant-a/.test(err.detail));
  }
  assert.deepEqual((await a.search('docs', "t == 'plans'")).map((h) => h.data), [{ t: 'the plans of a' }]);
});

test('sqlite fulltext: purge deletes the namespace\'s indexes and their tables; others keep theirs; a reopen finds what was put', async (t) => {
  const dir = tempDir('micro-fulltext-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'fulltext.db');
  const engine = new SqliteFulltext({ path });
  const core = fulltextCore(engine);
  for (const ns of ['acme', 'globex']) {
    await engine.put('one', { id: 'x', data: { t: `word of ${ns}`, n: 1 } }, { namespace: ns });
    await engine.put('two', { id: 'y', data: { t: 'other' } }, { namespace: ns });
  }
  await core.purge?.('acme');
  await core.purge?.('acme');
  assert.deepEqual(await engine.listIndexes({ namespace: 'acme' }), []);
  await core.stop?.();
  const again = new SqliteFulltext({ path });
  t.after(() => again.close());
  assert.deepEqual((await again.listIndexes({ namespace: 'globex' })).map((i) => [i.name, i.documents]), [['one', 1], ['two', 1]]);
  assert.deepEqual((await again.search('one', "t == 'globex' and n >= 1", { namespace: 'globex' })).map((h) => h.id), ['x']);
  const db = (again as unknown as { storage: { db: import('better-sqlite3').Database } }).storage.db;
  const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name GLOB 'fulltext_t[0-9]*' AND sql LIKE 'CREATE VIRTUAL%'").get() as { n: number };
  assert.equal(tables.n, 2, 'the FTS5 tables of acme are gone');
  assert.equal((db.prepare('SELECT count(*) AS n FROM fulltext_numbers').get() as { n: number }).n, 1);
});
