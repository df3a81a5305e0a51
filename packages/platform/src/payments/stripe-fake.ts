import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Stripe from 'stripe';

/**
 * A local stand-in for the parts of Stripe's HTTP API that payments use, for the tests only
 * (not in the published package): customers, Checkout sessions (create, retrieve, expire, a
 * hosted page that "pays"), payment intents (retrieve) and refunds (create), with Stripe's
 * answers — the objects are typed with the `stripe` package's own types and shaped after
 * the fixtures of Stripe's published OpenAPI (github.com/stripe/openapi, fixtures3.json) —
 * its errors (`{error: {type, message, param}}`, 401 for a wrong key, 404
 * `resource_missing`), its idempotency keys (the same key with other parameters is an
 * `idempotency_error`), and its webhooks, signed as Stripe signs them:
 * `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the
 * endpoint's secret>`. Point the `stripe` library at it with its host, port and protocol
 * options (StripeOptions.apiUrl = fake.url).
 *
 * Webhooks go to `endpoint` when one is set, once each, awaited (Stripe's retries are the
 * test's to make: `deliver` again); `events` keeps them all in order.
 */

export interface FakeStripeOptions {
  /** the only key it accepts (default `sk_test_fake`) */
  secretKey?: string;
  /** the signing secret of the webhook endpoint (default `whsec_fake…`, random) */
  webhookSecret?: string;
  /** ms since the epoch (default Date.now): `created`, `expires_at`, and the signatures' `t` */
  now?: () => number;
}

export interface Delivery {
  status: number;
  body: string;
}

type Params = { [key: string]: string | Params | Params[] | string[] | undefined };

class StripeFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: { type: string; message: string; param?: string; code?: string },
  ) {
    super(body.message);
  }
}

const missing = (param: string) => new StripeFailure(400, { type: 'invalid_request_error', code: 'parameter_missing', message: `Missing required param: ${param}.`, param });
const invalid = (param: string, message: string) => new StripeFailure(400, { type: 'invalid_request_error', code: 'parameter_invalid_integer', message, param });
const noSuch = (what: string, id: string, param?: string) => new StripeFailure(404, { type: 'invalid_request_error', code: 'resource_missing', message: `No such ${what}: '${id}'`, ...(param ? { param } : {}) });

/** `a[b][0][c]=v` (Stripe's form encoding) → nested objects and arrays; at most 64 KiB, 6 levels. */
export function parseForm(body: string): Params {
  const out: Params = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const path = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
    if (!path) throw invalid(key, `Invalid parameter name: ${key}`);
    const parts = [path[1] as string, ...[...(path[2] as string).matchAll(/\[([^[\]]*)\]/g)].map((m) => m[1] as string)];
    if (parts.length > 6) throw invalid(key, `Too deeply nested: ${key}`);
    let node: Params | Params[] = out;
    parts.forEach((part, i) => {
      const last = i === parts.length - 1;
      const container = node as Record<string, unknown>;
      if (last) {
        container[part] = value;
        return;
      }
      const nextIsIndex = /^\d+$/.test(parts[i + 1] as string);
      container[part] ??= nextIsIndex ? [] : {};
      node = container[part] as Params;
    });
  }
  return out;
}

function str(p: Params, key: string): string | undefined {
  const v = p[key];
  return typeof v === 'string' ? v : undefined;
}

function meta(p: Params | undefined): Record<string, string> {
  const m: Record<string, string> = {};
  for (const [k, v] of Object.entries(p ?? {})) if (typeof v === 'string') m[k] = v;
  return m;
}

export class FakeStripe {
  readonly secretKey: string;
  readonly webhookSecret: string;
  /** where webhooks go (the gateway's /webhooks/stripe); none: they are only kept */
  endpoint: string | undefined;
  readonly customers = new Map<string, Stripe.Customer>();
  readonly sessions = new Map<string, Stripe.Checkout.Session>();
  readonly intents = new Map<string, Stripe.PaymentIntent>();
  readonly refunds = new Map<string, Stripe.Refund>();
  readonly events: Stripe.Event[] = [];
  /** every API request, for the tests to look at (method, path, the idempotency key) */
  readonly requests: { method: string; path: string; idempotencyKey?: string }[] = [];
  private readonly server: Server;
  private readonly idempotent = new Map<string, { params: string; status: number; body: unknown }>();
  private readonly intentMeta = new Map<string, Record<string, string>>();
  private readonly now: () => number;
  /** the next `n` API requests answer this status (Stripe away, a 500): `failNext` */
  private failures: { n: number; status: number } = { n: 0, status: 500 };
  private address = '';

  constructor(options: FakeStripeOptions = {}) {
    this.secretKey = options.secretKey ?? 'sk_test_fake';
    this.webhookSecret = options.webhookSecret ?? `whsec_fake${randomBytes(12).toString('hex')}`;
    this.now = options.now ?? Date.now;
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.address = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.address;
  }

  /** `http://127.0.0.1:<port>` once listening */
  get url(): string {
    return this.address;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  failNext(n: number, status = 500): void {
    this.failures = { n, status };
  }

  // ---- what a payer does on the hosted page, and what Stripe's dashboard does --------------

  /**
   * The payer pays an open session: a succeeded payment intent with the session's
   * `payment_intent_data.metadata`, the session `complete` and `paid`, and the
   * `checkout.session.completed` webhook. `later`: a payment that settles later (a bank
   * debit): completed with `payment_status: unpaid` now, `settle` or `fail` after.
   */
  async pay(id: string, options: { later?: boolean } = {}): Promise<{ event: Stripe.Event; delivery?: Delivery }> {
    const s = this.sessions.get(id);
    if (!s) throw noSuch('checkout.session', id);
    if (s.status !== 'open') throw new StripeFailure(400, { type: 'invalid_request_error', message: `This Checkout Session is ${s.status}: it can no longer be paid.` });
    const intent = this.intent(s, options.later ? 'processing' : 'succeeded');
    s.status = 'complete';
    s.payment_status = options.later ? 'unpaid' : 'paid';
    s.payment_intent = intent.id;
    return this.emit('checkout.session.completed', s);
  }

  /** A later payment of a completed session settles: `checkout.session.async_payment_succeeded`. */
  async settle(id: string): Promise<{ event: Stripe.Event; delivery?: Delivery }> {
    const s = this.sessions.get(id) as Stripe.Checkout.Session;
    const intent = this.intents.get(s.payment_intent as string) as Stripe.PaymentIntent;
    intent.status = 'succeeded';
    intent.amount_received = intent.amount;
    s.payment_status = 'paid';
    return this.emit('checkout.session.async_payment_succeeded', s);
  }

  /** A later payment of a completed session fails: `checkout.session.async_payment_failed`. */
  async fail(id: string): Promise<{ event: Stripe.Event; delivery?: Delivery }> {
    const s = this.sessions.get(id) as Stripe.Checkout.Session;
    (this.intents.get(s.payment_intent as string) as Stripe.PaymentIntent).status = 'requires_payment_method';
    return this.emit('checkout.session.async_payment_failed', s);
  }

  /** An open session expires: `checkout.session.expired`. */
  async expire(id: string): Promise<{ event: Stripe.Event; delivery?: Delivery }> {
    const s = this.sessions.get(id);
    if (!s) throw noSuch('checkout.session', id);
    if (s.status !== 'open') throw new StripeFailure(400, { type: 'invalid_request_error', message: `Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${s.status}".` });
    s.status = 'expired';
    return this.emit('checkout.session.expired', s);
  }

  /** A refund of a succeeded payment (Stripe's dashboard, or the API): `refund.created`. */
  async refund(paymentIntent: string, amount?: number, status: 'succeeded' | 'pending' = 'succeeded'): Promise<{ refund: Stripe.Refund; event: Stripe.Event; delivery?: Delivery }> {
    const intent = this.intents.get(paymentIntent);
    if (!intent) throw noSuch('payment_intent', paymentIntent, 'payment_intent');
    const refunded = [...this.refunds.values()].filter((r) => r.payment_intent === paymentIntent && r.status !== 'failed').reduce((n, r) => n + r.amount, 0);
    const value = amount ?? intent.amount_received - refunded;
    if (intent.status !== 'succeeded') throw new StripeFailure(400, { type: 'invalid_request_error', code: 'charge_not_refundable', message: `This PaymentIntent (${paymentIntent}) does not have a successful charge to refund.` });
    if (!Number.isSafeInteger(value) || value <= 0 || value > intent.amount_received - refunded) {
      throw new StripeFailure(400, { type: 'invalid_request_error', code: 'amount_too_large', message: `Refund amount ($${(value / 100).toFixed(2)}) is greater than unrefunded amount on charge ($${((intent.amount_received - refunded) / 100).toFixed(2)})`, param: 'amount' });
    }
    const refund: Stripe.Refund = {
      id: this.id('re'),
      object: 'refund',
      amount: value,
      application: null,
      balance_transaction: status === 'succeeded' ? this.id('txn') : null,
      charge: intent.latest_charge as string,
      created: this.seconds(),
      currency: intent.currency,
      customer: intent.customer,
      customer_account: null,
      destination_details: { card: { type: 'reversal' } as Stripe.Refund.DestinationDetails.Card, type: 'card' },
      metadata: {},
      payment_intent: paymentIntent,
      payment_method: intent.payment_method,
      reason: null,
      receipt_number: null,
      source_transfer_reversal: null,
      status,
      transfer_reversal: null,
    };
    this.refunds.set(refund.id, refund);
    return { refund, ...(await this.emit('refund.created', refund)) };
  }

  /** A refund changes status later (`refund.updated`, or `refund.failed` for failed). */
  async refundStatus(id: string, status: 'succeeded' | 'failed' | 'canceled'): Promise<{ event: Stripe.Event; delivery?: Delivery }> {
    const refund = this.refunds.get(id) as Stripe.Refund;
    refund.status = status;
    return this.emit(status === 'failed' ? 'refund.failed' : 'refund.updated', refund);
  }

  // ---- webhooks -------------------------------------------------------------------------------

  /** `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<payload>">`, as Stripe signs (under `secret`, default the endpoint's). */
  sign(payload: string, t = this.seconds(), secret = this.webhookSecret): string {
    return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${payload}`, 'utf8').digest('hex')}`;
  }

  /** The event as Stripe sends it: pretty-printed JSON. */
  payload(event: Stripe.Event): string {
    return JSON.stringify(event, null, 2);
  }

  /**
   * Sends an event (again) to `to` (default the endpoint), signed now; `signature` replaces
   * the header (a forgery, a stale one), `body` the bytes (a tampered event).
   */
  async deliver(event: Stripe.Event, options: { to?: string; signature?: string | null; body?: string } = {}): Promise<Delivery> {
    const to = options.to ?? this.endpoint;
    if (!to) throw new Error('no webhook endpoint: set fake.endpoint');
    const body = options.body ?? this.payload(event);
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)' };
    const signature = options.signature === undefined ? this.sign(body) : options.signature;
    if (signature !== null) headers['stripe-signature'] = signature;
    const res = await fetch(to, { method: 'POST', headers, body });
    return { status: res.status, body: await res.text() };
  }

  /** A new event of `type` about (a copy of) `object`, delivered when there is an endpoint. */
  async emit(type: Stripe.Event.Type, object: object): Promise<{ event: Stripe.Event; delivery?: Delivery }> {
    const event = {
      id: this.id('evt'),
      object: 'event',
      api_version: '2026-11-18.endive',
      created: this.seconds(),
      data: { object: structuredClone(object) },
      livemode: false,
      pending_webhooks: this.endpoint ? 1 : 0,
      request: { id: null, idempotency_key: null },
      type,
    } as unknown as Stripe.Event;
    this.events.push(event);
    return { event, ...(this.endpoint ? { delivery: await this.deliver(event) } : {}) };
  }

  // ---- the HTTP API ---------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 65_536) return this.answer(res, 413, { error: { type: 'invalid_request_error', message: 'Request body too large.' } });
      chunks.push(chunk);
    }
    const body = Buffer.concat(chunks).toString('utf8');
    const path = (req.url ?? '/').split('?')[0] as string;
    try {
      if (path.startsWith('/c/pay/')) return await this.page(req, res, path.slice('/c/pay/'.length), body);
      const key = req.headers['idempotency-key'];
      this.requests.push({ method: req.method ?? '', path, ...(typeof key === 'string' ? { idempotencyKey: key } : {}) });
      if (req.headers.authorization !== `Bearer ${this.secretKey}`) {
        const given = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
        throw new StripeFailure(401, { type: 'invalid_request_error', message: `Invalid API Key provided: ${given.slice(0, 8)}${'*'.repeat(Math.max(0, given.length - 12))}${given.slice(-4)}` });
      }
      if (this.failures.n > 0) {
        this.failures.n--;
        throw new StripeFailure(this.failures.status, { type: 'api_error', message: 'An unknown error occurred (the fake was told to fail).' });
      }
      const params = parseForm(body);
      if (req.method === 'POST' && typeof key === 'string') return this.idempotently(res, `${path} ${key}`, body, () => this.route(req.method as string, path, params));
      this.answer(res, 200, this.route(req.method ?? 'GET', path, params));
    } catch (err) {
      if (err instanceof StripeFailure) return this.answer(res, err.status, { error: err.body });
      this.answer(res, 500, { error: { type: 'api_error', message: String((err as Error).message) } });
    }
  }

  private idempotently(res: ServerResponse, key: string, params: string, run: () => unknown): void {
    const first = this.idempotent.get(key);
    if (first && first.params !== params) {
      throw new StripeFailure(400, { type: 'idempotency_error', message: 'Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than the one used for the original request.' });
    }
    if (first) return this.answer(res, first.status, first.body, true);
    const out = run();
    this.idempotent.set(key, { params, status: 200, body: out });
    this.answer(res, 200, out);
  }

  private route(method: string, path: string, p: Params): unknown {
    const parts = path.split('/').filter(Boolean);
    const [v1, resource, id, action] = parts;
    if (v1 !== 'v1') throw new StripeFailure(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path}).` });
    if (resource === 'customers' && method === 'POST' && !id) return this.createCustomer(p);
    if (resource === 'customers' && method === 'GET' && id) return this.customers.get(id) ?? this.raise(noSuch('customer', id));
    if (resource === 'checkout' && id === 'sessions' && method === 'POST' && !action) return this.createSession(p);
    const sid = parts[3];
    if (resource === 'checkout' && id === 'sessions' && sid && method === 'GET' && parts.length === 4) return this.sessions.get(sid) ?? this.raise(noSuch('checkout.session', sid));
    if (resource === 'checkout' && id === 'sessions' && sid && parts[4] === 'expire' && method === 'POST') return this.expire(sid).then(() => this.sessions.get(sid));
    if (resource === 'payment_intents' && method === 'GET' && id) return this.intents.get(id) ?? this.raise(noSuch('payment_intent', id));
    if (resource === 'refunds' && method === 'POST' && !id) {
      const pi = str(p, 'payment_intent');
      if (!pi) throw missing('payment_intent');
      const amount = str(p, 'amount');
      if (amount !== undefined && !/^\d+$/.test(amount)) throw invalid('amount', 'Invalid integer: ' + amount);
      // its webhook is delivered before the answer here (Stripe's may come before or after it)
      const refunding = this.refund(pi, amount === undefined ? undefined : Number(amount));
      return refunding.then((r) => r.refund);
    }
    throw new StripeFailure(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path}).` });
  }

  private raise(err: StripeFailure): never {
    throw err;
  }

  private createCustomer(p: Params): Stripe.Customer {
    const customer: Stripe.Customer = {
      id: this.id('cus'),
      object: 'customer',
      address: null,
      balance: 0,
      created: this.seconds(),
      currency: null,
      default_source: null,
      delinquent: false,
      description: str(p, 'description') ?? null,
      email: str(p, 'email') ?? null,
      invoice_prefix: randomBytes(4).toString('hex').toUpperCase().slice(0, 7),
      invoice_settings: { custom_fields: null, default_payment_method: null, footer: null, rendering_options: null },
      livemode: false,
      metadata: meta(p.metadata as Params),
      name: str(p, 'name') ?? null,
      next_invoice_sequence: 1,
      phone: null,
      preferred_locales: [],
      shipping: null,
      tax_exempt: 'none',
      test_clock: null,
    };
    this.customers.set(customer.id, customer);
    return customer;
  }

  private createSession(p: Params): Stripe.Checkout.Session {
    const mode = str(p, 'mode');
    if (!mode) throw missing('mode');
    if (mode !== 'payment') throw invalid('mode', `This fake speaks mode "payment" only, not "${mode}".`);
    const success = str(p, 'success_url');
    if (!success) throw missing('success_url');
    const items = p.line_items as Params[] | undefined;
    const item = items?.[0];
    const price = item?.price_data as Params | undefined;
    if (!item || !price) throw missing('line_items');
    const unit = Number(str(price, 'unit_amount'));
    const quantity = Number(str(item, 'quantity') ?? '1');
    const currency = str(price, 'currency');
    if (!currency) throw missing('line_items[0][price_data][currency]');
    if (!Number.isSafeInteger(unit) || unit < 0) throw invalid('line_items[0][price_data][unit_amount]', `Invalid integer: ${str(price, 'unit_amount')}`);
    if (!Number.isSafeInteger(quantity) || quantity < 1) throw invalid('line_items[0][quantity]', 'Invalid quantity');
    if (unit * quantity < 50) throw new StripeFailure(400, { type: 'invalid_request_error', message: 'The Checkout Session\'s total amount due must add up to at least $0.50 usd', param: 'line_items' });
    if (unit * quantity > 99_999_999) throw new StripeFailure(400, { type: 'invalid_request_error', code: 'amount_too_large', message: 'Amount must be no more than $999,999.99', param: 'line_items' });
    const customer = str(p, 'customer');
    if (customer && !this.customers.has(customer)) throw noSuch('customer', customer, 'customer');
    const id = `cs_test_${randomBytes(24).toString('base64url')}`;
    const created = this.seconds();
    const session = {
      id,
      object: 'checkout.session',
      adaptive_pricing: { enabled: false },
      after_expiration: null,
      allow_promotion_codes: null,
      allowed_payment_method_types: null,
      amount_subtotal: unit * quantity,
      amount_total: unit * quantity,
      automatic_tax: { enabled: false, liability: null, provider: null, status: null },
      billing_address_collection: null,
      cancel_url: str(p, 'cancel_url') ?? null,
      client_reference_id: str(p, 'client_reference_id') ?? null,
      client_secret: null,
      collected_information: null,
      consent: null,
      consent_collection: null,
      created,
      currency,
      currency_conversion: null,
      custom_fields: [],
      custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
      customer: customer ?? null,
      customer_account: null,
      customer_creation: customer ? null : 'if_required',
      customer_details: customer ? { address: null, business_name: null, email: this.customers.get(customer)?.email ?? null, individual_name: null, name: null, phone: null, tax_exempt: 'none', tax_ids: [] } : null,
      customer_email: null,
      discounts: [],
      expires_at: created + 24 * 3600,
      integration_identifier: null,
      invoice: null,
      invoice_creation: null,
      livemode: false,
      locale: null,
      managed_payments: null,
      metadata: meta(p.metadata as Params),
      mode: 'payment',
      origin_context: null,
      payment_intent: null,
      payment_link: null,
      payment_method_collection: 'if_required',
      payment_method_configuration_details: null,
      payment_method_options: {},
      payment_method_types: ['card'],
      payment_status: 'unpaid',
      permissions: null,
      recovered_from: null,
      saved_payment_method_options: null,
      setup_intent: null,
      shipping_address_collection: null,
      shipping_cost: null,
      shipping_options: [],
      status: 'open',
      submit_type: null,
      subscription: null,
      success_url: success,
      total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
      ui_mode: 'hosted',
      url: `${this.address}/c/pay/${id}`,
      wallet_options: null,
    } satisfies Stripe.Checkout.Session;
    this.sessions.set(id, session);
    this.intentMeta.set(id, meta((p.payment_intent_data as Params | undefined)?.metadata as Params));
    return session;
  }

  /** The payment of a session (Stripe makes it when the payer confirms), with `payment_intent_data.metadata`. */
  private intent(s: Stripe.Checkout.Session, status: 'succeeded' | 'processing'): Stripe.PaymentIntent {
    const amount = s.amount_total as number;
    const intent = {
      id: this.id('pi'),
      object: 'payment_intent',
      amount,
      allowed_payment_method_types: null,
      amount_capturable: 0,
      amount_details: { tip: {} },
      amount_received: status === 'succeeded' ? amount : 0,
      application: null,
      application_fee_amount: null,
      automatic_payment_methods: null,
      canceled_at: null,
      cancellation_reason: null,
      capture_method: 'automatic',
      client_secret: `pi_secret_${randomBytes(12).toString('hex')}`,
      confirmation_method: 'automatic',
      created: this.seconds(),
      currency: s.currency as string,
      customer: s.customer as string | null,
      customer_account: null,
      description: null,
      excluded_payment_method_types: null,
      last_payment_error: null,
      managed_payments: null,
      latest_charge: this.id('ch'),
      livemode: false,
      metadata: this.intentMeta.get(s.id) ?? {},
      next_action: null,
      on_behalf_of: null,
      payment_method: this.id('pm'),
      payment_method_configuration_details: null,
      payment_method_options: {},
      payment_method_types: ['card'],
      payment_record: null,
      processing: null,
      receipt_email: null,
      review: null,
      setup_future_usage: null,
      shipping: null,
      source: null,
      statement_descriptor: null,
      statement_descriptor_suffix: null,
      status,
      transfer_data: null,
      transfer_group: null,
    } satisfies Stripe.PaymentIntent;
    this.intents.set(intent.id, intent);
    return intent;
  }

  /** The hosted page: GET shows the amount and a Pay button; POST pays (the webhook goes out first), then sends the payer to success_url. */
  private async page(req: IncomingMessage, res: ServerResponse, id: string, body: string): Promise<void> {
    const s = this.sessions.get(id);
    if (!s) return this.html(res, 404, '<h1>Not found</h1>');
    if (req.method === 'POST') {
      if (new URLSearchParams(body).get('action') === 'cancel') return this.redirect(res, s.cancel_url ?? '/');
      await this.pay(id);
      return this.redirect(res, s.success_url as string);
    }
    const amount = `$${((s.amount_total ?? 0) / 100).toFixed(2)}`;
    const open = s.status === 'open';
    this.html(
      res,
      200,
      `<h1>Pay ${amount}</h1><p>Test mode (a local stand-in for Stripe Checkout)</p>${
        open ? '<form method="post"><button name="action" value="pay">Pay</button> <button name="action" value="cancel">Cancel</button></form>' : `<p>This session is ${s.status}.</p>`
      }`,
    );
  }

  private html(res: ServerResponse, status: number, content: string): void {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><title>Checkout</title></head><body>${content}</body></html>`);
  }

  private redirect(res: ServerResponse, to: string): void {
    res.writeHead(303, { location: to });
    res.end();
  }

  private answer(res: ServerResponse, status: number, body: unknown, replay = false): void {
    const send = (value: unknown) => {
      const text = JSON.stringify(value);
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': this.id('req'), 'stripe-version': '2026-11-18.endive', ...(replay ? { 'idempotent-replayed': 'true' } : {}) });
      res.end(text);
    };
    if (body instanceof Promise) body.then(send, (err: unknown) => (err instanceof StripeFailure ? this.answer(res, err.status, { error: err.body }) : this.answer(res, 500, { error: { type: 'api_error', message: String(err) } })));
    else send(body);
  }

  private id(prefix: string): string {
    return `${prefix}_${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x')}`;
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}
