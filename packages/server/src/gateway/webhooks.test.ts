import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { errors } from '@micro/sdk';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { Gateway } from './gateway.js';
import { http } from './testing.js';
import { collectWebhooks, webhookRoute, type WebhookRequest } from './webhooks.js';

describe('gateway: raw webhook routes of the core services', () => {
  let h: AuthHarness;
  let gw: Gateway;
  let url: string;
  const seen: WebhookRequest[] = [];

  before(async () => {
    h = await startAuthHarness();
    const webhooks = collectWebhooks([
      {
        def: { name: 'payments' },
        webhooks: {
          echo: async (req) => {
            seen.push(req);
            return { status: 200, body: { bytes: req.body.length, sha: req.body.toString('base64') } };
          },
          refuse: async () => {
            throw errors.BadRequest('payments', 'signature: does not match');
          },
          crash: async () => {
            throw new Error('secret internals');
          },
        },
      },
    ]);
    gw = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, maxBodyBytes: 1024, webhooks, dashboardDir: false });
    url = await gw.listen();
  });
  after(async () => {
    await gw.close();
    await h.close();
  });

  test('the body reaches the route byte for byte, whatever its type; no credentials needed', async () => {
    const body = Buffer.from('{"id": "evt_1",  "x":\t1}\n\u00e9', 'utf8');
    const res = await http(url, 'POST', '/webhooks/echo', { headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': 't=1,v1=ab' }, body });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, { bytes: body.length, sha: body.toString('base64') });
    const req = seen.at(-1) as WebhookRequest;
    assert.equal(req.headers['stripe-signature'], 't=1,v1=ab');
    assert.equal(req.method, 'POST');
    assert.match(req.peer, /^tcp:127\.0\.0\.1$/);
    // not JSON at all, and a form: still handed over as bytes
    const text = await http(url, 'POST', '/webhooks/echo/', { headers: { 'content-type': 'text/plain' }, body: 'not json {' });
    assert.deepEqual(text.json, { bytes: 10, sha: Buffer.from('not json {').toString('base64') });
    const empty = await http(url, 'POST', '/webhooks/echo');
    assert.deepEqual(empty.json, { bytes: 0, sha: '' });
  });

  test('wrong method, unknown or malformed names, oversized bodies: refused before the route runs', async () => {
    const before = seen.length;
    const get = await http(url, 'GET', '/webhooks/echo');
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST');
    for (const path of ['/webhooks/nope', '/webhooks/', '/webhooks/../v1/auth/Token', '/webhooks/ECHO', '/webhooks/echo/extra', `/webhooks/${'a'.repeat(65)}`]) {
      const res = await http(url, 'POST', path, { body: '{}' });
      assert.equal(res.status, 404, `${path}: ${res.body}`);
      assert.match((res.json as { detail: string }).detail, /^no webhook .*: the webhooks here are \/webhooks\/echo, \/webhooks\/refuse, \/webhooks\/crash$/);
    }
    const announced = await http(url, 'POST', '/webhooks/echo', { headers: { 'content-length': 5000 }, body: 'x'.repeat(5000) });
    assert.equal(announced.status, 413);
    const chunked = await http(url, 'POST', '/webhooks/echo', { headers: { 'transfer-encoding': 'chunked' }, body: 'x'.repeat(5000) });
    assert.equal(chunked.status, 413);
    assert.equal(seen.length, before, 'the route never ran');
  });

  test("a route's typed error is its answer; anything else is a 500 without details", async () => {
    const refused = await http(url, 'POST', '/webhooks/refuse', { body: '{}' });
    assert.equal(refused.status, 400);
    assert.deepEqual(refused.json, { id: 'payments', code: 400, detail: 'signature: does not match', status: 'Bad Request' });
    const crashed = await http(url, 'POST', '/webhooks/crash', { body: '{}' });
    assert.equal(crashed.status, 500);
    assert.doesNotMatch(crashed.body, /internals/);
  });

  test('two services claiming one name, or a bad name, stop the server', () => {
    const route = async () => ({ status: 200, body: {} });
    assert.throws(() => collectWebhooks([{ def: { name: 'a' }, webhooks: { stripe: route } }, { def: { name: 'b' }, webhooks: { stripe: route } }]), /core services a and b both serve \/webhooks\/stripe/);
    assert.throws(() => collectWebhooks([{ def: { name: 'a' }, webhooks: { 'Bad/Name': route } }]), /webhook name "Bad\/Name" must be/);
    assert.equal(collectWebhooks([{ def: { name: 'a' } }]).size, 0);
    assert.throws(() => webhookRoute(new Map(), '/webhooks/stripe'), /no webhook "stripe": this server serves none/);
  });
});
