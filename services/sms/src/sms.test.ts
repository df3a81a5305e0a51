import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publicService } from '@micro/services-kit';
import { expectRefused, expectShape, startPlatform, type Answer, type Platform } from '@micro/services-kit/testing';
import { sms } from './definition.js';
import { smsHandlers } from './handlers.js';
import { TwilioProvider } from './twilio.js';
import { startFakeTwilio, UNREACHABLE } from './twilio-fake.js';

const PER_HOUR = 15;

/** M3O's error of the sms service (the kit's expectRefused), with a status text */
function refused(res: Answer, status: number, detail: RegExp) {
  expectRefused(res, status, detail, 'sms');
  assert.ok(res.body.status);
}

/** Sets a config value of namespace micro as the platform's staff do (`micro config set … --secret`). */
async function setConfig(p: Platform, path: string, value: string, secret = true): Promise<void> {
  const res = await fetch(`${p.url}/v1/config/Set`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${p.adminToken}` },
    body: JSON.stringify({ path, value, namespace: 'micro', secret }),
  });
  assert.equal(res.status, 200, await res.text());
}

test("sms: Send as M3O's client calls it, through the outbox and then the platform's Twilio account", async (t) => {
  const outboxDir = join(mkdtempSync(join(tmpdir(), 'micro-sms-')), 'sms-outbox');
  t.after(() => rmSync(join(outboxDir, '..'), { recursive: true, force: true }));
  const service = publicService(sms, (engines) => smsHandlers(engines, { outboxDir, perHour: PER_HOUR, twilio: { retryDelaysMs: [5, 5] } }));
  const p = await startPlatform(t, { services: [service] });
  if (!p) return;
  t.after(() => p.close());
  const a = (body: unknown) => p.call(p.a.key, 'sms', 'Send', body);
  const b = (body: unknown) => p.call(p.b.key, 'sms', 'Send', body);
  let sentByA = 0;

  await t.test('offline: the outbox, a private folder of JSON files', async () => {
    const res = await a({ from: 'Acme', to: '+14155552671', message: 'Your code is 123456' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await expectShape('sms', 'Send', res.body);
    assert.equal(res.body.status, 'outbox');
    sentByA++;
    const file = join(outboxDir, res.body.info);
    assert.deepEqual({ ...JSON.parse(readFileSync(file, 'utf8')), at: undefined }, { to: '+14155552671', body: 'Acme: Your code is 123456', tenant: 'tenant-a', at: undefined });
    assert.equal(statSync(outboxDir).mode & 0o777, 0o700);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  const twilio = await startFakeTwilio(t);
  await t.test("with the platform's Twilio account in config secrets of micro: Twilio's API, the account never shown", async () => {
    await setConfig(p, 'twilio.sid', twilio.sid);
    await setConfig(p, 'twilio.token', twilio.token);
    await setConfig(p, 'twilio.from', '+15005550006');
    await setConfig(p, 'twilio.url', twilio.url, false);
    const res = await a({ from: 'Acme', to: '+447911123456', message: 'Hello from Acme\nLine two' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await expectShape('sms', 'Send', res.body);
    sentByA++;
    assert.deepEqual(res.body, { status: 'queued', info: twilio.messages[0]?.sid });
    assert.deepEqual(twilio.messages[0], { sid: res.body.info, to: '+447911123456', from: '+15005550006', body: 'Acme: Hello from Acme\nLine two' });
    assert.ok(!JSON.stringify(res.body).includes(twilio.token));
    // a tenant reads its own config only: micro's secrets are not there for it
    const peek = await fetch(`${p.url}/v1/config/Get`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${p.b.key}` }, body: JSON.stringify({ path: 'twilio', namespace: 'micro', secrets: true }) });
    assert.ok(!(await peek.text()).includes(twilio.token));
  });

  await t.test('retries where Twilio cannot have made the message (429, 503); not after a 500', async () => {
    twilio.failNext(429, 503);
    const before = twilio.messages.length;
    const res = await a({ to: '+14155552671', message: 'after a retry' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    sentByA++;
    assert.equal(twilio.messages.length, before + 1);
    twilio.failNext(429, 429, 429);
    refused(await a({ to: '+14155552671', message: 'busy' }), 503, /^the SMS provider is busy \(Twilio 429 \(error 20429\)\); nothing was sent, try again later$/);
    sentByA++;
    const requests = twilio.requests();
    twilio.failNext(500);
    refused(await a({ to: '+14155552671', message: 'maybe' }), 502, /may or may not have been sent, so it was not retried/);
    sentByA++;
    assert.equal(twilio.requests(), requests + 1);
    assert.equal(twilio.messages.length, before + 1);
  });

  await t.test("Twilio's refusals: a number it cannot reach is a 400, a wrong account a 502 that shows nothing of it", async () => {
    refused(await a({ to: UNREACHABLE, message: 'hi' }), 400, /refused the message \(Twilio 400 \(error 21211\)\): The 'To' number/);
    sentByA++;
    await setConfig(p, 'twilio.token', 'a-wrong-token');
    const res = await a({ to: '+14155552671', message: 'hi' });
    refused(res, 502, /^the platform's SMS account was refused by the provider \(Twilio 401 \(error 20003\)\); nothing was sent$/);
    sentByA++;
    assert.ok(!JSON.stringify(res.body).includes('wrong-token') && !JSON.stringify(res.body).includes(twilio.sid));
    await setConfig(p, 'twilio.token', twilio.token);
  });

  await t.test('phone numbers in every wrong shape, and other bad input: a 400 naming the field, nothing sent', async () => {
    const before = twilio.requests();
    for (const [to, why] of [
      [undefined, /Missing to/],
      ['', /Missing to/],
      ['07911123456', /^to: must be a phone number in E\.164 form with its country code/],
      ['447911123456', /E\.164/],
      ['+44 7911 123456', /^to: must be one phone number in E\.164 form: \+ and at most 15 digits, no spaces/],
      ['+1 (415) 555-2671', /no spaces, dashes or brackets/],
      ['+1-415-555-2671', /E\.164/],
      ['+0123456789', /E\.164/],
      ['+1234567890123456', /at most 15 digits/],
      ['+1555', /is not a valid phone number/],
      ['+999123456789', /is not a valid phone number/],
      ['+14155552671,+14155552672', /E\.164/],
      ['+14155552671\r\n', /E\.164/],
      ['+１４１５５５５２６７１', /E\.164/],
      ['tel:+14155552671', /E\.164/],
      ['+44791112345six', /E\.164/],
    ] as const) {
      refused(await a({ to, message: 'hi' }), 400, why);
    }
    refused(await a({ to: 42, message: 'hi' }), 400, /to/);
    refused(await a({ to: '+'.padEnd(40, '1'), message: 'hi' }), 400, /to/);
    refused(await a({ to: '+14155552671' }), 400, /Missing message/);
    refused(await a({ to: '+14155552671', message: '   ' }), 400, /Missing message/);
    refused(await a({ to: '+14155552671', message: 'x'.repeat(1601) }), 400, /message/);
    refused(await a({ to: '+14155552671', from: 'Acme', message: 'x'.repeat(1596) }), 400, /^message: with "Acme: " before it is 1602 characters, at most 1600/);
    refused(await a({ to: '+14155552671', message: 'a\u0000b' }), 400, /^message: must not contain control characters/);
    refused(await a({ to: '+14155552671', from: 'Acme\r\nX', message: 'hi' }), 400, /^from: is the name/);
    refused(await a({ to: '+14155552671', from: '<script>', message: 'hi' }), 400, /^from: is the name/);
    refused(await a({ to: '+14155552671', from: 'x'.repeat(21), message: 'hi' }), 400, /from/);
    assert.equal(twilio.requests(), before);
  });

  await t.test("per-namespace limit: a's hourly allowance used up is a 429 for a only", async () => {
    for (let i = sentByA; i < PER_HOUR; i++) assert.equal((await a({ to: '+14155552671', message: `n${i}` })).status, 200);
    refused(await a({ to: '+14155552671', message: 'one more' }), 429, /^tenant tenant-a sent 15 messages this hour, its limit; more in \d+ minutes$/);
    const other = await b({ to: '+14155552671', message: 'from b' });
    assert.equal(other.status, 200, JSON.stringify(other.body));
    // the count is micro's, not in the tenant's cache, where it could reset it
    const reset = await p.call(p.a.key, 'cache', 'Delete', { key: `sms/sent/tenant-a/${Math.floor(Date.now() / 3_600_000)}` });
    assert.ok(reset.status === 200 || reset.status === 404, JSON.stringify(reset.body));
    refused(await a({ to: '+14155552671', message: 'still limited' }), 429, /its limit/);
  });
});

test('TwilioProvider: a refused connection is retried, then a 503', async () => {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const provider = new TwilioProvider({ sid: 'AC1', token: 't', from: '+15005550006', url: `http://127.0.0.1:${port}` }, { retryDelaysMs: [5, 5] });
  await assert.rejects(provider.send({ to: '+14155552671', body: 'hi' }), (err: { code?: number; detail?: string }) => err.code === 503 && /cannot be reached/.test(err.detail ?? ''));
});

test("sms against Twilio's test credentials (TWILIO_TEST_SID, TWILIO_TEST_TOKEN)", async (t) => {
  const sid = process.env.TWILIO_TEST_SID;
  const token = process.env.TWILIO_TEST_TOKEN;
  if (!sid || !token) {
    t.skip('TWILIO_TEST_SID and TWILIO_TEST_TOKEN are not set: set them to an account\'s test credentials to run this lane against api.twilio.com');
    return;
  }
  // Twilio's magic numbers for test credentials: +15005550006 is a valid sender, +15005550001 an invalid recipient
  const provider = new TwilioProvider({ sid, token, from: '+15005550006' }, { retryDelaysMs: [1000] });
  const sent = await provider.send({ to: '+14155552671', body: 'micro sms test lane' });
  assert.match(sent.id, /^SM[0-9a-f]{32}$/);
  await assert.rejects(provider.send({ to: '+15005550001', body: 'x' }), (err: { code?: number; detail?: string }) => err.code === 400 && /21211/.test(err.detail ?? ''));
});
