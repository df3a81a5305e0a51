import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMicroError } from '@micro/sdk';
import { checkAddress, checkMessage, checkSender, MAX_BODY_LENGTH } from './checks.js';
import { MemoryMailer, type MailMessage } from './mailer.js';

function refused(fn: () => unknown, field: string, why: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isMicroError(err), `a MicroError, got ${String(err)}`);
    assert.equal(err.code, 400);
    assert.ok(err.detail.startsWith(`${field}: `), err.detail);
    assert.match(err.detail, why);
    return true;
  });
}

const ok: MailMessage = { to: 'alice@example.com', subject: 'Hello', text: 'hi' };

describe('mail checks', () => {
  it('takes one bare address', () => {
    for (const a of ['alice@example.com', 'a.b+tag@sub.example.co.uk', "o'neil@example.org", 'x@xn--bcher-kva.example']) {
      assert.equal(checkAddress(a), a);
    }
  });

  it('refuses header injection, lists, display names and comments in to', () => {
    const hostile = [
      'alice@example.com\r\nBcc: eve@evil.com',
      'alice@example.com\nBcc: eve@evil.com',
      'alice@example.com\rX: y',
      'alice@example.com\u0000',
      'alice@example.com\u2028',
      'alice@example.com, eve@evil.com',
      'alice@example.com;eve@evil.com',
      'alice@example.com eve@evil.com',
      'Alice <eve@evil.com>',
      '"alice@example.com" <eve@evil.com>',
      'eve@evil.com (alice@example.com)',
      '<alice@example.com>',
      '"a b"@example.com',
      'alice@@example.com',
      'alice@example',
      'alice@-example.com',
      'alice..b@example.com',
      '.alice@example.com',
      'alice',
      '@example.com',
      'alice@',
      'ålice@example.com',
      'alice@exämple.com',
    ];
    for (const a of hostile) assert.throws(() => checkAddress(a), (err: unknown) => isMicroError(err) && err.code === 400, JSON.stringify(a));
    refused(() => checkAddress('alice@example.com\r\nBcc: eve@evil.com'), 'to', /line breaks/);
    refused(() => checkAddress('Alice <eve@evil.com>'), 'to', /no display name/);
  });

  it('refuses an over-long address, and missing or wrong types', () => {
    const long = `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.com`;
    assert.ok(long.length > 254);
    refused(() => checkAddress(long), 'to', /at most 254/);
    refused(() => checkAddress(`${'a'.repeat(65)}@example.com`), 'to', /at most 64/);
    refused(() => checkAddress(''), 'to', /required/);
    refused(() => checkAddress(undefined), 'to', /required/);
    refused(() => checkAddress(['alice@example.com']), 'to', /required/);
  });

  it('refuses a subject that would start a header of its own, or is too long', () => {
    refused(() => checkMessage({ ...ok, subject: 'Hi\r\nBcc: eve@evil.com' }), 'subject', /line breaks/);
    refused(() => checkMessage({ ...ok, subject: 'Hi\nX-Evil: 1' }), 'subject', /line breaks/);
    refused(() => checkMessage({ ...ok, subject: 'x'.repeat(201) }), 'subject', /at most 200/);
    refused(() => checkMessage({ ...ok, subject: ' ' }), 'subject', /required/);
  });

  it('needs a text body and bounds both bodies', () => {
    refused(() => checkMessage({ ...ok, text: '' }), 'text', /required/);
    refused(() => checkMessage({ ...ok, text: 'x'.repeat(MAX_BODY_LENGTH + 1) }), 'text', /at most/);
    refused(() => checkMessage({ ...ok, html: 'x'.repeat(MAX_BODY_LENGTH + 1) }), 'html', /at most/);
  });

  it('takes one reply-to address, checked as a recipient is', () => {
    assert.deepEqual(checkMessage({ ...ok, replyTo: 'support@acme.example' }), { ...ok, replyTo: 'support@acme.example' });
    refused(() => checkMessage({ ...ok, replyTo: 'support@acme.example\r\nBcc: eve@evil.com' }), 'replyTo', /line breaks/);
    refused(() => checkMessage({ ...ok, replyTo: 'a@acme.example, b@acme.example' }), 'replyTo', /one bare address/);
  });

  it('keeps only the fields of a MailMessage', () => {
    const smuggled = { ...ok, cc: 'eve@evil.com', headers: { Bcc: 'eve@evil.com' }, attachments: [{ path: '/etc/passwd' }] };
    assert.deepEqual(checkMessage(smuggled as MailMessage), ok);
  });

  it('takes a sender with a display name, one only', () => {
    assert.equal(checkSender('M3O <no-reply@m3o.com>'), 'M3O <no-reply@m3o.com>');
    assert.equal(checkSender('M3O <no-reply@localhost>'), 'M3O <no-reply@localhost>');
    refused(() => checkAddress('alice@localhost'), 'to', /domain name like example.com/);
    refused(() => checkSender('M3O <a@m3o.com>, b@m3o.com'), 'MICRO_SMTP_FROM', /one sender/);
    refused(() => checkSender('M3O <a@m3o.com>\r\nBcc: eve@evil.com'), 'MICRO_SMTP_FROM', /line breaks/);
    refused(() => checkSender('M3O'), 'MICRO_SMTP_FROM', /one sender/);
  });

  it('MemoryMailer refuses what every engine refuses and keeps nothing of it', async () => {
    const mailer = new MemoryMailer();
    await assert.rejects(mailer.send({ ...ok, to: 'a@example.com, b@example.com' }), /to: /);
    assert.equal(mailer.sent.length, 0);
    await mailer.send(ok);
    assert.deepEqual(mailer.lastTo('alice@example.com'), ok);
  });
});
