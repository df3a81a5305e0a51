import { join } from 'node:path';
import { errors, microHome, type Context, type Engines, type Handlers, type Logger } from '@micro/sdk';
import { missing, publicService } from '@micro/services-kit';
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { sms, SMS_LIMITS } from './definition.js';
import { OutboxProvider, type SmsProvider } from './provider.js';
import { TwilioProvider, type TwilioAccount, type TwilioOptions } from './twilio.js';

export interface SmsOptions {
  /** the offline outbox; default `<MICRO_HOME>/sms-outbox` */
  outboxDir?: string;
  /** messages one tenant may send an hour; default MICRO_SMS_TENANT_LIMIT, else 100 */
  perHour?: number;
  /** Twilio's retries and timeout (tests make them short) */
  twilio?: TwilioOptions;
  /** default Date.now */
  now?: () => number;
}

const E164 = /^\+[1-9]\d{1,14}$/;
// control characters but the line breaks and tabs a text message may hold
// eslint-disable-next-line no-control-regex -- finding control characters is what it is for
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/;
const SENDER = /^[\p{L}\p{N}][\p{L}\p{N} .'&-]*$/u;
const HOUR = 3_600_000;

function bad(field: string, why: string): never {
  throw errors.BadRequest('sms', `${field}: ${why}`);
}

/** `to` as E.164 (`+447911123456`): one number, no spaces or punctuation, a number that exists in its country's plan. */
export function checkPhone(to: string | undefined): string {
  if (to === undefined || to.trim() === '') throw missing('sms', 'to');
  if (!to.startsWith('+')) bad('to', 'must be a phone number in E.164 form with its country code, like +447911123456');
  if (!E164.test(to)) bad('to', 'must be one phone number in E.164 form: + and at most 15 digits, no spaces, dashes or brackets (like +447911123456)');
  const number = parsePhoneNumberFromString(to);
  if (!number?.isValid()) bad('to', `${to} is not a valid phone number of any country's numbering plan`);
  return number.number;
}

/** The text sent: the sender's name first (the number is the platform's), then the message. */
function bodyOf(from: string | undefined, message: string | undefined): string {
  if (message === undefined || message.trim() === '') throw missing('sms', 'message');
  if (CONTROLS.test(message)) bad('message', 'must not contain control characters (line breaks and tabs are fine)');
  const name = from?.trim();
  if (!name) return message;
  if (!SENDER.test(name)) bad('from', 'is the name the message is signed with: letters, digits, spaces and . \' & - only');
  const body = `${name}: ${message}`;
  if (body.length > SMS_LIMITS.message) bad('message', `with "${name}: " before it is ${body.length} characters, at most ${SMS_LIMITS.message}`);
  return body;
}

function perHourOf(options: SmsOptions): number {
  if (options.perHour !== undefined) return options.perHour;
  const raw = process.env.MICRO_SMS_TENANT_LIMIT?.trim();
  if (!raw) return SMS_LIMITS.perHour;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`MICRO_SMS_TENANT_LIMIT must be a whole number ≥ 1 (messages a tenant sends an hour), got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The platform's Twilio account from the config secrets of namespace micro (`micro config
 * set twilio.token … --secret`), read at each message so a change applies at once; the
 * outbox while `twilio.sid`, `twilio.token` and `twilio.from` are not all set.
 */
function providers(engines: Engines, options: SmsOptions, logger: () => Logger | undefined) {
  const outbox = new OutboxProvider(options.outboxDir ?? join(microHome(), 'sms-outbox'), () =>
    logger()?.info({ outbox: outbox.dir }, `sms: no Twilio account configured (micro config set twilio.sid/twilio.token/twilio.from --secret); messages are written to ${outbox.dir}`),
  );
  let twilio: { key: string; provider: TwilioProvider } | undefined;
  return async (): Promise<SmsProvider> => {
    const config = (await engines.config.get('twilio', { namespace: 'micro', secrets: true })) as Partial<Record<keyof TwilioAccount, unknown>> | undefined;
    const { sid, token, from, url } = config ?? {};
    if (typeof sid !== 'string' || typeof token !== 'string' || typeof from !== 'string' || !sid || !token || !from) return outbox;
    const account: TwilioAccount = { sid, token, from, ...(typeof url === 'string' && url ? { url } : {}) };
    const key = JSON.stringify(account);
    if (twilio?.key !== key) twilio = { key, provider: new TwilioProvider(account, { ...options.twilio, ...(logger() ? { logger: logger() } : {}) }) };
    return twilio.provider;
  };
}

/** Counts a tenant's messages in hourly windows in the cache of micro (shared by every node; a tenant cannot reach it). */
async function takeAllowance(engines: Engines, ctx: Context, perHour: number, now: number): Promise<void> {
  const window = Math.floor(now / HOUR);
  const key = `sms/sent/${ctx.tenant}/${window}`;
  const count = await engines.cache.increment(key, 1, { namespace: 'micro' });
  // the window's key expires after it; set on the first message (a concurrent first increment may be lost: at most a message more)
  if (count === 1) await engines.cache.set(key, 1, { namespace: 'micro', ttl: HOUR / 1000 });
  if (count > perHour) {
    const minutes = Math.ceil(((window + 1) * HOUR - now) / 60_000);
    throw errors.TooManyRequests('sms', `tenant ${ctx.tenant} sent ${perHour} messages this hour, its limit; more in ${minutes} minutes`);
  }
}

export function smsHandlers(engines: Engines, options: SmsOptions = {}): Handlers<typeof sms> {
  const perHour = perHourOf(options);
  const now = options.now ?? Date.now;
  let logger: Logger | undefined;
  const provider = providers(engines, options, () => logger);
  return {
    Send: async (req, ctx) => {
      logger ??= ctx.logger;
      const to = checkPhone(req.to);
      const body = bodyOf(req.from, req.message);
      await takeAllowance(engines, ctx, perHour, now());
      const chosen = await provider();
      const sent = await chosen.send({ to, body }, ctx.tenant);
      ctx.logger.info({ tenant: ctx.tenant, provider: chosen.name, id: sent.id }, 'sms: sent for a tenant');
      return { status: sent.status, info: sent.id };
    },
  };
}

export const service = publicService(sms, (engines) => smsHandlers(engines));
export { sms } from './definition.js';
