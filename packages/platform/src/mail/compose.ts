import addressparser from 'nodemailer/lib/addressparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { MailComposerOptions } from 'nodemailer/lib/mail-composer';
import type { MailMessage } from './mailer.js';

/** The sender when MICRO_SMTP_FROM is not set. */
export const DEFAULT_FROM = 'M3O <no-reply@localhost>';

/**
 * The nodemailer fields of a checked message: only ours, and never a file or a URL for
 * nodemailer to read (its `path`/`href` contents), whatever a caller passed.
 */
export function composerOptions(from: string, message: MailMessage): MailComposerOptions {
  const options: MailComposerOptions = {
    from: message.fromName === undefined ? from : { name: message.fromName, address: addressOf(from) },
    to: message.to,
    subject: message.subject,
    text: message.text,
    disableFileAccess: true,
    disableUrlAccess: true,
  };
  if (message.html !== undefined) options.html = message.html;
  if (message.replyTo !== undefined) options.replyTo = message.replyTo;
  return options;
}

/** The message as RFC 5322 bytes (headers, MIME parts, Date and Message-ID), as SMTP would carry it. */
export function composeMessage(from: string, message: MailMessage): Promise<Buffer> {
  return new MailComposer(composerOptions(from, message)).compile().build();
}

/** The bare address of a checked sender (`M3O <no-reply@m3o.com>` → `no-reply@m3o.com`). */
function addressOf(sender: string): string {
  return addressparser(sender, { flatten: true })[0]?.address ?? sender;
}
