import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import { defineService, endpoint, serverStream, Service, ServiceAuth, z, type Account, type Registry } from '@micro/sdk';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { Tokens } from '../auth/tokens.js';
import { Gateway, type GatewayOptions } from './gateway.js';
import { http, raw, type HttpAnswer } from './testing.js';

const greeter = defineService({
  name: 'greeter',
  version: '1.0.0',
  endpoints: {
    Call: endpoint({ request: z.object({ name: z.string(), times: z.number().int().optional(), loud: z.boolean().optional() }), response: z.object({ message: z.string(), who: z.string().nullable() }), readonly: true }),
    'Greeter.Hello': endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string() }), readonly: true }),
    Public: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean(), who: z.string().nullable() }) }),
    Secret: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }),
    Slow: endpoint({ request: z.object({ ms: z.number() }), response: z.object({ ok: z.boolean() }) }),
    Nested: endpoint({ request: z.object({ a: z.object({ b: z.string() }) }), response: z.object({ b: z.string() }), readonly: true }),
    Stream: serverStream({ request: z.object({ n: z.number() }), response: z.object({ i: z.number() }) }),
    Bump: endpoint({ request: z.object({}), response: z.object({ n: z.number() }) }),
  },
});

/** Every error the gateway writes has the wire shape, with the HTTP status as its code. */
function assertError(res: HttpAnswer, status: number, detail?: RegExp): void {
  assert.equal(res.status, status, res.body);
  const e = res.json as { id: unknown; code: unknown; detail: unknown; status: unknown };
  assert.ok(e && typeof e === 'object', `not JSON: ${res.body}`);
  assert.deepEqual(Object.keys(e).sort(), ['code', 'detail', 'id', 'status']);
  assert.equal(e.code, status);
  assert.equal(typeof e.id, 'string');
  assert.equal(typeof e.status, 'string');
  if (detail) assert.match(String(e.detail), detail);
}

describe('API gateway', () => {
  let h: AuthHarness;
  let gw: Gateway;
  let url: string;
  let svc: Service;
  let aliceToken: string;
  let bobToken: string;
  let adminToken: string;
  let aliceKey: string;
  let lookups = 0;
  let bumps = 0;
  const gateways: Gateway[] = [];

  const start = async (options: Partial<GatewayOptions>): Promise<Gateway> => {
    const g = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, rulesTtl: 0, ...options });
    gateways.push(g);
    await g.listen();
    return g;
  };
  const post = (path: string, body: unknown, headers: Record<string, string> = {}, base = url) =>
    http(base, 'POST', path, { headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

  before(async () => {
    h = await startAuthHarness();
    const admin = h.authAs(h.admin);
    const alice = { id: 'alice', secret: (await admin.CreateAccount({ id: 'alice', namespace: 'tenant-a', scopes: ['dev'] })).secret as string, namespace: 'tenant-a' };
    const bob = { id: 'bob', secret: (await admin.CreateAccount({ id: 'bob', namespace: 'tenant-b', scopes: ['dev'] })).secret as string, namespace: 'tenant-b' };
    aliceToken = (await h.authAs().Token(alice)).token;
    bobToken = (await h.authAs().Token(bob)).token;
    adminToken = (await h.authAs().Token(h.admin)).token;
    aliceKey = h.accounts.keys.create(h.accounts.get('alice', 'tenant-a') as Account, 'ci', ['dev']).key;
    await admin.CreateRule({ id: 'public', namespace: 'tenant-a', resource: 'service:greeter:Public', scope: '', access: 'granted', priority: 1 });
    await admin.CreateRule({ id: 'no-secret', namespace: 'tenant-a', resource: 'service:greeter:Secret', scope: '*', access: 'denied', priority: 1 });
    const creds = { ...h.accounts.issueServiceSecret('greeter', 'tenant-a'), namespace: 'tenant-a' };
    svc = new Service(
      greeter,
      {
        Call: ({ name, times, loud }, ctx) => {
          const m = `Hello ${name}`.repeat(times ?? 1);
          return { message: loud ? m.toUpperCase() : m, who: ctx.account ? `${ctx.account.type}:${ctx.account.id}` : null };
        },
        'Greeter.Hello': ({ name }) => ({ message: `Hi ${name}` }),
        Public: (_req, ctx) => ({ ok: true, who: ctx.account?.id ?? null }),
        Secret: () => ({ ok: true }),
        Slow: async ({ ms }, ctx) => {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, ms);
            ctx.signal.addEventListener('abort', () => {
              clearTimeout(t);
              resolve();
            });
          });
          return { ok: true };
        },
        Nested: ({ a }) => ({ b: a.b }),
        async *Stream({ n }) {
          for (let i = 0; i < n; i++) yield { i };
        },
        Bump: () => ({ n: ++bumps }),
      },
      { namespace: 'tenant-a', registry: h.registry, logger: silent, auth: new ServiceAuth({ address: h.address, credentials: creds, refreshInterval: 0 }) },
    );
    await svc.start();
    // count the registry lookups, to see that bad paths never reach the registry
    const registry: Registry = h.registry;
    const getService = registry.getService.bind(registry);
    const counting = Object.create(registry) as Registry;
    counting.getService = (name, options) => {
      lookups++;
      return getService(name, options);
    };
    gw = await start({ registry: counting, rateLimit: false });
    url = gw.url;
  });

  after(async () => {
    for (const g of gateways) await g.close();
    await svc.stop();
    await h.close();
  });

  test('POST calls an endpoint with the caller\'s token; Call and call; Handler/Method', async () => {
    const res = await post('/v1/greeter/Call', { name: 'Alice' }, bearer(aliceToken));
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, { message: 'Hello Alice', who: 'user:alice' });
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.equal((await post('/v1/greeter/call', { name: 'A' }, bearer(aliceToken))).status, 200);
    assert.deepEqual((await post('/v1/greeter/Greeter/Hello', { name: 'Bo' }, bearer(aliceToken))).json, { message: 'Hi Bo' });
    assert.deepEqual((await post('/v1/greeter/greeter/Hello', { name: 'Bo' }, bearer(aliceToken))).json, { message: 'Hi Bo' });
  });

  test('GET takes flat requests as query parameters, coerced from the schema', async () => {
    const ok = await http(url, 'GET', '/v1/greeter/Call?name=Al&times=2&loud=true', { headers: bearer(aliceToken) });
    assert.deepEqual(ok.json, { message: 'HELLO ALHELLO AL', who: 'user:alice' });
    assertError(await http(url, 'GET', '/v1/greeter/Call?name=Al&times=two', { headers: bearer(aliceToken) }), 400, /^times: expected an integer/);
    assertError(await http(url, 'GET', '/v1/greeter/Call?nome=Al', { headers: bearer(aliceToken) }), 400, /unknown query parameter "nome"/);
    assertError(await http(url, 'GET', '/v1/greeter/Nested?a=1', { headers: bearer(aliceToken) }), 400, /nested request: POST it/);
  });

  test('validation errors name the field; errors have the wire shape', async () => {
    assertError(await post('/v1/greeter/Call', { name: 5 }, bearer(aliceToken)), 400, /name/);
    assertError(await post('/v1/greeter/Nested', { a: { b: 1 } }, bearer(aliceToken)), 400, /a\.b|b/);
  });

  test('API keys and the micro-token cookie are credentials too', async () => {
    assert.deepEqual((await post('/v1/greeter/Call', { name: 'K' }, bearer(aliceKey))).json, { message: 'Hello K', who: 'apikey:alice' });
    assert.deepEqual((await post('/v1/greeter/Call', { name: 'C' }, { cookie: `theme=dark; micro-token=${aliceToken}` })).json, { message: 'Hello C', who: 'user:alice' });
    assertError(await post('/v1/greeter/Call', { name: 'K' }, bearer(`${aliceKey.split('.')[0]}.${'x'.repeat(40)}`)), 401, /API key refused/);
  });

  test('missing, malformed, forged and expired credentials: 401; public endpoints need none', async () => {
    assertError(await post('/v1/greeter/Call', { name: 'x' }, { 'micro-namespace': 'tenant-a' }), 401, /credentials required/);
    assertError(await post('/v1/greeter/Call', { name: 'x' }, { authorization: 'Basic abc' }), 401, /Bearer/);
    assertError(await post('/v1/greeter/Call', { name: 'x' }, bearer('not-a-jwt')), 401);
    const [head, body] = aliceToken.split('.') as [string, string];
    assertError(await post('/v1/greeter/Call', { name: 'x' }, bearer(`${head}.${body}.${'A'.repeat(86)}`)), 401, /signature/);
    const other = await Tokens.load(join(h.home, 'other-keys.json'));
    assertError(await post('/v1/greeter/Call', { name: 'x' }, bearer((await other.issue(h.accounts.get('alice', 'tenant-a') as Account)).token)), 401, /unknown key/);
    const past = await Tokens.load(join(h.home, 'jwt-keys.json'), { ttl: -60 });
    assertError(await post('/v1/greeter/Call', { name: 'x' }, bearer((await past.issue(h.accounts.get('alice', 'tenant-a') as Account)).token)), 401, /expired/);
    const pub = await post('/v1/greeter/Public', {}, { 'micro-namespace': 'tenant-a' });
    assert.deepEqual(pub.json, { ok: true, who: null });
  });

  test('requestsPerMonth: the namespace\'s own calls counted; then 403 naming the limit and the reset; strangers spend none of it', async () => {
    const g = await start({ rateLimit: false, requestsPerMonth: async (ns) => (ns === 'tenant-a' ? 3 : null) });
    // an anonymous public call and an admin of micro acting in tenant-a are not its calls
    for (let i = 0; i < 5; i++) {
      assert.equal((await post('/v1/greeter/Public', {}, { 'micro-namespace': 'tenant-a' }, g.url)).status, 200);
      assert.equal((await post('/v1/greeter/Call', { name: 'a' }, { ...bearer(adminToken), 'micro-namespace': 'tenant-a' }, g.url)).status, 200);
    }
    const answers = await Promise.all(Array.from({ length: 8 }, () => post('/v1/greeter/Call', { name: 'x' }, bearer(aliceKey), g.url)));
    assert.equal(answers.filter((r) => r.status === 200).length, 3);
    const refused = answers.find((r) => r.status !== 200);
    assertError(refused as HttpAnswer, 403, /^quota exceeded: requestsPerMonth 3 of 3 used in namespace tenant-a; .*; the count resets at \d{4}-\d\d-01T00:00:00\.000Z$/);
    assert.equal((refused?.json as { id: string }).id, 'quota');
    assert.equal(await g.months?.used('tenant-a'), 3);
    // another tenant is counted apart (unlimited here: not at all)
    assertError(await post('/v1/greeter/Call', { name: 'x' }, bearer(bobToken), g.url), 404);
  });

  test('namespaces: the token\'s; another only for admins of micro (403); rules deny with 403', async () => {
    assertError(await post('/v1/greeter/Call', { name: 'x' }, bearer(bobToken)), 404, /not found in namespace tenant-b/);
    assertError(await post('/v1/greeter/Call', { name: 'x' }, { ...bearer(bobToken), 'micro-namespace': 'tenant-a' }), 403, /namespace tenant-b may not act in namespace tenant-a/);
    assertError(await post('/v1/greeter/Call', { name: 'x' }, { ...bearer(aliceToken), 'micro-namespace': '../etc' }), 400, /micro-namespace/);
    assert.deepEqual((await post('/v1/greeter/Call', { name: 'x' }, { ...bearer(adminToken), 'micro-namespace': 'tenant-a' })).json, { message: 'Hello x', who: 'user:admin' });
    assertError(await post('/v1/greeter/Secret', {}, bearer(aliceToken)), 403, /rule no-secret denies it/);
    assertError(await post('/v1/greeter/Secret', {}, { 'micro-namespace': 'tenant-a' }), 401);
  });

  test('unknown services and endpoints: 404; streams: 501; other methods: 405', async () => {
    assertError(await post('/v1/nope/Call', {}, bearer(aliceToken)), 404, /service nope not found in namespace tenant-a/);
    assertError(await post('/v1/greeter/Nope', {}, bearer(aliceToken)), 404, /endpoint Nope/);
    assertError(await post('/v1/greeter/Stream', { n: 1 }, bearer(aliceToken)), 501, /server stream/);
    assertError(await http(url, 'DELETE', '/v1/greeter/Call', { headers: bearer(aliceToken) }), 405);
    assertError(await http(url, 'GET', '/', {}), 404, /\/v1\//);
  });

  test('bad bodies: malformed JSON 400, wrong content type 415, deep nesting 400, empty body is {}', async () => {
    assertError(await http(url, 'POST', '/v1/greeter/Call', { headers: { ...bearer(aliceToken), 'content-type': 'application/json' }, body: '{"name": ' }), 400, /malformed JSON/);
    assertError(await http(url, 'POST', '/v1/greeter/Call', { headers: { ...bearer(aliceToken), 'content-type': 'text/plain' }, body: '{"name":"x"}' }), 415, /application\/json/);
    assertError(await http(url, 'POST', '/v1/greeter/Call', { headers: { ...bearer(aliceToken), 'content-type': 'application/jsonx' }, body: '{"name":"x"}' }), 415);
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    assertError(await http(url, 'POST', '/v1/greeter/Call', { headers: { ...bearer(aliceToken), 'content-type': 'application/json' }, body: deep }), 400, /nests deeper than 64/);
    assertError(await http(url, 'POST', '/v1/greeter/Call', { headers: bearer(aliceToken) }), 400, /name/);
    assert.equal((await http(url, 'POST', '/v1/greeter/Public', { headers: { 'micro-namespace': 'tenant-a' } })).status, 200);
  });

  test('a refused request whose body was read keeps the connection: the next request on it is served', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const once = (body: string) =>
        new Promise<{ status: number; reused: boolean; connection: string | undefined }>((resolve, reject) => {
          const req = request(`${url}/v1/greeter/Call`, { method: 'POST', agent, headers: { 'content-type': 'application/json', ...bearer(aliceToken) } }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, connection: res.headers.connection }));
          });
          req.on('error', reject);
          req.end(body);
        });
      const bad = await once('{"name":42}');
      assert.equal(bad.status, 400);
      assert.equal(bad.connection, 'keep-alive');
      const malformed = await once('{"name":');
      assert.equal(malformed.status, 400);
      assert.equal(malformed.reused, true);
      const good = await once('{"name":"Ann"}');
      assert.equal(good.status, 200);
      assert.equal(good.reused, true, 'the same connection served all three');
    } finally {
      agent.destroy();
    }
  });

  test('huge bodies: 413 at once when announced, 413 when a chunked body passes the bound', async () => {
    const t0 = Date.now();
    // only the headers go out: the gateway answers without waiting for 50 MB
    const announced = await raw(url, `POST /v1/greeter/Call HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${aliceToken}\r\ncontent-length: 52428800\r\n\r\n{"name":`);
    assertError(announced, 413, /52428800 bytes/);
    assert.equal(announced.headers.connection, 'close');
    assert.ok(Date.now() - t0 < 2_000);
    const big = Buffer.from(JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10) }));
    const chunked = await raw(
      url,
      Buffer.concat([Buffer.from(`POST /v1/greeter/Call HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${aliceToken}\r\ntransfer-encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n`), big, Buffer.from('\r\n0\r\n\r\n')]),
    );
    assertError(chunked, 413, /larger than 1048576/);
    // and it keeps serving
    assert.equal((await post('/v1/greeter/Call', { name: 'A' }, bearer(aliceToken))).status, 200);
  });

  test('odd paths are refused with 400 before the registry is asked; no header injection', async () => {
    const before = lookups;
    for (const path of ['/v1/../etc/passwd', '/v1/%2e%2e/Call', '/v1/greeter/..%2f..%2fetc', '/v1/greeter/Call%0d%0aSet-Cookie:%20x=1', '/v1/greeter', '/v1/greeter/a/b/c', '/v1//Call', '/v1/greeter/Call;x', '/v1/gr%00eeter/Call', '/v1/.hidden/Call']) {
      const res = await http(url, 'POST', path, { headers: { ...bearer(aliceToken), 'content-type': 'application/json' }, body: '{}' });
      assertError(res, 400);
      assert.equal(res.headers['set-cookie'], undefined);
    }
    assert.equal(lookups, before, 'the registry was not asked');
    const res = await raw(url, `GET /v1/greeter/Call?name=a%0d%0aX-Injected:%201 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${aliceToken}\r\norigin: https://evil.example\r\nconnection: close\r\n\r\n`);
    assert.equal(res.status, 200);
    assert.doesNotMatch(res.text.split('\r\n\r\n')[0] as string, /x-injected|access-control/i);
    const bad = await raw(url, 'GET /v1/greeter/Call HTTP/1.1\r\nhost: x\r\nx-bad: a\rb\r\n\r\n');
    assertError(bad, 400, /malformed HTTP request/);
  });

  test('rate limit: 429 with Retry-After, per account', async () => {
    const g = await start({ rateLimit: { rate: 0.5, burst: 3 } });
    const statuses: number[] = [];
    let last: HttpAnswer | undefined;
    for (let i = 0; i < 5; i++) {
      last = await post('/v1/greeter/Call', { name: 'r' }, bearer(aliceToken), g.url);
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    assertError(last as HttpAnswer, 429, /rate limit/);
    assert.ok(Number((last as HttpAnswer).headers['retry-after']) >= 1);
    // another account has its own bucket
    assert.equal((await post('/v1/greeter/Call', { name: 'r' }, { ...bearer(adminToken), 'micro-namespace': 'tenant-a' }, g.url)).status, 200);
  });

  test('slowloris: headers that never finish get a 408 and the socket closes', async () => {
    const g = await start({ headersTimeout: 300, requestTimeout: 600, rateLimit: false });
    const t0 = Date.now();
    const res = await raw(g.url, 'POST /v1/greeter/Call HTTP/1.1\r\nhost: x\r\nx-slow: a', 5_000);
    assertError(res, 408);
    assert.ok(Date.now() - t0 < 3_000, `took ${Date.now() - t0} ms`);
  });

  test('a call that takes too long: 504', async () => {
    const g = await start({ timeout: 150, rateLimit: false });
    assertError(await post('/v1/greeter/Slow', { ms: 2_000 }, bearer(aliceToken), g.url), 504);
  });

  test('CORS only for the allowed origins', async () => {
    const g = await start({ corsOrigins: ['https://app.example'], rateLimit: false });
    const ok = await post('/v1/greeter/Call', { name: 'c' }, { ...bearer(aliceToken), origin: 'https://app.example' }, g.url);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
    const other = await post('/v1/greeter/Call', { name: 'c' }, { ...bearer(aliceToken), origin: 'https://evil.example' }, g.url);
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const pre = await http(g.url, 'OPTIONS', '/v1/greeter/Call', { headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    assert.equal(pre.status, 204);
    assert.match(String(pre.headers['access-control-allow-headers']), /authorization/);
  });

  test('GET /openapi.json describes the caller\'s namespace', async () => {
    const res = await http(url, 'GET', '/openapi.json', { headers: bearer(aliceToken) });
    assert.equal(res.status, 200);
    const doc = res.json as { openapi: string; paths: Record<string, { post?: { requestBody: { content: Record<string, { schema: { properties: object } }> } } }>; components: { schemas: { Error: object }; securitySchemes: { bearer: { scheme: string } } } };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/v1/greeter/Call']?.post);
    assert.ok(doc.paths['/v1/greeter/Greeter/Hello']?.post);
    assert.ok(!doc.paths['/v1/greeter/Secret'], 'a denied endpoint is not listed');
    assert.deepEqual(Object.keys(doc.paths['/v1/greeter/Call']?.post?.requestBody.content['application/json']?.schema.properties ?? {}).sort(), ['loud', 'name', 'times']);
    assert.ok(doc.components.schemas.Error);
    assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
    // what a namespace holds, public endpoints included, is not for strangers
    assertError(await http(url, 'GET', '/openapi.json', { headers: { 'micro-namespace': 'tenant-a' } }), 401, /credentials required/);
  });

  test('without credentials, an existing private endpoint, an unknown service and an unknown endpoint answer byte for byte the same', async () => {
    const answer = async (method: string, path: string, body?: string, namespace = 'tenant-a') => {
      const res = await raw(url, `${method} ${path} HTTP/1.1\r\nhost: gw\r\nmicro-namespace: ${namespace}\r\n${body === undefined ? '' : `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`}\r\n${body ?? ''}`);
      // the whole answer but its date and request id (a new one on every answer)
      assert.match(res.text, /\r\nx-request-id: [0-9a-f-]{36}\r\n/);
      return res.text.replace(/\r\ndate: [^\r]*/i, '').replace(/\r\nx-request-id: [^\r]*/i, '');
    };
    for (const [method, query, body] of [['POST', '', '{"name":"x"}'], ['POST', '', undefined], ['GET', '?name=x', undefined]] as const) {
      const existing = await answer(method, `/v1/greeter/Call${query}`, body);
      const denied = await answer(method, `/v1/greeter/Secret${query}`, body);
      const noService = await answer(method, `/v1/nope/Call${query}`, body);
      const noEndpoint = await answer(method, `/v1/greeter/Nope${query}`, body);
      assert.match(existing, /^HTTP\/1\.1 401 Unauthorized\r\n/);
      assert.match(existing, /\{"id":"gateway","code":401,"detail":"credentials required: send an access token or API key as Authorization: Bearer <token>","status":"Unauthorized"\}$/);
      assert.equal(denied, existing, `${method} greeter/Secret`);
      assert.equal(noService, existing, `${method} nope/Call`);
      assert.equal(noEndpoint, existing, `${method} greeter/Nope`);
      // nor does a namespace that does not exist
      assert.equal(await answer(method, `/v1/greeter/Call${query}`, body, 'nobody-here'), existing);
    }
    // the same twice in a row: the second, served from the gateway's caches, says no more
    assert.equal(await answer('POST', '/v1/nope/Call', '{}'), await answer('POST', '/v1/greeter/Call', '{}'));
    // with credentials one may learn what is missing in one's own namespace
    assertError(await post('/v1/nope/Call', {}, bearer(aliceToken)), 404);
    // what public rules open still answers without credentials
    assert.deepEqual((await post('/v1/greeter/Public', {}, { 'micro-namespace': 'tenant-a' })).json, { ok: true, who: null });
  });

  test('GET reaches read-only endpoints only: anything else is a 405 with Allow: POST, and the handler never runs', async () => {
    const before = bumps;
    const res = await http(url, 'GET', '/v1/greeter/Bump', { headers: bearer(aliceToken) });
    assertError(res, 405, /^greeter\.Bump is not read-only: GET reaches only read-only endpoints; POST the request as JSON$/);
    assert.equal(res.headers.allow, 'POST');
    assertError(await http(url, 'GET', '/v1/greeter/Bump', { headers: { cookie: `micro-token=${aliceToken}`, 'sec-fetch-site': 'same-origin' } }), 405);
    assertError(await http(url, 'GET', '/v1/greeter/Bump', { headers: { ...bearer(adminToken), 'micro-namespace': 'tenant-a' } }), 405);
    assert.equal(bumps, before, 'Bump did not run');
    assert.deepEqual((await post('/v1/greeter/Bump', {}, bearer(aliceToken))).json, { n: before + 1 });
    assert.equal((await http(url, 'GET', '/v1/greeter/Call?name=r', { headers: bearer(aliceToken) })).status, 200);
    assert.equal((await http(url, 'HEAD', '/v1/greeter/Call', { headers: bearer(aliceToken) })).status, 405);
  });

  test('fuzz: whatever the path, headers and body, a well-formed JSON answer, and it keeps serving', async () => {
    const g = await start({ rateLimit: false });
    const segment = fc.oneof(fc.constantFrom('greeter', 'Call', 'call', 'Greeter', 'Hello', '..', '.', '', '%2e', '%00', 'v1', 'nope'), fc.string({ maxLength: 12 }));
    const path = fc.oneof(
      fc.array(segment, { maxLength: 5 }).map((s) => `/v1/${s.join('/')}`),
      fc.array(segment, { maxLength: 4 }).map((s) => `/${s.join('/')}`),
    );
    const body = fc.oneof(fc.json(), fc.string({ maxLength: 200 }), fc.constant(''), fc.jsonValue().map((v) => JSON.stringify({ name: v })));
    const header = fc.record({
      type: fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-8', ''),
      auth: fc.constantFrom('', `Bearer ${aliceToken}`, 'Bearer x.y.z', 'Basic a', `Bearer ${aliceKey}`, 'Bearer mk_0.0'),
      ns: fc.constantFrom('', 'tenant-a', 'tenant-b', 'a b', '\u00e9'),
      method: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'BREW'),
    });
    await fc.assert(
      fc.asyncProperty(path, header, body, async (p, hd, b) => {
        const target = encodeURI(p).replace(/[^\x21-\x7e]/g, '');
        const lines = [`${hd.method} ${target || '/'}${hd.method === 'GET' ? '?name=x' : ''} HTTP/1.1`, 'host: gw', 'connection: close'];
        if (hd.type) lines.push(`content-type: ${hd.type}`);
        if (hd.auth) lines.push(`authorization: ${hd.auth}`);
        if (hd.ns) lines.push(`micro-namespace: ${Buffer.from(hd.ns, 'utf8').toString('latin1')}`);
        const payload = Buffer.from(b, 'utf8');
        lines.push(`content-length: ${payload.length}`);
        const res = await raw(g.url, Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]));
        assert.ok(res.status >= 200 && res.status <= 599, res.text.slice(0, 300));
        if (hd.method === 'HEAD') return;
        assert.ok(res.json !== undefined, `not JSON (${res.status}): ${res.body.slice(0, 300)}`);
        if (res.status >= 400) assertError(res, res.status);
      }),
      { numRuns: 300 },
    );
    assert.equal((await post('/v1/greeter/Call', { name: 'still' }, bearer(aliceToken), g.url)).status, 200);
  });

  test('a service other than the core ones gets the caller scoped to it, minted once per credential and service', async () => {
    const minted: string[] = [];
    const tokens = Object.create(h.tokens) as typeof h.tokens;
    tokens.scope = (token, audience) => {
      minted.push(audience);
      return h.tokens.scope(token, audience);
    };
    const g = await start({ tokens, rateLimit: false });
    for (let i = 0; i < 3; i++) assert.deepEqual((await post('/v1/greeter/Call', { name: 'x' }, bearer(aliceToken), g.url)).json, { message: 'Hello x', who: 'user:alice' });
    for (let i = 0; i < 2; i++) assert.deepEqual((await post('/v1/greeter/Call', { name: 'k' }, bearer(aliceKey), g.url)).json, { message: 'Hello k', who: 'apikey:alice' });
    assert.deepEqual(minted, ['tenant-a/greeter', 'tenant-a/greeter']);
  });
});
