import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { DEFAULT_RULE, MicroError, type Account } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { relay } from '../../postgres/testing.js';
import { revokeNow } from '../revocations.js';
import { dropSchema, TEST_AUTH_KEY } from '../testing.js';
import { openPgAuth, type PgAuth, type PgAuthOptions } from './index.js';

/**
 * Two nodes of one platform: two PgAuth on one schema, each with its own pool, LISTEN
 * connection and caches, as two `micro server` processes would have.
 */

const code = (n: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, n, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

async function twoNodes(t: { skip(m?: string): void; after(fn: () => unknown): void }, label: string, extra: Partial<PgAuthOptions> = {}): Promise<[PgAuth, PgAuth, { url: string; prefix: string }] | undefined> {
  const url = await engineUrl(t, 'postgres');
  if (!url) return undefined;
  const prefix = testPrefix(label);
  const base = { url, prefix, authKey: TEST_AUTH_KEY, scrypt: { N: 1024 }, ...extra };
  // both at once: migrations and the first signing key are made once
  const [a, b] = await Promise.all([openPgAuth({ ...base, node: 'node-a' }), openPgAuth({ ...base, node: 'node-b' })]);
  t.after(async () => {
    await a.close();
    await b.close();
    await dropSchema(url, prefix);
  });
  return [a, b, { url, prefix }];
}

/** Until `check` holds (a NOTIFY is on its way), for at most 10 s; then the last failure. */
async function eventually(check: () => Promise<void>): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return await check();
    } catch (err) {
      if (i >= 200) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

test('two nodes on one schema act as one: accounts, tokens, keys, sessions, rules', async (t) => {
  const nodes = await twoNodes(t, 'auth2');
  if (!nodes) return;
  const [a, b] = nodes;
  assert.equal(a.tokens.currentKid, b.tokens.currentKid, 'one signing key for the platform');

  // an account made at A logs in at B; its token signed by A verifies at B
  const { secret } = await a.accounts.create({ id: 'alice', namespace: 'tenant-a', type: 'user', scopes: ['dev'] });
  const alice = (await b.accounts.verify('alice', 'tenant-a', secret as string)) as Account;
  assert.equal(alice.id, 'alice');
  assert.equal(await b.accounts.verify('alice', 'tenant-a', 'wrong'), undefined);
  const { token } = await a.tokens.issue(alice);
  assert.deepEqual(await b.tokens.verify(token), alice);

  // an API key made at A verifies at B (and is cached there); revoked at A, B refuses it
  const { key, info } = await a.accounts.keys.create(alice, 'ci', ['dev']);
  assert.equal((await b.accounts.keys.verify(key))?.id, 'alice');
  assert.equal((await b.accounts.keys.verify(key))?.id, 'alice');
  assert.equal(await b.accounts.keys.verify(`${info.id}.${'A'.repeat(43)}`), undefined, 'a wrong secret of a cached key');
  assert.ok(await a.accounts.keys.revoke(info.id));
  await eventually(async () => assert.equal(await b.accounts.keys.verify(key), undefined));

  // rules: B has the namespace's rules cached; a rule made at A reaches it
  assert.deepEqual((await b.accounts.rules.list('tenant-a')).map((r) => r.id), [DEFAULT_RULE.id]);
  await a.accounts.rules.create('tenant-a', { id: 'no-billing', resource: 'service:billing:*', scope: '*', access: 'denied', priority: 5 });
  await eventually(async () => assert.deepEqual((await b.accounts.rules.list('tenant-a')).map((r) => r.id), ['no-billing', DEFAULT_RULE.id]));
  await b.accounts.rules.delete('tenant-a', 'no-billing');
  await eventually(async () => assert.deepEqual((await a.accounts.rules.list('tenant-a')).map((r) => r.id), [DEFAULT_RULE.id]));

  // a session started at A is refreshed at B; the old token replayed at A ends it
  const first = await a.accounts.sessions.start(alice);
  const second = await b.accounts.sessions.rotate(first.refreshToken);
  await assert.rejects(Promise.resolve(a.accounts.sessions.rotate(first.refreshToken)), code(401, /used before/));
  await assert.rejects(Promise.resolve(b.accounts.sessions.rotate(second.refreshToken)), code(401, /unknown/));

  // an account deleted at B: its key and its secret stop working at A
  const { key: key2 } = await b.accounts.keys.create(alice, 'two', ['dev']);
  assert.equal((await a.accounts.keys.verify(key2))?.id, 'alice');
  await b.accounts.delete('alice', 'tenant-a');
  await eventually(async () => assert.equal(await a.accounts.keys.verify(key2), undefined));
  assert.equal(await a.accounts.verify('alice', 'tenant-a', secret as string), undefined);
});

test('a key blocked at one node is refused at the other at once: its cached row dropped, its tokens revoked; unblocked there, it works here', async (t) => {
  const nodes = await twoNodes(t, 'authblock');
  if (!nodes) return;
  const [a, b] = nodes;
  await a.accounts.create({ id: 'alice', namespace: 'tenant-a', type: 'user', scopes: ['dev'] });
  const alice = (await a.accounts.get('alice', 'tenant-a')) as Account;
  const { key, info } = await a.accounts.keys.create(alice, 'ci', ['dev'], undefined, undefined, { description: 'deploys', services: ['db'] });
  // B has the key cached, and a token of it (what its gateway caches)
  const asKey = (await b.accounts.keys.verify(key)) as Account;
  assert.equal(asKey.metadata?.keyServices, 'db');
  const { token } = await b.tokens.issue(asKey);
  assert.equal((await b.tokens.verify(token)).id, 'alice');
  // what auth.BlockKey does at A: the block, then the revocation of the key's session
  await a.accounts.keys.block(info.id, 'abuse: contact support');
  await a.accounts.revocations.add(revokeNow('session', `key:${info.id}`));
  await eventually(() => assert.rejects(Promise.resolve(b.accounts.keys.verify(key)), code(403, /this API key is blocked: abuse: contact support/)));
  await eventually(() => assert.rejects(b.tokens.verify(token), code(401, /revoked or blocked/)));
  assert.equal((await b.accounts.keys.list('tenant-a'))[0]?.blockMessage, 'abuse: contact support');
  await assert.rejects(Promise.resolve(b.accounts.keys.block(info.id, 'again')), code(409, /blocked already/));
  await b.accounts.keys.unblock(info.id);
  await eventually(async () => assert.equal((await a.accounts.keys.verify(key))?.id, 'alice'));
  // a key used at A only: in B's listings once A wrote its uses (at most a minute later)
  const other = await a.accounts.keys.create(alice, 'other', ['dev']);
  assert.equal((await a.accounts.keys.verify(other.key))?.id, 'alice');
  const byId = async (node: PgAuth) => (await node.accounts.keys.list('tenant-a')).find((k) => k.id === other.info.id);
  assert.ok((await byId(a))?.lastUsedAt !== undefined, 'A lists its own use at once');
  assert.equal((await byId(b))?.lastUsedAt, undefined);
  await a.accounts.keys.flushUsage();
  const used = (await byId(b))?.lastUsedAt;
  assert.ok(used !== undefined && used <= Date.now());
  // B's own use, older than what A wrote, never takes the time back
  b.accounts.keys.usage.touch(other.info.id, 1_000);
  await b.accounts.keys.flushUsage();
  assert.equal((await byId(a))?.lastUsedAt, used);
});

test('signing keys rotate once for the platform; the other node signs and verifies with the new key', async (t) => {
  const nodes = await twoNodes(t, 'authrot');
  if (!nodes) return;
  const [a, b] = nodes;
  const alice: Account = { id: 'alice', type: 'user', issuer: 'tenant-a', scopes: [] };
  const before = a.tokens.currentKid;
  const old = (await a.tokens.issue(alice)).token;
  const kid = await a.tokens.rotate();
  assert.notEqual(kid, before);
  // a token of the new key verifies at B at once (B reads the ring on an unknown kid, or got the NOTIFY)
  assert.deepEqual(await b.tokens.verify((await a.tokens.issue(alice)).token), alice);
  assert.deepEqual(await b.tokens.verify(old), alice, 'the retired key verifies until its tokens expired');
  await eventually(async () => assert.equal(b.tokens.currentKid, kid));
  assert.deepEqual(b.tokens.jwks().keys.map((k) => k.kid), [before, kid]);
  // the private half is sealed: the database holds no "d" of a JWK in clear
  const c = new pg.Client({ connectionString: nodes[2].url });
  await c.connect();
  try {
    const { rows } = await c.query<{ private_sealed: string | null }>(`SELECT private_sealed FROM "${nodes[2].prefix}".auth_signing_keys`);
    assert.deepEqual(rows.filter((r) => r.private_sealed !== null).length, 1, 'only the current key keeps its private half');
    for (const r of rows) assert.ok(r.private_sealed === null || /^v1\./.test(r.private_sealed));
  } finally {
    await c.end();
  }
});

test('concurrent writes at two nodes: one refresh of a token wins, one of two conflicting rules wins', async (t) => {
  const nodes = await twoNodes(t, 'authrace');
  if (!nodes) return;
  const [a, b] = nodes;
  await a.accounts.create({ id: 'bob', namespace: 'n', type: 'user', secret: 'bob-password' });
  const bob = (await a.accounts.get('bob', 'n')) as Account;
  for (let i = 0; i < 5; i++) {
    const { refreshToken } = await a.accounts.sessions.start(bob);
    const outcomes = await Promise.allSettled([a.accounts.sessions.rotate(refreshToken), b.accounts.sessions.rotate(refreshToken)]);
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, 'exactly one refresh');
  }
  for (let i = 0; i < 5; i++) {
    const rule = (id: string, access: 'granted' | 'denied') => ({ id, resource: `service:s${i}:*`, scope: '*', access, priority: 1 });
    const outcomes = await Promise.allSettled([a.accounts.rules.create('n', rule(`g${i}`, 'granted')), b.accounts.rules.create('n', rule(`d${i}`, 'denied'))]);
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, 'one of two contradicting rules');
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    assert.ok(refused.reason instanceof MicroError && refused.reason.code === 409);
  }
});

test('instance and admin secrets belong to their node: a restart of one node drops only its own', async (t) => {
  const nodes = await twoNodes(t, 'authnode');
  if (!nodes) return;
  const [a, b] = nodes;
  const sa = await a.accounts.issueServiceSecret('billing', 'n');
  const sb = await b.accounts.issueServiceSecret('billing', 'n');
  const adminA = await a.accounts.createAdmin();
  const adminB = await b.accounts.createAdmin();
  await a.accounts.dropServiceSecrets();
  assert.equal(await a.accounts.verify(sa.id, 'n', sa.secret), undefined);
  assert.equal((await a.accounts.verify(sb.id, 'n', sb.secret))?.id, 'service:billing');
  // A makes a new admin secret: its old one goes, B's stays
  const adminA2 = await a.accounts.createAdmin();
  assert.equal(await b.accounts.verify('admin', 'micro', adminA.secret), undefined);
  assert.equal((await b.accounts.verify('admin', 'micro', adminA2.secret))?.id, 'admin');
  assert.equal((await a.accounts.verify('admin', 'micro', adminB.secret))?.id, 'admin');
});

test('a node with another MICRO_AUTH_KEY, a short one, or a newer schema is refused with what to do', async (t) => {
  const nodes = await twoNodes(t, 'authkey');
  if (!nodes) return;
  const { url, prefix } = nodes[2];
  const base = { url, prefix, node: 'node-c', scrypt: { N: 1024 } };
  await assert.rejects(openPgAuth({ ...base, authKey: 'another-key-of-at-least-32-characters!' }), /MICRO_AUTH_KEY is not the key .* give this node the MICRO_AUTH_KEY of the other nodes/);
  await assert.rejects(openPgAuth({ ...base, authKey: 'short' }), /MICRO_AUTH_KEY must be at least 32/);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`UPDATE "${prefix}".schema_version SET version = 99 WHERE component = 'auth'`);
    await assert.rejects(openPgAuth({ ...base, authKey: TEST_AUTH_KEY }), /version 99.*upgrade/);
  } finally {
    await c.query(`UPDATE "${prefix}".schema_version SET version = 1 WHERE component = 'auth'`);
    await c.end();
  }
});

test('the LISTEN connection lost: caches are off until it is back, then changes reach the node again', async (t) => {
  const nodes = await twoNodes(t, 'authlisten', { cacheTtl: 60_000 });
  if (!nodes) return;
  const [a, b, { url, prefix }] = nodes;
  await a.accounts.rules.list('n');
  assert.ok(b.listening);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    // what a Postgres restart or a network cut does to B's listener
    const { rowCount } = await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [`${prefix}_auth listen`]);
    assert.equal(rowCount, 2);
  } finally {
    await c.end();
  }
  await eventually(async () => assert.ok(a.listenLosses === 1 && b.listenLosses === 1));
  // whatever the listener's state now (deaf: no cache; back: invalidated), a change is seen
  await b.accounts.rules.create('n', { id: 'r1', resource: 'service:x:*', scope: '*', access: 'denied', priority: 1 });
  await eventually(async () => assert.ok((await a.accounts.rules.list('n')).some((r) => r.id === 'r1')));
  // back: caches on, and invalidated by NOTIFY again
  await eventually(async () => assert.ok(b.listening && a.listening));
  await a.accounts.rules.list('n');
  await b.accounts.rules.delete('n', 'r1');
  await eventually(async () => assert.ok(!(await a.accounts.rules.list('n')).some((r) => r.id === 'r1')));
});

test('postgres lost while running: tokens still verify (in memory), reads fail fast with a 503, all works again when it returns', async (t) => {
  const url = await engineUrl(t, 'postgres');
  if (!url) return;
  const cable = await relay(url);
  t.after(() => cable.close());
  const prefix = testPrefix('authlost');
  t.after(() => dropSchema(url, prefix));
  const auth = await openPgAuth({ url: cable.url, prefix, node: 'node-a', authKey: TEST_AUTH_KEY, scrypt: { N: 1024 } });
  t.after(() => auth.close());
  const { secret } = await auth.accounts.create({ id: 'alice', namespace: 'n', type: 'user', scopes: ['dev'] });
  const alice = (await auth.accounts.get('alice', 'n')) as Account;
  const { token } = await auth.tokens.issue(alice);
  const { key } = await auth.accounts.keys.create(alice, 'ci', ['dev']);
  await auth.accounts.rules.list('n');

  await cable.cut();
  // the hot path's token check needs no database
  assert.deepEqual(await auth.tokens.verify(token), alice);
  assert.deepEqual(await auth.tokens.verify((await auth.tokens.issue(alice)).token), alice);
  // the rest fails fast with a typed 503 (the caches are off: the LISTEN is gone too)
  await eventually(async () => assert.ok(!auth.listening));
  const unavailable = (err: unknown) => err instanceof MicroError && err.code === 503 && /postgres .* is unavailable/.test(err.detail);
  await assert.rejects(auth.accounts.rules.list('n'), unavailable);
  await assert.rejects(auth.accounts.keys.verify(key), unavailable);
  await assert.rejects(auth.accounts.verify('alice', 'n', secret as string), unavailable);
  await assert.rejects(auth.accounts.create({ id: 'bob', namespace: 'n', type: 'user' }), unavailable);

  await cable.restore();
  await eventually(async () => assert.ok(auth.listening));
  assert.equal((await auth.accounts.verify('alice', 'n', secret as string))?.id, 'alice');
  assert.equal((await auth.accounts.keys.verify(key))?.id, 'alice');
  assert.deepEqual((await auth.accounts.rules.list('n')).map((r) => r.id), [DEFAULT_RULE.id]);
  assert.ok((await auth.accounts.create({ id: 'bob', namespace: 'n', type: 'user' })).secret);
});
