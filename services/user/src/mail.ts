import type { Context, Engines } from '@micro/sdk';
import { noPlatformMail, sendPlatformEmail } from '@micro/services-kit';

/** What to tell a caller when no mail service answers: the service runs outside the platform. */
export const NO_MAIL = noPlatformMail('user');

export interface Email {
  to: string;
  subject: string;
  text: string;
  fromName?: string;
}

/** Puts the values into a template: every `$code` and `$micro_verification_link`. */
export function fill(template: string, values: { code?: string; link?: string }): string {
  let out = template;
  if (values.link !== undefined) out = out.split('$micro_verification_link').join(values.link);
  if (values.code !== undefined) out = out.split('$code').join(values.code);
  return out;
}

/** Sends one email on behalf of the caller's tenant, through the platform's mail service; 400s name the user API's fields. */
export function sendEmail(engines: Engines, ctx: Context, email: Email): Promise<void> {
  return sendPlatformEmail(engines, ctx, 'user', { to: email.to, subject: email.subject, text: email.text, ...(email.fromName ? { fromName: email.fromName } : {}) }, { to: 'email', fromName: 'from_name', text: 'text_content' });
}
