import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DeferredSyncDatabase, openDatabase } from './sqlite.js';

const require = createRequire(import.meta.url);

function tempPath(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-sqlite-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'x.db');
}

/** Counts the fdatasyncs made while the test runs (node:fs's export, seen by the ESM import too). */
function countFlushes(t: { after(fn: () => unknown): void }): { n: number } {
  const fs = require('node:fs') as typeof import('node:fs');
  const real = fs.fdatasync;
  const seen = { n: 0 };
  (fs as { fdatasync: typeof real }).fdatasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    seen.n++;
    real(fd, cb);
  }) as typeof real;
  syncBuiltinESMExports();
  t.after(() => {
    (fs as { fdatasync: typeof real }).fdatasync = real;
    syncBuiltinESMExports();
  });
  return seen;
}

test('a deferred-sync connection: commits are seen by other connections, durable() flushes, the commits of a flush in progress share the next one', async (t) => {
  const path = tempPath(t);
  const d = new DeferredSyncDatabase(path);
  t.after(() => d.close());
  assert.equal(d.db.pragma('synchronous', { simple: true }), 1, 'NORMAL: no fsync inside the commit');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600, 'the WAL it flushes is as private as the database');
  d.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY)');
  const other = openDatabase(path);
  t.after(() => other.close());

  const flushes = countFlushes(t);
  const insert = d.db.prepare('INSERT INTO t (id) VALUES (?)');
  const waits: Promise<void>[] = [];
  for (let i = 0; i < 20; i++) {
    insert.run(i);
    waits.push(d.durable());
  }
  await Promise.all(waits);
  assert.ok(flushes.n >= 1 && flushes.n <= 2, `20 commits in one tick: one flush, or one begun before the last of them and the one after (${flushes.n})`);
  assert.equal((other.prepare('SELECT COUNT(*) AS n FROM t').get() as { n: number }).n, 20);

  // a commit made while a flush runs is not covered by it: it waits for the next
  flushes.n = 0;
  insert.run(100);
  const first = d.durable();
  insert.run(101);
  const second = d.durable();
  assert.notEqual(first, second);
  await Promise.all([first, second]);
  assert.equal(flushes.n, 2);
});

test('a deferred-sync connection refuses durable() once closed, and close waits for the flush under way', async (t) => {
  const d = new DeferredSyncDatabase(tempPath(t));
  d.db.exec('CREATE TABLE t (id INTEGER)');
  d.db.prepare('INSERT INTO t VALUES (1)').run();
  const pending = d.durable();
  await d.close();
  await pending;
  await assert.rejects(d.durable(), /closed/);
  await d.close();
});

test('a commit acknowledged after durable() survives a kill -9 of its process', async (t) => {
  const path = tempPath(t);
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { DeferredSyncDatabase } = await import(${JSON.stringify(new URL('./sqlite.js', import.meta.url).href)});
       const d = new DeferredSyncDatabase(${JSON.stringify(path)});
       d.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY)');
       const insert = d.db.prepare('INSERT INTO t (id) VALUES (?)');
       for (let i = 1; ; i++) { insert.run(i); await d.durable(); process.stdout.write(i + '\\n'); }`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let acknowledged = 0;
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      const lines = chunk.toString().trim().split('\n');
      acknowledged = Number(lines[lines.length - 1]);
      if (acknowledged >= 200) {
        child.kill('SIGKILL');
        resolve();
      }
    });
  });
  await new Promise((resolve) => child.once('exit', resolve));
  const db = openDatabase(path);
  t.after(() => db.close());
  const n = (db.prepare('SELECT COUNT(*) AS n FROM t').get() as { n: number }).n;
  assert.ok(n >= acknowledged, `every acknowledged commit is there (${n} rows, ${acknowledged} acknowledged)`);
});
