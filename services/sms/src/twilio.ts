import { errors, type Logger, type MicroError } from '@micro/sdk';
import type { Sent, Sms, SmsProvider } from './provider.js';

export interface TwilioAccount {
  /** the account SID (`AC…`) */
  sid: string;
  /** the auth token */
  token: string;
  /** the platform's number (E.164) or messaging service the messages leave from */
  from: string;
  /** default https://api.twilio.com (a test points it at a local server speaking the same API) */
  url?: string;
}

export interface TwilioOptions {
  /** the waits before each retry where retrying is safe (see `retryAfter`); default [1000, 4000] */
  retryDelaysMs?: readonly number[];
  /** one request's bound in ms; default 15000 */
  timeoutMs?: number;
  logger?: Logger;
}

export const TWILIO_URL = 'https://api.twilio.com';
const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [1000, 4000];
/** the longest Retry-After honoured; a longer one is answered as busy at once */
const MAX_RETRY_AFTER_MS = 10_000;

/** Twilio's error body: https://www.twilio.com/docs/usage/twilios-response#response-formats-exceptions */
interface TwilioError {
  code?: number;
  message?: string;
  more_info?: string;
  status?: number;
}

type Outcome = { sent: Sent } | { retry: true; error: MicroError; afterMs?: number } | { error: MicroError };

/**
 * Twilio's Programmable Messaging: `POST /2010-04-01/Accounts/{sid}/Messages.json`,
 * form-encoded `To`, `From`, `Body`, HTTP Basic auth `sid:token`. A new message is not
 * idempotent at Twilio, so a request is retried only when Twilio cannot have made it: the
 * connection was refused, or Twilio answered 429 (too many requests) or 503 (unavailable).
 * A 500, 502 or 504, or no answer in time, may have sent the message: not retried.
 */
export class TwilioProvider implements SmsProvider {
  readonly name = 'twilio';
  private readonly retryDelaysMs: readonly number[];
  private readonly timeoutMs: number;

  constructor(
    private readonly account: TwilioAccount,
    private readonly options: TwilioOptions = {},
  ) {
    this.retryDelaysMs = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  async send(sms: Sms): Promise<Sent> {
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.attempt(sms);
      if ('sent' in outcome) return outcome.sent;
      const wait = this.retryDelaysMs[attempt];
      if (!('retry' in outcome) || wait === undefined) throw outcome.error;
      if ((outcome.afterMs ?? 0) > MAX_RETRY_AFTER_MS) throw outcome.error;
      await new Promise((resolve) => setTimeout(resolve, Math.max(wait, outcome.afterMs ?? 0)));
    }
  }

  private async attempt(sms: Sms): Promise<Outcome> {
    const { sid, token, from } = this.account;
    const url = `${(this.account.url ?? TWILIO_URL).replace(/\/+$/, '')}/2010-04-01/Accounts/${encodeURIComponent(sid)}/Messages.json`;
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${sid}:${token}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ To: sms.to, From: from, Body: sms.body }),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      this.options.logger?.warn({ code }, 'sms: cannot reach Twilio');
      const error = errors.ServiceUnavailable('sms', 'the SMS provider cannot be reached at the moment; try again later');
      return code === 'ECONNREFUSED' ? { retry: true, error } : { error };
    }
    const body = (await res.json().catch(() => ({}))) as TwilioError & { sid?: string; status?: string | number };
    if (res.status === 200 || res.status === 201) return { sent: { id: String(body.sid ?? ''), status: String(body.status ?? 'queued') } };
    return this.failure(res, body);
  }

  private failure(res: Response, body: TwilioError): Outcome {
    const said = `Twilio ${res.status}${body.code ? ` (error ${body.code})` : ''}`;
    this.options.logger?.warn({ status: res.status, code: body.code, message: body.message }, `sms: ${said}`);
    if (res.status === 429 || res.status === 503) {
      const afterMs = Number(res.headers.get('retry-after') ?? 0) * 1000 || undefined;
      return { retry: true, ...(afterMs ? { afterMs } : {}), error: errors.ServiceUnavailable('sms', `the SMS provider is busy (${said}); nothing was sent, try again later`) };
    }
    // the message itself was refused (a number Twilio cannot reach, a body it will not carry)
    if (res.status === 400) return { error: errors.BadRequest('sms', `the SMS provider refused the message (${said}): ${(body.message ?? '').slice(0, 300)}`) };
    // 401, 403, 404: the platform's account, not the caller's doing; what Twilio said stays in the log
    if (res.status < 500) return { error: errors.BadGateway('sms', `the platform's SMS account was refused by the provider (${said}); nothing was sent`) };
    return { error: errors.BadGateway('sms', `the SMS provider failed (${said}); the message may or may not have been sent, so it was not retried`) };
  }
}
