import { randomUUID } from 'node:crypto';
import { errors, type Context, type Engines, type Handlers } from '@micro/sdk';
import { publicService, rfc3339, str64 } from '@micro/services-kit';
import { Book, type AccountRecord, type BookOptions } from './book.js';
import { walletDef } from './definition.js';

export { Book, walletErrors } from './book.js';
export type { AccountRecord, BookOptions, Entry, Journal, Step } from './book.js';
export { walletDef, MAX_AMOUNT } from './definition.js';

const account = (a: AccountRecord) => ({ id: a.id, name: a.name, description: a.description, balance: str64(a.balance) });

/** The wallet service's handlers: each call works on the calling tenant's wallets only (ctx.tenant). */
export function walletHandlers(engines: Pick<Engines, 'store' | 'sync'>, options: BookOptions = {}): Handlers<typeof walletDef> {
  const book = (ctx: Context) => new Book(engines.store, engines.sync, ctx, options);
  return {
    Create: async ({ id, name, description }, ctx) => ({ account: account(await book(ctx).create(id ?? randomUUID(), name, description)) }),
    Read: async ({ id }, ctx) => ({ account: account(await book(ctx).read(id)) }),
    List: async (_req, ctx) => ({ accounts: (await book(ctx).list()).map(account) }),
    Balance: async ({ id }, ctx) => ({ balance: str64((await book(ctx).read(id)).balance) }),
    Delete: async ({ id }, ctx) => {
      await book(ctx).delete(id);
      return {};
    },
    Credit: async ({ id, amount, reference, visible, idempotency_key }, ctx) => {
      const { balance } = await book(ctx).post({ kind: 'credit', to: id, amount, reference, visible, key: idempotency_key });
      return { balance: balance ?? '0' };
    },
    Debit: async ({ id, amount, reference, visible, idempotency_key }, ctx) => {
      const { balance } = await book(ctx).post({ kind: 'debit', from: id, amount, reference, visible, key: idempotency_key });
      return { balance: balance ?? '0' };
    },
    Transfer: async ({ from_id, to_id, amount, reference, visible, idempotency_key }, ctx) => {
      if (from_id === to_id) throw errors.BadRequest('wallet', 'from_id and to_id must be different wallets');
      await book(ctx).post({ kind: 'transfer', from: from_id, to: to_id, amount, reference, visible, key: idempotency_key });
      return {};
    },
    Transactions: async ({ id }, ctx) => {
      const entries = (await book(ctx).entries(id)).filter((e) => e.visible);
      return { transactions: entries.map((e) => ({ id: e.id, amount: str64(e.amount), created: rfc3339(e.created), reference: e.reference, metadata: e.metadata })) };
    },
  };
}

export const service = publicService(walletDef, (engines) => walletHandlers(engines));
