import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Client, createClient, KeySet, MicroError, registryService, signJwt, type Credentials } from '@micro/sdk';
import { generateKeyPairSync } from 'node:crypto';
import { engineUrl } from '@micro/sdk/testing';
import type { AuthAccounts, AuthTokens } from './storage.js';
import { startAuthHarness, startPgAuthHarness, type AuthHarness } from './testing.js';

const code = (n: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, n, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

// the same suite over both storages: SQLite (local profile) and PostgreSQL (nats profile)
const pgSkip = { skip: (why?: string) => void why };
const pgUrl = await engineUrl(pgSkip, 'postgres');

for (const storage of ['sqlite', 'postgres'] as const) {
  describe(`auth service (${storage})`, { skip: storage === 'postgres' && !pgUrl ? 'postgres is not reachable' : false }, () => {
    let h: AuthHarness<AuthAccounts, AuthTokens>;
    let alice: Credentials;
    let rawStorage: () => Promise<string[]>;

    before(async () => {
      if (storage === 'sqlite') {
        const sqlite = await startAuthHarness();
        h = sqlite;
        // the database file and its WAL, as bytes
        rawStorage = async () => {
          assert.equal(statSync(join(h.home, 'auth.db')).mode & 0o777, 0o600);
          const out: string[] = [];
          for (const f of ['auth.db', 'auth.db-wal']) {
            try {
              out.push(readFileSync(join(h.home, f), 'latin1'));
            } catch {
              // no WAL right now
            }
          }
          return out;
        };
      } else {
        const pg = (await startPgAuthHarness(pgSkip)) as NonNullable<Awaited<ReturnType<typeof startPgAuthHarness>>>;
        h = pg;
        // every row of every table of auth, as text
        rawStorage = () => pg.dump();
      }
      const admin = h.authAs(h.admin);
      await admin.CreateAccount({ id: 'tenant-admin', namespace: 'tenant-a', scopes: ['admin'], secret: 'tenant-admin-pw' });
      const { secret } = await admin.CreateAccount({ id: 'alice', namespace: 'tenant-a', scopes: ['dev'] });
      alice = { id: 'alice', secret: secret as string, namespace: 'tenant-a' };
    });
    after(() => h.close());

    test('the database is private and holds no secret in clear', async () => {
      const { secret } = await h.authAs(h.admin).CreateAccount({ id: 'carol', namespace: 'tenant-a', secret: 'carol-password-1' });
      assert.equal(secret, undefined, 'a chosen secret is not echoed');
      const key = await h.authAs(alice).CreateKey({ name: 'ci' });
      const { refreshToken } = await h.authAs().Token(alice);
      const raw = (await rawStorage()).join('\n');
      assert.ok(raw.length > 0);
      for (const s of [h.admin.secret, alice.secret, 'carol-password-1', key.key.split('.')[1] as string, refreshToken as string]) assert.ok(!raw.includes(s), 'a secret in clear');
      // nor the private half of a signing key (its "d" member) where it is in the database
      assert.ok(!/"d"\s*:/.test(raw) && !/\\"d\\":/.test(raw), 'a private key in clear');
    });

    test('Token: id and secret give an access token and a refresh token; wrong ones a 401', async () => {
      const anon = h.authAs();
      const res = await anon.Token(alice);
      assert.equal(res.account.id, 'alice');
      assert.equal(res.account.issuer, 'tenant-a');
      assert.deepEqual(res.account.scopes, ['dev']);
      assert.match(res.refreshToken ?? '', /^mrt_/);
      assert.ok(res.expiresAt > Date.now() / 1000 && res.expiresAt <= Date.now() / 1000 + 900 + 1);
      await assert.rejects(anon.Token({ ...alice, secret: 'wrong' }), code(401, /wrong id or secret/));
      await assert.rejects(anon.Token({ ...alice, namespace: 'tenant-b' }), code(401));
      await assert.rejects(anon.Token({ id: 'nobody', secret: 'x' }), code(401));
    });

    test('Token: requests that mix or miss credentials are a 400 naming the field', async () => {
      const anon = h.authAs();
      await assert.rejects(anon.Token({ id: 'alice' }), code(400, /secret/));
      await assert.rejects(anon.Token({ secret: 'x' }), code(400, /id/));
      await assert.rejects(anon.Token({}), code(400, /one of them/));
      await assert.rejects(anon.Token({ id: 'a', secret: 'b', apiKey: 'c' }), code(400));
      await assert.rejects(anon.Token({ id: 'a'.repeat(300), secret: 'b' }), code(400, /id/));
      await assert.rejects(anon.Token({ refreshToken: 'x'.repeat(600) }), code(400, /refreshToken/));
      await assert.rejects(anon.Token({ refreshToken: 'not-a-refresh-token' }), code(401, /not a refresh token/));
    });

    test('Login: users log in with a password; service accounts cannot', async () => {
      const anon = h.authAs();
      const res = await anon.Login({ id: 'tenant-admin', password: 'tenant-admin-pw', namespace: 'tenant-a' });
      assert.equal(res.account.id, 'tenant-admin');
      await assert.rejects(anon.Login({ id: 'tenant-admin', password: 'nope', namespace: 'tenant-a' }), code(401));
      const svc = await h.accounts.issueServiceSecret('billing', 'tenant-a');
      await assert.rejects(anon.Login({ id: svc.id, password: svc.secret, namespace: 'tenant-a' }), code(401, /service account/));
      assert.equal((await anon.Token({ ...svc, namespace: 'tenant-a' })).account.type, 'service');
    });

    test('wrong secrets: five in a row are 401s, then 429s that say how long, before the secret is checked; other accounts and API keys go on', async () => {
      const admin = h.authAs(h.admin);
      await admin.CreateAccount({ id: 'gus', namespace: 'tenant-a', secret: 'gus-password-1' });
      const key = await h.authAs({ id: 'gus', secret: 'gus-password-1', namespace: 'tenant-a' }).CreateKey({ name: 'ci' });
      const anon = h.authAs();
      for (let i = 0; i < 5; i++) await assert.rejects(anon.Token({ id: 'gus', secret: `guess-${i}`, namespace: 'tenant-a' }), code(401, /wrong id or secret/));
      // the right secret too has to wait now (what a guesser would learn otherwise)
      await assert.rejects(anon.Token({ id: 'gus', secret: 'gus-password-1', namespace: 'tenant-a' }), code(429, /too many wrong secrets for gus in namespace tenant-a: try again in 1 s/));
      await assert.rejects(anon.Login({ id: 'gus', password: 'gus-password-1', namespace: 'tenant-a' }), code(429, /try again in \d+ s/));
      // the same id in another namespace is another account; API keys are not throttled
      await assert.rejects(anon.Token({ id: 'gus', secret: 'x', namespace: 'tenant-b' }), code(401));
      assert.equal((await anon.Token({ apiKey: key.key })).account.id, 'gus');
      assert.equal((await anon.Token(alice)).account.id, 'alice');
      // after the wait the right secret works and ends the run
      await new Promise((r) => setTimeout(r, 1_100));
      assert.equal((await anon.Token({ id: 'gus', secret: 'gus-password-1', namespace: 'tenant-a' })).account.id, 'gus');
      await assert.rejects(anon.Token({ id: 'gus', secret: 'wrong-again', namespace: 'tenant-a' }), code(401));
    });

    test('UpdateAccount: a disabled account gets no tokens, its keys and sessions stop, its tokens are revoked; enabled, it works again', async () => {
      const admin = h.authAs(h.admin);
      const { secret } = await admin.CreateAccount({ id: 'paused', namespace: 'tenant-a' });
      const creds = { id: 'paused', secret: secret as string, namespace: 'tenant-a' };
      const session = await h.authAs().Token(creds);
      const key = await h.authAs(creds).CreateKey({ name: 'ci' });
      const { account } = await admin.UpdateAccount({ id: 'paused', namespace: 'tenant-a', disabled: true });
      assert.equal(account.disabled, true);
      assert.equal((await admin.ListAccounts({ namespace: 'tenant-a' })).accounts.find((a) => a.id === 'paused')?.disabled, true);
      await assert.rejects(h.tokens.verify(session.token), code(401, /token revoked/));
      await assert.rejects(h.authAs().Token(creds), code(401));
      await assert.rejects(h.authAs().Token({ apiKey: key.key }), code(401));
      await assert.rejects(h.authAs().Refresh({ refreshToken: session.refreshToken as string }), code(401));
      await admin.UpdateAccount({ id: 'paused', namespace: 'tenant-a', disabled: false });
      assert.equal((await h.authAs().Token({ apiKey: key.key })).account.id, 'paused');
      await assert.rejects(admin.UpdateAccount({ id: 'nobody', namespace: 'tenant-a', disabled: true }), code(404));
      await assert.rejects(admin.UpdateAccount({ id: 'admin', namespace: 'micro', disabled: true }), code(403, /cannot be disabled/));
      await assert.rejects(admin.UpdateAccount({ id: 'paused', namespace: 'tenant-a' }), code(400, /disabled/));
      await assert.rejects(h.authAs(alice).UpdateAccount({ id: 'paused', disabled: true }), code(403));
      // a token issued in the second of the revocation is not born dead
      assert.equal((await h.tokens.verify((await h.authAs().Token(creds)).token)).id, 'paused');
    });

    test('Refresh: each refresh token works once; a reused one revokes the whole session', async () => {
      const anon = h.authAs();
      const first = await anon.Token(alice);
      const second = await anon.Refresh({ refreshToken: first.refreshToken as string });
      assert.notEqual(second.refreshToken, first.refreshToken);
      assert.equal(second.account.id, 'alice');
      const third = await anon.Token({ refreshToken: second.refreshToken as string });
      // the first one again: stolen, or replayed — the chain ends
      await assert.rejects(anon.Refresh({ refreshToken: first.refreshToken as string }), code(401, /used before.*revoked/));
      // the access tokens of the session stop with it: whoever copied the chain holds nothing
      await assert.rejects(h.tokens.verify(third.token), code(401, /session ended/));
      await assert.rejects(h.tokens.verify(second.token), code(401, /session ended/));
      await assert.rejects(anon.Refresh({ refreshToken: third.refreshToken as string }), code(401, /unknown/));
      // another session of the same account is untouched
      const other = await anon.Token(alice);
      assert.ok((await anon.Refresh({ refreshToken: other.refreshToken as string })).token);
    });

    test('a new password ends the sessions; one\'s own password needs the current one', async () => {
      const admin = h.authAs(h.admin);
      await admin.CreateAccount({ id: 'dave', namespace: 'tenant-a', secret: 'dave-password-1' });
      const dave = { id: 'dave', secret: 'dave-password-1', namespace: 'tenant-a' };
      const session = await h.authAs().Token(dave);
      const asDave = h.authAs(dave);
      await assert.rejects(asDave.SetPassword({ password: 'dave-password-2' }), code(400, /current/));
      await assert.rejects(asDave.SetPassword({ password: 'dave-password-2', current: 'wrong' }), code(403, /current/));
      await assert.rejects(asDave.SetPassword({ password: 'short', current: 'dave-password-1' }), code(400, /password/));
      await asDave.SetPassword({ password: 'dave-password-2', current: 'dave-password-1' });
      await assert.rejects(h.authAs().Refresh({ refreshToken: session.refreshToken as string }), code(401));
      await assert.rejects(h.tokens.verify(session.token), code(401, /token revoked/));
      await assert.rejects(h.authAs().Login({ id: 'dave', password: 'dave-password-1', namespace: 'tenant-a' }), code(401));
      assert.ok(await h.authAs().Login({ id: 'dave', password: 'dave-password-2', namespace: 'tenant-a' }));
      // someone else's: only an admin of the namespace
      await assert.rejects(h.authAs(alice).SetPassword({ id: 'dave', password: 'hijacked-pw' }), code(403));
      await h.authAs({ id: 'tenant-admin', secret: 'tenant-admin-pw', namespace: 'tenant-a' }).SetPassword({ id: 'dave', password: 'dave-password-3' });
      assert.ok(await h.authAs().Login({ id: 'dave', password: 'dave-password-3', namespace: 'tenant-a' }));
    });

    test('Keys serves the JWKS that verifies the tokens; rotation keeps the old key until its tokens expired', async () => {
      const anon = h.authAs();
      const before = await anon.Keys({});
      const { token } = await anon.Token(alice);
      assert.equal(new KeySet(before).verify(token).sub, 'alice');
      await assert.rejects(h.authAs(alice).RotateKeys({}), code(403));
      const { kid } = await h.authAs(h.admin).RotateKeys({});
      const afterRotation = await anon.Keys({});
      assert.deepEqual(afterRotation.keys.map((k) => k.kid), [...before.keys.map((k) => k.kid), kid]);
      // a token of the old key still works at the core services, a new one is signed by the new key
      const registry = createClient(registryService, h.platformAs({ token }));
      assert.deepEqual(await registry.ListServices({}), { services: [] });
      const fresh = await anon.Token(alice);
      assert.equal(JSON.parse(Buffer.from(fresh.token.split('.')[0] as string, 'base64url').toString()).kid, kid);
      assert.equal((await anon.Inspect({ token })).account.id, 'alice');
    });

    test('expired and forged tokens are refused by the core services with a 401 that says why', async () => {
      const { privateKey } = generateKeyPairSync('ed25519');
      const kid = (await h.authAs().Keys({})).keys.at(-1)?.kid as string;
      const now = Math.floor(Date.now() / 1000);
      const forged = signJwt({ sub: 'admin', iss: 'micro', iat: now, exp: now + 900, jti: 'x', typ: 'user', scopes: ['admin'] }, { kid, privateKey });
      const call = (token: string) => createClient(registryService, new Client({ address: h.address, namespace: 'micro', preferLocal: false, metadata: { authorization: `Bearer ${token}` }, middleware: [] })).ListServices({});
      await assert.rejects(call(forged), code(401, /signature does not match/));
      const { token } = await h.authAs().Token(alice);
      const [head, , sig] = token.split('.');
      const payload = Buffer.from(JSON.stringify({ sub: 'alice', iss: 'micro', iat: now, exp: now + 900, scopes: ['admin'] })).toString('base64url');
      await assert.rejects(call(`${head}.${payload}.${sig}`), code(401, /forged or tampered/));
      const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
      await assert.rejects(call(none), code(401, /EdDSA only/));
      await assert.rejects(h.authAs().Inspect({ token: none }), code(401));
    });

    test('API keys: shown once, used for tokens and Inspect, listed without secret, revocable', async () => {
      const asAlice = h.authAs(alice);
      const { key, info } = await asAlice.CreateKey({ name: 'deploy', scopes: ['dev'] });
      assert.match(key, /^mk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
      assert.equal(key.split('.')[0], info.id);
      const viaKey = await h.authAs().Token({ apiKey: key });
      assert.deepEqual({ ...viaKey.account, metadata: undefined }, { id: 'alice', type: 'apikey', issuer: 'tenant-a', scopes: ['dev'], metadata: undefined });
      assert.equal(viaKey.refreshToken, undefined, 'a key is its own long-lived credential');
      assert.equal((await h.authAs().Inspect({ token: key })).account.id, 'alice');
      const listed = await asAlice.ListKeys({});
      assert.ok(listed.keys.some((k) => k.id === info.id && k.name === 'deploy'));
      assert.ok(!JSON.stringify(listed).includes(key.split('.')[1] as string));
      // more scopes than the account has: refused
      await assert.rejects(asAlice.CreateKey({ name: 'root', scopes: ['admin'] }), code(403, /scopes/));
      // an API key cannot mint keys or change passwords
      const keyClient = h.authAs({ token: viaKey.token });
      await assert.rejects(keyClient.CreateKey({ name: 'chain' }), code(403));
      await assert.rejects(keyClient.SetPassword({ password: 'whatever-pw', current: 'x' }), code(403));
      await asAlice.RevokeKey({ id: info.id });
      await assert.rejects(h.authAs().Token({ apiKey: key }), code(401, /API key refused/));
      await assert.rejects(h.authAs().Inspect({ token: key }), code(401));
      await assert.rejects(asAlice.RevokeKey({ id: info.id }), code(404));
      // a wrong secret for a real key id
      const other = await asAlice.CreateKey({ name: 'other' });
      const wrong = `${other.info.id}.${'A'.repeat(43)}`;
      await assert.rejects(h.authAs().Token({ apiKey: wrong }), code(401));
    });

    test('rules: made, listed in evaluation order, deleted; conflicting and malformed ones refused', async () => {
      const tenantAdmin = h.authAs({ id: 'tenant-admin', secret: 'tenant-admin-pw', namespace: 'tenant-a' });
      const { rules: initial } = await tenantAdmin.ListRules({});
      assert.deepEqual(initial, [{ id: 'default', resource: 'service:*:*', scope: '*', access: 'granted', priority: 0, namespace: 'tenant-a' }]);
      await tenantAdmin.CreateRule({ id: 'public-hello', resource: 'service:helloworld:Call', scope: '', access: 'granted', priority: 10 });
      await tenantAdmin.CreateRule({ id: 'no-billing', resource: 'service:billing:*', scope: '*', access: 'denied', priority: 5 });
      const { rules } = await h.authAs(alice).ListRules({});
      assert.deepEqual(rules.map((r) => r.id), ['public-hello', 'no-billing', 'default']);
      await assert.rejects(
        tenantAdmin.CreateRule({ id: 'yes-billing', resource: 'service:billing:*', scope: '*', access: 'granted', priority: 5 }),
        code(409, /conflicts with rule no-billing/),
      );
      await assert.rejects(tenantAdmin.CreateRule({ id: 'no-billing', resource: 'service:x:*', scope: '*', access: 'denied', priority: 1 }), code(409, /exists/));
      await assert.rejects(tenantAdmin.CreateRule({ id: 'bad', resource: 'service:x', scope: '*', access: 'denied', priority: 1 }), code(400, /resource/));
      await assert.rejects(tenantAdmin.CreateRule({ id: 'bad', resource: 'service:x:*', scope: 'a b', access: 'denied', priority: 1 }), code(400, /scope/));
      await assert.rejects(tenantAdmin.CreateRule({ id: 'bad', resource: 'service:x:*', scope: '*', access: 'maybe' as 'granted', priority: 1 }), code(400, /access/));
      await assert.rejects(tenantAdmin.CreateRule({ id: 'bad', resource: 'service:x:*', scope: '*', access: 'denied', priority: 1.5 }), code(400, /priority/));
      // only admins of the namespace make rules
      await assert.rejects(h.authAs(alice).CreateRule({ id: 'mine', resource: 'service:x:*', scope: '*', access: 'granted', priority: 1 }), code(403, /scope admin/));
      await tenantAdmin.DeleteRule({ id: 'no-billing' });
      await assert.rejects(tenantAdmin.DeleteRule({ id: 'no-billing' }), code(404));
      // the default rule, once deleted, stays deleted
      await tenantAdmin.DeleteRule({ id: 'default' });
      await h.authAs(h.admin).CreateAccount({ id: 'erin', namespace: 'tenant-a' });
      assert.deepEqual((await tenantAdmin.ListRules({})).rules.map((r) => r.id), ['public-hello']);
    });

    test('accounts: listed by pages, deleted with their keys; the admin of micro cannot be deleted', async () => {
      const admin = h.authAs(h.admin);
      for (let i = 0; i < 5; i++) await admin.CreateAccount({ id: `page-${i}`, namespace: 'paging' });
      const first = await admin.ListAccounts({ namespace: 'paging', limit: 2 });
      assert.deepEqual(first.accounts.map((a) => a.id), ['page-0', 'page-1']);
      const second = await admin.ListAccounts({ namespace: 'paging', limit: 2, after: first.next });
      assert.deepEqual(second.accounts.map((a) => a.id), ['page-2', 'page-3']);
      await assert.rejects(admin.CreateAccount({ id: 'page-0', namespace: 'paging' }), code(409));
      await assert.rejects(admin.CreateAccount({ id: 'bad id', namespace: 'paging' }), code(400, /id/));
      await assert.rejects(admin.CreateAccount({ id: 'x', namespace: 'bad namespace' }), code(400, /namespace/));
      await assert.rejects(admin.CreateAccount({ id: 'x', namespace: 'paging', scopes: Array.from({ length: 40 }, (_, i) => `s${i}`) }), code(400, /scopes/));
      await assert.rejects(admin.CreateAccount({ id: 'x', namespace: 'paging', metadata: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'v'])) }), code(400, /metadata/));
      const { secret } = await admin.CreateAccount({ id: 'temp', namespace: 'paging', scopes: ['dev'], metadata: { team: 'x' } });
      const temp = { id: 'temp', secret: secret as string, namespace: 'paging' };
      const { key } = await h.authAs(temp).CreateKey({ name: 'k' });
      await admin.DeleteAccount({ id: 'temp', namespace: 'paging' });
      await assert.rejects(h.authAs().Token(temp), code(401));
      await assert.rejects(h.authAs().Token({ apiKey: key }), code(401));
      await assert.rejects(admin.DeleteAccount({ id: 'temp', namespace: 'paging' }), code(404));
      await assert.rejects(admin.DeleteAccount({ id: 'admin', namespace: 'micro' }), code(403));
    });

    test('the management endpoints need a token; the public ones do not', async () => {
      const anon = h.authAs();
      await assert.rejects(anon.ListRules({}), code(401, /credentials required/));
      await assert.rejects(anon.CreateAccount({ id: 'x' }), code(401));
      await assert.rejects(anon.RotateKeys({}), code(401));
      assert.ok((await anon.Keys({})).keys.length >= 1);
    });
  });
}
