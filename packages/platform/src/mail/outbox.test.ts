import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { verificationMessage } from './messages.js';
import { OutboxMailer } from './outbox.js';
import { parseMail, recordingLogger, tempHome } from './testing.js';

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;
const message = (i: number) => ({ to: `u${i}@example.com`, subject: `Message ${i}`, text: `body ${i}` });

describe('OutboxMailer', () => {
  it('writes a real .eml a mail client reads, folder 0700, file 0600', async (t) => {
    const dir = join(await tempHome(t), 'outbox');
    const mailer = new OutboxMailer({ dir, logger: recordingLogger().logger, from: 'M3O <no-reply@m3o.example>' });
    await mailer.send(verificationMessage({ to: 'alice@example.com', code: '424242', base: 'http://localhost:8080' }));
    const [name = ''] = await mailer.files();
    assert.ok(name.endsWith('.eml'));
    assert.equal(await mode(dir), 0o700);
    assert.equal(await mode(join(dir, name)), 0o600);
    const parsed = await parseMail(await readFile(join(dir, name)));
    assert.equal(parsed.subject, 'Your M3O verification code');
    assert.equal(parsed.from?.text, '"M3O" <no-reply@m3o.example>');
    assert.ok(!Array.isArray(parsed.to) && parsed.to?.value[0]?.address === 'alice@example.com');
    assert.ok(parsed.messageId && parsed.date);
    assert.ok(parsed.text?.includes('424242'));
    assert.ok(parsed.text?.includes('http://localhost:8080/signup/verify?email=alice%40example.com&code=424242'));
    assert.ok(typeof parsed.html === 'string' && parsed.html.includes('424242'));
  });

  it('tightens an outbox folder that exists with a wider mode', async (t) => {
    const dir = join(await tempHome(t), 'outbox');
    await mkdir(dir, { mode: 0o755 });
    await new OutboxMailer({ dir, logger: recordingLogger().logger }).send(message(1));
    assert.equal(await mode(dir), 0o700);
  });

  it('names sort by time and are unique within one millisecond', async (t) => {
    const dir = join(await tempHome(t), 'outbox');
    let now = Date.parse('2026-01-02T03:04:05.678Z');
    const mailer = new OutboxMailer({ dir, logger: recordingLogger().logger, now: () => now });
    for (let i = 0; i < 5; i++) await mailer.send(message(i));
    now -= 1000; // a clock stepping back still gives a new name
    await mailer.send(message(5));
    now += 60_000;
    await mailer.send(message(6));
    const names = await mailer.files();
    assert.equal(new Set(names).size, 7);
    assert.ok(names[0]?.startsWith('20260102T030404678Z-'), names[0]);
    assert.ok(names[6]?.startsWith('20260102T030504678Z-'), names[6]);
    const subjects = await Promise.all(names.slice(1, 6).map(async (n) => (await parseMail(await readFile(join(dir, n)))).subject));
    assert.deepEqual(subjects, ['Message 0', 'Message 1', 'Message 2', 'Message 3', 'Message 4']);
  });

  it('keeps at most max files, the newest', async (t) => {
    const dir = join(await tempHome(t), 'outbox');
    const mailer = new OutboxMailer({ dir, logger: recordingLogger().logger, max: 3 });
    for (let i = 0; i < 8; i++) await mailer.send(message(i));
    const names = await mailer.files();
    assert.equal(names.length, 3);
    const subjects = await Promise.all(names.map(async (n) => (await parseMail(await readFile(join(dir, n)))).subject));
    assert.deepEqual(subjects, ['Message 5', 'Message 6', 'Message 7']);
    assert.deepEqual((await readdir(dir)).sort(), names, 'no temporary files left behind');
    assert.throws(() => new OutboxMailer({ dir, logger: recordingLogger().logger, max: 0 }), /max/);
  });

  it('logs once where the outbox is', async (t) => {
    const dir = join(await tempHome(t), 'outbox');
    const { logger, lines } = recordingLogger();
    const mailer = new OutboxMailer({ dir, logger });
    for (let i = 0; i < 3; i++) await mailer.send(message(i));
    assert.equal(lines.length, 1);
    assert.ok(lines[0]?.includes(dir));
    assert.ok(lines[0]?.includes('MICRO_SMTP_URL'));
  });

  it('refuses hostile input before writing anything', async (t) => {
    const dir = join(await tempHome(t), 'outbox');
    const mailer = new OutboxMailer({ dir, logger: recordingLogger().logger });
    await assert.rejects(mailer.send({ ...message(1), to: 'a@example.com\r\nBcc: eve@evil.com' }), /to: must not contain line breaks/);
    await assert.rejects(mailer.send({ ...message(1), subject: 'x\nBcc: eve@evil.com' }), /subject: must not contain line breaks/);
    await assert.rejects(mailer.send({ ...message(1), to: 'a@example.com, eve@evil.com' }), /to: /);
    assert.deepEqual(await mailer.files(), []);
  });
});
