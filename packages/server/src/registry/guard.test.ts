import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  authApi,
  bearer,
  Client,
  createClient,
  createLogger,
  defineService,
  endpoint,
  MicroError,
  RemoteRegistry,
  Service,
  ServiceAuth,
  TokenSource,
  z,
  type Credentials,
  type ServiceRecord,
} from '@micro/sdk';
import { engineUrl, privateNats, privateRedis, REDIS_SERVER_BIN, testPrefix } from '@micro/sdk/testing';
import { dropSchema } from '../auth/testing.js';
import { MicroServer } from '../server.js';
import { mayServe } from './guard.js';

/*
 * The registry trusts only the service itself, attacked for real against a running micro
 * server with two tenant namespaces (acme, globex): who may register, heart-beat and
 * deregister which nodes, from which addresses; and what a node that some account
 * registered receives of its callers (a token it can replay nowhere else). On both
 * profiles: the nats one with a NATS and a Redis of its own and a schema of its own.
 */

const silent = createLogger({ level: 'silent' });
const LOOPBACK = /^tcp:\/\/127\.0\.0\.1:\d+$/;

const code = (n: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, n, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

const greeter = defineService({ name: 'greeter', version: '1.0.0', endpoints: { Hello: endpoint({ request: z.object({}), response: z.object({ who: z.string().nullable() }) }) } });
/** a node that checks nothing and keeps the token it is sent */
const evil = defineService({ name: 'evil', version: '1.0.0', endpoints: { Peek: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }) } });

const record = (name: string, id: string, address = 'tcp://127.0.0.1:9'): ServiceRecord => ({ name, version: '1', endpoints: [], nodes: [{ id, address }] });
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as { sub: string; iss: string; aud?: string; exp: number; scopes: string[] };

const pgSkip = { skip: (why?: string) => void why };
const NATS_BIN = process.env.MICRO_TEST_NATS_SERVER || '/usr/sbin/nats-server';
const pgUrl = await engineUrl(pgSkip, 'postgres');
const natsWhy = !pgUrl ? 'postgres is not reachable' : !existsSync(NATS_BIN) ? `no ${NATS_BIN}` : !existsSync(REDIS_SERVER_BIN) ? `no ${REDIS_SERVER_BIN}` : undefined;
if (natsWhy && process.env.MICRO_REQUIRE_ENGINES === '1') throw new Error(`the nats profile cannot run (${natsWhy}), and MICRO_REQUIRE_ENGINES=1 makes it mandatory`);

for (const profile of ['local', 'nats'] as const) describe(`the registry trusts only the service itself (a running micro server, ${profile} profile)`, { skip: profile === 'nats' ? natsWhy : false }, () => {
  let home: string;
  const cleanups: (() => unknown)[] = [];
  const savedEnv: Record<string, string | undefined> = {};
  let server: MicroServer;
  let gateway: string;
  const creds: Record<string, Credentials> = {};
  const services: Service[] = [];
  const received: string[] = [];

  const tokenClient = () => new Client({ address: server.address, namespace: 'micro', preferLocal: false, middleware: [] });
  /** the registry service as these credentials */
  const registryAs = (c: Credentials) => new RemoteRegistry(new Client({ address: server.address, namespace: 'micro', preferLocal: false, retries: 0, middleware: [bearer(new TokenSource(c, tokenClient()))] }));
  /** a core service called with exactly this bearer token */
  const coreWith = (token: string) => new Client({ address: server.address, namespace: 'micro', preferLocal: false, retries: 0, middleware: [], metadata: { authorization: `Bearer ${token}` } });
  const gw = (path: string, token: string, body: unknown = {}) =>
    fetch(`${gateway}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, json: (await r.json()) as { detail?: string } }));

  /** the profile's engines: its own NATS and Redis, a schema of its own in Postgres */
  const useNats = async () => {
    const t = { after: (fn: () => unknown) => void cleanups.push(fn) };
    const [nats, redis] = [await privateNats(t), await privateRedis(t)];
    const prefix = testPrefix('guard');
    cleanups.push(() => dropSchema(pgUrl as string, prefix));
    const env = { MICRO_PROFILE: 'nats', MICRO_NATS_URL: nats.url, MICRO_POSTGRES_URL: pgUrl as string, MICRO_REDIS_URL: redis.url, MICRO_PREFIX: prefix, MICRO_AUTH_KEY: randomBytes(24).toString('hex') };
    for (const [k, v] of Object.entries(env)) {
      savedEnv[k] = process.env[k];
      process.env[k] = v;
    }
  };

  before(async () => {
    if (profile === 'nats') await useNats();
    home = mkdtempSync(join(tmpdir(), 'micro-registry-guard-'));
    // the sandbox's rule, injected: tenant nodes serve only from loopback TCP here
    server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: 'tcp://127.0.0.1:0', logger: silent, addressAllowed: (ns, address) => ns === 'micro' || LOOPBACK.test(address) });
    await server.start();
    assert.equal(server.registry.name, profile === 'nats' ? 'nats' : 'memory');
    gateway = server.gatewayUrl as string;
    creds.admin = { ...(JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as Credentials), namespace: 'micro' };
    const admin = createClient(authApi, new Client({ address: server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(new TokenSource(creds.admin, tokenClient()))] }));
    const make = async (id: string, namespace: string, scopes: string[]) => ({ id, namespace, secret: (await admin.CreateAccount({ id, namespace, scopes })).secret as string });
    creds.alice = await make('alice', 'acme', ['dev']);
    creds.boss = await make('boss', 'acme', ['admin']);
    creds.gina = await make('gina', 'globex', ['admin']);
    // as the runtime makes them for the services it runs
    creds.greeter = { ...(await server.serviceCredentials('greeter', 'acme')), namespace: 'acme' };
    creds.evil = { ...(await server.serviceCredentials('evil', 'acme')), namespace: 'acme' };
    creds.globexGreeter = { ...(await server.serviceCredentials('greeter', 'globex')), namespace: 'globex' };
    const boss = createClient(authApi, new Client({ address: server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(new TokenSource(creds.boss, tokenClient()))] }));
    await boss.CreateRule({ id: 'members', resource: 'service:*:*', scope: '*', access: 'granted', priority: 1 });
  });

  after(async () => {
    for (const s of services.reverse()) await s.stop().catch(() => undefined);
    await server?.stop();
    rmSync(home, { recursive: true, force: true });
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    for (const fn of cleanups.reverse()) await fn();
  });

  test('a plain user registers a node neither for a service of its namespace nor of another (403)', async () => {
    const alice = registryAs(creds.alice as Credentials);
    await assert.rejects(alice.register(record('greeter', 'rogue'), { namespace: 'acme' }), code(403, /account alice of namespace acme may not register nodes of service "greeter" in namespace acme/));
    await assert.rejects(alice.register(record('alice-svc', 'rogue'), { namespace: 'acme' }), code(403));
    await assert.rejects(alice.register(record('greeter', 'rogue'), { namespace: 'globex' }), code(403, /may not act in namespace globex/));
    // an admin of another namespace is nobody here
    await assert.rejects(registryAs(creds.gina as Credentials).register(record('greeter', 'rogue'), { namespace: 'acme' }), code(403));
    const admin = registryAs(creds.admin as Credentials);
    assert.deepEqual(await admin.getService('greeter', { namespace: 'acme' }), []);
    assert.deepEqual(await admin.getService('greeter', { namespace: 'globex' }), []);
  });

  test("a service account registers its own service only: not another's, not in another namespace (403)", async () => {
    const asEvil = registryAs(creds.evil as Credentials);
    await assert.rejects(asEvil.register(record('greeter', 'impostor'), { namespace: 'acme' }), code(403, /only its service account \(service:greeter\) or an admin of acme may/));
    await assert.rejects(asEvil.register(record('evil', 'e1'), { namespace: 'globex' }), code(403));
    // greeter of globex is not greeter of acme
    await assert.rejects(registryAs(creds.globexGreeter as Credentials).register(record('greeter', 'g9'), { namespace: 'acme' }), code(403));
    await asEvil.register(record('evil', 'e0'), { namespace: 'acme' });
    await asEvil.deregister(record('evil', 'e0'), { namespace: 'acme' });
  });

  test("nobody but the service and the namespace's admins deregisters or heart-beats its nodes (403)", async () => {
    const own = registryAs(creds.greeter as Credentials);
    await own.register(record('greeter', 'g1'), { namespace: 'acme', ttl: 60 });
    for (const who of ['evil', 'alice', 'gina', 'globexGreeter']) {
      const r = registryAs(creds[who] as Credentials);
      await assert.rejects(r.deregister(record('greeter', 'g1'), { namespace: 'acme' }), code(403), `${who} deregisters`);
      // a heart-beat that would move the node elsewhere
      await assert.rejects(r.register(record('greeter', 'g1', 'tcp://127.0.0.1:6666'), { namespace: 'acme', ttl: 60 }), code(403), `${who} heart-beats`);
    }
    const nodes = (await registryAs(creds.admin as Credentials).getService('greeter', { namespace: 'acme' })).flatMap((s) => s.nodes);
    assert.deepEqual(nodes.map((n) => [n.id, n.address]), [['g1', 'tcp://127.0.0.1:9']]);
    // the namespace's admin may (a service started by hand), and so may the service itself
    const boss = registryAs(creds.boss as Credentials);
    await boss.register(record('by-hand', 'h1'), { namespace: 'acme' });
    await boss.deregister(record('greeter', 'g1'), { namespace: 'acme' });
    await boss.deregister(record('by-hand', 'h1'), { namespace: 'acme' });
    assert.deepEqual(await boss.getService('greeter', { namespace: 'acme' }), []);
  });

  test('a node registers only from an address its namespace may serve from (the injected rule)', async () => {
    const own = registryAs(creds.greeter as Credentials);
    await assert.rejects(own.register(record('greeter', 'g2', 'tcp://10.0.0.5:5432'), { namespace: 'acme' }), code(403, /service\.nodes\[0\]\.address: nodes of namespace acme may not serve from "tcp:\/\/10\.0\.0\.5:5432"/));
    const two: ServiceRecord = { name: 'greeter', version: '1', endpoints: [], nodes: [{ id: 'ok', address: 'tcp://127.0.0.1:9' }, { id: 'bad', address: 'unix:///var/run/postgresql/.s.PGSQL.5432' }] };
    await assert.rejects(own.register(two, { namespace: 'acme' }), code(403, /service\.nodes\[1\]\.address/));
    // the admin of the namespace is held to it too; the admin of micro is not
    await assert.rejects(registryAs(creds.boss as Credentials).register(record('greeter', 'g3', 'tcp://10.0.0.5:80'), { namespace: 'acme' }), code(403, /address/));
    const admin = registryAs(creds.admin as Credentials);
    assert.deepEqual(await admin.getService('greeter', { namespace: 'acme' }), [], 'nothing of the refused registrations is there');
    await admin.register(record('greeter', 'g4', 'tcp://10.0.0.5:80'), { namespace: 'acme' });
    await admin.deregister(record('greeter', 'g4'), { namespace: 'acme' });
  });

  test('a node receives its callers as tokens scoped to it, which it cannot replay anywhere (gateway, core services, another service)', async () => {
    const address = 'tcp://127.0.0.1:0';
    const greeterSvc = new Service(greeter, { Hello: (_req, ctx) => ({ who: ctx.account?.id ?? null }) }, {
      namespace: 'acme',
      address,
      registry: registryAs(creds.greeter as Credentials),
      logger: silent,
      auth: new ServiceAuth({ address: server.address, credentials: creds.greeter, refreshInterval: 0, required: true }),
      // a TCP node (not NATS) in either profile: the injected address rule is about TCP
      nats: false,
    });
    // legitimately registered by its own account, but it keeps what it is sent
    const evilSvc = new Service(evil, {
      Peek: (_req, ctx) => {
        const token = /^Bearer (\S+)$/.exec(ctx.metadata.authorization ?? '')?.[1];
        if (token) received.push(token);
        return { ok: true };
      },
    }, { namespace: 'acme', address, registry: registryAs(creds.evil as Credentials), logger: silent, auth: false, nats: false });
    for (const s of [greeterSvc, evilSvc]) services.push(await s.start());

    const { token: aliceToken } = await createClient(authApi, tokenClient()).Token(creds.alice as Credentials);
    // through the gateway
    assert.equal((await gw('/v1/evil/Peek', aliceToken)).status, 200);
    // through the SDK client, as any service or the CLI calls
    const aliceClient = new Client({ namespace: 'acme', registry: registryAs(creds.alice as Credentials), preferLocal: false, retries: 0, middleware: [bearer(new TokenSource(creds.alice as Credentials, tokenClient()))] });
    assert.deepEqual(await aliceClient.call('evil', 'Peek', {}), { ok: true });
    // the honest service knows alice (scoped tokens carry the account)
    assert.deepEqual(await aliceClient.call('greeter', 'Hello', {}), { who: 'alice' });
    assert.deepEqual(await gw('/v1/greeter/Hello', aliceToken), { status: 200, json: { who: 'alice' } });

    assert.equal(received.length, 2);
    for (const stolen of received) {
      assert.notEqual(stolen, aliceToken, 'the caller\'s general token never reached the node');
      const c = claimsOf(stolen);
      assert.deepEqual([c.sub, c.iss, c.aud, c.scopes], ['alice', 'acme', 'acme/evil', ['dev']]);
      assert.ok(c.exp <= claimsOf(aliceToken).exp + 1, 'it does not outlive the token it came from');

      // replayed at the gateway: to another service, to a core service, to itself
      for (const path of ['/v1/greeter/Hello', '/v1/store/Read', '/v1/evil/Peek']) {
        const res = await gw(path, stolen, path === '/v1/store/Read' ? { key: 'x' } : {});
        assert.equal(res.status, 401, `${path}: ${JSON.stringify(res.json)}`);
        assert.match(res.json.detail ?? '', /scoped to service acme\/evil/);
      }
      // replayed at the core services over RPC
      const core = coreWith(stolen);
      await assert.rejects(core.call('store', 'Read', { key: 'x' }), code(401, /scoped to service acme\/evil/));
      await assert.rejects(core.call('config', 'Get', {}), code(401, /scoped to service acme\/evil/));
      await assert.rejects(core.call('auth', 'ListRules', {}), code(401, /scoped to service acme\/evil/));
      await assert.rejects(core.call('auth', 'CreateAccount', { id: 'mallory', scopes: ['admin'] }), code(401));
      await assert.rejects(core.call('auth', 'Scope', { audience: 'acme/greeter' }), code(401), 'no exchanging it for another service');
      await assert.rejects(core.call('registry', 'Register', { service: record('greeter', 'x'), namespace: 'acme' }), code(401));
      // replayed at the other service of the namespace, directly
      const direct = new Client({ namespace: 'acme', registry: server.registry, preferLocal: false, retries: 0, middleware: [], metadata: { authorization: `Bearer ${stolen}` } });
      await assert.rejects(direct.call('greeter', 'Hello', {}), code(401, /scoped to service acme\/evil, not acme\/greeter/));
    }
    const admin = registryAs(creds.admin as Credentials);
    assert.deepEqual((await admin.getService('greeter', { namespace: 'acme' })).flatMap((s) => s.nodes.map((n) => n.id)), [greeterSvc.nodeId], 'no node was added by the replays');
  });

  test('mayServe: the rule itself', { skip: profile === 'nats' ? 'profile-independent' : false }, () => {
    const acc = (id: string, type: string, issuer: string, scopes: string[] = []) => ({ id, type, issuer, scopes });
    assert.equal(mayServe(acc('service:greeter', 'service', 'acme'), 'acme', 'greeter'), true);
    assert.equal(mayServe(acc('service:greeter', 'user', 'acme'), 'acme', 'greeter'), false, 'only an account of type service');
    assert.equal(mayServe(acc('service:greeter', 'service', 'globex'), 'acme', 'greeter'), false);
    assert.equal(mayServe(acc('service:greeter', 'service', 'acme'), 'acme', 'greeter2'), false);
    assert.equal(mayServe(acc('service:greeter', 'apikey', 'acme'), 'acme', 'greeter'), false);
    assert.equal(mayServe(acc('boss', 'user', 'acme', ['admin']), 'acme', 'anything'), true);
    assert.equal(mayServe(acc('boss', 'user', 'globex', ['admin']), 'acme', 'anything'), false);
    assert.equal(mayServe(acc('admin', 'user', 'micro', ['admin']), 'acme', 'anything'), true);
    assert.equal(mayServe(acc('alice', 'user', 'acme', ['dev', 'service']), 'acme', 'alice'), false);
  });
});
