import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { EndpointRecord, ServiceRecord } from '@micro/sdk';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { Gateway } from './gateway.js';
import { flatFields, openApiDocument, unitsAsDollars, type EndpointAccess, type GatewayPrices } from './openapi.js';
import { http } from './testing.js';

// GET /openapi.json: what each operation says about its body, its credentials and streams
// (the whole document against the official OAS 3.1 schema is in packages/client's openapi.test.ts).

type Op = {
  operationId: string;
  security: Record<string, string[]>[];
  requestBody?: { required: boolean };
  parameters?: { name: string; in: string; required: boolean; schema: { type: string; enum?: string[] } }[];
  responses: Record<string, { content?: Record<string, { schema: unknown; 'x-micro-data'?: unknown }>; headers?: Record<string, unknown> }>;
  description?: string;
  'x-micro-stream'?: string;
  'x-micro-public'?: boolean;
  'x-micro-sse'?: boolean;
  'x-micro-readonly'?: boolean;
  'x-micro-messages'?: { request: { $schema?: string; properties: object }; response: object };
  'x-micro-price'?: { units: number; dollars: string; freeQuota: number };
};
type Doc = { paths: Record<string, { get?: Op; post?: Op }>; components: { securitySchemes: Record<string, { type: string; in?: string; name?: string }> } };

const obj = (properties: Record<string, unknown>, required: string[] = []) => ({ $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties, required });
const ep = (name: string, kind: EndpointRecord['kind'], request: Record<string, unknown>, response: Record<string, unknown> = obj({ ok: { type: 'boolean' } })): EndpointRecord => ({ name, kind, request, response });

const shop: ServiceRecord = {
  name: 'shop',
  version: '1.0.0',
  // the document is built from the registry alone: nothing listens there
  nodes: [{ id: 'shop-1', address: 'tcp://127.0.0.1:9' }],
  endpoints: [
    ep('Buy', 'unary', obj({ item: { type: 'string' }, count: { type: 'integer' } }, ['item'])),
    { ...ep('List', 'unary', obj({ page: { type: 'integer' } })), readonly: true },
    ep('Empty', 'unary', { type: 'object', properties: {} }),
    { ...ep('Watch', 'server', obj({ item: { type: 'string', description: 'what to watch' }, mode: { type: 'string', enum: ['fast', 'slow'] }, n: { type: ['integer', 'null'] } }, ['item'])), readonly: true },
    ep('Follow', 'server', obj({ item: { type: 'string' } }, ['item'])),
    ep('Deep', 'server', obj({ filter: obj({ a: { type: 'string' } }) })),
    ep('Upload', 'client', obj({ chunk: { type: 'string' } }, ['chunk'])),
    ep('Chat', 'bidi', obj({ text: { type: 'string' } }, ['text'])),
    ep('Hidden', 'unary', obj({})),
  ],
};

describe('openApiDocument', () => {
  const access = (_s: string, e: string): EndpointAccess | undefined => (e === 'Hidden' ? undefined : e === 'List' || e === 'Chat' ? 'public' : 'credentials');
  const doc = openApiDocument('micro', [shop], access) as unknown as Doc;

  test('requestBody is required exactly when the request schema has required fields', () => {
    assert.equal(doc.paths['/v1/shop/Buy']?.post?.requestBody?.required, true);
    assert.equal(doc.paths['/v1/shop/List']?.post?.requestBody?.required, false);
    assert.equal(doc.paths['/v1/shop/Empty']?.post?.requestBody?.required, false);
    assert.equal(doc.paths['/v1/shop/Hidden'], undefined, 'not listed when access says so');
  });

  test('`{}` in security only for public operations; streams also take the subprotocol token', () => {
    const empty = (op: Op | undefined) => (op?.security ?? []).some((s) => Object.keys(s).length === 0);
    assert.deepEqual(doc.paths['/v1/shop/Buy']?.post?.security, [{ bearer: [] }, { cookie: [] }]);
    assert.ok(empty(doc.paths['/v1/shop/List']?.post));
    assert.equal(doc.paths['/v1/shop/List']?.post?.['x-micro-public'], true);
    assert.deepEqual(doc.paths['/v1/shop/Upload']?.get?.security, [{ bearer: [] }, { cookie: [] }, { websocketProtocol: [] }]);
    assert.deepEqual(doc.paths['/v1/shop/Chat']?.get?.security, [{ bearer: [] }, { cookie: [] }, { websocketProtocol: [] }, {}]);
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const op of [item.get, item.post]) if (op && empty(op)) assert.ok(['/v1/shop/List', '/v1/shop/Chat'].includes(path), `${path} is not public`);
    }
    const ws = doc.components.securitySchemes.websocketProtocol;
    assert.deepEqual([ws?.type, ws?.in, ws?.name], ['apiKey', 'header', 'Sec-WebSocket-Protocol']);
  });

  test('a stream is a GET with the WebSocket upgrade (101), its messages, and the errors before the upgrade', () => {
    for (const [name, kind] of [['Upload', 'client'], ['Chat', 'bidi'], ['Deep', 'server']] as const) {
      const op = doc.paths[`/v1/shop/${name}`]?.get as Op;
      assert.equal(op['x-micro-stream'], kind);
      assert.ok(op.responses['101'], `${name}: 101`);
      for (const code of ['400', '401', '403', '404', '429']) assert.ok(op.responses[code], `${name}: ${code}`);
      assert.match(op.description ?? '', /Upgrade: websocket/);
      assert.match(op.description ?? '', /micro-token\.<token or API key>/);
      assert.equal(op.parameters?.find((p) => p.name === 'Upgrade')?.in, 'header');
      assert.equal(op.parameters?.find((p) => p.name === 'Upgrade')?.required, true, `${name}: a WebSocket only`);
      assert.ok(!op.responses['200'], `${name}: no server-sent events`);
      assert.equal(op['x-micro-sse'], false);
      assert.ok(op['x-micro-messages']?.request.properties);
      assert.equal(op['x-micro-messages']?.request.$schema, undefined, 'the dialect is the document\'s');
    }
    assert.match(doc.paths['/v1/shop/Upload']?.get?.description ?? '', /\{"end": true\}/);
  });

  test('a server stream with a flat request: also server-sent events, the request as query parameters', () => {
    const op = doc.paths['/v1/shop/Watch']?.get as Op;
    assert.equal(op['x-micro-sse'], true);
    const sse = op.responses['200']?.content?.['text/event-stream'];
    assert.ok(sse, 'text/event-stream');
    assert.deepEqual(sse['x-micro-data'], { type: 'object', properties: { ok: { type: 'boolean' } }, required: [] });
    assert.equal(op.parameters?.find((p) => p.name === 'Upgrade')?.required, false, 'SSE needs no upgrade');
    const query = (op.parameters ?? []).filter((p) => p.in === 'query');
    assert.deepEqual(query.map((p) => [p.name, p.schema.type, p.required]), [['item', 'string', false], ['mode', 'string', false], ['n', 'integer', false]]);
    assert.deepEqual(query[1]?.schema.enum, ['fast', 'slow']);
    assert.match(op.description ?? '', /text\/event-stream/);
  });

  test('GET only for read-only endpoints: server-sent events by GET, and x-micro-readonly, only where the registry says read-only', () => {
    const follow = doc.paths['/v1/shop/Follow']?.get as Op;
    assert.equal(follow['x-micro-sse'], false, 'not read-only: no GET with query parameters');
    assert.ok(!follow.responses['200']);
    assert.ok(!(follow.parameters ?? []).some((p) => p.in === 'query'));
    assert.match(follow.description ?? '', /POST the request as JSON with `Accept: text\/event-stream`/);
    assert.equal(doc.paths['/v1/shop/List']?.post?.['x-micro-readonly'], true);
    assert.equal(doc.paths['/v1/shop/Buy']?.post?.['x-micro-readonly'], undefined);
  });

  test('flatFields: what a GET takes as query parameters', () => {
    assert.deepEqual([...(flatFields(obj({ a: { type: 'string' }, b: { type: ['number', 'null'] }, c: { type: 'string', enum: ['x', 'y'] } })) ?? [])], [['a', 'string'], ['b', 'number'], ['c', 'string']]);
    assert.equal(flatFields(obj({ a: obj({}) })), undefined);
    assert.equal(flatFields(obj({ a: { type: 'array', items: { type: 'string' } } })), undefined);
    assert.equal(flatFields({ type: 'string' }), undefined);
    assert.deepEqual([...(flatFields({ type: 'object' }) ?? [])], []);
  });
});

describe('prices in the document', () => {
  const priced: ServiceRecord = {
    ...shop,
    endpoints: [
      { ...ep('Buy', 'unary', obj({ item: { type: 'string' } })), price: 100, freeQuota: 1000 },
      { ...ep('Sell', 'unary', obj({})), price: 2_500_000 },
      { ...ep('Watch', 'server', obj({})), price: 0, freeQuota: 5 },
      ep('List', 'unary', obj({})),
    ],
  };
  const all = () => 'credentials' as const;
  const op = (doc: Doc, name: string) => (doc.paths[`/v1/shop/${name}`]?.post ?? doc.paths[`/v1/shop/${name}`]?.get) as Op;

  test("each priced operation: x-micro-price and a sentence, from the endpoint's record", () => {
    const doc = openApiDocument('acme', [priced], all) as unknown as Doc;
    assert.deepEqual(op(doc, 'Buy')['x-micro-price'], { units: 100, dollars: '0.0001', freeQuota: 1000 });
    assert.equal(op(doc, 'Buy').description, 'Priced: 0.0001 USD (100 units of 10^-6 USD) a successful call beyond 1,000 free calls a month.');
    assert.equal(op(doc, 'Sell').description, 'Priced: 2.5 USD (2500000 units of 10^-6 USD) a successful call.');
    // a stream is one call: the sentence leads its description
    assert.deepEqual(op(doc, 'Watch')['x-micro-price'], { units: 0, dollars: '0', freeQuota: 5 });
    assert.match(op(doc, 'Watch').description ?? '', /^Metered: free of charge, each call counted in usage\. a server stream/);
    assert.equal(op(doc, 'List')['x-micro-price'], undefined);
    assert.equal(op(doc, 'List').description, undefined);
  });

  test('the prices hook (micro server: the pricing service) answers for every operation, with the home namespace', () => {
    const asked: string[] = [];
    const hook: GatewayPrices = (home, service, endpoint) => {
      asked.push(`${home}/${service}.${endpoint.name}`);
      if (endpoint.name === 'List') return { price: 7, freeQuota: 0 };
      return endpoint.name === 'Buy' ? { price: endpoint.price ?? 0, freeQuota: 1 } : undefined;
    };
    const doc = openApiDocument('acme', [priced], all, hook) as unknown as Doc;
    assert.deepEqual(asked.sort(), ['acme/shop.Buy', 'acme/shop.List', 'acme/shop.Sell', 'acme/shop.Watch']);
    assert.deepEqual(op(doc, 'List')['x-micro-price'], { units: 7, dollars: '0.000007', freeQuota: 0 }, "an admin's price of an endpoint its definition does not price");
    assert.deepEqual(op(doc, 'Buy')['x-micro-price'], { units: 100, dollars: '0.0001', freeQuota: 1 });
    assert.equal(op(doc, 'Sell')['x-micro-price'], undefined, 'the hook has the last word');
  });

  test('unitsAsDollars: exact decimals of a dollar', () => {
    const cases: [number, string][] = [[0, '0'], [1, '0.000001'], [100, '0.0001'], [35_000_000, '35'], [1_234_567, '1.234567'], [1e15, '1000000000'], [2_500_000, '2.5']];
    for (const [units, dollars] of cases) assert.equal(unitsAsDollars(units), dollars, String(units));
  });
});

describe('GET /openapi.json: public endpoints and credentials at the gateway', () => {
  let h: AuthHarness;
  let gw: Gateway;
  let userToken: string;

  before(async () => {
    h = await startAuthHarness();
    const admin = h.authAs(h.admin);
    const secret = (await admin.CreateAccount({ id: 'uma', namespace: 'tenant-o', scopes: ['dev'] })).secret as string;
    userToken = (await h.authAs().Token({ id: 'uma', secret, namespace: 'tenant-o' })).token;
    // List and Chat are open to anyone; Buy to any account (the default rule); Upload denied to everyone
    await admin.CreateRule({ id: 'open-list', namespace: 'tenant-o', resource: 'service:shop:List', scope: '', access: 'granted', priority: 1 });
    await admin.CreateRule({ id: 'open-chat', namespace: 'tenant-o', resource: 'service:shop:Chat', scope: '', access: 'granted', priority: 1 });
    await admin.CreateRule({ id: 'no-upload', namespace: 'tenant-o', resource: 'service:shop:Upload', scope: '', access: 'denied', priority: 5 });
    await h.registry.register(shop, { namespace: 'tenant-o' });
    // a core service of micro: it guards itself, and says which of its endpoints are public
    await h.registry.register({ name: 'auth', version: '1.0.0', nodes: [{ id: 'auth-1', address: 'tcp://127.0.0.1:9' }], endpoints: [ep('Token', 'unary', obj({ id: { type: 'string' } }, ['id'])), ep('CreateAccount', 'unary', obj({ id: { type: 'string' } }, ['id']))] }, { namespace: 'micro' });
    gw = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, rulesTtl: 0, rateLimit: false, selfGuarded: ['auth'], publicEndpoints: { auth: ['Token'] } });
    await gw.listen();
  });
  after(async () => {
    await gw?.close();
    await h?.close();
  });

  const get = async (headers: Record<string, string>) => {
    const res = await http(gw.url, 'GET', '/openapi.json', { headers });
    assert.equal(res.status, 200, res.body);
    return res.json as Doc;
  };
  const ops = (doc: Doc) => Object.fromEntries(Object.entries(doc.paths).map(([p, item]) => [p, (item.get ?? item.post) as Op]));
  const isOpen = (op: Op) => op.security.some((s) => Object.keys(s).length === 0);

  test('anonymous callers get the 401 of every call without credentials, even where public rules open endpoints', async () => {
    for (const headers of [{ 'micro-namespace': 'tenant-o' }, { 'micro-namespace': 'no-such-namespace' }, {}] as Record<string, string>[]) {
      const res = await http(gw.url, 'GET', '/openapi.json', { headers });
      assert.equal(res.status, 401, res.body);
      assert.deepEqual(res.json, { id: 'gateway', code: 401, detail: 'credentials required: send an access token or API key as Authorization: Bearer <token>', status: 'Unauthorized' });
    }
  });

  test('an account sees what it may call; `{}` only on the public ones', async () => {
    const mine = ops(await get({ authorization: `Bearer ${userToken}` }));
    assert.ok(!mine['/v1/shop/Upload'], 'denied to everyone: not listed');
    assert.ok(mine['/v1/shop/Hidden'] && mine['/v1/shop/Buy'], 'the default rule grants the rest');
    for (const [path, op] of Object.entries(mine)) assert.equal(isOpen(op), path === '/v1/shop/List' || path === '/v1/shop/Chat', path);
  });

  test('core services: admins see all their endpoints, `{}` on the public ones', async () => {
    const adminToken = (await h.authAs().Token(h.admin)).token;
    const all = ops(await get({ authorization: `Bearer ${adminToken}` }));
    assert.ok(isOpen(all['/v1/auth/Token'] as Op));
    assert.ok(all['/v1/auth/CreateAccount'] && !isOpen(all['/v1/auth/CreateAccount']));
  });

  test('bad credentials are a 401, not the anonymous document', async () => {
    const res = await http(gw.url, 'GET', '/openapi.json', { headers: { authorization: 'Bearer not-a-token' } });
    assert.equal(res.status, 401);
  });
});
