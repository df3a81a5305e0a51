import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { createLogger } from '@micro/sdk';
import { MicroServer } from '../server.js';
import { http, raw, type HttpAnswer } from './testing.js';

// Cross-site requests against a real micro server: a page of another site makes the
// victim's browser send the micro-token cookie with a form, a link, an image or a
// WebSocket. None of them may change anything; the gateway's own pages keep working.

const silent = createLogger({ level: 'silent' });
const EVIL = 'https://evil.example';

describe('the micro-token cookie only from the gateway\'s own pages; GET changes nothing', () => {
  let home: string;
  let server: MicroServer;
  let url: string;
  let host: string;
  let token: string;
  let cookie: string;
  const savedCors = process.env.MICRO_GATEWAY_CORS_ORIGINS;

  const call = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> =>
    http(url, 'POST', path, { headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const bearer = () => ({ authorization: `Bearer ${token}` });
  /** the victim's record and config value, read with the bearer token */
  const victimRecord = async () => ((await call('/v1/store/Read', { key: 'victim' }, bearer())).json as { records: { value: string }[] }).records.map((r) => r.value);
  const victimConfig = async () => (await call('/v1/config/Get', { path: 'victim.setting' }, bearer())).json;
  const assertUntouched = async () => {
    assert.deepEqual(await victimRecord(), ['precious'], 'the store record is still there');
    assert.deepEqual(await victimConfig(), { found: true, value: 'keep-me' }, 'the config value is still there');
  };
  const refused = (res: HttpAnswer, detail = /micro-token cookie is not accepted/) => {
    assert.equal(res.status, 403, res.body);
    assert.match((res.json as { detail: string }).detail, detail);
  };

  before(async () => {
    process.env.MICRO_GATEWAY_CORS_ORIGINS = 'https://app.example';
    home = mkdtempSync(join(tmpdir(), 'micro-gw-csrf-'));
    server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent }).start();
    url = server.gatewayUrl as string;
    host = new URL(url).host;
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const tok = await call('/v1/auth/Token', { id: admin.id, secret: admin.secret, namespace: 'micro' });
    assert.equal(tok.status, 200, tok.body);
    token = (tok.json as { token: string }).token;
    cookie = `micro-token=${token}`;
    assert.equal((await call('/v1/store/Write', { record: { key: 'victim', value: 'precious' } }, bearer())).status, 200);
    assert.equal((await call('/v1/config/Set', { path: 'victim.setting', value: 'keep-me' }, bearer())).status, 200);
  });

  after(async () => {
    if (savedCors === undefined) delete process.env.MICRO_GATEWAY_CORS_ORIGINS;
    else process.env.MICRO_GATEWAY_CORS_ORIGINS = savedCors;
    await server?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  test('a cross-site POST with the cookie is refused: a foreign Origin, Sec-Fetch-Site cross-site or same-site', async () => {
    refused(await call('/v1/store/Delete', { key: 'victim' }, { cookie, origin: EVIL }), /from origin "https:\/\/evil\.example"/);
    refused(await call('/v1/store/Delete', { key: 'victim' }, { cookie, origin: 'null' }));
    refused(await call('/v1/store/Delete', { key: 'victim' }, { cookie, origin: `https://${host}.evil.example` }));
    refused(await call('/v1/store/Delete', { key: 'victim' }, { cookie, 'sec-fetch-site': 'cross-site' }), /Sec-Fetch-Site calls "cross-site"/);
    refused(await call('/v1/store/Delete', { key: 'victim' }, { cookie, 'sec-fetch-site': 'same-site' }));
    // a foreign Origin is not saved by a Sec-Fetch-Site that claims otherwise
    refused(await call('/v1/config/Delete', { path: 'victim' }, { cookie, origin: EVIL, 'sec-fetch-site': 'same-origin' }));
    // Sec-Fetch-Site none is a typed address: a GET, never a POST
    refused(await call('/v1/store/Delete', { key: 'victim' }, { cookie, 'sec-fetch-site': 'none' }));
    await assertUntouched();
  });

  test('a form of an old browser (no Origin, no Sec-Fetch-Site) cannot POST with the cookie', async () => {
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x']) {
      refused(await http(url, 'POST', '/v1/store/Delete', { headers: { cookie, 'content-type': type }, body: type.startsWith('text') ? '{"key":"victim"}' : 'key=victim' }), /neither a GET nor a POST of application\/json/);
    }
    // nor a POST without a body or a type (as navigator.sendBeacon can send)
    refused(await http(url, 'POST', '/v1/config/Delete', { headers: { cookie } }));
    await assertUntouched();
  });

  test('GET of an endpoint that changes state: 405 with Allow: POST, with a token or the cookie, and nothing changes', async () => {
    for (const [path, headers] of [
      ['/v1/store/Delete?key=victim', bearer()],
      ['/v1/store/Delete?key=victim', { cookie, 'sec-fetch-site': 'same-origin' }],
      ['/v1/store/Delete?key=victim', { cookie }],
      ['/v1/store/Write?key=victim', bearer()],
      ['/v1/config/Delete?path=victim.setting', bearer()],
      ['/v1/config/Delete?path=victim', { cookie, 'sec-fetch-site': 'none' }],
      ['/v1/runtime/Delete?name=anything', bearer()],
      ['/v1/auth/DeleteAccount?id=admin', bearer()],
    ] as const) {
      const res = await http(url, 'GET', path, { headers });
      assert.equal(res.status, 405, `${path}: ${res.body}`);
      assert.equal(res.headers.allow, 'POST');
      assert.match((res.json as { detail: string }).detail, /is not read-only: GET reaches only read-only endpoints; POST the request as JSON/);
    }
    // runtime.Update, a server stream that rebuilds: not by GET as server-sent events either
    const sse = await http(url, 'GET', '/v1/runtime/Update?name=anything', { headers: { ...bearer(), accept: 'text/event-stream' } });
    assert.equal(sse.status, 405, sse.body);
    assert.match((sse.json as { detail: string }).detail, /POST the request as JSON with Accept: text\/event-stream, or open a WebSocket/);
    await assertUntouched();
    assert.equal((await call('/v1/auth/ListAccounts', {}, bearer())).status, 200, 'the admin account is still there');
  });

  test('a WebSocket opened with the cookie from another site is refused before the upgrade', async () => {
    const open = (headers: Record<string, string>, protocols = ['micro']) =>
      new Promise<{ status: number; messages: unknown[] }>((resolve, reject) => {
        const ws = new WebSocket(`ws://${host}/v1/store/Delete`, protocols, { headers });
        const messages: unknown[] = [];
        ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, messages }));
        ws.once('open', () => ws.send(JSON.stringify({ key: 'never-there' })));
        ws.on('message', (m: Buffer) => messages.push(JSON.parse(m.toString('utf8'))));
        ws.once('close', () => resolve({ status: 101, messages }));
        ws.once('error', reject);
      });
    assert.equal((await open({ cookie, origin: EVIL })).status, 403);
    assert.equal((await open({ cookie, origin: EVIL, 'sec-fetch-site': 'cross-site' })).status, 403);
    // without an Origin a WebSocket does not come from a browser: the cookie is no credential for it
    assert.equal((await open({ cookie })).status, 403);
    const refusal = await raw(url, `GET /v1/store/Delete HTTP/1.1\r\nhost: ${host}\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\norigin: ${EVIL}\r\ncookie: ${cookie}\r\n\r\n`);
    assert.equal(refusal.status, 403);
    assert.match((refusal.json as { detail: string }).detail, /micro-token cookie is not accepted from origin/);
    await assertUntouched();
    // the gateway's own page may; a token in the subprotocol works from any origin, as a header does
    assert.deepEqual(await open({ cookie, origin: `http://${host}` }), { status: 101, messages: [{}] });
    assert.deepEqual(await open({ origin: EVIL }, ['micro', `micro-token.${token}`]), { status: 101, messages: [{}] });
  });

  test('the gateway\'s own pages, CORS-listed origins and non-browser clients keep the cookie', async () => {
    const read = (headers: Record<string, string>) => call('/v1/store/Read', { key: 'victim' }, { cookie, ...headers });
    const ok = (res: HttpAnswer) => {
      assert.equal(res.status, 200, res.body);
      assert.deepEqual((res.json as { records: { value: string }[] }).records.map((r) => r.value), ['precious']);
    };
    ok(await read({ 'sec-fetch-site': 'same-origin', origin: `http://${host}` }));
    ok(await read({ 'sec-fetch-site': 'same-origin' }));
    ok(await read({ origin: `http://${host}` })); // a browser without Sec-Fetch-*
    ok(await read({ origin: `https://${host}`, 'x-forwarded-proto': 'https' })); // behind a TLS proxy
    ok(await read({ origin: 'https://app.example', 'sec-fetch-site': 'cross-site' })); // MICRO_GATEWAY_CORS_ORIGINS
    ok(await read({})); // curl: a JSON POST without Origin
    refused(await read({ origin: `https://${host}` })); // the scheme counts: this gateway speaks http
    // GET of read-only endpoints: typed in the address bar (none), or a plain non-browser GET
    for (const headers of [{ 'sec-fetch-site': 'none' }, {}, { 'sec-fetch-site': 'same-origin' }] as Record<string, string>[]) {
      const res = await http(url, 'GET', '/v1/store/Read?key=victim', { headers: { cookie, ...headers } });
      assert.equal(res.status, 200, res.body);
    }
    // but an image or a link of another site is not
    refused(await http(url, 'GET', '/v1/store/Read?key=victim', { headers: { cookie, 'sec-fetch-site': 'cross-site' } }));
    refused(await http(url, 'GET', '/openapi.json', { headers: { cookie, origin: EVIL } }));
    // a bearer token is no cookie: it works from any origin (CORS decides who reads the answer)
    assert.equal((await call('/v1/store/Read', { key: 'victim' }, { ...bearer(), origin: EVIL, 'sec-fetch-site': 'cross-site' })).status, 200);
  });

  test('without credentials: an existing core endpoint, an unknown service and an unknown endpoint answer the same 401', async () => {
    const answer = async (method: string, path: string) => {
      const res = await raw(url, `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n${method === 'POST' ? 'content-type: application/json\r\ncontent-length: 2\r\n\r\n{}' : '\r\n'}`);
      // but its date and request id (a new one on every answer)
      assert.match(res.text, /\r\nx-request-id: [0-9a-f-]{36}\r\n/);
      return res.text.replace(/\r\ndate: [^\r]*/i, '').replace(/\r\nx-request-id: [^\r]*/i, '');
    };
    for (const method of ['POST', 'GET']) {
      const existing = await answer(method, '/v1/store/Read');
      assert.match(existing, /^HTTP\/1\.1 401 /);
      assert.match(existing, /\{"id":"gateway","code":401,"detail":"credentials required: send an access token or API key as Authorization: Bearer <token>","status":"Unauthorized"\}$/);
      for (const path of ['/v1/nope/Read', '/v1/store/Nope', '/v1/config/Get', '/v1/secrets/Get', '/v1/auth/CreateAccount']) assert.equal(await answer(method, path), existing, `${method} ${path}`);
    }
    const anonymousDoc = await http(url, 'GET', '/openapi.json');
    assert.equal(anonymousDoc.status, 401);
    // the public endpoints still answer without credentials
    const health = await call('/v1/auth/Debug/Health', {});
    assert.equal(health.status, 200, health.body);
    const wrong = await call('/v1/auth/Token', { id: 'admin', secret: 'not-it', namespace: 'micro' });
    assert.equal(wrong.status, 401);
    assert.notEqual((wrong.json as { id: string }).id, 'gateway', 'auth.Token was reached');
  });
});
