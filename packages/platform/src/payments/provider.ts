import { errors } from '@micro/sdk';
import type { WebhookRoute } from '@micro/server/engine';
import type { Purpose, StoredSession } from './storage.js';

/**
 * A payment provider: where a payer pays with a card (or whatever the provider offers) for
 * a top-up of its prepaid balance or for what it owes, and how the provider tells us it was
 * paid. The provider never decides how much money moves in the ledger or for whom: it says
 * "session X was paid N cents", and payments.ts posts for the payer it recorded for X.
 */

export interface CheckoutRequest {
  payer: string;
  purpose: Purpose;
  /** units (10^-6 USD), whole cents: card payments are in cents */
  amount: number;
  /** the payer's email, prefilled on the payment page */
  email?: string;
  /** where the payment page sends the payer back to */
  successUrl: string;
  cancelUrl: string;
}

export interface CheckoutSession {
  id: string;
  /** the hosted payment page */
  url: string;
  /** ms since the epoch: the page stops taking payments then */
  expiresAt: number;
}

export interface PaymentProvider {
  /** `stripe`, `manual`: the first segment of the ledger keys it causes, and of its webhook path */
  readonly name: string;
  /** whether payers can pay online (Checkout); without, an admin records payments (RecordPayment) */
  readonly online: boolean;
  /** A hosted payment page for the amount (501 for a provider without one). */
  checkout(req: CheckoutRequest): Promise<CheckoutSession>;
  /** the provider's signed callbacks, served by the gateway at `/webhooks/<name>`, applied through `events` */
  webhook?(events: PaymentEvents): WebhookRoute;
  close?(): Promise<void>;
}

/** What a provider's callbacks may do (payments.ts): every one idempotent, every one keyed by the provider's ids. */
export interface PaymentEvents {
  /** a session paid `paid` units (posted once, for the payer recorded with the session) */
  paid(session: string, paid: number, paymentIntent?: string): Promise<string>;
  /** a session ended unpaid */
  closed(session: string, status: 'expired' | 'failed'): Promise<string>;
  /** the paid session of a provider's payment, if its payment was applied */
  paidSession(paymentIntent: string): Promise<StoredSession | undefined>;
  /** money sent back to the payer at the provider (posted once per refund id) */
  payout(session: StoredSession, refund: string, amount: number): Promise<string>;
  /** a refund that failed after it was posted: its payout reversed */
  payoutFailed(session: StoredSession, refund: string): Promise<string>;
}

/** The offline default: no payment page; staff record bank transfers and card payments taken elsewhere (RecordPayment). */
export class ManualProvider implements PaymentProvider {
  readonly name = 'manual';
  readonly online = false;

  async checkout(): Promise<CheckoutSession> {
    throw errors.NotImplemented('balance', 'online payment is not set up on this platform (no MICRO_STRIPE_SECRET_KEY): pay by bank transfer and ask the platform staff to record it');
  }
}
