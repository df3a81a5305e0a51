import { errors } from '@micro/sdk';
import { checkAddress, MAIL_ERROR_ID, oneLine } from './checks.js';
import type { MailMessage } from './mailer.js';

/**
 * The messages the signup flow sends. Each has a plain-text body and a simple HTML one;
 * every value put into the HTML is escaped, values a person chose (an inviter's name, a
 * namespace) are stripped of control characters and cut to a bound in the text, and
 * subjects are fixed strings, so no input reaches a header.
 */

const PRODUCT = 'M3O';
/** Longest name (inviter, namespace, role) a message carries; a longer one is refused. */
export const MAX_NAME_LENGTH = 100;
/** Most namespaces listed in a recovery message; the rest are counted. */
export const MAX_LISTED_NAMESPACES = 100;
const CODE = /^[A-Za-z0-9-]{1,64}$/;

function bad(field: string, why: string): never {
  throw errors.BadRequest(MAIL_ERROR_ID, `${field}: ${why}`);
}

/** `&`, `<`, `>`, `"` and `'` as entities: safe in element content and in quoted attributes. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A name someone chose, bounded and put on one line. */
function name(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') bad(field, 'is required');
  if (value.length > MAX_NAME_LENGTH) bad(field, `is ${value.length} characters, at most ${MAX_NAME_LENGTH} allowed`);
  return oneLine(value).trim();
}

/** The site's address links start with: http(s), no user, query or fragment; without a trailing slash. */
function checkBase(base: unknown): string {
  let url: URL;
  try {
    url = new URL(String(base));
  } catch {
    bad('base', `must be the site's address like https://m3o.example.com, got ${JSON.stringify(String(base).slice(0, 100))}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') bad('base', `must be an http:// or https:// address, not ${url.protocol}`);
  if (url.username || url.password || url.search || url.hash) bad('base', 'must not carry a user, a query or a fragment');
  return url.toString().replace(/\/+$/, '');
}

function link(base: string, path: string, params: Record<string, string | undefined>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined) query.set(key, value);
  return `${checkBase(base)}${path}?${query.toString()}`;
}

/** A body is a list of blocks, rendered once as text and once as HTML. */
type Block = string | { link: string } | { code: string } | { list: string[] };

function blockText(block: Block): string {
  if (typeof block === 'string') return block;
  if ('link' in block) return block.link;
  if ('code' in block) return `    ${block.code}`;
  return block.list.map((item) => `  - ${item}`).join('\n');
}

function blockHtml(block: Block): string {
  if (typeof block === 'string') return `<p>${escapeHtml(block)}</p>`;
  if ('link' in block) return `<p><a href="${escapeHtml(block.link)}">${escapeHtml(block.link)}</a></p>`;
  if ('code' in block) return `<p style="font-size:24px;letter-spacing:4px"><strong>${escapeHtml(block.code)}</strong></p>`;
  return `<ul>${block.list.map((item) => `<li>${escapeHtml(item)}</li>`).join('')}</ul>`;
}

function message(to: unknown, subject: string, blocks: Block[]): MailMessage {
  return {
    to: checkAddress(to),
    subject,
    text: `${blocks.map(blockText).join('\n\n')}\n`,
    html: `<!doctype html><html><body>${blocks.map(blockHtml).join('')}</body></html>`,
  };
}

export interface VerificationMessageInput {
  to: string;
  /** the one-time code (letters, digits, `-`; at most 64) */
  code: string;
  /** the site's address; the link is `<base>/signup/verify?email=…&code=…` */
  base: string;
  /** how long the code is valid, said in the message when given */
  validMinutes?: number;
}

/** The message that proves an address: a one-time code to type, and a link that carries it. */
export function verificationMessage(input: VerificationMessageInput): MailMessage {
  if (typeof input.code !== 'string' || !CODE.test(input.code)) bad('code', 'must be 1 to 64 letters, digits or -');
  const to = checkAddress(input.to);
  const blocks: Block[] = [
    `Your ${PRODUCT} verification code is:`,
    { code: input.code },
    'Or open this link to verify your email address:',
    { link: link(input.base, '/signup/verify', { email: to, code: input.code }) },
  ];
  if (input.validMinutes !== undefined) blocks.push(`The code is valid for ${Math.max(1, Math.floor(input.validMinutes))} minutes.`);
  blocks.push(`If you did not sign up for ${PRODUCT}, ignore this message.`);
  return message(to, `Your ${PRODUCT} verification code`, blocks);
}

export interface PlatformInviteMessageInput {
  to: string;
  /** the site's address; the link is `<base>/signup?email=…` (`&namespace=…` with a namespace) */
  base: string;
  /** who invited, as they are known (name or email); said in the message when given */
  inviter?: string;
  /** the namespace the invitee will join, when the invite is into one */
  namespace?: string;
}

/** An invite to sign up, optionally straight into a namespace. */
export function platformInviteMessage(input: PlatformInviteMessageInput): MailMessage {
  const to = checkAddress(input.to);
  const inviter = input.inviter === undefined ? undefined : name('inviter', input.inviter);
  const namespace = input.namespace === undefined ? undefined : name('namespace', input.namespace);
  const who = inviter ? `${inviter} invited you` : 'You are invited';
  const where = namespace ? ` to join the namespace ${namespace} on ${PRODUCT}` : ` to ${PRODUCT}`;
  return message(to, `You are invited to ${PRODUCT}`, [
    `${who}${where}.`,
    'Sign up with this email address here:',
    { link: link(input.base, '/signup', { email: to, namespace: input.namespace }) },
    'If you did not expect this invite, ignore this message.',
  ]);
}

export interface TeamInviteMessageInput {
  to: string;
  /** the site's address; the link is `<base>/signup?email=…&namespace=…` (sign in or sign up, then join) */
  base: string;
  /** the team's namespace */
  namespace: string;
  /** who invited, as they are known (name or email) */
  inviter: string;
  /** the role offered (owner, admin, developer, viewer), said when given */
  role?: string;
}

/** An invite of an existing or new customer into a team namespace. */
export function teamInviteMessage(input: TeamInviteMessageInput): MailMessage {
  const to = checkAddress(input.to);
  const namespace = name('namespace', input.namespace);
  const inviter = name('inviter', input.inviter);
  const role = input.role === undefined ? '' : ` as ${name('role', input.role)}`;
  return message(to, `You are invited to a team on ${PRODUCT}`, [
    `${inviter} invited you to the team namespace ${namespace} on ${PRODUCT}${role}.`,
    'Sign in (or sign up) with this email address to accept:',
    { link: link(input.base, '/signup', { email: to, namespace: input.namespace }) },
    'If you did not expect this invite, ignore this message.',
  ]);
}

export interface NamespacesMessageInput {
  to: string;
  /** the namespaces of the address; may be empty (the message says so, so that asking reveals nothing but to the owner) */
  namespaces: string[];
}

/** The "which namespaces are mine" recovery message. */
export function namespacesMessage(input: NamespacesMessageInput): MailMessage {
  if (!Array.isArray(input.namespaces)) bad('namespaces', 'must be a list of names');
  const to = checkAddress(input.to);
  const listed = input.namespaces.slice(0, MAX_LISTED_NAMESPACES).map((n, i) => name(`namespaces[${i}]`, n));
  const blocks: Block[] = listed.length === 0
    ? [`No ${PRODUCT} namespace belongs to ${to}.`]
    : [`The ${PRODUCT} namespaces of ${to}:`, { list: listed }];
  const more = input.namespaces.length - listed.length;
  if (more > 0) blocks.push(`and ${more} more.`);
  blocks.push(`Someone asked for this list for this address. If it was not you, ignore this message.`);
  return message(to, `Your ${PRODUCT} namespaces`, blocks);
}

export interface BalanceMessageInput {
  to: string;
  /** `low`: below the threshold; `zero`: nothing left */
  state: 'low' | 'zero';
  /** the balance as people read it (`$0.42`: billing's formatDollars) */
  balance: string;
  /** the threshold, likewise (`$1.00`) */
  threshold: string;
  /** the dashboard's address; the link is `<base>/#/billing` */
  base: string;
}

const DOLLARS = /^-?\$\d{1,3}(,\d{3})*\.\d{2}(\d{4})?$/;

/** The owner's notice that its prepaid balance fell below the threshold, or to zero. */
export function balanceMessage(input: BalanceMessageInput): MailMessage {
  const to = checkAddress(input.to);
  if (input.state !== 'low' && input.state !== 'zero') bad('state', 'must be low or zero');
  for (const field of ['balance', 'threshold'] as const) if (typeof input[field] !== 'string' || !DOLLARS.test(input[field])) bad(field, 'must be dollars such as $1.00');
  const billing = `${checkBase(input.base)}/#/billing`;
  const zero = input.state === 'zero';
  return message(to, zero ? `Your ${PRODUCT} balance is used up` : `Your ${PRODUCT} balance is low`, [
    zero
      ? `Your prepaid ${PRODUCT} balance is ${input.balance}: priced API calls are refused until you top it up.`
      : `Your prepaid ${PRODUCT} balance is ${input.balance}, below ${input.threshold}. Priced API calls are refused once it is used up.`,
    'Top it up here:',
    { link: billing },
    'You get this message once each time the balance falls this low.',
  ]);
}
