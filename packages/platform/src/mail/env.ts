import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '@micro/sdk';
import addressparser from 'nodemailer/lib/addressparser';
import { checkSender } from './checks.js';
import { DEFAULT_FROM } from './compose.js';
import type { Mailer } from './mailer.js';
import { OutboxMailer } from './outbox.js';
import { parseSmtpUrl, SmtpMailer, type DkimKey } from './smtp.js';

export interface MailerFromEnvOptions {
  /** MICRO_HOME; the outbox is `<home>/outbox` */
  home: string;
  logger: Logger;
  /** default process.env */
  env?: NodeJS.ProcessEnv;
  /** files the outbox keeps; default 1000 */
  outboxMax?: number;
  /** SMTP send timeout in ms; default 30000 */
  timeoutMs?: number;
}

/**
 * The platform's mailer: SMTP when MICRO_SMTP_URL is set (checked now, so a wrong URL stops
 * the start with a message saying what to write), else the outbox under MICRO_HOME.
 * MICRO_SMTP_FROM sets the sender of either.
 */
export function mailerFromEnv(options: MailerFromEnvOptions): Mailer {
  const env = options.env ?? process.env;
  const from = env.MICRO_SMTP_FROM?.trim() || undefined;
  const url = env.MICRO_SMTP_URL?.trim();
  if (!url) return new OutboxMailer({ dir: join(options.home, 'outbox'), logger: options.logger, max: options.outboxMax, from });
  const dkim = dkimFromEnv(env, from ?? DEFAULT_FROM);
  const mailer = new SmtpMailer({ target: parseSmtpUrl(url), from, timeoutMs: options.timeoutMs, ...(dkim ? { dkim } : {}) });
  options.logger.info({ smtp: mailer.server, dkim: dkim ? `${dkim.keySelector}._domainkey.${dkim.domainName}` : 'off' }, `mail: sending through ${mailer.server}`);
  return mailer;
}

const DKIM_HOW = 'set MICRO_DKIM_SELECTOR (the selector of the TXT record <selector>._domainkey.<domain>) and MICRO_DKIM_KEY_FILE (the PEM private key, e.g. from `openssl genrsa 2048`), and MICRO_DKIM_DOMAIN when the key is not for the domain of MICRO_SMTP_FROM';

/**
 * The DKIM key from the environment, beside MICRO_SMTP_URL whose messages it signs: none
 * when neither MICRO_DKIM_SELECTOR nor MICRO_DKIM_KEY_FILE is set. The key is read from a
 * file (kept 0600 by the operator, like a TLS key) and checked now, so a wrong one stops
 * the start instead of every send.
 */
export function dkimFromEnv(env: NodeJS.ProcessEnv, sender: string): DkimKey | undefined {
  const selector = env.MICRO_DKIM_SELECTOR?.trim();
  const file = env.MICRO_DKIM_KEY_FILE?.trim();
  if (!selector && !file) return undefined;
  if (!selector || !file) throw new Error(`DKIM: both are needed; ${DKIM_HOW}`);
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(selector)) throw new Error(`DKIM: MICRO_DKIM_SELECTOR ${JSON.stringify(selector)} is not a DNS label like "m3o2025"`);
  let privateKey: string;
  try {
    privateKey = readFileSync(file, 'utf8');
    createPrivateKey(privateKey);
  } catch (err) {
    throw new Error(`DKIM: cannot read a PEM private key from MICRO_DKIM_KEY_FILE ${file}: ${(err as Error).message}; ${DKIM_HOW}`, { cause: err });
  }
  const domainName = env.MICRO_DKIM_DOMAIN?.trim() || senderDomain(sender);
  return { domainName, keySelector: selector, privateKey };
}

function senderDomain(sender: string): string {
  const address = addressparser(checkSender(sender), { flatten: true })[0]?.address ?? '';
  return address.slice(address.lastIndexOf('@') + 1);
}
