import { addressProblem, errors, MAX_ADDRESS_LENGTH, oneLine } from '@micro/sdk';
import addressparser from 'nodemailer/lib/addressparser';
import type { MailMessage } from './mailer.js';

/**
 * The one place a message is checked before any engine sends it. Everything that ends up
 * in a header (to, subject, the configured sender) is refused when it carries a line break
 * or another control character, so no value can start a header of its own; the recipient
 * is one bare address (no display name, no list, no comment), so a caller cannot add a
 * second recipient or dress an address up as another.
 */

/** The error id of bad mail input, as in `errors.BadRequest(MAIL_ERROR_ID, …)`. */
export const MAIL_ERROR_ID = 'micro.mail';

export { MAX_ADDRESS_LENGTH, oneLine };
/** Subjects are ours (the builders), short and fixed; a long one is a mistake. */
export const MAX_SUBJECT_LENGTH = 200;
/** A display name a tenant gives its messages (`Acme Support`). */
export const MAX_FROM_NAME_LENGTH = 100;
/** A body of ours is a few kB; this bounds what an engine writes or sends. */
export const MAX_BODY_LENGTH = 100_000;

function bad(field: string, why: string): never {
  throw errors.BadRequest(MAIL_ERROR_ID, `${field}: ${why}`);
}

/** Refuses a header value with a line break or another control character. */
export function checkHeaderValue(field: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.trim() === '') bad(field, 'is required');
  if (value.length > max) bad(field, `is ${value.length} characters, at most ${max} allowed`);
  if (oneLine(value) !== value) bad(field, 'must not contain line breaks or control characters');
  return value;
}

/**
 * Returns `to` when it is one bare ASCII address (`name@example.com`), else throws a 400
 * naming the field. A recipient's domain needs a dot (`a@example` is a typo); the sender's
 * may be one label (`no-reply@localhost`, the default).
 */
export function checkAddress(value: unknown, field = 'to', oneLabel = false): string {
  const address = checkHeaderValue(field, value, MAX_ADDRESS_LENGTH);
  const problem = addressProblem(address, oneLabel);
  if (problem !== undefined) bad(field, problem);
  return address;
}

/**
 * Checks the configured sender: one mailbox, a display name allowed (`M3O <no-reply@m3o.com>`).
 * It is the operator's, not a tenant's, but it still becomes a header.
 */
export function checkSender(value: unknown, field = 'MICRO_SMTP_FROM'): string {
  const from = checkHeaderValue(field, value, 2 * MAX_ADDRESS_LENGTH);
  const parsed = addressparser(from, { flatten: true });
  if (parsed.length !== 1 || !parsed[0]?.address) bad(field, `must be one sender like "M3O <no-reply@example.com>"`);
  checkAddress(parsed[0].address, field, true);
  return from;
}

function checkBody(field: string, value: unknown, required: boolean): string | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value === '') bad(field, 'is required');
  if (value.length > MAX_BODY_LENGTH) bad(field, `is ${value.length} characters, at most ${MAX_BODY_LENGTH} allowed`);
  return value;
}

/**
 * Returns a copy of the message with only the fields an engine may use, checked. Extra
 * properties a caller smuggles in (headers, attachments with a file path, cc…) are dropped
 * here, so no engine can pass them on.
 */
export function checkMessage(message: MailMessage): MailMessage {
  if (typeof message !== 'object' || message === null) bad('message', 'is required');
  const checked: MailMessage = {
    to: checkAddress(message.to),
    subject: checkHeaderValue('subject', message.subject, MAX_SUBJECT_LENGTH),
    text: checkBody('text', message.text, true) as string,
  };
  const html = checkBody('html', message.html, false);
  if (html !== undefined) checked.html = html;
  if (message.fromName !== undefined) checked.fromName = checkHeaderValue('fromName', message.fromName, MAX_FROM_NAME_LENGTH);
  if (message.replyTo !== undefined) checked.replyTo = checkAddress(message.replyTo, 'replyTo');
  return checked;
}
