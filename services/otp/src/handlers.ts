import { createHash, randomBytes } from 'node:crypto';
import { errors, type Context, type Engines, type Handlers } from '@micro/sdk';
import { publicService, tenantStore, withTenantLock } from '@micro/services-kit';
import { otp, OTP_LIMITS } from './definition.js';
import { sameCode, stepOf, totp } from './totp.js';

export interface OtpOptions {
  /** default Date.now */
  now?: () => number;
}

/**
 * What is kept per id, in the tenant's own namespace:
 * - the secret, which no endpoint returns, as a config secret (sealed with AES-256-GCM by
 *   the config engine under the server's config key, bound to the namespace and path) at
 *   `micro_otp._<sha256 of the id>` — encrypted at rest like every secret of the platform;
 * - the rest in database `otp`, table `secrets`: the code's size and step; the last step a
 *   code was accepted for (a code is good once); the wrong codes left before a new Generate.
 *   (A row written before the secrets were sealed may still hold `secret`: it is moved to
 *   the config at the id's next Generate.)
 */
interface StoredOtp {
  secret?: string;
  size: number;
  expiry: number;
  used: number;
  triesLeft: number;
}

// eslint-disable-next-line no-control-regex -- control characters are what is refused
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function bad(field: string, why: string): never {
  throw errors.BadRequest('otp', `${field}: ${why}`);
}

function checkId(id: string | undefined): string {
  if (id === undefined || id.trim() === '') throw errors.BadRequest('otp', 'Missing id');
  if (CONTROLS.test(id)) bad('id', 'must not hold control characters');
  return id;
}

function inRange(field: string, value: number | undefined, limits: { min: number; max: number; default: number }): number {
  const v = value === undefined || value === 0 ? limits.default : value;
  if (v < limits.min || v > limits.max) bad(field, `must be from ${limits.min} to ${limits.max}`);
  return v;
}

export function otpHandlers(engines: Engines, options: OtpOptions = {}): Handlers<typeof otp> {
  const now = () => (options.now ?? Date.now)() / 1000;
  const db = (ctx: Context) => tenantStore(engines.store, ctx, 'otp');
  const read = async (ctx: Context, id: string) => (await db(ctx).read(id, { table: 'secrets' }))[0]?.value as StoredOtp | undefined;
  const write = (ctx: Context, id: string, value: StoredOtp) => db(ctx).write({ key: id, value }, { table: 'secrets' });
  const secretPath = (id: string) => `micro_otp._${createHash('sha256').update(id).digest('hex')}`;
  const readSecret = async (ctx: Context, id: string, stored: StoredOtp | undefined): Promise<string | undefined> => {
    const sealed = await engines.config.get(secretPath(id), { namespace: ctx.tenant, secrets: true });
    return typeof sealed === 'string' ? sealed : stored?.secret;
  };

  return {
    Generate: async (req, ctx) => {
      const id = checkId(req.id);
      const size = inRange('size', req.size, OTP_LIMITS.size);
      const expiry = inRange('expiry', req.expiry, OTP_LIMITS.expiry);
      // one caller at a time per id: tries and one-time use hold under concurrency
      return withTenantLock(engines, ctx, 'otp', id, async () => {
        const prev = await read(ctx, id);
        let secret = await readSecret(ctx, id, prev);
        if (secret === undefined || prev?.secret !== undefined) {
          secret ??= randomBytes(20).toString('base64');
          await engines.config.set(secretPath(id), secret, { namespace: ctx.tenant, secret: true });
        }
        // a new step length starts a new count of used steps
        const used = prev && prev.expiry === expiry ? prev.used : -1;
        await write(ctx, id, { size, expiry, used, triesLeft: OTP_LIMITS.tries });
        return { code: totp(Buffer.from(secret, 'base64'), now(), expiry, size) };
      });
    },

    Validate: async (req, ctx) => {
      const id = checkId(req.id);
      const code = (req.code ?? '').trim();
      if (code === '') throw errors.BadRequest('otp', 'Missing code');
      // one caller at a time per id: tries and one-time use hold under concurrency
      return withTenantLock(engines, ctx, 'otp', id, async () => {
        const stored = await read(ctx, id);
        const sealed = stored && (await readSecret(ctx, id, stored));
        if (!stored || sealed === undefined) throw errors.NotFound('otp', 'id: no code was generated for this id');
        if (stored.triesLeft <= 0) throw errors.TooManyRequests('otp', `id: ${OTP_LIMITS.tries} wrong codes were given; Generate a new code first`);
        const secret = Buffer.from(sealed, 'base64');
        const current = stepOf(now(), stored.expiry);
        // this step's code, or the previous step's (one generated just before a step ends)
        const step = [current, current - 1].find((s) => s > stored.used && sameCode(totp(secret, s * stored.expiry, stored.expiry, stored.size), code));
        if (step === undefined) {
          await write(ctx, id, { ...stored, triesLeft: stored.triesLeft - 1 });
          return { success: false };
        }
        await write(ctx, id, { ...stored, used: step, triesLeft: OTP_LIMITS.tries });
        return { success: true };
      });
    },
  };
}

export const service = publicService(otp, (engines) => otpHandlers(engines));
export { otp } from './definition.js';
