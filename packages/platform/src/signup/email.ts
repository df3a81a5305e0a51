import { errors } from '@micro/sdk';

/**
 * What signup accepts as an email address, and its one spelling (lower case).
 *
 * Deliberately narrower than RFC 5321: the local part is letters, digits and `. _ + -`
 * (starting and ending with a letter or digit, no `..`), the domain is ASCII labels
 * (`xn--` punycode included) with a letter TLD. The address becomes the id of the
 * customer's accounts (auth's ACCOUNT_ID allows exactly these characters), and nothing
 * non-ASCII gets in: no homoglyph of someone else's address.
 */

export const MAX_EMAIL = 254;
const LOCAL = /^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const TLD = /^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$/;

/** Domains of throwaway mailboxes (each one's subdomains too): a small list, not a service. */
export const DISPOSABLE_DOMAINS: ReadonlySet<string> = new Set([
  '10minutemail.com',
  'dispostable.com',
  'emailondeck.com',
  'fakeinbox.com',
  'getnada.com',
  'guerrillamail.com',
  'guerrillamail.net',
  'maildrop.cc',
  'mailinator.com',
  'mailnesia.com',
  'mintemail.com',
  'mohmal.com',
  'sharklasers.com',
  'spam4.me',
  'temp-mail.org',
  'tempmail.com',
  'tempmailo.com',
  'throwawaymail.com',
  'trashmail.com',
  'yopmail.com',
]);

/** The address in lower case, or a 400 naming the field and what is wrong. */
export function normaliseEmail(raw: string, field = 'email'): string {
  const bad = (why: string) => errors.BadRequest('signup', `${field}: ${why}`);
  if (typeof raw !== 'string' || raw.length === 0) throw bad('required');
  if (raw.length > MAX_EMAIL) throw bad(`at most ${MAX_EMAIL} characters`);
  if (/[^\x21-\x7e]/.test(raw)) throw bad('only ASCII letters, digits and . _ + - @ (no spaces, no other alphabets)');
  const email = raw.toLowerCase();
  const at = email.lastIndexOf('@');
  if (at < 1 || email.indexOf('@') !== at) throw bad('not an email address (one @ between a name and a domain)');
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (!LOCAL.test(local) || local.includes('..')) throw bad('the part before @ may hold letters, digits and . _ + - (starting and ending with a letter or digit)');
  const labels = domain.split('.');
  if (labels.length < 2 || domain.length > 253 || !labels.every((l) => LABEL.test(l)) || !TLD.test(labels[labels.length - 1] as string)) {
    throw bad(`"${domain.slice(0, 64)}" is not a domain name`);
  }
  if (isDisposable(domain)) throw bad(`addresses of ${domain} are throwaway mailboxes: use an address you keep`);
  return email;
}

function isDisposable(domain: string): boolean {
  const labels = domain.split('.');
  for (let i = 0; i < labels.length - 1; i++) if (DISPOSABLE_DOMAINS.has(labels.slice(i).join('.'))) return true;
  return false;
}
