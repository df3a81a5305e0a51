import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { WebSocket } from 'ws';
import { AUTH_PUBLIC_ENDPOINTS, authApi, defineService, endpoint, serverStream, Service, ServiceAuth, z, type Credentials } from '@micro/sdk';
import { authenticate } from '../auth/guard.js';
import { authHandlers } from '../auth/service.js';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { StatsCollector } from '../stats/collector.js';
import { Gateway } from './gateway.js';
import { http, type HttpAnswer } from './testing.js';

/*
 * API keys at the gateway: the services a key may call, blocked keys (HTTP, server-sent
 * events, WebSocket), last use, and keys used where they do not belong.
 */

const greeter = defineService({
  name: 'greeter',
  version: '1.0.0',
  endpoints: {
    Call: endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string() }) }),
    Count: serverStream({ request: z.object({ n: z.number() }), response: z.object({ i: z.number() }) }),
    Forever: serverStream({ request: z.object({ tag: z.string() }), response: z.object({ i: z.number() }) }),
  },
});
const other = defineService({ name: 'other', version: '1.0.0', endpoints: { Call: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }) } });

function assertError(res: HttpAnswer, status: number, id: string, detail: RegExp): void {
  assert.equal(res.status, status, res.body);
  const e = res.json as { id: string; code: number; detail: string; status: string };
  assert.deepEqual([e.id, e.code], [id, status], res.body);
  assert.match(e.detail, detail);
}

/** A WebSocket upgrade: 'open', or the HTTP answer that refused it. */
function upgrade(url: string, path: string, key: string): Promise<'open' | { status: number; body: { id: string; detail: string } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`, ['micro', `micro-token.${key}`]);
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string; detail: string } }));
    });
    ws.once('error', reject);
  });
}

/** Streams the service runs until they are cancelled, by tag: resolved when the service's call is cancelled. */
const cancelled = new Map<string, () => void>();
const whenCancelled = (tag: string) => new Promise<void>((resolve) => cancelled.set(tag, resolve));

describe('API keys at the gateway', () => {
  let h: AuthHarness;
  let gw: Gateway;
  let url: string;
  const services: Service[] = [];
  let alice: Credentials;
  let bob: Credentials;

  const post = (path: string, body: unknown, key: string, headers: Record<string, string> = {}) =>
    http(url, 'POST', path, { headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers }, body: JSON.stringify(body) });
  const sse = (path: string, body: unknown, key: string) => post(path, body, key, { accept: 'text/event-stream' });
  /** A server stream read as server-sent events: `first` once an event came, `ended` with all that came once the response closed. */
  const eventStream = (path: string, body: unknown, key: string) => {
    let first: () => void = () => undefined;
    const firstEvent = new Promise<void>((resolve) => (first = resolve));
    const ended = new Promise<string>((resolve, reject) => {
      const { hostname, port } = new URL(url);
      const headers = { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${key}` };
      const req = request({ host: hostname, port, method: 'POST', path, headers }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes('data: ')) first();
        });
        res.on('close', () => resolve(text));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
    return { first: firstEvent, ended };
  };

  before(async () => {
    h = await startAuthHarness();
    const admin = h.authAs(h.admin);
    alice = { id: 'alice', secret: (await admin.CreateAccount({ id: 'alice', namespace: 'tenant-a', scopes: ['dev'] })).secret as string, namespace: 'tenant-a' };
    bob = { id: 'bob', secret: (await admin.CreateAccount({ id: 'bob', namespace: 'tenant-b', scopes: ['admin'] })).secret as string, namespace: 'tenant-b' };
    for (const [def, handlers] of [
      [
        greeter,
        {
          Call: ({ name }: { name: string }) => ({ message: `Hello ${name}` }),
          async *Count({ n }: { n: number }) {
            for (let i = 0; i < n; i++) yield { i };
          },
          async *Forever({ tag }: { tag: string }, ctx: { signal: AbortSignal }) {
            ctx.signal.addEventListener('abort', () => cancelled.get(tag)?.());
            for (let i = 0; !ctx.signal.aborted; i++) {
              yield { i };
              await new Promise((r) => setTimeout(r, 10));
            }
          },
        },
      ],
      [other, { Call: () => ({ ok: true }) }],
    ] as const) {
      const creds = { ...h.accounts.issueServiceSecret(def.name, 'tenant-a'), namespace: 'tenant-a' };
      const svc = new Service(def, handlers as never, { namespace: 'tenant-a', registry: h.registry, logger: silent, auth: new ServiceAuth({ address: h.address, credentials: creds, refreshInterval: 0 }) });
      await svc.start();
      services.push(svc);
    }
    // the auth service where the gateway finds the core services (namespace micro), guarding itself as in micro server
    const auth = new Service(authApi, authHandlers(h.accounts, h.tokens), {
      namespace: 'micro',
      registry: h.registry,
      logger: silent,
      auth: false,
      middleware: [authenticate(h.tokens, new Set(['Debug.Health', ...AUTH_PUBLIC_ENDPOINTS]), authApi)],
    });
    await auth.start();
    services.push(auth);
    gw = new Gateway({
      address: '127.0.0.1:0',
      registry: h.registry,
      tokens: h.tokens,
      accounts: h.accounts,
      logger: silent,
      rulesTtl: 0,
      rateLimit: false,
      selfGuarded: ['auth'],
      publicEndpoints: { auth: AUTH_PUBLIC_ENDPOINTS },
      stats: new StatsCollector({ registry: h.registry, logger: silent }),
    });
    url = await gw.listen();
  });

  after(async () => {
    await gw.close();
    for (const s of services) await s.stop();
    await h.close();
  });

  test('a key limited to some services calls those; any other is 403 v1.blocked with M3O\'s wording, its tokens too, and /openapi.json shows only those', async () => {
    const { key } = await h.authAs(alice).CreateKey({ name: 'greeter-only', services: ['greeter'] });
    assert.deepEqual((await post('/v1/greeter/Call', { name: 'K' }, key)).json, { message: 'Hello K' });
    const refused = await post('/v1/other/Call', {}, key);
    assert.deepEqual(refused.json, { id: 'v1.blocked', code: 403, detail: 'insufficient privileges: this API key may call greeter', status: 'Forbidden' });
    // the core services are services too; a service that does not exist is no different
    assertError(await post('/v1/auth/ListKeys', {}, key), 403, 'v1.blocked', /^insufficient privileges: this API key may call greeter$/);
    assertError(await post('/v1/nothing/Call', {}, key), 403, 'v1.blocked', /insufficient privileges/);
    // the token it is exchanged for carries the list
    const { token } = await h.authAs().Token({ apiKey: key });
    assertError(await post('/v1/other/Call', {}, token), 403, 'v1.blocked', /may call greeter$/);
    assert.equal((await post('/v1/greeter/Call', { name: 'T' }, token)).status, 200);
    // streams too
    assertError(await sse('/v1/other/Call', {}, key), 403, 'v1.blocked', /insufficient privileges/);
    const ws = await upgrade(url, '/v1/other/Call', key);
    assert.ok(ws !== 'open' && ws.status === 403 && ws.body.id === 'v1.blocked', JSON.stringify(ws));
    assert.equal(await upgrade(url, '/v1/greeter/Count', key), 'open');
    // GET /metrics is stats.Prometheus: not for a key of other services
    assertError(await http(url, 'GET', '/metrics', { headers: { authorization: `Bearer ${key}` } }), 403, 'v1.blocked', /may call greeter$/);
    const statsKey = (await h.authAs(alice).CreateKey({ name: 'scraper', services: ['stats'] })).key;
    assert.equal((await http(url, 'GET', '/metrics', { headers: { authorization: `Bearer ${statsKey}` } })).status, 200);
    const doc = (await http(url, 'GET', '/openapi.json', { headers: { authorization: `Bearer ${key}` } })).json as { paths: Record<string, unknown> };
    const paths = Object.keys(doc.paths);
    assert.ok(paths.some((p) => p.startsWith('/v1/greeter/')) && !paths.some((p) => p.startsWith('/v1/other/')), paths.join(' '));
    // a key for any service (the default), and two named ones
    const any = (await h.authAs(alice).CreateKey({ name: 'any' })).key;
    assert.equal((await post('/v1/other/Call', {}, any)).status, 200);
    const both = (await h.authAs(alice).CreateKey({ name: 'both', services: ['greeter', 'other'] })).key;
    assert.equal((await post('/v1/other/Call', {}, both)).status, 200);
    assertError(await post('/v1/store/Read', { key: 'x' }, both), 403, 'v1.blocked', /may call greeter, other$/);
  });

  test('a blocked key is refused with its message on HTTP, SSE and WebSocket, its tokens at once (cached ones too); unblocked, all works again', async () => {
    const { key, info } = await h.authAs(alice).CreateKey({ name: 'to-block' });
    // cached at the gateway: the access token of the key (a core service), its scoped token (greeter)
    assert.equal((await post('/v1/auth/ListKeys', {}, key)).status, 200);
    assert.equal((await post('/v1/greeter/Call', { name: 'x' }, key)).status, 200);
    const { token } = await h.authAs().Token({ apiKey: key });
    assert.equal((await post('/v1/greeter/Call', { name: 'x' }, token)).status, 200);

    const message = 'unpaid invoice 2024-07: contact billing@example.com';
    await h.authAs(h.admin).BlockKey({ id: info.id, message, namespace: 'tenant-a' });
    const detail = new RegExp(`^this API key is blocked: ${message}$`);
    for (const path of ['/v1/greeter/Call', '/v1/auth/ListKeys', '/v1/other/Call']) assertError(await post(path, { name: 'x' }, key), 403, 'v1.blocked', detail);
    assertError(await sse('/v1/greeter/Count', { n: 2 }, key), 403, 'v1.blocked', detail);
    const ws = await upgrade(url, '/v1/greeter/Count', key);
    assert.ok(ws !== 'open' && ws.status === 403 && ws.body.id === 'v1.blocked' && detail.test(ws.body.detail), JSON.stringify(ws));
    assertError(await post('/v1/auth/Token', { apiKey: key }, key), 403, 'v1.blocked', detail);
    assert.equal((await http(url, 'POST', '/v1/auth/Token', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiKey: key }) })).status, 403);
    assertError(await post('/v1/greeter/Call', { name: 'x' }, token), 401, 'gateway', /its API key was revoked or blocked/);

    await h.authAs(h.admin).UnblockKey({ id: info.id, namespace: 'tenant-a' });
    assert.equal((await post('/v1/greeter/Call', { name: 'x' }, key)).status, 200);
    assert.equal((await post('/v1/auth/ListKeys', {}, key)).status, 200);
    assert.equal((await sse('/v1/greeter/Count', { n: 2 }, key)).status, 200);
    assert.equal(await upgrade(url, '/v1/greeter/Count', key), 'open');
  });

  test('streams open when their key is blocked end at once (WebSocket 1008, server-sent events closed), and the service\'s calls are cancelled', { timeout: 30_000 }, async () => {
    const { key, info } = await h.authAs(alice).CreateKey({ name: 'streaming' });
    const wsCancelled = whenCancelled('ws');
    const sseCancelled = whenCancelled('sse');
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/greeter/Forever`, ['micro', `micro-token.${key}`]);
    const closed = new Promise<[number, string]>((resolve) => ws.once('close', (c, why) => resolve([c, why.toString()])));
    ws.once('open', () => ws.send(JSON.stringify({ tag: 'ws' })));
    await new Promise((resolve) => ws.once('message', resolve));
    const events = eventStream('/v1/greeter/Forever', { tag: 'sse' }, key);
    await events.first;

    await h.authAs(h.admin).BlockKey({ id: info.id, message: 'stop streaming', namespace: 'tenant-a' });
    assert.deepEqual(await closed, [1008, 'the API key was revoked or blocked']);
    assert.match(await events.ended, /^data: \{"i":0\}/);
    await Promise.all([wsCancelled, sseCancelled]);
    // and a new one is refused
    const again = await upgrade(url, '/v1/greeter/Forever', key);
    assert.ok(again !== 'open' && again.status === 403, JSON.stringify(again));
  });

  test('calls through the gateway are the key\'s last use, shown in ListKeys', async () => {
    const { key, info } = await h.authAs(alice).CreateKey({ name: 'used' });
    const before = Date.now();
    assert.equal((await post('/v1/greeter/Call', { name: 'x' }, key)).status, 200);
    const shown = (await h.authAs(alice).ListKeys({})).keys.find((k) => k.id === info.id);
    assert.ok(shown?.lastUsedAt !== undefined && shown.lastUsedAt >= before && shown.lastUsedAt <= Date.now(), JSON.stringify(shown));
    // a refused guess at its secret is not a use
    const last = shown.lastUsedAt;
    await new Promise((r) => setTimeout(r, 5));
    assertError(await post('/v1/greeter/Call', { name: 'x' }, `${info.id}.${'x'.repeat(43)}`), 401, 'gateway', /API key refused/);
    assert.equal((await h.authAs(alice).ListKeys({})).keys.find((k) => k.id === info.id)?.lastUsedAt, last);
  });

  test('an expired key: 401 saying when it expired', async () => {
    const { key, info } = await h.authAs(alice).CreateKey({ name: 'old', expiresIn: 60 });
    h.accounts.db.prepare('UPDATE api_keys SET expires_at = ? WHERE key_id = ?').run(Date.now() - 1, info.id);
    assertError(await post('/v1/greeter/Call', { name: 'x' }, key), 401, 'gateway', /API key mk_[0-9a-f]+ expired at .*create a new one/);
  });

  test('a tenant\'s key reaches nothing of another namespace, and its admin cannot block or see another\'s keys through the gateway', async () => {
    const mine = (await h.authAs(bob).CreateKey({ name: 'bobs' })).key;
    assertError(await post('/v1/greeter/Call', { name: 'x' }, mine, { 'micro-namespace': 'tenant-a' }), 403, 'gateway', /may not act in namespace tenant-a/);
    assert.equal((await post('/v1/greeter/Call', { name: 'x' }, mine)).status, 404, 'no greeter in tenant-b');
    assertError(await post('/v1/auth/ListKeys', { namespace: 'tenant-a' }, mine), 403, 'auth', /may not act in namespace tenant-a/);
    const target = (await h.authAs(alice).CreateKey({ name: 'target' })).info.id;
    const bobToken = (await h.authAs().Token(bob)).token;
    assertError(await post('/v1/auth/BlockKey', { id: target, message: 'mine now', namespace: 'tenant-a' }, bobToken), 403, 'auth', /needs an admin of namespace micro/);
    assertError(await post('/v1/auth/RevokeKey', { id: target }, bobToken), 404, 'auth', /no API key/);
    assert.equal((await h.authAs(alice).ListKeys({})).keys.find((k) => k.id === target)?.blocked, false);
  });
});
