import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bearer,
  Client,
  createClient,
  defineService,
  endpoint,
  MicroError,
  Service,
  ServiceAuth,
  TokenSource,
  z,
  type Credentials,
} from '@micro/sdk';
import { engineUrl } from '@micro/sdk/testing';
import type { AuthAccounts, AuthTokens } from './storage.js';
import { silent, startAuthHarness, startPgAuthHarness, type AuthHarness } from './testing.js';

/*
 * Rules enforced where the call is served: services of a namespace, run against the
 * server, check every caller themselves.
 */

const code = (n: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, n, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

const who = defineService({
  name: 'who',
  version: '1.0.0',
  endpoints: {
    Me: endpoint({ request: z.object({}), response: z.object({ id: z.string().nullable(), type: z.string().nullable(), token: z.string().nullable() }) }),
    Secret: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }),
  },
});
const front = defineService({
  name: 'front',
  version: '1.0.0',
  endpoints: {
    Relay: endpoint({ request: z.object({}), response: z.object({ id: z.string().nullable(), type: z.string().nullable(), token: z.string().nullable() }) }),
    Spy: endpoint({ request: z.object({}), response: z.object({ token: z.string().nullable() }) }),
  },
});
/** a node that checks nothing and keeps what it is sent */
const spy = defineService({ name: 'spy', version: '1.0.0', endpoints: { Peek: endpoint({ request: z.object({}), response: z.object({ token: z.string().nullable() }) }) } });

// over both storages: SQLite (local profile) and PostgreSQL (nats profile)
const pgSkip = { skip: (why?: string) => void why };
const pgUrl = await engineUrl(pgSkip, 'postgres');

for (const storage of ['sqlite', 'postgres'] as const) {
  describe(`services enforce auth where the call is served (${storage})`, { skip: storage === 'postgres' && !pgUrl ? 'postgres is not reachable' : false }, () => {
    let h: AuthHarness<AuthAccounts, AuthTokens>;
    let alice: Credentials;
    let bob: Credentials;
    let tenantAdmin: Credentials;
    const services: Service[] = [];

    /** a client of the services of a namespace, as these credentials (anonymous without) */
    const caller = (namespace: string, creds?: Credentials | { token: string }) => {
      // the server mints the token each service gets (auth.Scope)
      const server = new Client({ address: h.address, namespace: 'micro', preferLocal: false, middleware: [] });
      const middleware = creds ? [bearer('token' in creds ? creds.token : new TokenSource(creds, server), { server })] : [];
      return new Client({ namespace, registry: h.registry, preferLocal: false, middleware, retries: 0 });
    };

    const start = async <S extends Service>(svc: S): Promise<S> => {
      services.push(svc);
      return svc.start();
    };

    before(async () => {
      h = storage === 'sqlite' ? await startAuthHarness() : ((await startPgAuthHarness(pgSkip)) as AuthHarness<AuthAccounts, AuthTokens>);
      const admin = h.authAs(h.admin);
      alice = { id: 'alice', secret: (await admin.CreateAccount({ id: 'alice', namespace: 'tenant-a', scopes: ['dev'] })).secret as string, namespace: 'tenant-a' };
      bob = { id: 'bob', secret: (await admin.CreateAccount({ id: 'bob', namespace: 'tenant-b', scopes: ['dev', 'admin'] })).secret as string, namespace: 'tenant-b' };
      tenantAdmin = { id: 'boss', secret: (await admin.CreateAccount({ id: 'boss', namespace: 'tenant-a', scopes: ['admin'] })).secret as string, namespace: 'tenant-a' };
      const whoCreds = { ...(await h.accounts.issueServiceSecret('who', 'tenant-a')), namespace: 'tenant-a' };
      const frontCreds = { ...(await h.accounts.issueServiceSecret('front', 'tenant-a')), namespace: 'tenant-a' };
      const me = (ctx: { account?: { id: string; type: string } | undefined; metadata: Record<string, string> }) => ({
        id: ctx.account?.id ?? null,
        type: ctx.account?.type ?? null,
        token: ctx.metadata.authorization ?? null,
      });
      await start(
        new Service(who, { Me: (_req, ctx) => me(ctx), Secret: () => ({ ok: true }) }, { namespace: 'tenant-a', registry: h.registry, logger: silent, auth: new ServiceAuth({ address: h.address, credentials: whoCreds, refreshInterval: 0 }) }),
      );
      const whoClient = createClient(who, { namespace: 'tenant-a', registry: h.registry, preferLocal: false, middleware: [] });
      const spyClient = createClient(spy, { namespace: 'tenant-a', registry: h.registry, preferLocal: false, middleware: [] });
      await start(new Service(spy, { Peek: (_req, ctx) => ({ token: ctx.metadata.authorization ?? null }) }, { namespace: 'tenant-a', registry: h.registry, logger: silent, auth: false }));
      await start(
        new Service(front, { Relay: (_req, ctx) => whoClient.Me({}, { parent: ctx }), Spy: (_req, ctx) => spyClient.Peek({}, { parent: ctx }) }, { namespace: 'tenant-a', registry: h.registry, logger: silent, auth: new ServiceAuth({ address: h.address, credentials: frontCreds, refreshInterval: 0 }) }),
      );
    });

    after(async () => {
      for (const s of services.reverse()) await s.stop();
      await h.close();
    });

    test('an anonymous call is denied by default (401); an account of the namespace is let in and seen on ctx.account', async () => {
      await assert.rejects(caller('tenant-a').call('who', 'Me', {}), code(401, /credentials required to call service:who:Me \(no rule grants it\)/));
      const res = (await caller('tenant-a', alice).call('who', 'Me', {})) as { id: string; type: string };
      assert.equal(res.id, 'alice');
      assert.equal(res.type, 'user');
      // the health endpoint stays public
      assert.equal(((await caller('tenant-a').call('who', 'Debug.Health', {})) as { status: string }).status, 'ok');
    });

    test('a token of another namespace is refused (403) even by an admin of that namespace', async () => {
      // refused where the token for it would be minted
      await assert.rejects(caller('tenant-a', bob).call('who', 'Me', {}), code(403, /namespace tenant-b may not call services of namespace tenant-a/));
      // the admin of micro reaches every namespace
      assert.equal(((await caller('tenant-a', h.admin).call('who', 'Me', {})) as { id: string }).id, 'admin');
    });

    test('expired, forged and malformed tokens get a 401 that says why', async () => {
      await assert.rejects(caller('tenant-a', { token: 'not-a-jwt' }).call('who', 'Me', {}), code(401, /three parts/));
      const { token } = await h.authAs().Token(alice);
      const [head, body] = token.split('.') as [string, string];
      await assert.rejects(caller('tenant-a', { token: `${head}.${body}.${'A'.repeat(86)}` }).call('who', 'Me', {}), code(401, /signature/));
      const bad = new Client({ namespace: 'tenant-a', registry: h.registry, preferLocal: false, middleware: [], metadata: { authorization: 'Basic abc' } });
      await assert.rejects(bad.call('who', 'Me', {}), code(401, /Bearer/));
    });

    test('rules are applied in priority order as they change, after a refresh', async () => {
      const boss = h.authAs(tenantAdmin);
      const svc = services[0] as Service;
      const auth = (svc as unknown as { auth: ServiceAuth }).auth;
      await boss.CreateRule({ id: 'no-secret', resource: 'service:who:Secret', scope: '*', access: 'denied', priority: 10 });
      await boss.CreateRule({ id: 'dev-secret', resource: 'service:who:Secret', scope: 'dev', access: 'granted', priority: 20 });
      await boss.CreateRule({ id: 'public-me', resource: 'service:who:Me', scope: '', access: 'granted', priority: 30 });
      await auth.refreshRules();
      assert.ok(await caller('tenant-a', alice).call('who', 'Secret', {}), 'dev may, by the higher rule');
      await assert.rejects(caller('tenant-a', tenantAdmin).call('who', 'Secret', {}), code(403, /rule no-secret denies it/));
      await assert.rejects(caller('tenant-a').call('who', 'Secret', {}), code(401));
      // a public rule: no token needed
      const anonymous = (await caller('tenant-a').call('who', 'Me', {})) as { id: string | null; type: string | null };
      assert.deepEqual([anonymous.id, anonymous.type], [null, null]);
      await boss.DeleteRule({ id: 'public-me' });
      await boss.DeleteRule({ id: 'dev-secret' });
      await auth.refreshRules();
      await assert.rejects(caller('tenant-a').call('who', 'Me', {}), code(401));
      await assert.rejects(caller('tenant-a', alice).call('who', 'Secret', {}), code(403));
      await boss.DeleteRule({ id: 'no-secret' });
      await auth.refreshRules();
    });

    test('a service calling another carries its own identity, never the caller\'s token', async () => {
      const { token: aliceToken } = await h.authAs().Token(alice);
      const seen = (await caller('tenant-a', { token: aliceToken }).call('front', 'Relay', {})) as { id: string; type: string; token: string };
      assert.equal(seen.id, 'service:front');
      assert.equal(seen.type, 'service');
      // the handler is not handed the token it was called with
      assert.equal(seen.token, null);
      // what a node that keeps its tokens receives from front: front's identity, scoped to that node
      const { token } = (await caller('tenant-a', { token: aliceToken }).call('front', 'Spy', {})) as { token: string };
      const claims = JSON.parse(Buffer.from((token.split(' ')[1] as string).split('.')[1] as string, 'base64url').toString()) as { sub: string; aud: string };
      assert.deepEqual([claims.sub, claims.aud], ['service:front', 'tenant-a/spy']);
    });

    test('a service takes only tokens scoped to it: general ones and ones of another service get a 401', async () => {
      const { token: general } = await h.authAs().Token(alice);
      const raw = (token: string) => new Client({ namespace: 'tenant-a', registry: h.registry, preferLocal: false, middleware: [], retries: 0, metadata: { authorization: `Bearer ${token}` } });
      await assert.rejects(raw(general).call('who', 'Me', {}), code(401, /a general token is not accepted by tenant-a\/who/));
      const forFront = await h.authAs({ token: general }).Scope({ audience: 'tenant-a/front' });
      await assert.rejects(raw(forFront.token).call('who', 'Me', {}), code(401, /scoped to service tenant-a\/front, not tenant-a\/who/));
      const forWho = await h.authAs({ token: general }).Scope({ audience: 'tenant-a/who' });
      assert.equal(((await raw(forWho.token).call('who', 'Me', {})) as { id: string }).id, 'alice');
      // the server's own services take none: not auth (no exchanging it again), not the registry
      await assert.rejects(h.authAs({ token: forWho.token }).Scope({ audience: 'tenant-a/front' }), code(401, /scoped to service tenant-a\/who/));
      await assert.rejects(h.platformAs({ token: forWho.token }).call('registry', 'ListServices', {}), code(401, /scoped to service/));
      // a scoped token never outlives the one it came from
      const exp = (t: string) => (JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()) as { exp: number }).exp;
      assert.equal(forWho.expiresAt, exp(general));
      assert.equal(exp(forWho.token), exp(general));
    });

    test('Scope mints only for services of the caller\'s own namespace, and says which field is wrong', async () => {
      const auth = h.authAs(alice);
      await assert.rejects(auth.Scope({ audience: 'tenant-b/who' }), code(403, /audience: account alice of namespace tenant-a may not call services of namespace tenant-b/));
      await assert.rejects(auth.Scope({ audience: 'tenant-a' }), code(400, /audience: it must be <namespace>\/<service>/));
      await assert.rejects(auth.Scope({ audience: 'micro/store' }), code(400, /audience: store is a core service/));
      await assert.rejects(auth.Scope({ audience: 'tenant-a/a b' }), code(400, /audience: the service name/));
      await assert.rejects(h.authAs().Scope({ audience: 'tenant-a/who' }), code(401));
      // an admin of micro reaches every namespace
      assert.ok((await h.authAs(h.admin).Scope({ audience: 'tenant-b/who' })).token);
    });

    test('tokens signed after a key rotation are verified (the service fetches the new key)', async () => {
      await h.authAs(h.admin).RotateKeys({});
      const res = (await caller('tenant-a', alice).call('who', 'Me', {})) as { id: string };
      assert.equal(res.id, 'alice');
    });

    test('a service started from the environment (MICRO_SERVER) denies anonymous calls by default', async () => {
      const creds = await h.accounts.issueServiceSecret('envsvc', 'tenant-a');
      const sdk = fileURLToPath(new URL('../../../sdk/dist/index.js', import.meta.url));
      const script = join(h.home, 'envsvc.mjs');
      writeFileSync(
        script,
        `import { defineService, endpoint, run, z } from ${JSON.stringify(sdk)};
const def = defineService({ name: 'envsvc', version: '1.0.0', endpoints: { Me: endpoint({ request: z.object({}), response: z.object({ id: z.string().nullable() }) }) } });
await run(def, { Me: (_r, ctx) => ({ id: ctx.account?.id ?? null }) });
console.log('ready');
`,
      );
      const child = spawn(process.execPath, [script], {
        env: { ...process.env, MICRO_SERVER: h.address, MICRO_AUTH_ID: creds.id, MICRO_AUTH_SECRET: creds.secret, MICRO_AUTH_NAMESPACE: 'tenant-a', MICRO_NAMESPACE: 'tenant-a', MICRO_LOG_LEVEL: 'silent', MICRO_HOME: h.home },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        await new Promise<void>((resolve, reject) => {
          let out = '';
          const timer = setTimeout(() => reject(new Error(`envsvc did not start: ${out}`)), 15_000);
          child.stdout.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('ready')) {
              clearTimeout(timer);
              resolve();
            }
          });
          child.stderr.on('data', (d: Buffer) => (out += d.toString()));
          child.once('exit', (c) => {
            clearTimeout(timer);
            reject(new Error(`envsvc exited ${c}: ${out}`));
          });
        });
        await assert.rejects(caller('tenant-a').call('envsvc', 'Me', {}), code(401));
        assert.deepEqual(await caller('tenant-a', alice).call('envsvc', 'Me', {}), { id: 'alice' });
        await assert.rejects(caller('tenant-a', bob).call('envsvc', 'Me', {}), code(403));
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
      }
    });
  });
}
