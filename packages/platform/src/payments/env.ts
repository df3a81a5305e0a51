import type { StripeOptions } from './stripe.js';

/**
 * The payment provider from the environment, checked at start (a wrong value stops micro
 * server saying what to write; a key is never echoed):
 *
 * - `MICRO_STRIPE_SECRET_KEY`: the platform's Stripe secret key (`sk_test_…`, `sk_live_…` or
 *   a restricted `rk_…`): Stripe; unset: the manual provider (staff record payments).
 * - `MICRO_STRIPE_WEBHOOK_SECRET`: the signing secret of the endpoint `<public URL>/webhooks/stripe`
 *   (`whsec_…`); required with the key (unverified events would be money from anyone).
 * - `MICRO_STRIPE_API_URL`: another API address (stripe-mock, a test's fake); default Stripe's.
 * - `MICRO_STRIPE_WEBHOOK_TOLERANCE`: seconds a signed timestamp may be old (default 300).
 */
export type StripeConfig = Pick<StripeOptions, 'secretKey' | 'webhookSecret' | 'apiUrl' | 'tolerance'>;

export function stripeFromEnv(env: NodeJS.ProcessEnv = process.env): StripeConfig | undefined {
  const secretKey = env.MICRO_STRIPE_SECRET_KEY?.trim();
  const webhookSecret = env.MICRO_STRIPE_WEBHOOK_SECRET?.trim();
  if (!secretKey) {
    if (webhookSecret) throw new Error('MICRO_STRIPE_WEBHOOK_SECRET is set without MICRO_STRIPE_SECRET_KEY: set both (Stripe) or neither (payments recorded by staff)');
    return undefined;
  }
  if (!/^(sk|rk)_(test|live)_[A-Za-z0-9]{8,255}$/.test(secretKey)) throw new Error('MICRO_STRIPE_SECRET_KEY must be a Stripe secret key: sk_test_…, sk_live_… or a restricted rk_… key (see the API keys of the Stripe dashboard)');
  if (!webhookSecret) throw new Error('MICRO_STRIPE_WEBHOOK_SECRET is required with MICRO_STRIPE_SECRET_KEY: the signing secret (whsec_…) of the webhook endpoint <public URL>/webhooks/stripe');
  if (!/^whsec_[A-Za-z0-9+/=]{8,255}$/.test(webhookSecret)) throw new Error('MICRO_STRIPE_WEBHOOK_SECRET must be the signing secret of a webhook endpoint: whsec_…');
  const config: StripeConfig = { secretKey, webhookSecret };
  const api = env.MICRO_STRIPE_API_URL?.trim();
  if (api) {
    let url: URL | undefined;
    try {
      url = new URL(api);
    } catch {
      url = undefined;
    }
    if (!url || !/^https?:$/.test(url.protocol) || url.pathname.replace(/\/$/, '') !== '' || url.username || url.search) throw new Error(`MICRO_STRIPE_API_URL must be an address like http://127.0.0.1:12111 (no path), not ${JSON.stringify(api.slice(0, 100))}`);
    config.apiUrl = api;
  }
  const tolerance = env.MICRO_STRIPE_WEBHOOK_TOLERANCE?.trim();
  if (tolerance) {
    const n = Number(tolerance);
    if (!/^\d+$/.test(tolerance) || n < 1 || n > 3600) throw new Error(`MICRO_STRIPE_WEBHOOK_TOLERANCE must be whole seconds from 1 to 3600, not ${JSON.stringify(tolerance.slice(0, 20))}`);
    config.tolerance = n;
  }
  return config;
}
