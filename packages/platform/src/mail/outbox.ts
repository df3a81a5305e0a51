import { Outbox, type Logger } from '@micro/sdk';
import { checkMessage, checkSender } from './checks.js';
import { composeMessage, DEFAULT_FROM } from './compose.js';
import type { Mailer, MailMessage } from './mailer.js';

export interface OutboxMailerOptions {
  /** the folder the messages go to; `<MICRO_HOME>/outbox` when made by mailerFromEnv */
  dir: string;
  /** told once, on the first message, where the outbox is */
  logger: Logger;
  /** the most files kept, the oldest removed first; default 1000 */
  max?: number;
  /** the From header; default `M3O <no-reply@localhost>` */
  from?: string;
  /** default Date.now */
  now?: () => number;
}

export { DEFAULT_OUTBOX_MAX } from '@micro/sdk';

/**
 * Mail without an SMTP server: each message is written as an RFC 5322 `.eml` file that a
 * mail client opens (and a developer reads the verification code from), in the SDK's
 * `Outbox` (a private, bounded folder).
 */
export class OutboxMailer implements Mailer {
  private readonly outbox: Outbox;
  private readonly from: string;

  constructor(options: OutboxMailerOptions) {
    this.from = checkSender(options.from ?? DEFAULT_FROM);
    this.outbox = new Outbox({
      dir: options.dir,
      extension: '.eml',
      max: options.max,
      now: options.now,
      onReady: () =>
        options.logger.info(
          { outbox: options.dir, max: this.outbox.max },
          `mail: no SMTP server configured (set MICRO_SMTP_URL to send); messages are written as .eml files to ${options.dir}`,
        ),
    });
  }

  get dir(): string {
    return this.outbox.dir;
  }

  async send(message: MailMessage): Promise<void> {
    const checked = checkMessage(message);
    await this.outbox.write(await composeMessage(this.from, checked));
  }

  /** The .eml files of the outbox, oldest first. */
  files(): Promise<string[]> {
    return this.outbox.files();
  }
}
