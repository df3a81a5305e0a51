import { defineService, endpoint, z } from '@micro/sdk';

/**
 * The balance service of the platform (namespace micro): a payer's prepaid balance and
 * what it owes, their history from the ledger, top-ups and payments through the payment
 * provider, and the staff's credits, refunds and recorded payments. Amounts are integer
 * units of 10^-6 USD (1/10,000 of a cent) everywhere. A tenant acts for the payer of its
 * own namespace (`namespace` absent); admins of micro name any.
 */

export const BALANCE_LIMITS = {
  /** history entries a page: default and most */
  page: 50,
  maxPage: 200,
  reason: 500,
  key: 100,
};

const Units = z.number().int().describe('units of 10^-6 USD ($1 = 1,000,000)');
const Amount = z.union([z.number(), z.string().max(40)]).describe('units of 10^-6 USD, a whole number ($1 = 1,000,000); a number or a string of digits');
const Namespace = z.string().min(1).max(64).describe("default: the caller's namespace; another needs an owner or admin of it, or an admin of micro");
const Time = z.number().int().describe('epoch milliseconds');
const Reason = z.string().min(1).max(BALANCE_LIMITS.reason).describe('why, for people: shown in the history');
const Key = z.string().min(1).max(BALANCE_LIMITS.key).describe('the idempotency key: the same key again returns the first result and moves nothing (default: derived from payer, amount and reason)');
const PayerRef = {
  customer: z.string().min(1).max(320).optional().describe('the customer (cus_… or its email)'),
  namespace: z.string().min(1).max(64).optional().describe('the namespace whose payer it is'),
};

const Session = z.object({
  id: z.string(),
  url: z.string().describe('the payment page: send the payer there'),
  amount: Units,
  purpose: z.enum(['topup', 'due']),
  status: z.enum(['open', 'paid', 'expired', 'failed']),
  expiresAt: Time,
});

const Moved = z.object({
  payer: z.string(),
  kind: z.string(),
  amount: Units,
  /** the ledger posting */
  posting: z.number().int(),
  key: z.string().describe('the ledger key it was posted under'),
  at: Time,
  replayed: z.boolean().describe('true: the key was used before: this is the first result and nothing moved now'),
  balance: Units.describe("the payer's balance now"),
  due: Units.describe("what the payer's due account holds now (negative: owed)"),
});

const Entry = z.object({
  id: z.number().int().describe('the cursor of the pages'),
  posting: z.number().int(),
  at: Time,
  amount: Units.describe('signed: + raised the account'),
  balanceAfter: Units,
  kind: z.string().describe('usage, seats, proration, topup, payment, credit, refund, tax, payout'),
  reason: z.string(),
  metadata: z.record(z.string(), z.string()),
});

export const balanceService = defineService({
  name: 'balance',
  version: '1.0.0',
  description: "A payer's prepaid balance and what it owes: history, top-ups and payments, credits and refunds",
  endpoints: {
    Read: endpoint({
      description: "The prepaid balance and what is due of the namespace's payer (owners and admins of the namespace)",
      readonly: true,
      idempotent: true,
      request: z.object({ namespace: Namespace.optional() }).strict(),
      response: z.object({
        namespace: z.string(),
        payer: z.string(),
        balance: Units.describe('prepaid credit: priced calls spend it; never below zero'),
        due: Units.describe('negative while something is owed (seats, tax); paid by PayDue or a recorded payment'),
        level: z.enum(['ok', 'low', 'zero']).describe('the balance against the low-balance threshold'),
        lowBalance: Units.describe('the threshold below which the owner is warned'),
        provider: z.string().describe('stripe: TopUp and PayDue give a payment page; manual: ask the staff'),
        topUp: z.object({ min: Units, max: Units }),
      }),
    }),
    History: endpoint({
      description: 'The entries of the balance (or the due account), newest first, each with the balance after it',
      readonly: true,
      idempotent: true,
      request: z
        .object({
          namespace: Namespace.optional(),
          account: z.enum(['balance', 'due']).optional().describe('default balance'),
          limit: z.number().int().min(1).max(BALANCE_LIMITS.maxPage).optional().describe(`default ${BALANCE_LIMITS.page}`),
          before: z.number().int().min(1).optional().describe('the `next` of the previous page'),
        })
        .strict(),
      response: z.object({ payer: z.string(), account: z.string(), entries: z.array(Entry), next: z.number().int().optional() }),
    }),
    TopUp: endpoint({
      description: 'A payment page (Stripe Checkout) for a top-up of the prepaid balance; the balance rises once the provider says it was paid',
      request: z.object({ namespace: Namespace.optional(), amount: Amount }).strict(),
      response: z.object({ payer: z.string(), session: Session }),
    }),
    PayDue: endpoint({
      description: 'A payment page for what is due (rounded up to the cent); the due account rises once paid',
      request: z.object({ namespace: Namespace.optional() }).strict(),
      response: z.object({ payer: z.string(), session: Session }),
    }),
    Credit: endpoint({
      description: 'A promo credit: platform:promo → the payer’s balance (admins of micro)',
      request: z.object({ ...PayerRef, amount: Amount, reason: Reason, idempotencyKey: Key.optional() }).strict(),
      response: Moved,
    }),
    Refund: endpoint({
      description: 'Money given back: platform:revenue → the payer’s balance (or due), at most what the payer paid the platform, net of refunds (admins of micro)',
      request: z.object({ ...PayerRef, amount: Amount, reason: Reason, to: z.enum(['balance', 'due']).optional().describe('default balance'), idempotencyKey: Key.optional() }).strict(),
      response: Moved,
    }),
    RecordPayment: endpoint({
      description: 'A payment received outside the platform (bank transfer, a card taken elsewhere): external:payments → due (or → balance, a top-up) (admins of micro)',
      request: z.object({ ...PayerRef, amount: Amount, reason: Reason.describe('the reference of the transfer, for people'), to: z.enum(['due', 'balance']).optional().describe('default due'), idempotencyKey: Key.optional() }).strict(),
      response: Moved,
    }),
  },
});
