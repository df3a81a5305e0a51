import { errors, isMicroError, type Logger } from '@micro/sdk';
import { balanceAccount, dueAccount, EXTERNAL_PAYMENTS, openPayerAccounts } from '../billing/accounts.js';
import { periodOf } from '../billing/periods.js';
import { FUNDS_ID, type EntryInput, type Ledger, type PostResult } from '../ledger/index.js';
import { postOnce } from './post.js';
import type { CheckoutRequest, PaymentEvents, PaymentProvider } from './provider.js';
import type { PaymentsStorage, Purpose, StoredSession } from './storage.js';

/**
 * Payments as the ledger sees them, whatever the provider: a Checkout session is opened
 * for a payer and recorded (the payer of a session is ours to say, never the event's); a
 * provider's "session paid" posts `external:payments → balance` (top-up) or `→ due`
 * (payment) under the key `<provider>:checkout:<session>`; a provider's refund posts a
 * payout under `<provider>:refund:<refund>`. Keys derive from the provider's ids, so a
 * replayed or duplicated event moves nothing. See README.md for the order of events.
 */

export interface PaymentsDeps {
  ledger: Ledger;
  store: PaymentsStorage;
  clock: () => number;
  /** told after every posting that changed a payer's balance (the low-balance watch) */
  observe: (payer: string) => Promise<void>;
  logger?: Logger;
}

/** What became of a provider's event: stored with the event, answered to the provider. */
export type Outcome = 'applied' | 'replayed' | 'pending' | 'closed' | 'unchanged' | 'ignored';

const UNITS_PER_CENT = 10_000;

export class Payments implements PaymentEvents {
  constructor(
    private readonly deps: PaymentsDeps,
    readonly provider: PaymentProvider,
  ) {}

  /** A payment page for the payer, recorded before its address is handed out. */
  async checkout(req: CheckoutRequest): Promise<StoredSession & { expiresAt: number }> {
    if (!Number.isSafeInteger(req.amount) || req.amount <= 0 || req.amount % UNITS_PER_CENT !== 0) throw errors.BadRequest('balance', `amount: ${req.amount} is not a whole number of cents (multiples of ${UNITS_PER_CENT} units)`);
    const page = await this.provider.checkout(req);
    const now = this.deps.clock();
    const session: StoredSession = { id: page.id, provider: this.provider.name, payer: req.payer, purpose: req.purpose, amount: req.amount, status: 'open', url: page.url, createdAt: now, updatedAt: now };
    await this.deps.store.putSession(session);
    return { ...session, expiresAt: page.expiresAt };
  }

  /**
   * A session was paid `paid` units. Posted for the session's recorded payer, whatever the
   * event carries; a session that is not ours is ignored (logged). A session seen expired
   * or failed before is paid all the same: the money came in.
   */
  async paid(id: string, paid: number, paymentIntent?: string): Promise<Outcome> {
    const provider = this.provider.name;
    const s = await this.deps.store.session(provider, id);
    if (!s) {
      this.deps.logger?.warn({ provider, session: id }, 'payments: a paid session we did not open: ignored');
      return 'ignored';
    }
    if (paid !== s.amount) this.deps.logger?.warn({ provider, session: id, asked: s.amount, paid }, 'payments: a session paid another amount than asked: posting what was paid');
    const key = `${provider}:checkout:${id}`;
    const result = await this.post(s.payer, {
      key,
      reason: s.purpose === 'topup' ? `top-up paid through ${provider}` : `payment of what is due, through ${provider}`,
      entries: [
        { account: EXTERNAL_PAYMENTS, amount: -paid },
        { account: s.purpose === 'topup' ? balanceAccount(s.payer) : dueAccount(s.payer), amount: paid },
      ],
      metadata: { kind: s.purpose === 'topup' ? 'topup' : 'payment', provider, session: id, period: periodOf(s.createdAt).id, ...(paymentIntent ? { payment: paymentIntent } : {}) },
    });
    await this.deps.store.setStatus(provider, id, 'paid', ['open', 'expired', 'failed'], this.deps.clock(), { paymentIntent, posting: key });
    return result.replayed ? 'replayed' : 'applied';
  }

  /** A session ended unpaid (expired, or its payment failed): marked so when it is still open; nothing moves. */
  async closed(id: string, status: 'expired' | 'failed'): Promise<Outcome> {
    return (await this.deps.store.setStatus(this.provider.name, id, status, ['open'], this.deps.clock())) ? 'closed' : 'unchanged';
  }

  /** The session a provider's payment belongs to, once its payment was applied. */
  paidSession(paymentIntent: string): Promise<StoredSession | undefined> {
    return this.deps.store.sessionByPayment(this.provider.name, paymentIntent);
  }

  /**
   * Money the provider sent back to the payer (a refund made at the provider) of a paid
   * session: taken from the balance for a top-up, what the balance no longer holds (spent
   * meanwhile) owed again on due; from due for a payment. Once per refund id.
   */
  async payout(s: StoredSession, refund: string, amount: number): Promise<Outcome> {
    const provider = this.provider.name;
    const key = `${provider}:refund:${refund}`;
    const metadata = { kind: 'payout', provider, refund, session: s.id, period: periodOf(s.createdAt).id };
    // the split depends on the balance at the time: a replay is known by its key and kind alone
    const same = (first: { metadata: Record<string, string> }) => first.metadata.kind === 'payout' && first.metadata.refund === refund;
    for (let attempt = 0; ; attempt++) {
      const held = s.purpose === 'topup' ? await this.deps.ledger.balance(balanceAccount(s.payer)).catch(() => 0) : 0;
      const fromBalance = Math.min(held, amount);
      const entries: EntryInput[] = [{ account: EXTERNAL_PAYMENTS, amount }];
      if (fromBalance > 0) entries.push({ account: balanceAccount(s.payer), amount: -fromBalance });
      if (amount - fromBalance > 0) entries.push({ account: dueAccount(s.payer), amount: -(amount - fromBalance) });
      try {
        const result = await this.post(s.payer, { key, reason: `refund sent back through ${provider}`, entries, metadata }, same);
        return result.replayed ? 'replayed' : 'applied';
      } catch (err) {
        // a spend took the balance between the read and the posting: read again
        if (!(isMicroError(err) && err.id === FUNDS_ID) || attempt >= 5) throw err;
      }
    }
  }

  /** A refund that failed after it was posted: its payout reversed (the money is the payer's again). */
  async payoutFailed(s: StoredSession, refund: string): Promise<Outcome> {
    const provider = this.provider.name;
    const original = `${provider}:refund:${refund}`;
    if (!(await this.deps.ledger.posting(original))) return 'unchanged';
    const result = await this.deps.ledger.reverse(original, { key: `${provider}:refund-failed:${refund}`, reason: `refund failed at ${provider}: the payout is undone`, metadata: { kind: 'payout', provider, refund, session: s.id } });
    await this.deps.observe(s.payer);
    return result.replayed ? 'replayed' : 'applied';
  }

  /**
   * A payment an admin records (the manual provider: a bank transfer, a card taken
   * elsewhere): `external:payments → due` (payment) or `→ balance` (top-up).
   */
  async record(input: { payer: string; amount: number; to: Purpose; reason: string; key: string; by: string }): Promise<PostResult> {
    return this.post(input.payer, {
      key: `manual:${input.key}`,
      reason: input.reason,
      entries: [
        { account: EXTERNAL_PAYMENTS, amount: -input.amount },
        { account: input.to === 'topup' ? balanceAccount(input.payer) : dueAccount(input.payer), amount: input.amount },
      ],
      metadata: { kind: input.to === 'topup' ? 'topup' : 'payment', provider: 'manual', by: input.by, period: periodOf(this.deps.clock()).id },
    });
  }

  private async post(payer: string, input: Parameters<typeof postOnce>[1], same?: Parameters<typeof postOnce>[2]): Promise<PostResult> {
    await openPayerAccounts(this.deps.ledger, payer);
    const result = await postOnce(this.deps.ledger, input, same);
    if (!result.replayed) await this.deps.observe(payer);
    return result;
  }
}
