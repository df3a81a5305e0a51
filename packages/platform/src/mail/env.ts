import { join } from 'node:path';
import type { Logger } from '@micro/sdk';
import type { Mailer } from './mailer.js';
import { OutboxMailer } from './outbox.js';
import { parseSmtpUrl, SmtpMailer } from './smtp.js';

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
  const mailer = new SmtpMailer({ target: parseSmtpUrl(url), from, timeoutMs: options.timeoutMs });
  options.logger.info({ smtp: mailer.server }, `mail: sending through ${mailer.server}`);
  return mailer;
}
