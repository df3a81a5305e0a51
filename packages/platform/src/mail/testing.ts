/**
 * Test kit of the mail folder: a real SMTP server in the test process (smtp-server) and
 * a parser for what it or the outbox received (mailparser). Both are dev dependencies:
 * this file is left out of the published package.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '@micro/sdk';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface Received {
  /** MAIL FROM and RCPT TO, as the server saw them */
  from: string;
  to: string[];
  raw: Buffer;
}

export interface TestSmtp {
  port: number;
  /** RCPT TO commands refused with a transient 451 so far */
  deferred(): number;
  /** refuse the next `count` RCPT TO commands with a transient 451 */
  deferNext(count: number): void;
  /** everything the server accepted, in order */
  received: Received[];
  /** `smtp://[user:password@]127.0.0.1:<port>` */
  url(user?: string, password?: string): string;
}

export interface TestSmtpOptions {
  /** accounts the server accepts (AUTH PLAIN/LOGIN over plain TCP); none: AUTH is off */
  users?: Record<string, string>;
  /** RCPT TO addresses the server refuses with 550 */
  refuse?: string[];
  /** the first this many messages are refused with a transient 451 at RCPT TO (try again later); default 0 */
  transient?: number;
}

/** Starts an SMTP server on a free loopback port; stopped when the test ends. */
export async function startSmtpServer(t: { after(fn: () => unknown): void }, options: TestSmtpOptions = {}): Promise<TestSmtp> {
  const received: Received[] = [];
  const users = options.users;
  let deferred = 0;
  let toDefer = options.transient ?? 0;
  const server = new SMTPServer({
    logger: false,
    // Plain TCP on loopback: STARTTLS would need a certificate nodemailer trusts.
    disabledCommands: users ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    allowInsecureAuth: true,
    authOptional: !users,
    onAuth(auth, _session, callback) {
      const ok = auth.username !== undefined && users?.[auth.username] !== undefined && auth.password === users[auth.username];
      callback(ok ? null : new Error('Invalid username or password'), ok ? { user: auth.username } : undefined);
    },
    onRcptTo(address, _session, callback) {
      if (toDefer > 0) {
        toDefer--;
        deferred++;
        callback(Object.assign(new Error('try again later'), { responseCode: 451 }));
        return;
      }
      callback(options.refuse?.includes(address.address) ? Object.assign(new Error('no such mailbox'), { responseCode: 550 }) : null);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        received.push({ from, to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks) });
        callback(null);
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.server.address() as { port: number }).port;
  const url = (user?: string, password?: string): string =>
    `smtp://${user ? `${encodeURIComponent(user)}:${encodeURIComponent(password ?? '')}@` : ''}127.0.0.1:${port}`;
  return {
    port,
    received,
    url,
    deferred: () => deferred,
    deferNext: (count) => {
      toDefer += count;
    },
  };
}

/** Parses an RFC 5322 message as a mail client would. */
export function parseMail(raw: Buffer | string): Promise<ParsedMail> {
  return simpleParser(raw);
}

/** A logger whose lines (JSON, as written) land in `lines`. */
export function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger({ level: 'info' }, sink), lines };
}

/** A temporary folder (a MICRO_HOME), removed when the test ends. */
export async function tempHome(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'micro-mail-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh 2048-bit RSA key pair for DKIM: the PEM private key, and the DNS TXT record publishing its public key. */
export function dkimKeyPair(): { privateKey: string; txt: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), txt: `v=DKIM1; k=rsa; p=${p}` };
}

/**
 * Verifies a message's DKIM signature as a receiving server would (mailauth, RFC 6376),
 * with `<selector>._domainkey.<domain>` answering `txt` instead of DNS: the results' status
 * (`pass`, `fail`, `neutral`…), domain and selector.
 */
export async function verifyDkim(raw: Buffer, selector: string, domain: string, txt: string): Promise<{ result: string; domain: string; selector: string }[]> {
  const name = `${selector}._domainkey.${domain}`;
  const resolver = async (query: string, type: string) => {
    if (type === 'TXT' && query === name) return [[txt]];
    throw Object.assign(new Error(`no ${type} record for ${query}`), { code: 'ENOTFOUND' });
  };
  const { results } = await dkimVerify(raw, { resolver } as Parameters<typeof dkimVerify>[1]);
  return results.map((r) => ({ result: r.status.result, domain: r.signingDomain ?? '', selector: r.selector ?? '' }));
}
