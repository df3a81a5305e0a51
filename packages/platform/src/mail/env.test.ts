import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { mailerFromEnv } from './env.js';
import { namespacesMessage } from './messages.js';
import { OutboxMailer } from './outbox.js';
import { SmtpMailer } from './smtp.js';
import { dkimKeyPair, parseMail, recordingLogger, tempHome, startSmtpServer, verifyDkim } from './testing.js';

const recovery = namespacesMessage({ to: 'alice@example.com', namespaces: ['acme'] });

describe('mailerFromEnv', () => {
  it('without MICRO_SMTP_URL: the outbox under MICRO_HOME, with MICRO_SMTP_FROM as sender', async (t) => {
    const h = await tempHome(t);
    const mailer = mailerFromEnv({ home: h, logger: recordingLogger().logger, env: { MICRO_SMTP_URL: ' ', MICRO_SMTP_FROM: 'Acme <ops@acme.example>' } });
    assert.ok(mailer instanceof OutboxMailer);
    assert.equal(mailer.dir, join(h, 'outbox'));
    await mailer.send(recovery);
    const [name = ''] = await mailer.files();
    const parsed = await parseMail(await readFile(join(h, 'outbox', name)));
    assert.equal(parsed.from?.value[0]?.address, 'ops@acme.example');
    assert.ok(parsed.text?.includes('  - acme'));
  });

  it('with MICRO_SMTP_URL: sends through it, and logs the server without the password', async (t) => {
    const smtp = await startSmtpServer(t, { users: { ops: 'pa55-w0rd' } });
    const { logger, lines } = recordingLogger();
    const mailer = mailerFromEnv({ home: await tempHome(t), logger, env: { MICRO_SMTP_URL: smtp.url('ops', 'pa55-w0rd') } });
    t.after(() => mailer.close?.());
    assert.ok(mailer instanceof SmtpMailer);
    await mailer.send(recovery);
    assert.equal(smtp.received[0]?.from, 'no-reply@localhost');
    assert.equal(lines.length, 1);
    assert.ok(lines[0]?.includes(`smtp://ops:***@127.0.0.1:${smtp.port}`), lines[0]);
    assert.ok(!lines[0]?.includes('pa55'), lines[0]);
  });

  it('a wrong MICRO_SMTP_URL or MICRO_SMTP_FROM stops it with what to write', async (t) => {
    const h = await tempHome(t);
    const logger = recordingLogger().logger;
    assert.throws(() => mailerFromEnv({ home: h, logger, env: { MICRO_SMTP_URL: 'https://u:hunter2@mail.example.com' } }), (err: Error) =>
      /^MICRO_SMTP_URL: the scheme must be smtp:\/\/ or smtps:\/\/.*write smtp:\/\//.test(err.message) && !err.message.includes('hunter2'));
    assert.throws(() => mailerFromEnv({ home: h, logger, env: { MICRO_SMTP_URL: 'mail.example.com:587' } }), /MICRO_SMTP_URL: the scheme must be/);
    assert.throws(() => mailerFromEnv({ home: h, logger, env: { MICRO_SMTP_FROM: 'a@x.com, b@x.com' } }), /MICRO_SMTP_FROM: /);
    assert.throws(() => mailerFromEnv({ home: h, logger, env: { MICRO_SMTP_URL: 'smtp://mail.example.com', MICRO_SMTP_FROM: 'M3O <a@x.com>\nBcc: e@evil.com' } }), /MICRO_SMTP_FROM: /);
  });

  it('MICRO_DKIM_SELECTOR and MICRO_DKIM_KEY_FILE: every message signed for the domain of MICRO_SMTP_FROM', async (t) => {
    const smtp = await startSmtpServer(t);
    const h = await tempHome(t);
    const keys = dkimKeyPair();
    const file = join(h, 'dkim.pem');
    await writeFile(file, keys.privateKey, { mode: 0o600 });
    const { logger, lines } = recordingLogger();
    const env = { MICRO_SMTP_URL: smtp.url(), MICRO_SMTP_FROM: 'M3O <no-reply@m3o.example>', MICRO_DKIM_SELECTOR: 'sel1', MICRO_DKIM_KEY_FILE: file };
    const mailer = mailerFromEnv({ home: h, logger, env });
    t.after(() => mailer.close?.());
    await mailer.send(recovery);
    assert.deepEqual(await verifyDkim(smtp.received[0]!.raw, 'sel1', 'm3o.example', keys.txt), [{ result: 'pass', domain: 'm3o.example', selector: 'sel1' }]);
    assert.ok(lines[0]?.includes('sel1._domainkey.m3o.example'), lines[0]);
    assert.ok(!lines.join('').includes('PRIVATE KEY'));
    // another domain than the sender's, when the key is published there
    const other = mailerFromEnv({ home: h, logger, env: { ...env, MICRO_DKIM_DOMAIN: 'mail.m3o.example' } });
    t.after(() => other.close?.());
    await other.send(recovery);
    assert.equal((await verifyDkim(smtp.received[1]!.raw, 'sel1', 'mail.m3o.example', keys.txt))[0]?.result, 'pass');
  });

  it('a DKIM setting that cannot work stops the start with what to set', async (t) => {
    const h = await tempHome(t);
    const logger = recordingLogger().logger;
    const notKey = join(h, 'not-a-key.pem');
    await writeFile(notKey, 'hello');
    const base = { MICRO_SMTP_URL: 'smtp://mail.example.com' };
    assert.throws(() => mailerFromEnv({ home: h, logger, env: { ...base, MICRO_DKIM_SELECTOR: 'sel1' } }), /DKIM: both are needed; set MICRO_DKIM_SELECTOR/);
    assert.throws(() => mailerFromEnv({ home: h, logger, env: { ...base, MICRO_DKIM_KEY_FILE: notKey } }), /DKIM: both are needed/);
    assert.throws(() => mailerFromEnv({ home: h, logger, env: { ...base, MICRO_DKIM_SELECTOR: 'sel1', MICRO_DKIM_KEY_FILE: join(h, 'missing.pem') } }), /DKIM: cannot read a PEM private key from MICRO_DKIM_KEY_FILE .*missing\.pem/);
    assert.throws(() => mailerFromEnv({ home: h, logger, env: { ...base, MICRO_DKIM_SELECTOR: 'sel1', MICRO_DKIM_KEY_FILE: notKey } }), /DKIM: cannot read a PEM private key/);
    assert.throws(() => mailerFromEnv({ home: h, logger, env: { ...base, MICRO_DKIM_SELECTOR: 'a b', MICRO_DKIM_KEY_FILE: notKey } }), /MICRO_DKIM_SELECTOR "a b" is not a DNS label/);
  });
});
