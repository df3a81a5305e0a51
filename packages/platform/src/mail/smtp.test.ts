import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { isMicroError, type MicroError } from '@micro/sdk';
import { freePort } from '@micro/sdk/testing';
import type { MailMessage } from './mailer.js';
import { verificationMessage } from './messages.js';
import { parseSmtpUrl, retryable, SmtpMailer, type DkimKey } from './smtp.js';
import { dkimKeyPair, parseMail, startSmtpServer, verifyDkim } from './testing.js';

const PASSWORD = 'S3cr3t:p@ss/word';
const verify = verificationMessage({ to: 'alice@example.com', code: '987654', base: 'https://m3o.example.com' });

function mailerFor(url: string, timeoutMs?: number, more: { dkim?: DkimKey; retryDelaysMs?: number[] } = {}): SmtpMailer {
  return new SmtpMailer({ target: parseSmtpUrl(url), from: 'M3O <no-reply@m3o.example>', timeoutMs, retryDelaysMs: [5, 5], ...more });
}

/** Sends and returns the MicroError it fails with. */
async function failure(mailer: SmtpMailer, message: MailMessage = verify): Promise<MicroError> {
  try {
    await mailer.send(message);
  } catch (err) {
    assert.ok(isMicroError(err), `a MicroError, got ${String(err)}`);
    return err;
  }
  assert.fail('the send succeeded');
}

function noPassword(err: MicroError): void {
  const all = `${err.detail} ${JSON.stringify(err)} ${err.stack ?? ''}`;
  for (const form of [PASSWORD, encodeURIComponent(PASSWORD), Buffer.from(PASSWORD).toString('base64')]) {
    assert.ok(!all.includes(form), `the password shows in: ${all}`);
  }
}

describe('SmtpMailer, against a real SMTP server', () => {
  it('delivers the verification message: code and link, text and HTML, one recipient', async (t) => {
    const smtp = await startSmtpServer(t);
    const mailer = mailerFor(smtp.url());
    t.after(() => mailer.close());
    await mailer.send(verify);
    assert.equal(smtp.received.length, 1);
    const got = smtp.received[0]!;
    assert.equal(got.from, 'no-reply@m3o.example');
    assert.deepEqual(got.to, ['alice@example.com']);
    const parsed = await parseMail(got.raw);
    assert.equal(parsed.subject, 'Your M3O verification code');
    assert.ok(parsed.text?.includes('987654'));
    assert.ok(parsed.text?.includes('https://m3o.example.com/signup/verify?email=alice%40example.com&code=987654'));
    assert.ok(typeof parsed.html === 'string' && parsed.html.includes('code=987654'));
  });

  it('logs in with the user and password of the URL', async (t) => {
    const smtp = await startSmtpServer(t, { users: { mailer: PASSWORD } });
    const mailer = mailerFor(smtp.url('mailer', PASSWORD));
    t.after(() => mailer.close());
    await mailer.send(verify);
    assert.equal(smtp.received.length, 1);
  });

  it('a wrong password: a clear error naming the server and the user, without the password', async (t) => {
    const smtp = await startSmtpServer(t, { users: { mailer: 'the-right-one' } });
    const mailer = mailerFor(smtp.url('mailer', PASSWORD));
    t.after(() => mailer.close());
    const err = await failure(mailer);
    assert.equal(err.code, 502);
    assert.match(err.detail, new RegExp(`SMTP server smtp://mailer:\\*\\*\\*@127\\.0\\.0\\.1:${smtp.port} refused the login of user "mailer"`));
    assert.match(err.detail, /MICRO_SMTP_URL/);
    noPassword(err);
    assert.equal(smtp.received.length, 0);
  });

  it('a server that is away: a clear error naming the host', async () => {
    const port = await freePort();
    const mailer = mailerFor(`smtp://mailer:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}`);
    const err = await failure(mailer);
    assert.equal(err.code, 503);
    assert.match(err.detail, new RegExp(`cannot reach the SMTP server smtp://mailer:\\*\\*\\*@127\\.0\\.0\\.1:${port} \\((ESOCKET|ECONNECTION)\\): .*ECONNREFUSED.*\\(after 3 attempts\\)`));
    noPassword(err);
  });

  it('a server that never answers: the send times out with a clear error', async (t) => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket)); // accepts and says nothing, not even a greeting
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      silent.close(resolve);
    }));
    const port = (silent.address() as { port: number }).port;
    const err = await failure(mailerFor(`smtp://127.0.0.1:${port}`, 300));
    assert.equal(err.code, 503);
    assert.match(err.detail, new RegExp(`cannot reach the SMTP server smtp://127\\.0\\.0\\.1:${port} \\(ETIMEDOUT\\)`));
  });

  it('a recipient the server refuses: a clear error with its reply', async (t) => {
    const smtp = await startSmtpServer(t, { refuse: ['alice@example.com'] });
    const mailer = mailerFor(smtp.url());
    t.after(() => mailer.close());
    const err = await failure(mailer);
    assert.equal(err.code, 502);
    assert.match(err.detail, /SMTP server smtp:\/\/127\.0\.0\.1:\d+ refused the message \(EENVELOPE\): .*no such mailbox/);
    // a 5xx is final: the server would say the same again, so it is not retried
    assert.doesNotMatch(err.detail, /attempts/);
  });

  it('a transient 4xx is retried with backoff until the server takes the message', async (t) => {
    const smtp = await startSmtpServer(t, { transient: 2 });
    const mailer = mailerFor(smtp.url());
    t.after(() => mailer.close());
    await mailer.send(verify);
    assert.equal(smtp.deferred(), 2);
    assert.equal(smtp.received.length, 1);
    // beyond the retries: the server's reply, after how many attempts
    const busy = await startSmtpServer(t, { transient: 10 });
    const err = await failure(mailerFor(busy.url()));
    assert.equal(err.code, 502);
    assert.match(err.detail, /451 try again later.*\(after 3 attempts\)/);
    assert.equal(busy.deferred(), 3);
    assert.equal(busy.received.length, 0);
  });

  it('signs with DKIM when a key is configured: a receiving server verifies it, and a changed message fails', async (t) => {
    const smtp = await startSmtpServer(t);
    const keys = dkimKeyPair();
    const mailer = mailerFor(smtp.url(), undefined, { dkim: { domainName: 'm3o.example', keySelector: 'mail2025', privateKey: keys.privateKey } });
    t.after(() => mailer.close());
    await mailer.send({ ...verify, fromName: 'Acme', replyTo: 'support@acme.example' });
    const raw = smtp.received[0]!.raw;
    assert.match(raw.toString(), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=m3o.example;/m);
    assert.deepEqual(await verifyDkim(raw, 'mail2025', 'm3o.example', keys.txt), [{ result: 'pass', domain: 'm3o.example', selector: 'mail2025' }]);
    const tampered = Buffer.from(raw.toString().replace('987654', '123456'));
    // a changed body no longer matches the signed body hash (mailauth says neutral for that, as RFC 6376 §6.3 allows)
    assert.notEqual((await verifyDkim(tampered, 'mail2025', 'm3o.example', keys.txt))[0]?.result, 'pass');
    const other = dkimKeyPair();
    assert.equal((await verifyDkim(raw, 'mail2025', 'm3o.example', other.txt))[0]?.result, 'fail');
    const parsed = await parseMail(raw);
    assert.deepEqual(parsed.from?.value, [{ name: 'Acme', address: 'no-reply@m3o.example' }]);
    assert.equal(parsed.replyTo?.text, 'support@acme.example');
  });

  it('refuses hostile input before connecting, and sends nothing a caller smuggled in', async (t) => {
    const smtp = await startSmtpServer(t);
    const mailer = mailerFor(smtp.url());
    t.after(() => mailer.close());
    for (const to of ['alice@example.com\r\nBcc: eve@evil.com', 'alice@example.com, eve@evil.com', 'Alice <eve@evil.com>', `${'a'.repeat(250)}@example.com`]) {
      assert.equal((await failure(mailer, { ...verify, to })).code, 400, to);
    }
    assert.equal((await failure(mailer, { ...verify, subject: 'Hi\r\nBcc: eve@evil.com' })).code, 400);
    assert.equal(smtp.received.length, 0);
    const smuggled = { ...verify, cc: 'eve@evil.com', bcc: 'eve@evil.com', headers: { 'X-Evil': '1' }, attachments: [{ path: '/etc/passwd' }] };
    await mailer.send(smuggled as MailMessage);
    const got = smtp.received[0]!;
    assert.deepEqual(got.to, ['alice@example.com']);
    const parsed = await parseMail(got.raw);
    assert.equal(parsed.attachments.length, 0);
    assert.equal(parsed.headers.get('x-evil'), undefined);
    assert.equal(parsed.cc, undefined);
  });
});

describe('retryable', () => {
  it('retries only where no second copy can arrive: a refused connection or a transient 4xx', () => {
    assert.equal(retryable({ code: 'ESOCKET', message: 'connect ECONNREFUSED 127.0.0.1:25' }), true);
    assert.equal(retryable({ code: 'EENVELOPE', responseCode: 451 }), true);
    assert.equal(retryable({ code: 'EMESSAGE', responseCode: 421 }), true);
    assert.equal(retryable({ code: 'EENVELOPE', responseCode: 550 }), false);
    assert.equal(retryable({ code: 'EAUTH', responseCode: 535 }), false);
    assert.equal(retryable({ code: 'ETIMEDOUT', message: 'no answer within 30000 ms' }), false);
    assert.equal(retryable({ code: 'ECONNECTION', message: 'Connection closed unexpectedly' }), false);
  });
});

describe('parseSmtpUrl', () => {
  it('reads scheme, host, port, user and password; redacts the password', () => {
    const target = parseSmtpUrl(`smtps://me%40x.com:${encodeURIComponent(PASSWORD)}@smtp.example.com`);
    assert.deepEqual(target, { secure: true, host: 'smtp.example.com', port: 465, user: 'me@x.com', password: PASSWORD, redacted: 'smtps://me%40x.com:***@smtp.example.com' });
    assert.equal(parseSmtpUrl('smtp://smtp.example.com').port, 587);
    assert.equal(parseSmtpUrl('smtp://smtp.example.com:2525').port, 2525);
  });

  it('says what to write for a wrong scheme, an unparsable URL or a path, never showing the password', () => {
    for (const url of [`http://u:${PASSWORD}@smtp.example.com`, `smtp//u:${PASSWORD}@smtp.example.com`, `smtp://u:${PASSWORD}@smtp.example.com:99999`, `u:${PASSWORD}@`, `smtp://u:${PASSWORD}@smtp.example.com/x?y=1`, `smtp://u:%zz@host`]) {
      assert.throws(() => parseSmtpUrl(url), (err: Error) => {
        assert.match(err.message, /^MICRO_SMTP_URL: .*write smtp:\/\/user:password@host:587 \(STARTTLS\) or smtps:\/\/user:password@host:465 \(TLS\)$/);
        assert.ok(!/S3cr3t|ss\/word|%zz/.test(err.message), err.message);
        return true;
      }, url);
    }
  });
});
