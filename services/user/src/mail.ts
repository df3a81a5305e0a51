import { createClient, errors, isMicroError, mailService, type Context, type Engines } from '@micro/sdk';

/**
 * The user service's emails go through the platform's mail core service (namespace micro),
 * by RPC on the client of its engines: a service may only use the public SDK, and the
 * platform keeps the SMTP credentials, the sending address and the per-tenant rate.
 */

/** What to tell a caller when no mail service answers: the service runs outside the platform. */
export const NO_MAIL =
  "sending email needs the platform's mail service (namespace micro), which did not answer: run the user service inside micro server with the platform layer (`micro server`, MICRO_SERVICES including user) and set MICRO_SMTP_URL there (without it, messages go to <MICRO_HOME>/outbox)";

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

/** Sends one email on behalf of the caller's tenant; the errors say what the caller can do. */
export async function sendEmail(engines: Engines, ctx: Context, email: Email): Promise<void> {
  const client = engines.client;
  if (!client) throw errors.ServiceUnavailable('user', NO_MAIL);
  const mail = createClient(mailService, client);
  try {
    await mail.Send({ tenant: ctx.tenant, to: email.to, subject: email.subject, text: email.text, ...(email.fromName ? { fromName: email.fromName } : {}) }, { timeout: 30_000 });
  } catch (err) {
    throw mailError(err);
  }
}

function mailError(err: unknown): Error {
  if (!isMicroError(err)) return errors.ServiceUnavailable('user', `${NO_MAIL} (${String(err).slice(0, 200)})`);
  // the platform's checks name the field: `to: …`, `subject: …`, `fromName: …`
  if (err.code === 400) return errors.BadRequest('user', err.detail.replace(/^to:/, 'email:').replace(/^fromName:/, 'from_name:').replace(/^text:/, 'text_content:'));
  if (err.code === 429) return errors.TooManyRequests('user', err.detail);
  // not there (404, 503) or not for this identity (401, 403: `micro run` outside the platform)
  if ([401, 403, 404, 503].includes(err.code)) return errors.ServiceUnavailable('user', `${NO_MAIL} (${err.detail.slice(0, 200)})`);
  return errors.BadGateway('user', `the platform's mail service failed: ${err.detail.slice(0, 300)}`);
}
