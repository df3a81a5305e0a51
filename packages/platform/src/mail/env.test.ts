import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { mailerFromEnv } from './env.js';
import { namespacesMessage } from './messages.js';
import { OutboxMailer } from './outbox.js';
import { SmtpMailer } from './smtp.js';
import { parseMail, recordingLogger, tempHome, startSmtpServer } from './testing.js';

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
});
