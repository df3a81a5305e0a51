import { errors, mailService, type Account, type Context, type Handlers } from '@micro/sdk';
import type { CoreServiceFactory } from '@micro/server/engine';
import { checkMessage } from './checks.js';
import { mailerFromEnv } from './env.js';
import type { Mailer } from './mailer.js';

export interface MailServiceOptions {
  /** how mail leaves (default mailerFromEnv: SMTP with MICRO_SMTP_URL, else the outbox) */
  mailer?: Mailer;
  /** messages one tenant may send in `window` ms (default MICRO_MAIL_TENANT_LIMIT, else 100) */
  perTenant?: number;
  /** ms of the rate window (default 3,600,000: an hour) */
  window?: number;
  /** default Date.now */
  now?: () => number;
  /** the environment the defaults are read from (default process.env) */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_MAIL_PER_TENANT = 100;
const HOUR = 3_600_000;
/** Tenants whose window is remembered; beyond it, the oldest windows are dropped (they have ended or soon will). */
const TRACKED_TENANTS = 10_000;

/**
 * Counts each tenant's messages in fixed windows: a tenant that signs up users in a loop
 * (or is made to) cannot turn the platform's sending address into a spam source. The
 * count is per node: with several nodes a tenant may send up to `max` on each.
 */
export class TenantRate {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly max: number,
    private readonly window: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one message of `tenant`'s allowance, or throws a 429 saying when it refills. */
  take(tenant: string): void {
    const now = this.now();
    let w = this.windows.get(tenant);
    if (!w || now - w.start >= this.window) {
      this.windows.delete(tenant);
      w = { start: now, count: 0 };
      this.windows.set(tenant, w);
      this.trim();
    }
    if (w.count >= this.max) {
      const seconds = Math.ceil((w.start + this.window - now) / 1000);
      throw errors.TooManyRequests('mail', `tenant ${tenant} sent ${this.max} messages in ${Math.round(this.window / 60_000)} minutes, its limit; more in ${seconds} s`);
    }
    w.count++;
  }

  private trim(): void {
    // a Map iterates in insertion order: the first entries are the oldest windows
    for (const key of this.windows.keys()) {
      if (this.windows.size <= TRACKED_TENANTS) break;
      this.windows.delete(key);
    }
  }
}

/** Accounts of micro only: the platform's own services (the hosted value-add services) and its staff. */
function requireMicro(ctx: Context): Account {
  const account = ctx.account;
  if (!account) throw errors.Unauthorized('mail', 'credentials required');
  if (account.issuer !== 'micro') throw errors.Forbidden('mail', `mail.Send is for micro's own services; account ${account.id} of namespace ${account.issuer} may not send through it`);
  return account;
}

/** The handlers of the mail service, on a mailer. */
export function mailHandlers(mailer: Mailer, rate: TenantRate): Handlers<typeof mailService> {
  return {
    Send: async ({ tenant, to, subject, text, html, fromName, replyTo }, ctx) => {
      requireMicro(ctx);
      // checked before it counts: a refused message does not use the tenant's allowance
      const message = checkMessage({ to, subject, text, ...(html !== undefined ? { html } : {}), ...(fromName !== undefined ? { fromName } : {}), ...(replyTo !== undefined ? { replyTo } : {}) });
      rate.take(tenant);
      await mailer.send(message);
      ctx.logger.info({ tenant, by: ctx.account?.id }, 'mail: sent for a tenant');
      return {};
    },
  };
}

function perTenantOf(options: MailServiceOptions, env: NodeJS.ProcessEnv): number {
  if (options.perTenant !== undefined) return options.perTenant;
  const raw = env.MICRO_MAIL_TENANT_LIMIT?.trim();
  if (!raw) return DEFAULT_MAIL_PER_TENANT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`MICRO_MAIL_TENANT_LIMIT must be a whole number ≥ 1 (messages a tenant sends an hour), got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The mail core service (namespace micro): the platform's email sending for micro's own
 * services, which may only use the public SDK and so send by RPC (the user service's
 * verification, password-reset and magic-link emails).
 */
export function mailCoreService(options: MailServiceOptions = {}): CoreServiceFactory {
  return (ctx) => {
    const env = options.env ?? process.env;
    const logger = ctx.logger.child({ component: 'mail' });
    const mailer = options.mailer ?? mailerFromEnv({ home: ctx.home, logger, env });
    const rate = new TenantRate(perTenantOf(options, env), options.window ?? HOUR, options.now);
    return {
      def: mailService,
      handlers: mailHandlers(mailer, rate),
      stop: async () => {
        if (!options.mailer) await mailer.close?.();
      },
    };
  };
}
