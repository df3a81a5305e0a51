import type { Ledger } from '../ledger/index.js';

/**
 * The ledger accounts of billing and the kinds of postings, shared by every part of it
 * (subscriptions, metering, balance, payments, invoices), so that an invoice can be built
 * from the ledger alone. See README.md.
 */

/** a payer (who is billed): a customer id of signup, or `ns.<namespace>` for a namespace no customer owns */
const PAYER = /^[A-Za-z0-9_.-]{1,100}$/;

export function checkPayer(payer: string): string {
  if (!PAYER.test(payer)) throw new Error(`invalid payer ${JSON.stringify(payer.slice(0, 120))}: 1-100 of A-Za-z0-9_.-`);
  return payer;
}

/** the payer of a namespace that no customer owns (created by an admin, self-hosted use) */
export function namespacePayer(namespace: string): string {
  return `ns.${namespace}`;
}

/** prepaid credit: top-ups, promo credits and refunds raise it, priced calls lower it; never below zero */
export function balanceAccount(payer: string): string {
  return `customer:${checkPayer(payer)}:balance`;
}

/** what the payer owes for seats and tax, settled by payments: negative while something is owed */
export function dueAccount(payer: string): string {
  return `customer:${checkPayer(payer)}:due`;
}

/** what customers paid for (seats, priced calls) */
export const PLATFORM_REVENUE = 'platform:revenue';
/** the source of promo credits and refunds the platform grants: goes negative by what it gave */
export const PLATFORM_PROMO = 'platform:promo';
/** tax collected, owed onwards */
export const PLATFORM_TAX = 'platform:tax';
/** money that came in from outside (card payments, bank transfers): goes negative by what came in */
export const EXTERNAL_PAYMENTS = 'external:payments';

/**
 * `metadata.kind` of every billing posting: what an invoice line is made of.
 * - `usage`: priced calls, `balance → revenue` (metadata: service, endpoint, calls, period)
 * - `seats`: a period's seat fees, `due → revenue` (metadata: plan, seats, period)
 * - `proration`: the difference of an upgrade or downgrade mid-period, `due ↔ revenue`
 * - `topup`: prepaid credit bought, `external:payments → balance`
 * - `payment`: an invoice or due amount paid, `external:payments → due`
 * - `credit`: a credit granted by an admin, `promo → balance`
 * - `refund`: money given back by an admin, `revenue → balance` (or `→ due`)
 * - `tax`: tax on an invoice, `due → tax`
 * - `payout`: money the provider sent back to the payer (a card refund of a top-up or a
 *   payment, made at the provider): `balance → external:payments`, what the balance lacks
 *   taken from `due` (then owed again)
 */
export const POSTING_KINDS = ['usage', 'seats', 'proration', 'topup', 'payment', 'credit', 'refund', 'tax', 'payout'] as const;
export type PostingKind = (typeof POSTING_KINDS)[number];

/** Opens the platform's own accounts (idempotent; safe on every start). */
export async function openPlatformAccounts(ledger: Ledger): Promise<void> {
  await ledger.openAccount({ id: PLATFORM_REVENUE });
  await ledger.openAccount({ id: PLATFORM_TAX });
  await ledger.openAccount({ id: PLATFORM_PROMO, allowNegative: true });
  await ledger.openAccount({ id: EXTERNAL_PAYMENTS, allowNegative: true });
}

/** Opens a payer's two accounts (idempotent): the balance may not go below zero, the due account may. */
export async function openPayerAccounts(ledger: Ledger, payer: string): Promise<void> {
  await ledger.openAccount({ id: balanceAccount(payer) });
  await ledger.openAccount({ id: dueAccount(payer), allowNegative: true });
}
