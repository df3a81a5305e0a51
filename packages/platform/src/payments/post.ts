import { errors, isMicroError } from '@micro/sdk';
import type { Ledger, Posting, PostingInput, PostResult } from '../ledger/index.js';

/** The error id of payments and balance refusals about money. */
export const PAYMENTS_ID = 'balance';

/** The same movement: the same entries (accounts and amounts, in any order) and the same kind. */
export function sameMovement(a: Pick<Posting, 'entries' | 'metadata'>, b: Pick<PostingInput, 'entries' | 'metadata'>): boolean {
  const norm = (entries: { account: string; amount: number }[]) =>
    entries
      .map((e) => `${e.account}=${e.amount}`)
      .sort()
      .join(',');
  return norm(a.entries) === norm(b.entries) && a.metadata.kind === b.metadata?.kind;
}

/**
 * Posts once under `input.key`. A key posted before returns the first posting (`replayed`)
 * when it moved the same money (`sameMovement`: its entries and kind), whatever else
 * differs — a replay a month later names another period, an admin retrying may write the
 * reason anew — and is a 409 when it moved other money. Two racing posts of one key: the
 * ledger records one; the loser gets the winner's posting.
 */
export async function postOnce(ledger: Ledger, input: PostingInput, same: (first: Posting, input: PostingInput) => boolean = sameMovement): Promise<PostResult> {
  const first = await ledger.posting(input.key);
  if (first) return replayOf(first, input, same);
  try {
    return await ledger.post(input);
  } catch (err) {
    // a racing post of the same key won (with other metadata): the first stands
    const winner = isMicroError(err) && err.code === 409 ? await ledger.posting(input.key) : undefined;
    if (winner) return replayOf(winner, input, same);
    throw err;
  }
}

function replayOf(first: Posting, input: PostingInput, same: (first: Posting, input: PostingInput) => boolean): PostResult {
  if (!same(first, input)) {
    throw errors.Conflict(PAYMENTS_ID, `idempotencyKey: ${input.key} was used on ${new Date(first.at).toISOString()} for another movement of money (posting ${first.id}); use a new key`);
  }
  return { posting: first, replayed: true };
}
