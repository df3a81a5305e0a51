import { isIP } from 'node:net';
import { errors, type MicroError } from '@micro/sdk';
import { createTransport, type Transporter } from 'nodemailer';
import { checkMessage, checkSender, MAIL_ERROR_ID } from './checks.js';
import { composerOptions, DEFAULT_FROM } from './compose.js';
import type { Mailer, MailMessage } from './mailer.js';

/** Where and how to reach the SMTP server, from MICRO_SMTP_URL. */
export interface SmtpTarget {
  /** true for smtps:// (TLS from the first byte), false for smtp:// (STARTTLS when offered) */
  secure: boolean;
  host: string;
  port: number;
  user?: string;
  password?: string;
  /** the URL with the password replaced by `***`: what logs and errors show */
  redacted: string;
}

const HOW = 'write smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS)';

/** The URL with everything before its last `@` (user and password, whatever they contain) masked: for URLs that do not parse. */
function maskCredentials(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)?.*@/s, '$1***@');
}

function decode(part: string, what: string, url: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new Error(`MICRO_SMTP_URL: the ${what} in ${maskCredentials(url)} is not valid percent-encoding; ${HOW}`);
  }
}

/** Parses and checks MICRO_SMTP_URL; the error says what to write and never shows the password. */
export function parseSmtpUrl(url: string): SmtpTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`MICRO_SMTP_URL: cannot parse ${JSON.stringify(maskCredentials(url))}; ${HOW}`);
  }
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') {
    throw new Error(`MICRO_SMTP_URL: the scheme must be smtp:// or smtps://, not ${parsed.protocol}//; ${HOW}`);
  }
  if (!parsed.hostname) throw new Error(`MICRO_SMTP_URL: no host in ${maskCredentials(url)}; ${HOW}`);
  if ((parsed.pathname && parsed.pathname !== '/') || parsed.search || parsed.hash) {
    throw new Error(`MICRO_SMTP_URL: a path, query or fragment is not supported in ${maskCredentials(url)}; ${HOW}`);
  }
  const secure = parsed.protocol === 'smtps:';
  const target: SmtpTarget = { secure, host: parsed.hostname, port: parsed.port ? Number(parsed.port) : secure ? 465 : 587, redacted: '' };
  if (parsed.username) target.user = decode(parsed.username, 'user', url);
  if (parsed.password) target.password = decode(parsed.password, 'password', url);
  if (parsed.password) parsed.password = '***';
  target.redacted = parsed.toString().replace(/\/$/, '');
  return target;
}

function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  return bare === 'localhost' || (isIP(bare) === 4 && bare.startsWith('127.')) || bare === '::1';
}

export interface SmtpMailerOptions {
  /** from MICRO_SMTP_URL (parseSmtpUrl) */
  target: SmtpTarget;
  /** the From header; default `M3O <no-reply@localhost>` */
  from?: string;
  /** how long one attempt at a message may take (connect, greeting, login, transfer); default 30000 */
  timeoutMs?: number;
  /** DKIM signing of every message (RFC 6376, rsa-sha256, relaxed/relaxed); default none */
  dkim?: DkimKey;
  /** the waits before each retry of a send that failed where retrying is safe (see `retryable`); default [1000, 4000] */
  retryDelaysMs?: readonly number[];
}

/** What nodemailer signs with: the key's domain (`d=`), its selector (`s=`, the DNS name `<selector>._domainkey.<domain>`) and the PEM private key. */
export interface DkimKey {
  domainName: string;
  keySelector: string;
  privateKey: string;
}

export const DEFAULT_SMTP_TIMEOUT_MS = 30_000;
export const DEFAULT_SMTP_RETRY_DELAYS_MS: readonly number[] = [1000, 4000];

/**
 * Whether a failed send may be tried again without the risk of a second copy: the
 * connection was refused (nothing was sent), or the server answered with a transient 4xx
 * reply (RFC 5321: it did not take the message, try later). Not retried: a timeout or a
 * connection lost mid-transfer (the server may have the message), a 5xx (it will say the
 * same again), a refused login.
 */
export function retryable(err: unknown): boolean {
  const e = err as { responseCode?: number; message?: string };
  if (typeof e.responseCode === 'number') return e.responseCode >= 400 && e.responseCode < 500;
  return /\bECONNREFUSED\b/.test(e.message ?? '');
}

/**
 * Mail through an SMTP server (nodemailer), one connection per message: the platform sends
 * a few messages a minute, not enough to keep a pool warm. Every error names the server by
 * its redacted URL and has the password scrubbed from whatever the server replied.
 */
export class SmtpMailer implements Mailer {
  private readonly transport: Transporter;
  private readonly from: string;
  private readonly timeoutMs: number;
  private readonly retryDelaysMs: readonly number[];

  constructor(private readonly options: SmtpMailerOptions) {
    const { target } = options;
    this.from = checkSender(options.from ?? DEFAULT_FROM);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SMTP_TIMEOUT_MS;
    this.retryDelaysMs = options.retryDelaysMs ?? DEFAULT_SMTP_RETRY_DELAYS_MS;
    this.transport = createTransport({
      host: target.host,
      port: target.port,
      secure: target.secure,
      // A password never crosses the network in clear: smtp:// must upgrade with STARTTLS, except to this machine.
      requireTLS: !target.secure && target.password !== undefined && !isLoopback(target.host),
      auth: target.user !== undefined ? { user: target.user, pass: target.password ?? '' } : undefined,
      connectionTimeout: this.timeoutMs,
      greetingTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs,
      disableFileAccess: true,
      disableUrlAccess: true,
      logger: false,
      ...(options.dkim ? { dkim: { ...options.dkim } } : {}),
    });
  }

  /** The server as logs may show it: the URL with the password masked. */
  get server(): string {
    return this.options.target.redacted;
  }

  async send(message: MailMessage): Promise<void> {
    const fields = composerOptions(this.from, checkMessage(message));
    for (let attempt = 0; ; attempt++) {
      try {
        await this.attempt(fields);
        return;
      } catch (err) {
        const wait = this.retryDelaysMs[attempt];
        if (wait === undefined || !retryable(err)) throw this.explain(err, attempt + 1);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /** One try, bounded by the timeout. */
  private async attempt(fields: ReturnType<typeof composerOptions>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' })), this.timeoutMs);
    });
    try {
      await Promise.race([this.transport.sendMail(fields), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.transport.close();
  }

  /** A MicroError naming the server (password masked) and what went wrong. */
  private explain(err: unknown, attempts: number): MicroError {
    const e = err as { code?: string; message?: string; response?: string };
    const said = this.scrub(e.response ?? e.message ?? String(err)) + (attempts > 1 ? ` (after ${attempts} attempts)` : '');
    const server = this.server;
    switch (e.code) {
      case 'EAUTH':
      case 'ENOAUTH':
        return errors.BadGateway(MAIL_ERROR_ID, `mail: the SMTP server ${server} refused the login of user ${JSON.stringify(this.options.target.user ?? '')} (check the user and password in MICRO_SMTP_URL): ${said}`);
      case 'ECONNECTION':
      case 'ESOCKET':
      case 'EDNS':
      case 'ETIMEDOUT':
      case 'ETLS':
      case 'EREQUIRETLS':
        return errors.ServiceUnavailable(MAIL_ERROR_ID, `mail: cannot reach the SMTP server ${server} (${e.code}): ${said}`);
      default:
        return errors.BadGateway(MAIL_ERROR_ID, `mail: the SMTP server ${server} refused the message${e.code ? ` (${e.code})` : ''}: ${said}`);
    }
  }

  /** Removes the password, in clear, URL-encoded and inside an AUTH PLAIN/LOGIN token, from a server's reply. */
  private scrub(text: string): string {
    const { user = '', password } = this.options.target;
    if (!password) return text;
    const forms = [
      password,
      encodeURIComponent(password),
      Buffer.from(password).toString('base64'),
      Buffer.from(`\u0000${user}\u0000${password}`).toString('base64'),
    ];
    return forms.reduce((out, form) => out.split(form).join('***'), text);
  }
}
