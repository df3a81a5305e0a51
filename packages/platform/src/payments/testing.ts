import { createLogger } from '@micro/sdk';
import { Gateway } from '@micro/server';
import { startAuthHarness } from '@micro/server/testing';
import type { BillingEngines } from '../billing/engines.js';
import { testBillingEngines, type BillingEngineName } from '../billing/testing.js';
import { Payments } from './payments.js';
import { openPaymentsStorage, type SqlPaymentsStorage } from './storage.js';
import { FakeStripe } from './stripe-fake.js';
import { StripeProvider, type StripeOptions } from './stripe.js';

/**
 * Payments over Stripe as micro server runs them, for the tests: the billing engines of
 * the test (SQLite or PostgreSQL), the Stripe provider pointed at a FakeStripe, and the
 * webhook served by a real Gateway at /webhooks/stripe, where the fake delivers its events.
 */
export interface StripeKit {
  engines: BillingEngines;
  store: SqlPaymentsStorage;
  fake: FakeStripe;
  provider: StripeProvider;
  payments: Payments;
  /** the payers the balance watch was told about, in order */
  observed: string[];
  /** the gateway's /webhooks/stripe */
  webhookUrl: string;
  /** the test's clock, ms (moves only when the test sets it) */
  clock: { now: number };
}

interface TestContext {
  skip(message?: string): void;
  after(fn: () => unknown): void;
}

const silent = createLogger({ level: 'silent' });

export async function startStripeKit(t: TestContext, engine: BillingEngineName, options: Partial<StripeOptions> = {}): Promise<StripeKit | undefined> {
  const clock = { now: Date.UTC(2027, 0, 15, 12) };
  const now = () => clock.now;
  const engines = await testBillingEngines(t, engine, now);
  if (!engines) return undefined;
  const store = await openPaymentsStorage(engines);
  const fake = new FakeStripe({ now });
  await fake.listen();
  t.after(() => fake.close());
  const provider = new StripeProvider({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, apiUrl: fake.url, retries: 0, now, logger: silent, ...options }, store);
  const observed: string[] = [];
  const payments = new Payments({ ledger: engines.ledger, store, clock: now, observe: async (payer) => void observed.push(payer), logger: silent }, provider);
  const auth = await startAuthHarness();
  t.after(() => auth.close());
  const gateway = new Gateway({ address: '127.0.0.1:0', registry: auth.registry, tokens: auth.tokens, accounts: auth.accounts, logger: silent, dashboardDir: false, webhooks: new Map([['stripe', provider.webhook(payments)]]) });
  const url = await gateway.listen();
  t.after(() => gateway.close());
  fake.endpoint = `${url}/webhooks/stripe`;
  return { engines, store, fake, provider, payments, observed, webhookUrl: fake.endpoint, clock };
}

/** A checkout of `dollars` for `payer` (a top-up unless said), through the provider and the fake. */
export function checkoutFor(kit: StripeKit, payer: string, dollars: number, purpose: 'topup' | 'due' = 'topup') {
  return kit.payments.checkout({ payer, purpose, amount: Math.round(dollars * 100) * 10_000, successUrl: 'http://127.0.0.1:8080/dashboard/#/billing/paid', cancelUrl: 'http://127.0.0.1:8080/dashboard/#/billing' });
}
