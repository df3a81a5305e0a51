import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { admitClaims, bearer, Client, defineService, endpoint, MicroError, RevocationList, Service, ServiceAuth, z, type Credentials } from '@micro/sdk';
import { Accounts } from './accounts.js';
import type { PgContext } from './pg/accounts.js';
import { PgRevocations } from './pg/revocations.js';
import { revocationFeed } from './revocations.js';
import { silent, startAuthHarness } from './testing.js';
import { Tokens } from './tokens.js';

const code = (n: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, n, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

test('RevocationList: matches account (namespace/id), session and jti for tokens issued up to `before`; entries expire', () => {
  let now = 1_000_000_000;
  const list = new RevocationList(100, () => now);
  const claims = { sub: 'alice', iss: 'tenant-a', iat: 1_000_000 - 5, jti: 'j1', sid: 's1' };
  assert.equal(list.match(claims), undefined);
  list.add({ kind: 'account', id: 'tenant-b/alice', before: 1_000_000 });
  assert.equal(list.match(claims), undefined, 'the same id in another namespace is another account');
  list.add({ kind: 'session', id: 's1', before: 1_000_000 });
  assert.equal(list.match(claims)?.kind, 'session');
  assert.equal(list.match({ ...claims, iat: 1_000_001 }), undefined, 'a token issued after the revocation lives');
  assert.equal(list.match({ ...claims, sid: 's2' }), undefined);
  list.add({ kind: 'token', id: 'j2', before: 1_000_000 });
  assert.equal(list.match({ ...claims, sid: undefined, jti: 'j2' })?.kind, 'token');
  now += 101_000;
  assert.deepEqual(list.entries(), [], 'every token an entry could match has expired: the entry goes');
  assert.equal(list.add({ kind: 'account', id: 'tenant-a/alice', before: 1_000_000 }), false, 'an entry already expired is not added');
});

test('the local revocation list survives a restart; tokens of a deleted account stay refused', async () => {
  const h = await startAuthHarness();
  try {
    const admin = h.authAs(h.admin);
    await admin.CreateAccount({ id: 'gone', namespace: 'tenant-a', secret: 'gone-password-1' });
    const { token } = await h.authAs().Login({ id: 'gone', password: 'gone-password-1', namespace: 'tenant-a' });
    assert.equal((await h.tokens.verify(token)).id, 'gone');
    await admin.DeleteAccount({ id: 'gone', namespace: 'tenant-a' });
    await assert.rejects(h.tokens.verify(token), code(401, /token revoked: its account was deleted/));
    // what a restarted server reads: the same database and key ring
    const accounts = new Accounts(join(h.home, 'auth.db'), { scrypt: { N: 1024 } });
    try {
      const tokens = await Tokens.load(join(h.home, 'jwt-keys.json'), { revocations: accounts.revocations.list });
      accounts.revocations.load();
      await assert.rejects(tokens.verify(token), code(401, /token revoked/));
    } finally {
      accounts.close();
    }
  } finally {
    await h.close();
  }
});

test('auth.Revocations shows a tenant the entries of its namespace and micro, not the account ids of others', async () => {
  const h = await startAuthHarness();
  try {
    const admin = h.authAs(h.admin);
    for (const [id, namespace] of [['a1', 'tenant-a'], ['b1', 'tenant-b'], ['m1', 'micro']] as const) {
      await admin.CreateAccount({ id, namespace, secret: 'some-password-1' });
      await admin.DeleteAccount({ id, namespace });
    }
    const tenant = { id: 'reader', secret: (await admin.CreateAccount({ id: 'reader', namespace: 'tenant-a', type: 'service' })).secret as string, namespace: 'tenant-a' };
    const first = async (creds: Credentials) => {
      for await (const msg of h.authAs(creds).Revocations({})) return msg;
      throw new Error('no message');
    };
    const seen = (await first(tenant)).entries.map((e) => e.id).sort();
    assert.deepEqual(seen, ['micro/m1', 'tenant-a/a1']);
    const all = await first(h.admin);
    assert.deepEqual(all.entries.map((e) => e.id).sort(), ['micro/m1', 'tenant-a/a1', 'tenant-b/b1']);
    assert.equal(all.maxTokenTtl, 900);
    // anonymous: no list at all
    await assert.rejects(
      (async () => {
        for await (const _ of h.authAs().Revocations({})) return;
      })(),
      code(401),
    );
  } finally {
    await h.close();
  }
});

/** A TCP proxy to `target` that can be cut (every connection dropped, new ones refused) and resumed. */
async function cuttableProxy(target: string): Promise<{ address: string; cut(): void; resume(): void; close(): Promise<void> }> {
  const { hostname, port } = new URL(target.replace('tcp://', 'http://'));
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createServer((client) => {
    if (!open) return client.destroy();
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: local } = server.address() as { port: number };
  return {
    address: `tcp://127.0.0.1:${local}`,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    resume() {
      open = true;
    },
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      return closed;
    },
  };
}

test('a service cut off from the revocation list fails closed (503) after revocationsStaleAfter, and recovers', async () => {
  const h = await startAuthHarness();
  const proxy = await cuttableProxy(h.address);
  const ping = defineService({ name: 'ping', version: '1.0.0', endpoints: { Ping: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }) } });
  const creds = { ...(await h.accounts.issueServiceSecret('ping', 'tenant-a')), namespace: 'tenant-a' };
  const svc = new Service(
    ping,
    { Ping: () => ({ ok: true }) },
    { namespace: 'tenant-a', registry: h.registry, logger: silent, auth: new ServiceAuth({ address: proxy.address, credentials: creds, refreshInterval: 0, revocationsStaleAfter: 500 }) },
  );
  await svc.start();
  try {
    const admin = h.authAs(h.admin);
    await admin.CreateAccount({ id: 'user1', namespace: 'tenant-a', secret: 'user1-password-1' });
    const { token } = await h.authAs().Login({ id: 'user1', password: 'user1-password-1', namespace: 'tenant-a' });
    // the user's token, scoped to ping by the auth service (a general token never reaches a node)
    const server = new Client({ address: h.address, namespace: 'micro', preferLocal: false, middleware: [] });
    const call = () => new Client({ namespace: 'tenant-a', registry: h.registry, preferLocal: false, middleware: [bearer(token, { server })], retries: 0 }).call('ping', 'Ping', {});
    assert.deepEqual(await call(), { ok: true });
    proxy.cut();
    // no word from the server for longer than 500 ms (the heartbeat is every second): refused, saying why
    await new Promise((r) => setTimeout(r, 1_700));
    await assert.rejects(call(), code(503, /revocation list/));
    proxy.resume();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        assert.deepEqual(await call(), { ok: true });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await svc.stop();
    await proxy.close();
    await h.close();
  }
});

test('nats profile: a node that cannot read the shared list refuses tokens (503) and stops its followers\' heartbeats', async () => {
  const list = new RevocationList();
  let listening = true;
  let up = true;
  const ctx = {
    revoked: list,
    t: { revocations: 'x.auth_revocations' },
    db: { query: async () => (up ? { rows: [] } : Promise.reject(new Error('connection refused'))) },
  } as unknown as PgContext;
  const store = new PgRevocations(ctx);
  await store.sync();
  store.watch(() => listening, 200);
  assert.equal(list.stale(), undefined, 'listening: current');
  listening = false;
  assert.equal(list.stale(), undefined, 'read a moment ago: current');
  up = false;
  await new Promise((r) => setTimeout(r, 250));
  await store.sync().catch(() => undefined);
  assert.match(list.stale() ?? '', /could not be read from Postgres/);
  const claims = { sub: 'alice', iss: 'tenant-a', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 900, jti: 'j' };
  assert.throws(() => admitClaims(claims, list, 900, 'auth'), code(503, /revocation list/));
  // the stream of a follower: nothing at all while stale, the list once current again
  const abort = new AbortController();
  const feed = revocationFeed(list, 900, { id: 'admin', type: 'user', issuer: 'micro', scopes: ['admin'] }, abort.signal, { heartbeat: 20 });
  const first = feed.next();
  const raced = await Promise.race([first.then(() => 'message'), new Promise((r) => setTimeout(() => r('silence'), 150))]);
  assert.equal(raced, 'silence');
  up = true;
  await store.sync();
  assert.deepEqual((await first).value, { entries: [], maxTokenTtl: 900 });
  abort.abort();
  await feed.return(undefined);
});
