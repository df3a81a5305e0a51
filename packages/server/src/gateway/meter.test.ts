import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { defineService, endpoint, errors, serverStream, Service, ServiceAuth, z, type Account } from '@micro/sdk';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { Gateway } from './gateway.js';
import { credentialsRequired, type GatewayMeter, type MeteredCall, type MeterTicket } from './meter.js';
import { RateLimited } from './quota.js';
import { http } from './testing.js';

/*
 * The gateway's side of metering, with a meter of the test that writes down what it is
 * told (the platform's meter, with the ledger behind it, is tested in @micro/platform's
 * metering/gateway.test.ts): what admit is asked, when settle runs relative to the
 * answer, and how the gateway passes a meter's refusals on.
 */

const svcDef = defineService({
  name: 'meters',
  version: '1.0.0',
  endpoints: {
    Priced: endpoint({ request: z.object({ fail: z.boolean().optional() }), response: z.object({ ok: z.boolean() }) }),
    Free: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }),
    Public: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }),
    Count: serverStream({ request: z.object({ n: z.number(), fail: z.boolean().optional() }), response: z.object({ i: z.number() }), readonly: true }),
  },
});

interface Settled {
  requestId: string;
  ok: boolean;
  code: number;
  /** whether the client had its answer when settle was called */
  answered: boolean;
}

/** A meter that meters Priced, Public and Count, refuses as `refuse` says and writes down every call and settle. */
class RecordingMeter implements GatewayMeter {
  readonly admitted: MeteredCall[] = [];
  readonly settled: Settled[] = [];
  refuse: (() => Error) | undefined;
  /** settle of a success waits for this (the durable write) */
  slowSettle: Promise<void> | undefined;
  failSettle = false;
  answered = new Set<string>();
  async = false;

  admit(call: MeteredCall): MeterTicket | undefined | Promise<MeterTicket | undefined> {
    if (call.endpoint.name === 'Free') return undefined;
    if (!call.account) throw credentialsRequired();
    if (this.refuse) throw this.refuse();
    this.admitted.push(call);
    const ticket: MeterTicket = {
      settle: async (ok, code) => {
        this.settled.push({ requestId: call.requestId, ok, code, answered: this.answered.has(call.requestId) });
        if (ok && this.slowSettle) await this.slowSettle;
        if (ok && this.failSettle) throw errors.ServiceUnavailable('meter', 'the record could not be written');
      },
    };
    return this.async ? Promise.resolve(ticket) : ticket;
  }
}

describe('API gateway: the metering hook', () => {
  let h: AuthHarness;
  let gw: Gateway;
  let url: string;
  let svc: Service;
  let token: string;
  let adminToken: string;
  let key: string;
  let keyId: string;
  const meter = new RecordingMeter();
  let served = 0;

  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await http(url, 'POST', path, { headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    const id = res.headers['x-request-id'] as string | undefined;
    if (id) meter.answered.add(id);
    return res;
  };
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const settledOf = (requestId: unknown) => meter.settled.filter((s) => s.requestId === requestId);

  before(async () => {
    h = await startAuthHarness();
    const admin = h.authAs(h.admin);
    const secret = (await admin.CreateAccount({ id: 'dora', namespace: 'tenant-m', scopes: ['dev'] })).secret as string;
    token = (await h.authAs().Token({ id: 'dora', secret, namespace: 'tenant-m' })).token;
    adminToken = (await h.authAs().Token(h.admin)).token;
    const made = h.accounts.keys.create(h.accounts.get('dora', 'tenant-m') as Account, 'ci', ['dev']);
    key = made.key;
    keyId = made.info.id;
    await admin.CreateRule({ id: 'public', namespace: 'tenant-m', resource: 'service:meters:Public', scope: '', access: 'granted', priority: 1 });
    const creds = { ...h.accounts.issueServiceSecret('meters', 'tenant-m'), namespace: 'tenant-m' };
    svc = new Service(
      svcDef,
      {
        Priced: ({ fail }) => {
          served++;
          if (fail) throw errors.Conflict('meters', 'asked to fail');
          return { ok: true };
        },
        Free: () => ({ ok: true }),
        Public: () => ({ ok: true }),
        async *Count({ n, fail }) {
          for (let i = 0; i < n; i++) yield { i };
          if (fail) throw errors.BadGateway('meters', 'the stream broke');
        },
      },
      { namespace: 'tenant-m', registry: h.registry, logger: silent, auth: new ServiceAuth({ address: h.address, credentials: creds, refreshInterval: 0 }) },
    );
    await svc.start();
    gw = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, rulesTtl: 0, rateLimit: false, meter });
    url = await gw.listen();
  });

  after(async () => {
    await gw.close();
    await svc.stop();
    await h.close();
  });

  test('admit is told the request id, the caller, the key, the namespaces and the Idempotency-Key; settle comes before the 200', async () => {
    const res = await post('/v1/meters/Priced', {}, { ...bearer(key), 'idempotency-key': 'order 7' });
    assert.equal(res.status, 200, res.body);
    const id = res.headers['x-request-id'];
    const call = meter.admitted.find((c) => c.requestId === id) as MeteredCall;
    assert.deepEqual(
      { ...call, account: call.account?.id, endpoint: call.endpoint.name },
      { requestId: id, idempotencyKey: 'order 7', account: 'dora', keyId, namespace: 'tenant-m', home: 'tenant-m', service: 'meters', endpoint: 'Priced', stream: false },
    );
    assert.deepEqual(settledOf(id), [{ requestId: id, ok: true, code: 200, answered: false }]);
  });

  test('the 200 waits for settle; a settle that fails is the answer, and admit may answer a Promise', async () => {
    let release: () => void = () => undefined;
    meter.slowSettle = new Promise<void>((resolve) => (release = resolve));
    const settling = meter.settled.length;
    let done = false;
    const pending = post('/v1/meters/Priced', {}, bearer(token)).then((r) => {
      done = true;
      return r;
    });
    while (meter.settled.length === settling) await new Promise((r) => setTimeout(r, 5));
    // a gateway that answered before the record was written would have answered by now
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false, 'no answer before the record');
    release();
    assert.equal((await pending).status, 200);
    meter.slowSettle = undefined;
    meter.failSettle = true;
    meter.async = true;
    try {
      const res = await post('/v1/meters/Priced', {}, bearer(token));
      assert.equal(res.status, 503);
      assert.match(res.body, /the record could not be written/);
    } finally {
      meter.failSettle = false;
      meter.async = false;
    }
  });

  test('a failed call is settled with its status; an unmetered one and the calls of micro are not offered', async () => {
    const failed = await post('/v1/meters/Priced', { fail: true }, bearer(token));
    assert.equal(failed.status, 409);
    assert.deepEqual(settledOf(failed.headers['x-request-id']).map((s) => [s.ok, s.code]), [[false, 409]]);
    const count = meter.admitted.length;
    assert.equal((await post('/v1/meters/Free', {}, bearer(token))).status, 200);
    assert.equal((await post('/v1/meters/Priced', {}, { ...bearer(adminToken), 'micro-namespace': 'tenant-m' })).status, 200);
    assert.equal(meter.admitted.length, count);
  });

  test("a meter's refusals: its 403 as it is, 429 with Retry-After, and an anonymous caller's 401 is the gateway's one answer to strangers", async () => {
    const before = served;
    meter.refuse = () => new RateLimited(7, 'v1.blocked', 'too many priced calls');
    try {
      const limited = await post('/v1/meters/Priced', {}, bearer(token));
      assert.equal(limited.status, 429);
      assert.equal(limited.headers['retry-after'], '7');
      meter.refuse = () => errors.Forbidden('v1.blocked', 'insufficient credit');
      const blocked = await post('/v1/meters/Priced', {}, bearer(token));
      assert.deepEqual(blocked.json, { id: 'v1.blocked', code: 403, detail: 'insufficient credit', status: 'Forbidden' });
      assert.match(String(blocked.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    } finally {
      meter.refuse = undefined;
    }
    const anonymous = await post('/v1/meters/Public', {}, { 'micro-namespace': 'tenant-m' });
    assert.equal(anonymous.status, 401);
    assert.deepEqual(anonymous.json, credentialsRequired().toJSON());
    assert.equal(served, before, 'a refused call is not made');
  });

  test('a bad Idempotency-Key is a 400 for every caller, metered or not', async () => {
    for (const path of ['/v1/meters/Priced', '/v1/meters/Free']) {
      const res = await post(path, {}, { ...bearer(token), 'idempotency-key': 'x'.repeat(201) });
      assert.equal(res.status, 400);
      assert.match(res.body, /idempotency-key: 1 to 200 printable ASCII characters/);
    }
  });

  test('streams: settled once, at their end (success before the end is sent); refused at the WebSocket handshake', async () => {
    const sse = await post('/v1/meters/Count', { n: 2 }, { ...bearer(token), accept: 'text/event-stream' });
    assert.match(sse.body, /event: end/);
    assert.deepEqual(settledOf(sse.headers['x-request-id']).map((s) => [s.ok, s.code, s.answered]), [[true, 200, false]]);
    assert.equal(meter.admitted.find((c) => c.requestId === sse.headers['x-request-id'])?.stream, true);
    const broken = await post('/v1/meters/Count', { n: 1, fail: true }, { ...bearer(token), accept: 'text/event-stream' });
    assert.deepEqual(settledOf(broken.headers['x-request-id']).map((s) => [s.ok, s.code]), [[false, 502]]);
    // a WebSocket: the 101 carries the request id
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/meters/Count`, { headers: bearer(token) });
    let id = '';
    ws.once('upgrade', (res) => (id = res.headers['x-request-id'] as string));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    assert.match(id, /^[0-9a-f-]{36}$/);
    ws.send(JSON.stringify({ n: 3 }));
    assert.equal(await closed, 1000);
    assert.deepEqual(settledOf(id).map((s) => [s.ok, s.code]), [[true, 200]]);
    meter.refuse = () => errors.Forbidden('v1.blocked', 'usage cap exceeded');
    try {
      const refused = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/meters/Count`, { headers: bearer(token) });
      const status = await new Promise<number | undefined>((resolve) => refused.once('unexpected-response', (_req, res) => resolve(res.statusCode)));
      assert.equal(status, 403);
    } finally {
      meter.refuse = undefined;
    }
  });
});
