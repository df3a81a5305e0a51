import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { signupStorageContract } from './contract.js';
import { openSqliteSignup } from './sqlite.js';

signupStorageContract('sqlite', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-signup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return openSqliteSignup(join(dir, 'signup.db')).storage;
});

test('sqlite: the file is private and keeps its code key across opens', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-signup-'));
  try {
    const a = openSqliteSignup(join(dir, 'signup.db'));
    await a.storage.close();
    const b = openSqliteSignup(join(dir, 'signup.db'));
    await b.storage.close();
    assert.equal(statSync(join(dir, 'signup.db')).mode & 0o777, 0o600);
    assert.equal(a.codeKey.length, 32);
    assert.deepEqual(a.codeKey, b.codeKey);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
