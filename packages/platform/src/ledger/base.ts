import { errors } from '@micro/sdk';
import { checkKey, checkPosting, ID, reversalOf, type CheckedPosting } from './core.js';
import type { Account, AccountInput, AccountPage, HistoryPage, Ledger, Posting, PostingInput, PostResult, TrialBalance } from './ledger.js';

/**
 * What both engines do alike around their transactions: check, then record; look a posting
 * up by key; reverse. An engine writes `record` (one transaction) and `find`.
 */
export abstract class BaseLedger implements Ledger {
  abstract openAccount(input: AccountInput): Promise<Account>;
  abstract account(id: string): Promise<Account>;
  abstract balance(id: string): Promise<number>;
  abstract accounts(options?: { prefix?: string; after?: string; limit?: number }): Promise<AccountPage>;
  abstract history(account: string, options?: { limit?: number; before?: number }): Promise<HistoryPage>;
  abstract trialBalance(): Promise<TrialBalance>;
  abstract close(): Promise<void>;
  /** the posting of a key with its digest (the key already checked), or undefined */
  protected abstract findByKey(key: string): Promise<(Posting & { digest: string }) | undefined>;
  /** the checked posting in one transaction: replayed, refused or recorded */
  protected abstract record(checked: CheckedPosting): Promise<PostResult>;

  async post(input: PostingInput): Promise<PostResult> {
    return this.record(checkPosting(input));
  }

  async posting(key: string): Promise<Posting | undefined> {
    const found = await this.findByKey(checkKey(key));
    if (!found) return undefined;
    const { digest: _, ...posting } = found;
    return posting;
  }

  async reverse(original: string, input: { key: string; reason: string; metadata?: Record<string, string> }): Promise<PostResult> {
    const first = await this.posting(original);
    if (!first) throw errors.NotFound(ID, `no posting has key ${original}`);
    return this.record(reversalOf(first, input));
  }
}
