import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ensurePartSchema, ensureSchema, openDatabase } from './sqlite.js';

test('parts of one SQLite file keep their own schema versions beside the owner\'s', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-sqlite-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'shared.db');
  const db = openDatabase(path);
  t.after(() => db.close());
  const made: string[] = [];
  ensureSchema(db, path, 'owner', 1, () => made.push('owner 1'));
  // a part whose version equals the owner's is still created (its own key)
  ensurePartSchema(db, path, 'part', 1, () => made.push('part 1'));
  ensurePartSchema(db, path, 'part', 1, () => made.push('part 1 again'));
  ensureSchema(db, path, 'owner', 1, () => made.push('owner 1 again'));
  assert.deepEqual(made, ['owner 1', 'part 1']);
  ensurePartSchema(db, path, 'other', 2, () => made.push('other 2'));
  assert.throws(() => ensurePartSchema(db, path, 'other', 1, () => made.push('older')), /newer than this micro server knows/);
  assert.throws(() => ensurePartSchema(db, path, 'Bad Name', 1, () => undefined), /invalid schema part name/);
  // a create that fails leaves no version behind
  assert.throws(() => ensurePartSchema(db, path, 'broken', 1, () => db.exec('CREATE TABLE nope (')), /incomplete input/);
  ensurePartSchema(db, path, 'broken', 1, () => made.push('broken 1'));
  assert.deepEqual(made, ['owner 1', 'part 1', 'other 2', 'broken 1']);
});
