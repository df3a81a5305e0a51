import { defineService, endpoint, z } from '@micro/sdk';
import { i64, i64Out, m3oRequest } from '@micro/services-kit';

/** The largest amount one credit, debit or transfer moves: 10^15 units (a billion dollars in M3O's unit), as the platform ledger. */
export const MAX_AMOUNT = 1_000_000_000_000_000;
/** Wallet ids: letters, digits and `_ . : @ + -`, 1 to 128 characters (no `/`, no spaces). */
export const WALLET_ID = /^[A-Za-z0-9_.:@+-]{1,128}$/;
/** Idempotency keys: 1 to 255 printable ASCII characters. */
export const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

const walletId = z.string().regex(WALLET_ID, 'must be 1 to 128 letters, digits or _ . : @ + -');
const amount = i64()
  .refine((n) => n > 0, 'must be a positive whole number')
  .refine((n) => n <= MAX_AMOUNT, `must be at most ${MAX_AMOUNT}`);
const reference = z.string().max(1000).default('');
const visible = z.boolean().default(false);
const idempotencyKey = z.string().regex(IDEMPOTENCY_KEY, 'must be 1 to 255 printable ASCII characters').optional();

const Account = z.object({ id: z.string(), name: z.string(), description: z.string(), balance: i64Out });
const Transaction = z.object({ id: z.string(), amount: i64Out, created: z.string(), reference: z.string(), metadata: z.record(z.string(), z.string()) });

const unary = { price: 10, freeQuota: 10_000 } as const;
const read = { ...unary, idempotent: true, readonly: true } as const;

/**
 * The wallet service, as M3O's wallet API: wallets of a tenant with integer balances,
 * moved by credits, debits and transfers that each apply once per idempotency key and
 * never overdraw.
 */
export const walletDef = defineService({
  name: 'wallet',
  version: '1.0.0',
  description: 'Wallets with integer balances: credits, debits and transfers, each once per idempotency key, never overdrawn',
  public: true,
  endpoints: {
    Create: endpoint({
      description: 'Creates a wallet (id: a new UUID unless given)',
      request: m3oRequest({ id: walletId.optional(), name: z.string().max(256).default(''), description: z.string().max(4096).default('') }),
      response: z.object({ account: Account }),
      ...unary,
    }),
    Read: endpoint({ description: 'A wallet', request: m3oRequest({ id: walletId }), response: z.object({ account: Account }), ...read }),
    List: endpoint({ description: 'The wallets, by id', request: z.object({}).passthrough(), response: z.object({ accounts: z.array(Account) }), ...read }),
    Balance: endpoint({ description: "A wallet's balance", request: m3oRequest({ id: walletId }), response: z.object({ balance: i64Out }), ...read }),
    Delete: endpoint({ description: 'Deletes a wallet whose balance is zero', request: m3oRequest({ id: walletId }), response: z.object({}), ...unary }),
    Credit: endpoint({
      description: 'Adds `amount` to a wallet (once per idempotency_key)',
      request: m3oRequest({ id: walletId, amount, reference, visible, idempotency_key: idempotencyKey }),
      response: z.object({ balance: i64Out }),
      ...unary,
    }),
    Debit: endpoint({
      description: 'Takes `amount` from a wallet (once per idempotency_key); 400 when the balance does not cover it',
      request: m3oRequest({ id: walletId, amount, reference, visible, idempotency_key: idempotencyKey }),
      response: z.object({ balance: i64Out }),
      ...unary,
    }),
    Transfer: endpoint({
      description: 'Moves `amount` from one wallet to another (once per idempotency_key); 400 when the balance does not cover it',
      request: m3oRequest({ from_id: walletId, to_id: walletId, amount, reference, visible, idempotency_key: idempotencyKey }),
      response: z.object({}),
      ...unary,
    }),
    Transactions: endpoint({
      description: "A wallet's visible transactions, newest first",
      request: m3oRequest({ id: walletId }),
      response: z.object({ transactions: z.array(Transaction) }),
      ...read,
    }),
  },
});
