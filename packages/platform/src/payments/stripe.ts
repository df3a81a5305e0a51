import Stripe from 'stripe';
import { errors, isMicroError, MicroError, type Logger } from '@micro/sdk';
import type { WebhookAnswer, WebhookRequest, WebhookRoute } from '@micro/server/engine';
import type { CheckoutRequest, CheckoutSession, PaymentEvents, PaymentProvider } from './provider.js';
import type { PaymentsStorage } from './storage.js';

/**
 * Stripe, through the official `stripe` library: a Stripe customer per payer, Checkout
 * sessions in mode `payment` for top-ups and for what is due, and the webhook
 * (`/webhooks/stripe`) verified by signature and applied idempotently. See README.md
 * ("Stripe") for which events move money and in what order they may come.
 */

export interface StripeOptions {
  /** the secret (`sk_…`) or restricted (`rk_…`) key of the platform's Stripe account */
  secretKey: string;
  /** the signing secret of the webhook endpoint (`whsec_…`) */
  webhookSecret: string;
  /** another API address (a local stand-in such as stripe-mock, or the tests' fake): `http://127.0.0.1:12111`; default Stripe's */
  apiUrl?: string;
  /** seconds a webhook's signed timestamp may be away from now (default 300, Stripe's) */
  tolerance?: number;
  /** ms a request to Stripe may take (default 20,000) */
  timeout?: number;
  /** retries of a request that failed on the network (default 2; Stripe's idempotency keys make them safe) */
  retries?: number;
  /** ms since the epoch (default Date.now): the webhook's timestamp is checked against it */
  now?: () => number;
  logger?: Logger;
}

const ID = 'payments';
/** the name of a session's line, as the payer sees it on Stripe's page and receipt */
const PRODUCT = { topup: 'M3O prepaid balance', due: 'M3O: what is due' } as const;
const UNITS_PER_CENT = 10_000;

/** A Stripe key never reaches a log or an answer, even inside Stripe's own messages. */
export function redactStripe(text: string): string {
  return text.replace(/\b(sk|rk|pk|whsec)_[A-Za-z0-9_]+/g, '$1_***');
}

export class StripeProvider implements PaymentProvider {
  readonly name = 'stripe';
  readonly online = true;
  readonly stripe: Stripe;
  private readonly now: () => number;

  constructor(
    private readonly options: StripeOptions,
    private readonly store: PaymentsStorage,
  ) {
    const api = options.apiUrl ? new URL(options.apiUrl) : undefined;
    this.stripe = new Stripe(options.secretKey, {
      maxNetworkRetries: options.retries ?? 2,
      timeout: options.timeout ?? 20_000,
      telemetry: false,
      appInfo: { name: 'micro-platform' },
      ...(api ? { host: api.hostname, port: api.port || (api.protocol === 'https:' ? 443 : 80), protocol: api.protocol === 'https:' ? 'https' : 'http' } : {}),
    });
    this.now = options.now ?? Date.now;
  }

  /** The Stripe customer of a payer: made once (Stripe's idempotency key and our table keep it one across nodes). */
  async customer(payer: string, email?: string): Promise<string> {
    const known = await this.store.customer(this.name, payer);
    if (known) return known;
    const made = await call(() => this.stripe.customers.create({ ...(email ? { email } : {}), metadata: { micro_payer: payer } }, { idempotencyKey: `micro-customer-${payer}` }));
    return this.store.putCustomer(this.name, payer, made.id, this.now());
  }

  async checkout(req: CheckoutRequest): Promise<CheckoutSession> {
    const customer = await this.customer(req.payer, req.email);
    const marks = { micro_payer: req.payer, micro_purpose: req.purpose };
    const s = await call(() =>
      this.stripe.checkout.sessions.create({
        mode: 'payment',
        customer,
        client_reference_id: req.payer,
        line_items: [{ quantity: 1, price_data: { currency: 'usd', unit_amount: req.amount / UNITS_PER_CENT, product_data: { name: PRODUCT[req.purpose] } } }],
        metadata: marks,
        // on the payment too: a refund names only its payment, whose marks say it is ours
        payment_intent_data: { metadata: marks },
        success_url: req.successUrl,
        cancel_url: req.cancelUrl,
      }),
    );
    if (!s.url) throw errors.BadGateway(ID, `Stripe made Checkout session ${s.id} without a url`);
    return { id: s.id, url: s.url, expiresAt: s.expires_at * 1000 };
  }

  webhook(events: PaymentEvents): WebhookRoute {
    return (req) => this.receive(req, events);
  }

  /** Verifies, then applies once: a replayed event id answers what it answered the first time. */
  private async receive(req: WebhookRequest, events: PaymentEvents): Promise<WebhookAnswer> {
    const event = this.verify(req);
    const seen = await this.store.event(this.name, event.id);
    if (seen) return { status: 200, body: { received: true, outcome: seen.outcome, replay: true } };
    const outcome = await this.apply(event, events);
    await this.store.recordEvent(this.name, event.id, event.type, outcome, this.now());
    this.options.logger?.info({ event: event.id, type: event.type, outcome }, 'stripe webhook');
    return { status: 200, body: { received: true, outcome } };
  }

  /** The event, if the Stripe-Signature header signs these exact bytes with our secret within the tolerance; else a 400 (nothing moves). */
  private verify(req: WebhookRequest): Stripe.Event {
    const signature = req.headers['stripe-signature'];
    if (typeof signature !== 'string' || signature === '') throw errors.BadRequest(ID, 'stripe-signature: the header is missing: this route takes only events Stripe signed');
    const tolerance = this.options.tolerance ?? 300;
    try {
      return this.stripe.webhooks.constructEvent(req.body, signature, this.options.webhookSecret, tolerance, undefined, this.now());
    } catch (err) {
      // our own words only: the library's messages can be made (a `secret=` item in the
      // header) to tell the length and last characters of the endpoint's secret
      const message = String((err as Error).message ?? '');
      const why = /tolerance/i.test(message)
        ? `its timestamp is more than ${tolerance} s old (tolerance)`
        : /extract timestamp|expected scheme/.test(message)
          ? 'the header is not t=<unix seconds>,v1=<signature>'
          : "it does not match this body under the endpoint's signing secret";
      this.options.logger?.warn({ peer: req.peer, why }, 'stripe webhook refused: bad signature');
      throw errors.BadRequest(ID, `stripe-signature: not a valid signature of this body: ${why}`);
    }
  }

  private async apply(event: Stripe.Event, events: PaymentEvents): Promise<string> {
    switch (event.type) {
      case 'checkout.session.completed':
      case 'checkout.session.async_payment_succeeded':
        return this.sessionPaid(event.data.object, events);
      case 'checkout.session.async_payment_failed':
        return events.closed(event.data.object.id, 'failed');
      case 'checkout.session.expired':
        return events.closed(event.data.object.id, 'expired');
      case 'refund.created':
      case 'refund.updated':
      case 'refund.failed':
        return this.refund(event.data.object, events);
      default:
        return 'ignored';
    }
  }

  private async sessionPaid(s: Stripe.Checkout.Session, events: PaymentEvents): Promise<string> {
    if (s.mode !== 'payment') return 'ignored';
    // completed with a payment still under way (bank debits): async_payment_succeeded follows
    if (s.payment_status !== 'paid') return 'pending';
    if (s.currency !== 'usd' || !Number.isSafeInteger(s.amount_total) || (s.amount_total as number) <= 0) {
      this.options.logger?.error({ session: s.id, currency: s.currency, amount: s.amount_total }, 'stripe: a paid session in another currency or without an amount: not applied');
      return 'ignored';
    }
    return events.paid(s.id, (s.amount_total as number) * UNITS_PER_CENT, idOf(s.payment_intent));
  }

  /**
   * A refund made at Stripe (the dashboard, the API) of a payment of ours. One that comes
   * before its payment was applied (events are not ordered) is refused with a 409, so
   * Stripe delivers it again later; one of a payment that is not ours is ignored.
   */
  private async refund(r: Stripe.Refund, events: PaymentEvents): Promise<string> {
    const payment = idOf(r.payment_intent);
    if (!payment || r.currency !== 'usd') return 'ignored';
    const session = await events.paidSession(payment);
    if (!session) {
      const intent = await call(() => this.stripe.paymentIntents.retrieve(payment));
      if (!intent.metadata?.micro_payer) return 'ignored';
      throw errors.Conflict(ID, `refund ${r.id}: its payment ${payment} is not applied yet; Stripe delivers the event again later`);
    }
    if (r.status === 'succeeded') return events.payout(session, r.id, r.amount * UNITS_PER_CENT);
    if (r.status === 'failed' || r.status === 'canceled') return events.payoutFailed(session, r.id);
    return 'pending';
  }
}

function idOf(value: string | { id: string } | null | undefined): string | undefined {
  return typeof value === 'string' ? value : (value?.id ?? undefined);
}

/** A call to Stripe; its errors as ours: Stripe away or slow is a 503, a refusal a 502 with Stripe's words (keys redacted). */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isMicroError(err)) throw err;
    const e = err as { type?: string; message?: string; statusCode?: number };
    const message = redactStripe(String(e.message ?? err)).slice(0, 300);
    if (e.type === 'StripeConnectionError' || e.type === 'StripeRateLimitError' || (e.statusCode ?? 0) >= 500) throw new MicroError(ID, 503, `Stripe is unreachable or busy: ${message}`);
    if (e.type === 'StripeAuthenticationError' || e.type === 'StripePermissionError') throw new MicroError(ID, 502, `Stripe refused the platform's key (MICRO_STRIPE_SECRET_KEY): ${message}`);
    throw new MicroError(ID, 502, `Stripe refused the request: ${message}`);
  }
}
