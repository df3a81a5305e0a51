import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, MicroError, registryService, type Account, type Credentials, type KeyInfo } from '@micro/sdk';
import { engineUrl } from '@micro/sdk/testing';
import { openPostgres } from '../postgres/index.js';
import { keyAccount, type KeyRow } from './keys.js';
import type { AuthAccounts, AuthTokens } from './storage.js';
import { startAuthHarness, startPgAuthHarness, type AuthHarness } from './testing.js';

/*
 * API keys as their owners and the platform's admins use them, over both storages: a
 * description and the services a key may call, its last use, blocks with a message, and
 * every bad input of those.
 */

const code = (n: number, detail?: RegExp, id?: string) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, n, err.detail);
  if (detail) assert.match(err.detail, detail);
  if (id) assert.equal(err.id, id);
  return true;
};

const pgSkip = { skip: (why?: string) => void why };
const pgUrl = await engineUrl(pgSkip, 'postgres');

for (const storage of ['sqlite', 'postgres'] as const) {
  describe(`API keys (${storage})`, { skip: storage === 'postgres' && !pgUrl ? 'postgres is not reachable' : false }, () => {
    let h: AuthHarness<AuthAccounts, AuthTokens>;
    let alice: Credentials;
    let tenantAdmin: Credentials;
    let stranger: Credentials;
    /** sets a key's expiry in the database (what time passing does), for a key no cache has seen */
    let expire: (keyId: string, at: number) => Promise<void>;
    /** a key's stored last use, as the database has it */
    let storedLastUse: (keyId: string) => Promise<number | null>;

    before(async () => {
      if (storage === 'sqlite') {
        const sqlite = await startAuthHarness();
        h = sqlite;
        expire = async (id, at) => void sqlite.accounts.db.prepare('UPDATE api_keys SET expires_at = ? WHERE key_id = ?').run(at, id);
        storedLastUse = async (id) => (sqlite.accounts.db.prepare('SELECT last_used_at AS v FROM api_keys WHERE key_id = ?').get(id) as { v: number | null }).v;
      } else {
        const pg = (await startPgAuthHarness(pgSkip)) as NonNullable<Awaited<ReturnType<typeof startPgAuthHarness>>>;
        h = pg;
        const sql = async <T>(text: string, params: unknown[]) => {
          const db = await openPostgres({ url: pg.url, prefix: pg.prefix });
          try {
            return (await db.query(text.replaceAll('$T', `${db.schema}.auth_api_keys`), params)).rows as T[];
          } finally {
            await db.close();
          }
        };
        expire = async (id, at) => void (await sql('UPDATE $T SET expires_at = $1 WHERE key_id = $2', [at, id]));
        storedLastUse = async (id) => {
          const v = (await sql<{ v: string | null }>('SELECT last_used_at AS v FROM $T WHERE key_id = $1', [id]))[0]?.v;
          return v === null || v === undefined ? null : Number(v);
        };
      }
      const admin = h.authAs(h.admin);
      await admin.CreateAccount({ id: 'tenant-admin', namespace: 'tenant-a', scopes: ['admin'], secret: 'tenant-admin-pw' });
      tenantAdmin = { id: 'tenant-admin', secret: 'tenant-admin-pw', namespace: 'tenant-a' };
      alice = { id: 'alice', secret: (await admin.CreateAccount({ id: 'alice', namespace: 'tenant-a', scopes: ['dev'] })).secret as string, namespace: 'tenant-a' };
      stranger = { id: 'mallory', secret: (await admin.CreateAccount({ id: 'mallory', namespace: 'tenant-b', scopes: ['admin'] })).secret as string, namespace: 'tenant-b' };
    });
    after(() => h.close());

    const listed = async (creds: Credentials, id: string, namespace?: string): Promise<KeyInfo | undefined> =>
      (await h.authAs(creds).ListKeys(namespace ? { namespace } : {})).keys.find((k) => k.id === id);

    test('a key has a description and the services it may call (default any); both are listed, never the secret', async () => {
      const asAlice = h.authAs(alice);
      const plain = await asAlice.CreateKey({ name: 'plain' });
      assert.deepEqual([plain.info.description, plain.info.services, plain.info.blocked, plain.info.lastUsedAt], ['', ['*'], false, undefined]);
      const made = await asAlice.CreateKey({ name: 'shop', description: 'the shop front <b>end</b>', services: ['db', 'cache', 'db'], expiresIn: 3600 });
      assert.deepEqual(made.info.services, ['db', 'cache'], 'deduplicated');
      const info = await listed(alice, made.info.id);
      assert.ok(info);
      assert.equal(info.description, 'the shop front <b>end</b>');
      assert.deepEqual(info.services, ['db', 'cache']);
      assert.ok(info.createdAt <= Date.now() && info.expiresAt === info.createdAt + 3_600_000);
      assert.equal(info.blocked, false);
      assert.equal(info.lastUsedAt, undefined, 'never used');
      assert.ok(!JSON.stringify(await asAlice.ListKeys({})).includes(made.key.split('.')[1] as string));
      // what it acts as names its services, for the gateway and the guard
      const { account } = await h.authAs().Token({ apiKey: made.key });
      assert.equal(account.metadata?.keyServices, 'db,cache');
      assert.equal((await h.authAs().Token({ apiKey: plain.key })).account.metadata?.keyServices, '*');
    });

    test('bad input: service names, * with others, too many, oversized or multi-line descriptions, short or fractional expiries', async () => {
      const asAlice = h.authAs(alice);
      for (const services of [['Db'], ['a b'], [''], ['../x'], ['db', ''], ['-db'], ['x'.repeat(65)], ['*', 'db'], [], Array.from({ length: 33 }, (_, i) => `s${i}`)]) {
        await assert.rejects(asAlice.CreateKey({ name: 'bad', services }), code(400, /services/), JSON.stringify(services));
      }
      await assert.rejects(asAlice.CreateKey({ name: 'bad', services: 'db' as unknown as string[] }), code(400, /services/));
      assert.deepEqual((await asAlice.CreateKey({ name: 'many', services: Array.from({ length: 32 }, (_, i) => `s${i}`) })).info.services.length, 32);
      await assert.rejects(asAlice.CreateKey({ name: 'bad', description: 'x'.repeat(257) }), code(400, /description/));
      await assert.rejects(asAlice.CreateKey({ name: 'bad', description: 'line one\nline two' }), code(400, /description.*control characters/));
      await assert.rejects(asAlice.CreateKey({ name: 'bad', description: 5 as unknown as string }), code(400, /description/));
      await assert.rejects(asAlice.CreateKey({ name: 'bad', expiresIn: 59 }), code(400, /expiresIn/));
      await assert.rejects(asAlice.CreateKey({ name: 'bad', expiresIn: 90.5 }), code(400, /expiresIn/));
      await assert.rejects(asAlice.CreateKey({ name: 'bad', expiresIn: 11 * 365 * 86_400 }), code(400, /expiresIn/));
      await assert.rejects(asAlice.CreateKey({ name: 'bad name' }), code(400, /name/));
      assert.ok(!(await asAlice.ListKeys({})).keys.some((k) => k.name === 'bad'), 'nothing was made');
      assert.equal((await asAlice.CreateKey({ name: 'long', description: 'é'.repeat(256) })).info.description.length, 256);
    });

    test('an expired key is refused with when it expired; a wrong secret of it learns nothing', async () => {
      const { key, info } = await h.authAs(alice).CreateKey({ name: 'short', expiresIn: 60 });
      await expire(info.id, Date.now() - 1_000);
      await assert.rejects(h.authAs().Token({ apiKey: key }), code(401, /API key mk_[0-9a-f]+ expired at \d{4}-.*create a new one/));
      await assert.rejects(h.authAs().Inspect({ token: key }), code(401, /expired/));
      await assert.rejects(h.authAs().Token({ apiKey: `${info.id}.${'A'.repeat(43)}` }), code(401, /API key refused: unknown, revoked, expired or wrong/));
      const shown = await listed(alice, info.id);
      assert.ok(shown?.expiresAt !== undefined && shown.expiresAt < Date.now(), 'listed, with its expiry');
      // the same in the row check the gateway and Token share, at a given time
      const row = { key_id: 'mk_0', namespace: 'n', account: 'a', name: 'k', description: '', scopes: '[]', services: '["*"]', hash: '', created_at: 0, expires_at: 1_000, last_used_at: null, blocked_at: null, block_message: null } satisfies KeyRow;
      const owner: Account = { id: 'a', type: 'user', issuer: 'n', scopes: [] };
      assert.equal(keyAccount(row, owner, 999)?.type, 'apikey');
      assert.throws(() => keyAccount(row, owner, 1_000), code(401, /expired/));
      assert.equal(keyAccount(row, undefined, 0), undefined, 'an account gone: as unknown');
    });

    test('last used: Token exchanges count, listed at once; written to the database at most once a minute and on flush', async () => {
      const { key, info } = await h.authAs(alice).CreateKey({ name: 'used' });
      const before = Date.now();
      await h.authAs().Token({ apiKey: key });
      const first = (await listed(alice, info.id))?.lastUsedAt;
      assert.ok(first !== undefined && first >= before && first <= Date.now(), 'shown by this node at once');
      assert.equal(await storedLastUse(info.id), null, 'no write on the hot path');
      await h.accounts.keys.flushUsage();
      assert.equal(await storedLastUse(info.id), first);
      // a refused use (a wrong secret) is no use
      await assert.rejects(h.authAs().Token({ apiKey: `${info.id}.${'B'.repeat(43)}` }), code(401));
      await h.accounts.keys.flushUsage();
      assert.equal(await storedLastUse(info.id), first);
      // an older time written later (another node's) never goes back in time
      await new Promise((r) => setTimeout(r, 5));
      await h.authAs().Token({ apiKey: key });
      const second = (await listed(alice, info.id))?.lastUsedAt as number;
      assert.ok(second > first);
      await h.accounts.keys.flushUsage();
      assert.equal(await storedLastUse(info.id), second);
    });

    test('block and unblock: admins of micro only; the caller gets 403 v1.blocked with the message; the key\'s tokens stop', async () => {
      const { key, info } = await h.authAs(alice).CreateKey({ name: 'abuser', services: ['db'] });
      const token = (await h.authAs().Token({ apiKey: key })).token;
      const message = 'unpaid invoice: contact billing@example.com';
      // its owner, the namespace's admin and a stranger may not; the same 403 whether the key exists or not
      for (const who of [alice, tenantAdmin, stranger]) {
        await assert.rejects(h.authAs(who).BlockKey({ id: info.id, message }), code(403, /needs an admin of namespace micro/));
        await assert.rejects(h.authAs(who).BlockKey({ id: 'mk_0000000000000000', message }), code(403));
        await assert.rejects(h.authAs(who).UnblockKey({ id: info.id }), code(403, /needs an admin of namespace micro/));
      }
      await assert.rejects(h.authAs({ token }).BlockKey({ id: info.id, message }), code(403));
      const admin = h.authAs(h.admin);
      // the key's namespace is named: a key of another namespace is unknown there
      await assert.rejects(admin.BlockKey({ id: info.id, message }), code(404, /no API key mk_[0-9a-f]+ in namespace micro/));
      await assert.rejects(admin.BlockKey({ id: info.id, message, namespace: 'tenant-b' }), code(404));
      await assert.rejects(admin.BlockKey({ id: 'mk_0000000000000000', message, namespace: 'tenant-a' }), code(404));
      await assert.rejects(admin.BlockKey({ id: 'not a key', message, namespace: 'tenant-a' }), code(404));
      await assert.rejects(admin.BlockKey({ id: 'x'.repeat(65), message, namespace: 'tenant-a' }), code(400, /id/));
      // the message: required, bounded, one line
      await assert.rejects(admin.BlockKey({ id: info.id, message: '', namespace: 'tenant-a' }), code(400, /message/));
      await assert.rejects(admin.BlockKey({ id: info.id, message: 'x'.repeat(501), namespace: 'tenant-a' }), code(400, /message/));
      await assert.rejects(admin.BlockKey({ id: info.id, message: 'a\r\nb', namespace: 'tenant-a' }), code(400, /message/));
      await assert.rejects(admin.BlockKey({ id: info.id, namespace: 'tenant-a' } as unknown as { id: string; message: string }), code(400, /message/));
      assert.equal((await listed(alice, info.id))?.blocked, false, 'nothing was blocked so far');

      const { key: blocked } = await admin.BlockKey({ id: info.id, message, namespace: 'tenant-a' });
      assert.deepEqual([blocked.id, blocked.blocked, blocked.blockMessage], [info.id, true, message]);
      assert.ok(blocked.blockedAt !== undefined && blocked.blockedAt <= Date.now());
      await assert.rejects(h.authAs().Token({ apiKey: key }), code(403, new RegExp(`^this API key is blocked: ${message}$`), 'v1.blocked'));
      await assert.rejects(h.authAs().Inspect({ token: key }), code(403, /blocked/, 'v1.blocked'));
      await assert.rejects(h.tokens.verify(token), code(401, /its API key was revoked or blocked/));
      // its owner sees why; blocking twice says it is blocked already and changes nothing
      const seen = await listed(alice, info.id);
      assert.deepEqual([seen?.blocked, seen?.blockMessage, seen?.blockedAt], [true, message, blocked.blockedAt]);
      await assert.rejects(admin.BlockKey({ id: info.id, message: 'another', namespace: 'tenant-a' }), code(409, /blocked already .*unpaid invoice.*unblock it first/));
      assert.equal((await listed(alice, info.id))?.blockMessage, message);

      const { key: lifted } = await admin.UnblockKey({ id: info.id, namespace: 'tenant-a' });
      assert.deepEqual([lifted.blocked, lifted.blockMessage, lifted.blockedAt], [false, undefined, undefined]);
      await assert.rejects(admin.UnblockKey({ id: info.id, namespace: 'tenant-a' }), code(409, /is not blocked/));
      await assert.rejects(admin.UnblockKey({ id: 'mk_0000000000000000', namespace: 'tenant-a' }), code(404));
      // works again, a token of this very second too
      const again = await h.authAs().Token({ apiKey: key });
      assert.equal((await h.tokens.verify(again.token)).id, 'alice');
      // its owner may revoke a blocked key (then it is gone for the admin too)
      await admin.BlockKey({ id: info.id, message, namespace: 'tenant-a' });
      await h.authAs(alice).RevokeKey({ id: info.id });
      await assert.rejects(admin.UnblockKey({ id: info.id, namespace: 'tenant-a' }), code(404));
      await assert.rejects(h.authAs().Token({ apiKey: key }), code(401, /API key refused/));
    });

    test('a key limited to some services: its tokens reach no other core service (403 v1.blocked, M3O\'s wording)', async () => {
      const limited = await h.authAs(alice).CreateKey({ name: 'limited', services: ['db', 'cache'] });
      const { token } = await h.authAs().Token({ apiKey: limited.key });
      await assert.rejects(createClient(registryService, h.platformAs({ token })).ListServices({}), code(403, /^insufficient privileges: this API key may call db, cache$/, 'v1.blocked'));
      await assert.rejects(h.authAs({ token }).ListKeys({}), code(403, /insufficient privileges/, 'v1.blocked'));
      // a key for any service, and one that names the service, are not refused
      const any = (await h.authAs().Token({ apiKey: (await h.authAs(alice).CreateKey({ name: 'any' })).key })).token;
      assert.ok(await createClient(registryService, h.platformAs({ token: any })).ListServices({}));
      const reg = (await h.authAs().Token({ apiKey: (await h.authAs(alice).CreateKey({ name: 'reg', services: ['registry'] })).key })).token;
      assert.ok(await createClient(registryService, h.platformAs({ token: reg })).ListServices({}));
      // auth.Scope scopes such a token to its services only (what the services a tenant runs accept)
      const scoper = (await h.authAs().Token({ apiKey: (await h.authAs(alice).CreateKey({ name: 'scoper', services: ['auth', 'greeter'] })).key })).token;
      assert.ok((await h.authAs({ token: scoper }).Scope({ audience: 'tenant-a/greeter' })).token);
      await assert.rejects(h.authAs({ token: scoper }).Scope({ audience: 'tenant-a/other' }), code(403, /may call auth, greeter$/, 'v1.blocked'));
      await assert.rejects(h.authAs({ token }).Scope({ audience: 'tenant-a/db' }), code(403, /may call db, cache$/, 'v1.blocked'));
      // the owner's own tokens are not limited by its keys
      assert.ok(await h.authAs(alice).ListKeys({}));
    });

    test('tenants: another namespace\'s keys are neither listed, revoked, blocked nor unblocked', async () => {
      const { info } = await h.authAs(alice).CreateKey({ name: 'target' });
      const asStranger = h.authAs(stranger);
      await assert.rejects(asStranger.ListKeys({ namespace: 'tenant-a' }), code(403, /may not act in namespace tenant-a/));
      assert.ok(!(await asStranger.ListKeys({})).keys.some((k) => k.id === info.id));
      await assert.rejects(asStranger.RevokeKey({ id: info.id }), code(404));
      await assert.rejects(asStranger.RevokeKey({ id: info.id, namespace: 'tenant-a' }), code(403));
      await assert.rejects(asStranger.BlockKey({ id: info.id, message: 'mine now', namespace: 'tenant-a' }), code(403));
      await assert.rejects(asStranger.UnblockKey({ id: info.id, namespace: 'tenant-a' }), code(403));
      // a member of the namespace without scope admin sees its own keys only
      const { secret } = await h.authAs(h.admin).CreateAccount({ id: 'bob', namespace: 'tenant-a', scopes: ['dev'] });
      assert.ok(!(await h.authAs({ id: 'bob', secret: secret as string, namespace: 'tenant-a' }).ListKeys({})).keys.some((k) => k.id === info.id));
      const still = await listed(alice, info.id);
      assert.deepEqual([still?.blocked, still?.id], [false, info.id]);
    });
  });
}
