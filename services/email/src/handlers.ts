import { addressProblem, errors, oneLine, type Engines, type Handlers } from '@micro/sdk';
import { missing, publicService, sendPlatformEmail } from '@micro/services-kit';
import addresses from 'email-addresses';
import { convert } from 'html-to-text';
import { email } from './definition.js';

/** A `to` naming more than one recipient, separated as mail clients separate them. */
const LIST = /[,;]/;

function bad(field: string, why: string): never {
  throw errors.BadRequest('email', `${field}: ${why}`);
}

/** `to` as one recipient: a list is refused up front with a count, so a bulk send is told what to do. */
function checkTo(to: string | undefined): string {
  if (to === undefined || to.trim() === '') throw missing('email', 'to');
  if (LIST.test(to)) {
    const count = to.split(LIST).filter((part) => part.trim() !== '').length;
    bad('to', `one recipient per message, got ${count} addresses; send one message to each`);
  }
  return checkAddress('to', to.trim());
}

/** The recipient rule of the platform's mail (`addressProblem`), asked here too so the answer names this API's field without a call. */
function checkAddress(field: string, address: string): string {
  const problem = addressProblem(address);
  if (problem !== undefined) bad(field, problem);
  return address;
}

/** `from` is a display name: the address is the platform's, so a caller cannot send as someone else's address. */
function checkFrom(from: string | undefined): string | undefined {
  if (from === undefined || from.trim() === '') return undefined;
  if (oneLine(from) !== from) bad('from', 'must not contain line breaks or control characters');
  if (/[@<>]/.test(from)) bad('from', 'is the display name the message is sent under (like "Acme Support"), not an address: messages leave from the platform\'s address; use reply_to for the address answers go to');
  return from.trim();
}

/** The plain-text body: as given, or the HTML body's text (every message has a text part for clients that show no HTML). */
function textOf(text: string | undefined, html: string | undefined): string {
  if (text !== undefined && text !== '') return text;
  if (html === undefined || html === '') throw missing('email', 'text_body or html_body');
  const derived = convert(html, { wordwrap: 78 }).trim();
  return derived === '' ? ' ' : derived;
}

export function emailHandlers(engines: Engines): Handlers<typeof email> {
  return {
    Send: async (req, ctx) => {
      const to = checkTo(req.to);
      const fromName = checkFrom(req.from);
      if (req.subject === undefined || req.subject.trim() === '') throw missing('email', 'subject');
      const text = textOf(req.text_body, req.html_body);
      const html = req.html_body === '' ? undefined : req.html_body;
      const replyTo = req.reply_to === undefined || req.reply_to.trim() === '' ? undefined : checkAddress('reply_to', req.reply_to.trim());
      // the platform's mail service checks every header value (no line breaks: no injected header) and counts the tenant's rate
      await sendPlatformEmail(
        engines,
        ctx,
        'email',
        { to, subject: req.subject, text, ...(html !== undefined ? { html } : {}), ...(fromName !== undefined ? { fromName } : {}), ...(replyTo !== undefined ? { replyTo } : {}) },
        { fromName: 'from', text: 'text_body', html: 'html_body', replyTo: 'reply_to' },
      );
      return {};
    },

    Parse: async (req) => {
      if (req.address === undefined || req.address.trim() === '') throw missing('email', 'address');
      const parsed = addresses.parseOneAddress({ input: req.address.trim(), rfc6532: true });
      if (parsed === null) bad('address', 'is not one RFC 5322 address like "Alice Smith <alice@example.com>" or alice@example.com');
      if (parsed.type === 'group') bad('address', `is a group ("${parsed.name}: …;"), not one address`);
      return { address: parsed.address, name: parsed.name ?? '' };
    },

    Validate: async (req) => {
      if (req.address === undefined || req.address.trim() === '') throw missing('email', 'address');
      return { is_valid: addressProblem(req.address.trim()) === undefined };
    },
  };
}

export const service = publicService(email, (engines) => emailHandlers(engines));
export { email } from './definition.js';
