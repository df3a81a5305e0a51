import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mailCoreService, parseSmtpUrl, SmtpMailer } from '@micro/platform';
import { dkimKeyPair, parseMail, startSmtpServer, verifyDkim } from '@micro/platform/testing';
import { expectRefused, expectShape, startPlatform, type Answer } from '@micro/services-kit/testing';
import { service } from './handlers.js';

const FROM = 'no-reply@m3o.test';
const PER_TENANT = 12;

/** M3O's error of the email service (the kit's expectRefused), with a status text */
function refused(res: Answer, status: number, detail: RegExp) {
  expectRefused(res, status, detail, 'email');
  assert.ok(res.body.status, JSON.stringify(res.body));
}

test("email: Send, Parse and Validate as M3O's client calls them, through the platform's mail", async (t) => {
  const smtp = await startSmtpServer(t);
  const keys = dkimKeyPair();
  const dkim = { domainName: 'm3o.test', keySelector: 'm3o', privateKey: keys.privateKey };
  const mailer = new SmtpMailer({ target: parseSmtpUrl(smtp.url()), from: `Platform <${FROM}>`, dkim, retryDelaysMs: [5, 5] });
  t.after(() => mailer.close());
  const p = await startPlatform(t, { services: [service], coreServices: [mailCoreService({ mailer, perTenant: PER_TENANT })] });
  if (!p) return;
  t.after(() => p.close());
  const a = (ep: string, body: unknown) => p.call(p.a.key, 'email', ep, body);
  const b = (ep: string, body: unknown) => p.call(p.b.key, 'email', ep, body);
  let sentByA = 0;

  await t.test('Send: from the platform address under the display name, text and HTML, reply-to, DKIM-signed', async () => {
    const res = await a('Send', { from: 'Acme Support', to: 'alice@example.com', subject: 'Your order', text_body: 'It shipped.', html_body: '<p>It <b>shipped</b>.</p>', reply_to: 'help@acme.example' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await expectShape('email', 'Send', res.body);
    assert.deepEqual(res.body, {});
    sentByA++;
    const got = smtp.received.at(-1)!;
    assert.equal(got.from, FROM);
    assert.deepEqual(got.to, ['alice@example.com']);
    const m = await parseMail(got.raw);
    assert.deepEqual(m.from?.value, [{ name: 'Acme Support', address: FROM }]);
    assert.equal(m.replyTo?.text, 'help@acme.example');
    assert.equal(m.subject, 'Your order');
    assert.equal(m.text?.trim(), 'It shipped.');
    assert.equal(m.html, '<p>It <b>shipped</b>.</p>');
    assert.deepEqual(await verifyDkim(got.raw, 'm3o', 'm3o.test', keys.txt), [{ result: 'pass', domain: 'm3o.test', selector: 'm3o' }]);
  });

  await t.test('Send: an HTML body alone gets its text part made from it; from is optional; camelCase names taken', async () => {
    const res = await a('Send', { to: 'bob@example.com', subject: 'News', htmlBody: '<h1>Hello</h1><p>Read <a href="https://acme.example/n">this</a>.</p>', replyTo: 'news@acme.example' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    sentByA++;
    const m = await parseMail(smtp.received.at(-1)!.raw);
    assert.match(m.text ?? '', /HELLO/);
    assert.match(m.text ?? '', /this \[https:\/\/acme\.example\/n\]/);
    assert.deepEqual(m.from?.value, [{ name: 'Platform', address: FROM }]);
    assert.equal(m.replyTo?.text, 'news@acme.example');
  });

  await t.test('Parse and Validate', async () => {
    const named = await a('Parse', { address: 'Alice Smith <alice@example.com>' });
    assert.equal(named.status, 200, JSON.stringify(named.body));
    await expectShape('email', 'Parse', named.body);
    assert.deepEqual(named.body, { address: 'alice@example.com', name: 'Alice Smith' });
    assert.deepEqual((await a('Parse', { address: '"Smith, Alice" <alice@example.com>' })).body, { address: 'alice@example.com', name: 'Smith, Alice' });
    assert.deepEqual((await a('Parse', { address: ' bob@example.com ' })).body, { address: 'bob@example.com', name: '' });
    const ok = await a('Validate', { address: 'alice@example.com' });
    await expectShape('email', 'Validate', ok.body);
    assert.deepEqual(ok.body, { is_valid: true });
    for (const address of ['alice@example', 'not an address', 'Alice <alice@example.com>', 'a@x.com, b@x.com', 'alice@example.com\r\nBcc: eve@evil.com', '"a b"@example.com', `${'a'.repeat(65)}@example.com`, 'ålice@example.com']) {
      assert.deepEqual((await a('Validate', { address })).body, { is_valid: false }, address);
    }
    // what Validate says is what Send does
    refused(await a('Send', { to: 'alice@example', subject: 's', text_body: 't' }), 400, /^to: the domain "example" is not a domain name/);
  });

  await t.test('bad input: a 400 naming the field, and nothing sent', async () => {
    const before = smtp.received.length;
    const send = { to: 'alice@example.com', subject: 'Hi', text_body: 'Hello' };
    refused(await a('Send', { ...send, to: undefined }), 400, /Missing to/);
    refused(await a('Send', { ...send, subject: ' ' }), 400, /Missing subject/);
    refused(await a('Send', { ...send, text_body: undefined }), 400, /Missing text_body or html_body/);
    // hundreds of recipients at once
    const many = Array.from({ length: 300 }, (_, i) => `user${i}@example.com`);
    refused(await a('Send', { ...send, to: many.join(', ') }), 400, /^to: one recipient per message, got 300 addresses; send one message to each/);
    refused(await a('Send', { ...send, to: many.join(';') }), 400, /got 300 addresses/);
    refused(await a('Send', { ...send, to: many }), 400, /to/);
    // header injection, in every header a caller writes
    refused(await a('Send', { ...send, to: 'alice@example.com\r\nBcc: eve@evil.com' }), 400, /^to: must not contain line breaks/);
    refused(await a('Send', { ...send, subject: 'Hi\r\nBcc: eve@evil.com' }), 400, /^subject: must not contain line breaks/);
    refused(await a('Send', { ...send, subject: 'Hi\nContent-Type: text/html' }), 400, /^subject: must not contain line breaks/);
    refused(await a('Send', { ...send, from: 'Acme\r\nBcc: eve@evil.com' }), 400, /^from: must not contain line breaks/);
    refused(await a('Send', { ...send, reply_to: 'help@acme.example\r\nBcc: eve@evil.com' }), 400, /^reply_to: must not contain line breaks/);
    refused(await a('Send', { ...send, reply_to: 'help@acme.example, eve@evil.com' }), 400, /^reply_to: must be one bare address/);
    // from is a display name, never an address to send as
    refused(await a('Send', { ...send, from: 'ceo@bank.example' }), 400, /^from: is the display name/);
    refused(await a('Send', { ...send, from: 'Bank <ceo@bank.example>' }), 400, /^from: is the display name/);
    // oversized
    refused(await a('Send', { ...send, html_body: 'x'.repeat(100_001) }), 400, /html_body/);
    refused(await a('Send', { ...send, text_body: 'x'.repeat(100_001) }), 400, /text_body/);
    refused(await a('Send', { ...send, subject: 'x'.repeat(201) }), 400, /subject/);
    refused(await a('Send', { ...send, from: 'x'.repeat(101) }), 400, /from/);
    refused(await a('Send', { ...send, to: `${'a'.repeat(250)}@example.com` }), 400, /^to: is 262 characters, at most 254/);
    refused(await a('Send', { ...send, subject: 42 }), 400, /subject/);
    // attachments are no field of M3O's Send: one smuggled in is not sent (nor a header, a cc or a bcc)
    const smuggled = await a('Send', { ...send, attachments: [{ path: '/etc/passwd', content: 'x'.repeat(1000) }], headers: { Bcc: 'eve@evil.com' }, cc: 'eve@evil.com', bcc: 'eve@evil.com' });
    assert.equal(smuggled.status, 200, JSON.stringify(smuggled.body));
    sentByA++;
    const got = smtp.received.at(-1)!;
    assert.deepEqual(got.to, ['alice@example.com']);
    const m = await parseMail(got.raw);
    assert.equal(m.attachments.length, 0);
    assert.equal(m.cc, undefined);
    assert.equal(smtp.received.length, before + 1);
    refused(await a('Parse', {}), 400, /Missing address/);
    refused(await a('Parse', { address: 'not an address' }), 400, /^address: is not one RFC 5322 address/);
    refused(await a('Parse', { address: 'a@x.com, b@x.com' }), 400, /^address: is not one RFC 5322 address/);
    refused(await a('Parse', { address: 'friends: a@x.com, b@x.com;' }), 400, /^address: is a group/);
    refused(await a('Parse', { address: 'x'.repeat(1001) }), 400, /address/);
    refused(await a('Validate', {}), 400, /Missing address/);
    refused(await a('Validate', { address: 'x'.repeat(1001) }), 400, /address/);
  });

  await t.test("a failing mail server: an error that shows none of the platform's server, and nothing left half-sent", async () => {
    smtp.deferNext(3);
    const before = smtp.received.length;
    const res = await a('Send', { to: 'alice@example.com', subject: 'Hi', text_body: 'Hello' });
    refused(res, 502, /^the platform's mail server refused the message; nothing was sent$/);
    assert.doesNotMatch(JSON.stringify(res.body), /127\.0\.0\.1|smtp:|451/);
    assert.equal(smtp.received.length, before);
    // retried where safe: a transient refusal, then delivered
    smtp.deferNext(1);
    assert.equal((await a('Send', { to: 'alice@example.com', subject: 'Hi', text_body: 'Hello' })).status, 200);
    sentByA += 2; // both counted against the hourly rate: the mail service takes it before it sends
  });

  await t.test("per-namespace limit: a's allowance used up is a 429 for a only; tenants never reach the mail service themselves", async () => {
    for (let i = sentByA; i < PER_TENANT; i++) assert.equal((await a('Send', { to: 'alice@example.com', subject: `n${i}`, text_body: 'x' })).status, 200);
    refused(await a('Send', { to: 'alice@example.com', subject: 'one more', text_body: 'x' }), 429, /tenant tenant-a sent 12 messages in 60 minutes, its limit/);
    const other = await b('Send', { from: 'B', to: 'carol@example.com', subject: 'from b', text_body: 'hi' });
    assert.equal(other.status, 200, JSON.stringify(other.body));
    assert.deepEqual(smtp.received.at(-1)!.to, ['carol@example.com']);
    // the platform's mail service is micro's own: a tenant's key does not reach it, whatever it names as tenant
    for (const body of [{ tenant: 'tenant-a', to: 'x@example.com', subject: 's', text: 't' }, { tenant: 'tenant-b', to: 'x@example.com', subject: 's', text: 't' }]) {
      const direct = await p.call(p.b.key, 'mail', 'Send', body);
      assert.ok([403, 404].includes(direct.status), JSON.stringify(direct.body));
    }
  });
});
