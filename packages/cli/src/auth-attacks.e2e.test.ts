import assert from 'node:assert/strict';
import { createPrivateKey, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { authApi, bearer, Client, createClient, isMicroError, signJwt } from '@micro/sdk';
import { micro, natsPlatform, startServer, startServiceProcess, stopProcess, tempDir, type RunningServer } from './testing.js';

/*
 * Attacks on auth against running `micro server` processes, as a stranger would make them:
 * - guessing secrets: the guesser's own address waits, the owner from another address and
 *   the local admin (admin.json, the CLI) still get in; spraying many accounts from one
 *   address makes that address wait;
 * - tokens already handed out stop within a second when their account is deleted, their
 *   API key revoked or their session logged out — at the gateway, at a core service over
 *   RPC, and at a service in another process (which follows auth.Revocations);
 * - a validly signed token with a ten-year life is refused at all three;
 * - on two nodes (nats profile), a revocation on node A stops the token on node B.
 * Different sources are different loopback addresses (127.0.0.2, …: all of 127/8 is the
 * loopback on Linux), which is what the gateway sees as the client's socket address.
 */

interface Http {
  status: number;
  body: string;
}

/** POST to the gateway from a local address of our choosing. */
function post(base: string, path: string, body: unknown, options: { token?: string; from?: string } = {}): Promise<Http> {
  const url = new URL(path, base);
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        localAddress: options.from,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function json<T>(r: Http): T {
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as T;
}

/** A service in a process of its own, in namespace tenant-a, that answers who called it. */
const whoami = `
  const { run, defineService, endpoint } = await import('@micro/sdk');
  const { z } = await import('zod');
  const def = defineService({ name: 'whoami', endpoints: { Call: endpoint({ request: z.object({}), response: z.object({ id: z.string() }) }) } });
  const svc = await run(def, { Call: (_req, ctx) => ({ id: ctx.account ? ctx.account.id : '' }) });
  process.stdout.write('ADDRESS ' + svc.address + '\\n');
`;

function startWhoami(t: TestContext, env: Record<string, string>): Promise<string> {
  return startServiceProcess(t, whoami, { MICRO_NAMESPACE: 'tenant-a', ...env });
}

/** What a token gets at each kind of verifier: HTTP status at the gateway, MicroError code (or 200) over RPC. */
interface Verdicts {
  gateway: number;
  core: number;
  service: number;
}

function rpcCode(p: Promise<unknown>): Promise<number> {
  return p.then(
    () => 200,
    (err: unknown) => (isMicroError(err) ? err.code : 0),
  );
}

/**
 * The token scoped to whoami (what a node receives for it), minted while the token is good,
 * the first time a token is probed: the service's own revocation check is what refuses it
 * later, not the minting.
 */
const scopedOf = new Map<string, Promise<string>>();

async function verdicts(server: RunningServer, serviceAddress: string, token: string, scopedToken?: string): Promise<Verdicts> {
  const auth = createClient(authApi, new Client({ address: server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(token)] }));
  let scoped = scopedToken === undefined ? scopedOf.get(token) : Promise.resolve(scopedToken);
  if (!scoped) scopedOf.set(token, (scoped = auth.Scope({ audience: 'tenant-a/whoami' }).then((r) => r.token)));
  const service = scoped.then((s) => new Client({ address: serviceAddress, namespace: 'tenant-a', preferLocal: false, middleware: [], metadata: { authorization: `Bearer ${s}` }, retries: 0 }).call('whoami', 'Call', {}));
  return Promise.all([
    post(server.gateway, '/v1/auth/ListRules', {}, { token }).then((r) => r.status),
    rpcCode(auth.ListRules({})),
    rpcCode(service),
  ]).then(([gateway, core, service]) => ({ gateway, core, service }));
}

const ALL_OK: Verdicts = { gateway: 200, core: 200, service: 200 };
const ALL_401: Verdicts = { gateway: 401, core: 401, service: 401 };

/** The verdicts once every verifier refuses, polled for at most `ms` after the revocation returned. */
async function refusedWithin(ms: number, probe: () => Promise<Verdicts>): Promise<{ verdicts: Verdicts; after: number }> {
  const start = Date.now();
  for (;;) {
    const v = await probe();
    const after = Date.now() - start;
    if ((v.gateway === 401 && v.core === 401 && v.service === 401) || after > ms) return { verdicts: v, after };
    await new Promise((r) => setTimeout(r, 25));
  }
}

function adminOf(home: string): { id: string; secret: string } {
  return JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
}

test('auth under attack on a running micro server: throttling without lockout, revocation within a second, no ten-year tokens', { timeout: 240_000 }, async (t) => {
  const home = tempDir('micro-attacks-');
  t.after(() => rmSync(home, { recursive: true, force: true }));
  // whoami is a tenant's service started by hand, serving from TCP: a sandboxing server
  // takes tenant nodes only from their socket folder (registry/guard.test, sandbox.test)
  const server = await startServer(home, { timeout: 60_000, env: { MICRO_RUNTIME_SANDBOX: 'off' } });
  t.after(() => stopProcess(server.proc));
  const gw = server.gateway;
  const admin = adminOf(home);
  const adminToken = json<{ token: string }>(await post(gw, '/v1/auth/Token', { ...admin, namespace: 'micro' })).token;
  const asAdmin = (path: string, body: unknown) => post(gw, path, body, { token: adminToken });
  json(await asAdmin('/v1/auth/CreateAccount', { id: 'owner', namespace: 'tenant-a', secret: 'owner-password-1' }));
  const svcAccount = json<{ secret: string }>(await asAdmin('/v1/auth/CreateAccount', { id: 'service:whoami', type: 'service', namespace: 'tenant-a' }));
  const serviceAddress = await startWhoami(t, { MICRO_SERVER: server.address, MICRO_AUTH_ID: 'service:whoami', MICRO_AUTH_SECRET: svcAccount.secret, MICRO_AUTH_NAMESPACE: 'tenant-a' });

  await t.test('20 wrong passwords from one address: that address waits; the owner from another gets in', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 20; i++) codes.push((await post(gw, '/v1/auth/Login', { id: 'owner', password: `guess-${i}`, namespace: 'tenant-a' }, { from: '127.0.0.2' })).status);
    assert.deepEqual(codes.slice(0, 5), [401, 401, 401, 401, 401]);
    assert.deepEqual(new Set(codes.slice(5)), new Set([429]), codes.join(' '));
    // the guesser cannot even try the right one now
    assert.equal((await post(gw, '/v1/auth/Login', { id: 'owner', password: 'owner-password-1', namespace: 'tenant-a' }, { from: '127.0.0.2' })).status, 429);
    const owner = await post(gw, '/v1/auth/Login', { id: 'owner', password: 'owner-password-1', namespace: 'tenant-a' }, { from: '127.0.0.3' });
    assert.equal(owner.status, 200, owner.body);
  });

  await t.test('the local admin gets in during an attack on the admin account, from the attacking address too', async () => {
    const rpc = createClient(authApi, new Client({ address: server.address, namespace: 'micro', preferLocal: false, middleware: [] }));
    const codes: number[] = [];
    for (let i = 0; i < 20; i++) {
      codes.push((await post(gw, '/v1/auth/Token', { id: 'admin', secret: `guess-${i}`, namespace: 'micro' }, { from: '127.0.0.6' })).status);
      codes.push(await rpcCode(rpc.Token({ id: 'admin', secret: `guess-${i}`, namespace: 'micro' })));
    }
    assert.ok(codes.filter((c) => c === 429).length >= 20, `the guesses were throttled: ${codes.join(' ')}`);
    assert.ok(!codes.includes(200));
    // the CLI on the server's machine (admin.json), over RPC from 127.0.0.1, where half the guesses came from
    const cli = await micro(home, ['auth', 'list', 'accounts', '--namespace', 'tenant-a', '--output', 'json']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /"owner"/);
    assert.equal((await post(gw, '/v1/auth/Token', { ...admin, namespace: 'micro' }, { from: '127.0.0.6' })).status, 200);
  });

  await t.test('spraying many accounts from one address makes the address wait, for every account', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 25; i++) codes.push((await post(gw, '/v1/auth/Login', { id: `user-${i}`, password: 'Winter2026!', namespace: 'tenant-a' }, { from: '127.0.0.4' })).status);
    assert.deepEqual(new Set(codes.slice(0, 20)), new Set([401]), codes.join(' '));
    assert.deepEqual(new Set(codes.slice(20)), new Set([429]), codes.join(' '));
    const refused = await post(gw, '/v1/auth/Login', { id: 'owner', password: 'owner-password-1', namespace: 'tenant-a' }, { from: '127.0.0.4' });
    assert.equal(refused.status, 429);
    assert.match(refused.body, /from your address/);
    assert.equal((await post(gw, '/v1/auth/Login', { id: 'owner', password: 'owner-password-1', namespace: 'tenant-a' }, { from: '127.0.0.5' })).status, 200);
  });

  const user = async (id: string) => {
    json(await asAdmin('/v1/auth/CreateAccount', { id, namespace: 'tenant-a', secret: `${id}-password-1` }));
    return json<{ token: string; refreshToken: string }>(await post(gw, '/v1/auth/Login', { id, password: `${id}-password-1`, namespace: 'tenant-a' }, { from: '127.0.0.7' }));
  };

  await t.test("a deleted account's token is refused within a second everywhere", async () => {
    const { token } = await user('leaver');
    assert.deepEqual(await verdicts(server, serviceAddress, token), ALL_OK);
    json(await asAdmin('/v1/auth/DeleteAccount', { id: 'leaver', namespace: 'tenant-a' }));
    const { verdicts: v, after } = await refusedWithin(1_000, () => verdicts(server, serviceAddress, token));
    assert.deepEqual(v, ALL_401, `after ${after} ms`);
  });

  await t.test("a revoked API key's exchanged token is refused within a second everywhere", async () => {
    const { token: ownerToken } = json<{ token: string }>(await post(gw, '/v1/auth/Login', { id: 'owner', password: 'owner-password-1', namespace: 'tenant-a' }, { from: '127.0.0.7' }));
    const key = json<{ key: string; info: { id: string } }>(await post(gw, '/v1/auth/CreateKey', { name: 'ci' }, { token: ownerToken }));
    const { token } = json<{ token: string }>(await post(gw, '/v1/auth/Token', { apiKey: key.key }));
    assert.deepEqual(await verdicts(server, serviceAddress, token), ALL_OK);
    json(await post(gw, '/v1/auth/RevokeKey', { id: key.info.id }, { token: ownerToken }));
    const { verdicts: v, after } = await refusedWithin(1_000, () => verdicts(server, serviceAddress, token));
    assert.deepEqual(v, ALL_401, `after ${after} ms`);
    // the owner's own login is another session: untouched
    assert.deepEqual(await verdicts(server, serviceAddress, ownerToken), ALL_OK);
  });

  await t.test("a disabled account's tokens are refused within a second everywhere; it cannot log in or use its keys until enabled", async () => {
    const { token } = await user('suspended');
    const key = json<{ key: string }>(await post(gw, '/v1/auth/CreateKey', { name: 'ci' }, { token }));
    assert.deepEqual(await verdicts(server, serviceAddress, token), ALL_OK);
    // the local admin disables it with the CLI
    const updated = await micro(home, ['auth', 'update', 'account', 'suspended', '--disable', '--namespace', 'tenant-a', '--output', 'json']);
    assert.equal(updated.code, 0, updated.stderr);
    assert.equal((JSON.parse(updated.stdout) as { disabled?: boolean }).disabled, true);
    const { verdicts: v, after } = await refusedWithin(1_000, () => verdicts(server, serviceAddress, token));
    assert.deepEqual(v, ALL_401, `after ${after} ms`);
    assert.equal((await post(gw, '/v1/auth/Login', { id: 'suspended', password: 'suspended-password-1', namespace: 'tenant-a' }, { from: '127.0.0.7' })).status, 401);
    assert.equal((await post(gw, '/v1/auth/Token', { apiKey: key.key })).status, 401);
    assert.equal((await post(gw, '/v1/auth/ListRules', {}, { token: key.key })).status, 401, 'the key itself as a bearer');
    json(await asAdmin('/v1/auth/UpdateAccount', { id: 'suspended', namespace: 'tenant-a', disabled: false }));
    // enabled again: a new login works at once (its token is not born dead in the revocation's second)
    const back = json<{ token: string }>(await post(gw, '/v1/auth/Login', { id: 'suspended', password: 'suspended-password-1', namespace: 'tenant-a' }, { from: '127.0.0.7' }));
    assert.deepEqual(await verdicts(server, serviceAddress, back.token), ALL_OK);
  });

  await t.test('taking scopes away stops the tokens that still carry them', async () => {
    json(await asAdmin('/v1/auth/CreateAccount', { id: 'ops', namespace: 'tenant-a', secret: 'ops-password-1', scopes: ['admin'] }));
    const { token } = json<{ token: string }>(await post(gw, '/v1/auth/Login', { id: 'ops', password: 'ops-password-1', namespace: 'tenant-a' }, { from: '127.0.0.7' }));
    assert.equal((await post(gw, '/v1/auth/ListAccounts', {}, { token })).status, 200, 'an admin of tenant-a');
    const key = json<{ key: string }>(await post(gw, '/v1/auth/CreateKey', { name: 'deploy' }, { token }));
    assert.equal((await post(gw, '/v1/whoami/Call', {}, { token: key.key })).status, 200);
    assert.deepEqual(await verdicts(server, serviceAddress, token), ALL_OK);
    json(await asAdmin('/v1/auth/UpdateAccount', { id: 'ops', namespace: 'tenant-a', scopes: [] }));
    // the key itself still works (with what the account has now): the gateway does not forward a token it minted before
    const viaKey = await post(gw, '/v1/whoami/Call', {}, { token: key.key });
    assert.equal(viaKey.status, 200, viaKey.body);
    assert.equal((await post(gw, '/v1/auth/ListAccounts', {}, { token: key.key })).status, 403, 'no admin scope any more');
    const { verdicts: v, after } = await refusedWithin(1_000, () => verdicts(server, serviceAddress, token));
    assert.deepEqual(v, ALL_401, `after ${after} ms`);
    assert.equal((await post(gw, '/v1/auth/ListAccounts', {}, { token })).status, 401);
  });

  await t.test("a logged-out session's token is refused within a second everywhere; another session goes on", async () => {
    const first = await user('roamer');
    const second = json<{ token: string }>(await post(gw, '/v1/auth/Login', { id: 'roamer', password: 'roamer-password-1', namespace: 'tenant-a' }, { from: '127.0.0.7' }));
    assert.deepEqual(await verdicts(server, serviceAddress, first.token), ALL_OK);
    json(await post(gw, '/v1/auth/Logout', { refreshToken: first.refreshToken }));
    const { verdicts: v, after } = await refusedWithin(1_000, () => verdicts(server, serviceAddress, first.token));
    assert.deepEqual(v, ALL_401, `after ${after} ms`);
    assert.equal((await post(gw, '/v1/auth/Refresh', { refreshToken: first.refreshToken })).status, 401);
    assert.deepEqual(await verdicts(server, serviceAddress, second.token), ALL_OK);
    // logging out with the access token alone (as the dashboard does) ends its session too
    json(await post(gw, '/v1/auth/Logout', {}, { token: second.token }));
    const byToken = await refusedWithin(1_000, () => verdicts(server, serviceAddress, second.token));
    assert.deepEqual(byToken.verdicts, ALL_401, `after ${byToken.after} ms`);
    assert.equal((await post(gw, '/v1/auth/Logout', {})).status, 400, 'neither a refresh token nor a bearer token');
  });

  await t.test('a token signed with the server\'s own key but living ten years is refused everywhere', async () => {
    const ring = JSON.parse(readFileSync(join(home, 'server', 'jwt-keys.json'), 'utf8')) as { keys: { kid: string; privateJwk?: Record<string, unknown> }[] };
    const current = ring.keys.find((k) => k.privateJwk) as { kid: string; privateJwk: Record<string, unknown> };
    const key = { kid: current.kid, privateKey: createPrivateKey({ key: current.privateJwk as never, format: 'jwk' }) };
    const iat = Math.floor(Date.now() / 1000);
    // a general token, and its copy scoped to whoami (what the service is handed)
    const forge = (exp: number, aud?: string) => signJwt({ sub: 'owner', iss: 'tenant-a', iat, exp, jti: randomUUID(), sid: `x:${randomUUID()}`, typ: 'user', scopes: [], ...(aud ? { aud } : {}) }, key);
    // the same forgery with an ordinary life passes: the key and claims are right, only the life is wrong
    assert.deepEqual(await verdicts(server, serviceAddress, forge(iat + 900), forge(iat + 900, 'tenant-a/whoami')), ALL_OK);
    const tenYears = iat + 10 * 365 * 86_400;
    assert.deepEqual(await verdicts(server, serviceAddress, forge(tenYears), forge(tenYears, 'tenant-a/whoami')), ALL_401);
    const tenYearsToken = forge(tenYears);
    const r = await post(gw, '/v1/auth/ListRules', {}, { token: tenYearsToken });
    assert.match(r.body, /lifetime/);
  });
});

test('two nodes (nats profile): a revocation on node A stops the token on node B within a second', { timeout: 240_000 }, async (t) => {
  const platform = await natsPlatform(t, 'revoke');
  if (!platform) return;
  const env = { ...platform.env, MICRO_RUNTIME_SANDBOX: 'off' };
  const homeA = tempDir('micro-revoke-a-');
  const homeB = tempDir('micro-revoke-b-');
  const nodes: RunningServer[] = [];
  t.after(async () => {
    for (const s of nodes) await stopProcess(s.proc, 'SIGKILL');
    await platform.drop();
    for (const d of [homeA, homeB]) rmSync(d, { recursive: true, force: true });
  });
  const a = await startServer(homeA, { env, timeout: 60_000 });
  nodes.push(a);
  const b = await startServer(homeB, { env, timeout: 60_000 });
  nodes.push(b);

  const adminToken = json<{ token: string }>(await post(a.gateway, '/v1/auth/Token', { ...adminOf(homeA), namespace: 'micro' })).token;
  const asAdminA = (path: string, body: unknown) => post(a.gateway, path, body, { token: adminToken });
  json(await asAdminA('/v1/auth/CreateAccount', { id: 'leaver', namespace: 'tenant-a', secret: 'leaver-password-1' }));
  const svcAccount = json<{ secret: string }>(await asAdminA('/v1/auth/CreateAccount', { id: 'service:whoami', type: 'service', namespace: 'tenant-a' }));
  // a service that follows node B's revocation list
  const serviceAddress = await startWhoami(t, { MICRO_SERVER: b.address, MICRO_AUTH_ID: 'service:whoami', MICRO_AUTH_SECRET: svcAccount.secret, MICRO_AUTH_NAMESPACE: 'tenant-a' });

  // a session started on node B; its token works at node B's gateway, core services and the service
  const login = json<{ token: string; refreshToken: string }>(await post(b.gateway, '/v1/auth/Login', { id: 'leaver', password: 'leaver-password-1', namespace: 'tenant-a' }));
  assert.deepEqual(await verdicts(b, serviceAddress, login.token), ALL_OK);
  // logged out through node A
  json(await post(a.gateway, '/v1/auth/Logout', { refreshToken: login.refreshToken }));
  let res = await refusedWithin(1_000, () => verdicts(b, serviceAddress, login.token));
  assert.deepEqual(res.verdicts, ALL_401, `logout: after ${res.after} ms`);

  // a new session on node B, then the account disabled on node A
  const third = json<{ token: string }>(await post(b.gateway, '/v1/auth/Login', { id: 'leaver', password: 'leaver-password-1', namespace: 'tenant-a' }));
  assert.deepEqual(await verdicts(b, serviceAddress, third.token), ALL_OK);
  json(await asAdminA('/v1/auth/UpdateAccount', { id: 'leaver', namespace: 'tenant-a', disabled: true }));
  res = await refusedWithin(1_000, () => verdicts(b, serviceAddress, third.token));
  assert.deepEqual(res.verdicts, ALL_401, `disable: after ${res.after} ms`);
  assert.equal((await post(b.gateway, '/v1/auth/Login', { id: 'leaver', password: 'leaver-password-1', namespace: 'tenant-a' })).status, 401);
  json(await asAdminA('/v1/auth/UpdateAccount', { id: 'leaver', namespace: 'tenant-a', disabled: false }));
  await new Promise((r) => setTimeout(r, 1_000));

  // a new session on node B, then the account deleted on node A
  const again = json<{ token: string }>(await post(b.gateway, '/v1/auth/Login', { id: 'leaver', password: 'leaver-password-1', namespace: 'tenant-a' }));
  assert.deepEqual(await verdicts(b, serviceAddress, again.token), ALL_OK);
  json(await asAdminA('/v1/auth/DeleteAccount', { id: 'leaver', namespace: 'tenant-a' }));
  res = await refusedWithin(1_000, () => verdicts(b, serviceAddress, again.token));
  assert.deepEqual(res.verdicts, ALL_401, `delete: after ${res.after} ms`);
});
