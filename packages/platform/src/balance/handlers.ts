import { createHash } from 'node:crypto';
import { errors, isMicroError, type Context, type Handlers } from '@micro/sdk';
import { adminNamespaceFor, requireAdmin } from '@micro/server/engine';
import { balanceAccount, dueAccount, PLATFORM_PROMO, PLATFORM_REVENUE, openPayerAccounts } from '../billing/accounts.js';
import { checkUnits, formatDollars } from '../billing/amounts.js';
import { periodOf } from '../billing/periods.js';
import type { BillingSql } from '../billing/sql.js';
import type { Ledger, Posting, PostingInput, PostResult } from '../ledger/index.js';
import type { Payments } from '../payments/payments.js';
import { postOnce } from '../payments/post.js';
import type { StoredSession } from '../payments/storage.js';
import type { BalanceConfig } from './config.js';
import { BALANCE_LIMITS, type balanceService } from './definition.js';
import { levelOf } from './watch.js';

const ID = 'balance';
const CENT = 10_000;
/** the least a card payment may be (Stripe: $0.50): what is due below it waits */
const LEAST_PAYMENT = 500_000;
const NAMESPACE = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

export interface BalanceDeps {
  ledger: Ledger;
  payments: Payments;
  /** told after a posting changed a payer's balance (hub.onBalance: the low/zero watch) */
  observe: (payer: string) => Promise<void>;
  /** billing's driver: the refundable sum reads the ledger's entries; refunds of one payer run one at a time */
  sql: BillingSql;
  /** the payer of a namespace (hub.payerOf) */
  payerOf(namespace: string): Promise<string>;
  /** the payer a staff member names: a customer (id or email) or a namespace; 404 when there is none */
  resolve(ref: { customer?: string; namespace?: string }): Promise<string>;
  /** the email of a payer's owner, prefilled on the payment page */
  emailOf(payer: string): Promise<string | undefined>;
  clock: () => number;
}

export interface BalanceHandlerOptions extends BalanceConfig {
  /** the dashboard's address: the payment page sends the payer back to `<siteUrl>/#/billing/…` */
  siteUrl: string;
  /** the namespace a tenant call acts for, which the caller must administer (default adminNamespaceFor: its owners and admins, admins of micro) */
  tenant?: (ctx: Context, namespace: string | undefined) => string;
  /** who may credit, refund and record payments (default requireAdmin: admins of micro) */
  admin?: (ctx: Context) => void;
}

/** An amount a client sent, or a 400 naming the field. */
function units(field: string, value: unknown): number {
  try {
    return checkUnits(field, value);
  } catch (err) {
    throw errors.BadRequest(ID, (err as Error).message);
  }
}

function reasonOf(reason: string): string {
  const text = reason.replace(/[\p{Cc}\u2028\u2029]+/gu, ' ').trim();
  if (!text) throw errors.BadRequest(ID, 'reason: say why, for the history (it is required)');
  return text;
}

/** The idempotency key of a staff posting: the client's, else derived from what it moves (the same credit twice is one credit). */
function keyOf(kind: string, given: string | undefined, parts: unknown[]): string {
  if (given !== undefined) {
    if (!/^[\x21-\x7e]{1,100}$/.test(given)) throw errors.BadRequest(ID, 'idempotencyKey: 1-100 printable ASCII characters without spaces');
    return `${kind}:${given}`;
  }
  return `${kind}:auto:${createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 40)}`;
}

interface StaffRequest {
  customer?: string;
  namespace?: string;
  amount: number | string;
  reason: string;
  idempotencyKey?: string;
}

const notFound = (err: unknown) => isMicroError(err) && err.code === 404;

export function balanceHandlers(deps: BalanceDeps, options: BalanceHandlerOptions): Handlers<typeof balanceService> {
  const { ledger } = deps;
  const tenant = options.tenant ?? ((ctx, namespace) => adminNamespaceFor(ctx, namespace));
  const admin = options.admin ?? requireAdmin;
  const held = (account: string) => ledger.balance(account).catch((err: unknown) => (notFound(err) ? 0 : Promise.reject(err)));

  const payerFor = async (ctx: Context, asked: string | undefined) => {
    if (asked !== undefined && !NAMESPACE.test(asked)) throw errors.BadRequest(ID, `namespace: ${JSON.stringify(asked.slice(0, 64))} is not a namespace name`);
    const namespace = tenant(ctx, asked);
    return { namespace, payer: await deps.payerOf(namespace) };
  };

  /** A staff call (admins of micro only): its amount, reason and payer checked. */
  const staffRequest = async (ctx: Context, req: StaffRequest) => {
    admin(ctx);
    const amount = units('amount', req.amount);
    const reason = reasonOf(req.reason);
    return { amount, reason, payer: await deps.resolve({ customer: req.customer, namespace: req.namespace }), idempotencyKey: req.idempotencyKey };
  };

  /** What a staff posting answers: the posting and the payer's accounts now. */
  const moved = async (payer: string, result: PostResult, amount: number) => ({
    payer,
    kind: result.posting.metadata.kind ?? '',
    amount,
    posting: result.posting.id,
    key: result.posting.key,
    at: result.posting.at,
    replayed: result.replayed,
    balance: await held(balanceAccount(payer)),
    due: await held(dueAccount(payer)),
  });

  const post = async (payer: string, input: PostingInput): Promise<PostResult> => {
    await openPayerAccounts(ledger, payer);
    const result = await postOnce(ledger, input);
    if (!result.replayed) await deps.observe(payer);
    return result;
  };

  const checkout = async (ctx: Context, payer: string, purpose: 'topup' | 'due', amount: number) => {
    const session: StoredSession & { expiresAt: number } = await deps.payments.checkout({
      payer,
      purpose,
      amount,
      ...(await deps.emailOf(payer).then((email) => (email ? { email } : {}))),
      successUrl: `${options.siteUrl}/#/billing/paid`,
      cancelUrl: `${options.siteUrl}/#/billing`,
    });
    return { payer, session: { id: session.id, url: session.url, amount: session.amount, purpose: session.purpose, status: session.status, expiresAt: session.expiresAt } };
  };

  return {
    Read: async ({ namespace: asked }, ctx) => {
      const { namespace, payer } = await payerFor(ctx, asked);
      const balance = await held(balanceAccount(payer));
      return {
        namespace,
        payer,
        balance,
        due: await held(dueAccount(payer)),
        level: levelOf(balance, options.lowBalance),
        lowBalance: options.lowBalance,
        provider: deps.payments.provider.online ? deps.payments.provider.name : 'manual',
        topUp: { min: options.topUpMin, max: options.topUpMax },
      };
    },

    History: async ({ namespace: asked, account, limit, before }, ctx) => {
      const { payer } = await payerFor(ctx, asked);
      const id = account === 'due' ? dueAccount(payer) : balanceAccount(payer);
      const page = await ledger.history(id, { limit: limit ?? BALANCE_LIMITS.page, ...(before ? { before } : {}) }).catch((err: unknown) => (notFound(err) ? { items: [] } : Promise.reject(err)));
      // the kind and metadata are the posting's: one read per posting of the page
      const postings = new Map<string, Posting | undefined>();
      for (const e of page.items) if (!postings.has(e.key)) postings.set(e.key, await ledger.posting(e.key));
      const entries = page.items.map((e) => {
        const metadata = postings.get(e.key)?.metadata ?? {};
        return { id: e.id, posting: e.posting, at: e.at, amount: e.amount, balanceAfter: e.balanceAfter, kind: metadata.kind ?? '', reason: e.reason, metadata };
      });
      return { payer, account: id, entries, ...('next' in page && page.next ? { next: page.next } : {}) };
    },

    TopUp: async ({ namespace: asked, amount: raw }, ctx) => {
      const amount = units('amount', raw);
      if (amount % CENT !== 0) throw errors.BadRequest(ID, `amount: a top-up is whole cents (a multiple of ${CENT} units), not ${amount}`);
      if (amount < options.topUpMin || amount > options.topUpMax) throw errors.BadRequest(ID, `amount: a top-up is from ${formatDollars(options.topUpMin)} to ${formatDollars(options.topUpMax)}, not ${formatDollars(amount)}`);
      const { payer } = await payerFor(ctx, asked);
      return checkout(ctx, payer, 'topup', amount);
    },

    PayDue: async ({ namespace: asked }, ctx) => {
      const { payer } = await payerFor(ctx, asked);
      const due = await held(dueAccount(payer));
      if (due >= 0) throw errors.Conflict(ID, `nothing is due: the due account of ${payer} holds ${formatDollars(due)}`);
      // card payments are in cents: what is due, rounded up (the part of a cent stays as credit)
      const amount = Math.ceil(-due / CENT) * CENT;
      if (amount < LEAST_PAYMENT) throw errors.Conflict(ID, `${formatDollars(-due)} is due, less than the least card payment (${formatDollars(LEAST_PAYMENT)}): it is paid with the next`);
      return checkout(ctx, payer, 'due', amount);
    },

    Credit: async (req, ctx) => {
      const { payer, amount, reason, idempotencyKey } = await staffRequest(ctx, req);
      const key = keyOf('credit', idempotencyKey, [payer, amount, reason]);
      const result = await post(payer, {
        key,
        reason,
        entries: [
          { account: PLATFORM_PROMO, amount: -amount },
          { account: balanceAccount(payer), amount },
        ],
        metadata: { kind: 'credit', by: ctx.account?.id ?? '', period: periodOf(deps.clock()).id },
      });
      return moved(payer, result, amount);
    },

    Refund: async (req, ctx) => {
      const { payer, amount, reason, idempotencyKey } = await staffRequest(ctx, req);
      const to = req.to;
      const target = to === 'due' ? dueAccount(payer) : balanceAccount(payer);
      const key = keyOf('refund', idempotencyKey, [payer, amount, reason, to ?? 'balance']);
      const input: PostingInput = {
        key,
        reason,
        entries: [
          { account: PLATFORM_REVENUE, amount: -amount },
          { account: target, amount },
        ],
        metadata: { kind: 'refund', by: ctx.account?.id ?? '', period: periodOf(deps.clock()).id },
      };
      // one refund of a payer at a time on every node: the bound is read and used in one section
      const result = await deps.sql.exclusive(`refund:${payer}`, async () => {
        if (!(await ledger.posting(key))) {
          const refundable = await refundableOf(deps.sql, payer);
          if (amount > refundable) throw errors.Conflict(ID, `amount: ${formatDollars(amount)} is more than ${payer} paid the platform, net of refunds: at most ${formatDollars(Math.max(0, refundable))} can be refunded`);
        }
        return post(payer, input);
      });
      return moved(payer, result, amount);
    },

    RecordPayment: async (req, ctx) => {
      const { payer, amount, reason, idempotencyKey } = await staffRequest(ctx, req);
      const purpose = req.to === 'balance' ? 'topup' : 'due';
      const key = keyOf('payment', idempotencyKey, [payer, amount, reason, purpose]);
      const result = await deps.payments.record({ payer, amount, to: purpose, reason, key, by: ctx.account?.id ?? '' });
      return moved(payer, result, amount);
    },
  };
}

/**
 * What a payer has paid the platform, net: the payer's side of every posting that reached
 * platform:revenue (priced calls from the balance, seat fees and pro-rations on due), less
 * the refunds already given (revenue → the payer). Read from the ledger's own entries.
 */
export async function refundableOf(sql: BillingSql, payer: string): Promise<number> {
  const [row] = await sql.all<{ paid: string | number | null }>(
    'SELECT -COALESCE(SUM(e.amount), 0) AS paid FROM @entries e WHERE e.account IN (?, ?) AND EXISTS (SELECT 1 FROM @entries r WHERE r.posting = e.posting AND r.account = ?)',
    [balanceAccount(payer), dueAccount(payer), PLATFORM_REVENUE],
  );
  return Number(row?.paid ?? 0);
}
