import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Account } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { Accounts } from './accounts.js';
import { openPgAuth } from './pg/index.js';
import { dropSchema, TEST_AUTH_KEY } from './testing.js';

/*
 * Databases of the servers before keys had descriptions, services, last uses and blocks:
 * opened by this one, they are migrated, and their keys keep working for any service.
 */

const ADDED = ['description', 'services', 'last_used_at', 'blocked_at', 'block_message'];

test('SQLite: an auth.db of schema version 1 is migrated; its keys work as before; a newer one is refused', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'micro-keys-migrate-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const path = join(home, 'auth.db');
  let accounts = new Accounts(path, { scrypt: { N: 1024 } });
  await accounts.create({ id: 'alice', namespace: 'acme', type: 'user', scopes: ['dev'] });
  const { key } = accounts.keys.create(accounts.get('alice', 'acme') as Account, 'old', ['dev']);
  accounts.close();
  // the database as a server of version 1 left it
  const raw = new Database(path);
  for (const c of ADDED) raw.exec(`ALTER TABLE api_keys DROP COLUMN ${c}`);
  raw.prepare("UPDATE meta SET value = '1' WHERE key = 'schema_version'").run();
  raw.close();

  accounts = new Accounts(path, { scrypt: { N: 1024 } });
  try {
    const [info] = accounts.keys.list('acme');
    assert.deepEqual([info?.name, info?.description, info?.services, info?.blocked, info?.lastUsedAt], ['old', '', ['*'], false, undefined]);
    assert.equal(accounts.keys.verify(key)?.metadata?.keyServices, '*');
    assert.ok(accounts.keys.block(info?.id as string, 'now it can be blocked')?.blocked);
  } finally {
    accounts.close();
  }
  const newer = new Database(path);
  newer.prepare("UPDATE meta SET value = '3' WHERE key = 'schema_version'").run();
  newer.close();
  assert.throws(() => new Accounts(path), /schema version 3, newer than this server's 2: upgrade micro/);
});

test('PostgreSQL: the auth tables of schema version 3 are migrated to 4; their keys work as before', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const prefix = testPrefix('authkeymig');
  t.after(() => dropSchema(url, prefix));
  const options = { url, prefix, authKey: TEST_AUTH_KEY, node: 'node-a', scrypt: { N: 1024 } };
  let auth = await openPgAuth(options);
  await auth.accounts.create({ id: 'alice', namespace: 'acme', type: 'user', scopes: ['dev'] });
  const { key } = await auth.accounts.keys.create((await auth.accounts.get('alice', 'acme')) as Account, 'old', ['dev']);
  await auth.close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const col of ADDED) await c.query(`ALTER TABLE "${prefix}".auth_api_keys DROP COLUMN ${col}`);
    await c.query(`UPDATE "${prefix}".schema_version SET version = 3 WHERE component = 'auth'`);
  } finally {
    await c.end();
  }

  auth = await openPgAuth(options);
  try {
    const [info] = await auth.accounts.keys.list('acme');
    assert.deepEqual([info?.name, info?.description, info?.services, info?.blocked, info?.lastUsedAt], ['old', '', ['*'], false, undefined]);
    assert.equal((await auth.accounts.keys.verify(key))?.metadata?.keyServices, '*');
    assert.ok((await auth.accounts.keys.block(info?.id as string, 'now it can be blocked'))?.blocked);
  } finally {
    await auth.close();
  }
});
