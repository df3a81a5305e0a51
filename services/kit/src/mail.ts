import { createClient, errors, isMicroError, mailService, type Context, type Engines, type MicroError, type z } from '@micro/sdk';

/**
 * Email from a value-add service goes through the platform's mail core service (namespace
 * micro), by RPC on the client of its engines: a service may only use the public SDK, and
 * the platform keeps the SMTP credentials, the sending address, DKIM and the per-tenant rate.
 */

/** One message as the mail service's Send takes it, less the tenant (the caller's, always). */
export type PlatformEmail = Omit<z.infer<typeof mailService.endpoints.Send.request>, 'tenant'>;

/** The caller's names of the mail service's fields (`{ to: 'email', fromName: 'from_name' }`), for its 400s. */
export type MailFieldNames = Partial<Record<keyof PlatformEmail, string>>;

/** What to tell a caller when no mail service answers: the service runs outside the platform. */
export function noPlatformMail(service: string): string {
  return `sending email needs the platform's mail service (namespace micro), which did not answer: run the ${service} service inside micro server with the platform layer (\`micro server\`, MICRO_SERVICES including ${service}) and set MICRO_SMTP_URL there (without it, messages go to <MICRO_HOME>/outbox)`;
}

/** Sends one email on behalf of the caller's tenant; the errors are `service`'s and say what the caller can do. */
export async function sendPlatformEmail(engines: Engines, ctx: Context, service: string, email: PlatformEmail, fields: MailFieldNames = {}): Promise<void> {
  const client = engines.client;
  if (!client) throw errors.ServiceUnavailable(service, noPlatformMail(service));
  const mail = createClient(mailService, client);
  const optional = (key: 'html' | 'fromName' | 'replyTo') => (email[key] !== undefined ? { [key]: email[key] } : {});
  try {
    await mail.Send({ tenant: ctx.tenant, to: email.to, subject: email.subject, text: email.text, ...optional('html'), ...optional('fromName'), ...optional('replyTo') }, { timeout: 120_000 });
  } catch (err) {
    throw mailError(err, ctx, service, fields);
  }
}

function mailError(err: unknown, ctx: Context, service: string, fields: MailFieldNames): MicroError {
  if (!isMicroError(err)) return errors.ServiceUnavailable(service, `${noPlatformMail(service)} (${String(err).slice(0, 200)})`);
  // the platform's checks name the field first: `to: …`, `fromName: …`
  if (err.code === 400) return errors.BadRequest(service, renameField(err.detail, fields));
  if (err.code === 429) return errors.TooManyRequests(service, err.detail);
  // the mail server was away or refused: the platform's server, user and reply are not the tenant's business
  if (err.id === 'micro.mail' && (err.code === 502 || err.code === 503)) {
    ctx.logger.warn({ detail: err.detail }, `${service}: the platform's mail server failed`);
    return err.code === 503
      ? errors.ServiceUnavailable(service, "the platform's mail server cannot be reached at the moment; nothing was sent, try again later")
      : errors.BadGateway(service, "the platform's mail server refused the message; nothing was sent");
  }
  // not there (404, 503) or not for this identity (401, 403: `micro run` outside the platform)
  if ([401, 403, 404, 503].includes(err.code)) return errors.ServiceUnavailable(service, `${noPlatformMail(service)} (${err.detail.slice(0, 200)})`);
  return errors.BadGateway(service, `the platform's mail service failed: ${err.detail.slice(0, 300)}`);
}

function renameField(detail: string, fields: MailFieldNames): string {
  const field = /^(\w+):/.exec(detail)?.[1] as keyof PlatformEmail | undefined;
  const name = field && fields[field];
  return name ? `${name}:${detail.slice(field.length + 1)}` : detail;
}
