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
    from,
    to: message.to,
    subject: message.subject,
    text: message.text,
    disableFileAccess: true,
    disableUrlAccess: true,
  };
  if (message.html !== undefined) options.html = message.html;
  return options;
}

/** The message as RFC 5322 bytes (headers, MIME parts, Date and Message-ID), as SMTP would carry it. */
export function composeMessage(from: string, message: MailMessage): Promise<Buffer> {
  return new MailComposer(composerOptions(from, message)).compile().build();
}
