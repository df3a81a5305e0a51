import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { profileFromEnv } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { Accounts } from './accounts.js';
import { authKeyFromEnv, openAuthStorage } from './open.js';
import { PgAccounts } from './pg/index.js';
import { dropSchema, TEST_AUTH_KEY } from './testing.js';

function home(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'micro-auth-open-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { home: dir, serverDir: dir, keysPath: join(dir, 'jwt-keys.json') };
}

test('the local profile keeps auth in SQLite and a key file, as before', async (t) => {
  const where = home(t);
  const { accounts, tokens } = await openAuthStorage(profileFromEnv({}), where);
  t.after(() => accounts.close());
  assert.ok(accounts instanceof Accounts);
  assert.ok(existsSync(join(where.home, 'data', 'auth.db')) && existsSync(where.keysPath));
  assert.ok(tokens.currentKid);
});

test('the nats profile needs MICRO_AUTH_KEY: missing or short is a clear error', () => {
  for (const env of [{}, { MICRO_AUTH_KEY: '' }, { MICRO_AUTH_KEY: 'x'.repeat(31) }]) {
    assert.throws(() => authKeyFromEnv(env), /MICRO_PROFILE=nats needs MICRO_AUTH_KEY: at least 32 .*openssl rand -base64 32/);
  }
  assert.equal(authKeyFromEnv({ MICRO_AUTH_KEY: TEST_AUTH_KEY }), TEST_AUTH_KEY);
});

test('the nats profile keeps auth in Postgres, with a node id of its own in the server folder', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const prefix = testPrefix('authopen');
  t.after(() => dropSchema(url, prefix));
  const where = home(t);
  const profile = profileFromEnv({ MICRO_PROFILE: 'nats', MICRO_POSTGRES_URL: url, MICRO_PREFIX: prefix });
  await assert.rejects(openAuthStorage(profile, where, { env: {} }), /needs MICRO_AUTH_KEY/);
  const { accounts, tokens } = await openAuthStorage(profile, where, { env: { MICRO_AUTH_KEY: TEST_AUTH_KEY } });
  t.after(() => accounts.close());
  assert.ok(accounts instanceof PgAccounts);
  assert.ok(tokens.currentKid);
  const { id } = JSON.parse(readFileSync(join(where.serverDir, 'node.json'), 'utf8')) as { id: string };
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.ok(!existsSync(join(where.home, 'data', 'auth.db')), 'no SQLite file');
});
