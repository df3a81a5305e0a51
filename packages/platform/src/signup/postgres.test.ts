import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testPostgres } from '@micro/server/testing';
import { signupStorageContract } from './contract.js';
import { codeKeyFrom, openPgSignup } from './postgres.js';

signupStorageContract('postgres', async (t) => {
  const db = await testPostgres(t, 'signup');
  if (!db) return undefined;
  return openPgSignup({ url: db.url, prefix: db.prefix });
});

test('postgres: two nodes migrate one schema once and share it', async (t) => {
  const db = await testPostgres(t, 'signup');
  if (!db) return;
  const [a, b] = await Promise.all([openPgSignup({ url: db.url, prefix: db.prefix }), openPgSignup({ url: db.url, prefix: db.prefix })]);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  assert.equal(await a.joinWaitlist('one@example.com', 1, 10), true);
  assert.deepEqual((await b.listWaitlist(10)).items.map((e) => e.email), ['one@example.com']);
});

test('the code key derives from MICRO_AUTH_KEY: the same on every node, another for another key', () => {
  const k = 'a-key-of-at-least-32-characters-0123456789';
  assert.deepEqual(codeKeyFrom(k), codeKeyFrom(k));
  assert.notDeepEqual(codeKeyFrom(k), codeKeyFrom(`${k}x`));
});
