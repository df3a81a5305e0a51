import { errors } from '@micro/sdk';
import { checkKey, checkPosting, ID, reversalOf, type CheckedPosting } from './core.js';
import {
  MAX_BATCH,
  MAX_BATCH_ENTRIES,
  MAX_POST_MANY,
  type Account,
  type AccountInput,
  type AccountPage,
  type HistoryOptions,
  type HistoryPage,
  type Ledger,
  type LedgerOptions,
  type Posting,
  type PostingInput,
  type PostOutcome,
  type PostResult,
  type TrialBalance,
} from './ledger.js';

interface Waiting {
  checked: CheckedPosting;
  settle(outcome: PostOutcome): void;
}

/** How the group commit has gone so far (for tests and the benchmark). */
export interface CommitStats {
  /** transactions that wrote a batch */
  transactions: number;
  /** postings those transactions decided (recorded, replayed or refused) */
  postings: number;
  /** the most postings one transaction decided */
  largest: number;
}

/**
 * What both engines do alike around their transactions: check, then queue for the next
 * batch (group commit); look a posting up by key; reverse. An engine writes `writeBatch`
 * (one transaction for many postings, each decided on its own) and `findByKey`.
 *
 * Group commit: a posting that arrives while a batch is being written waits for the
 * next one; a posting that arrives when nothing is being written waits one turn of the
 * event loop (setImmediate), so the posts of callers woken together share a transaction.
 * One batch at a time per handle, at most `batch` postings (and MAX_BATCH_ENTRIES
 * entries) each, in the order the posts came. The latency added: one turn of the loop
 * when idle, at most the batch being written when busy.
 */
export abstract class BaseLedger implements Ledger {
  private readonly batchSize: number;
  private readonly queue: Waiting[] = [];
  private writing = false;
  private scheduled = false;
  private closing = false;
  private idle: Array<() => void> = [];
  private readonly counts: CommitStats = { transactions: 0, postings: 0, largest: 0 };

  constructor(options: LedgerOptions = {}) {
    const batch = options.batch ?? MAX_BATCH;
    if (!Number.isSafeInteger(batch) || batch < 1 || batch > MAX_BATCH) throw new Error(`the ledger's batch must be a whole number from 1 to ${MAX_BATCH}, not ${batch}`);
    this.batchSize = batch;
  }

  abstract openAccount(input: AccountInput): Promise<Account>;
  abstract account(id: string): Promise<Account>;
  abstract balance(id: string): Promise<number>;
  abstract accounts(options?: { prefix?: string; after?: string; limit?: number }): Promise<AccountPage>;
  abstract history(account: string, options?: HistoryOptions): Promise<HistoryPage>;
  abstract trialBalance(): Promise<TrialBalance>;
  /** the posting of a key with its digest (the key already checked), or undefined */
  protected abstract findByKey(key: string): Promise<(Posting & { digest: string }) | undefined>;
  /**
   * The checked postings in one transaction, each recorded, replayed or refused on its
   * own (see core.planBatch): one outcome each, in order. Rejects only when the
   * transaction as a whole failed (nothing of it was written).
   */
  protected abstract writeBatch(batch: CheckedPosting[]): Promise<PostOutcome[]>;
  /** releases the engine's handle, once every queued posting is decided */
  protected abstract release(): Promise<void>;

  get commits(): CommitStats {
    return { ...this.counts };
  }

  async post(input: PostingInput): Promise<PostResult> {
    return unwrap(await this.enqueue(checkPosting(input)));
  }

  async postMany(inputs: PostingInput[]): Promise<PostOutcome[]> {
    if (!Array.isArray(inputs)) throw errors.BadRequest(ID, 'postMany takes a list of postings');
    if (inputs.length > MAX_POST_MANY) throw errors.BadRequest(ID, `postMany takes at most ${MAX_POST_MANY} postings, got ${inputs.length}: split the list`);
    // each input checked on its own: a bad one is refused alone, the others are queued together, in order
    return Promise.all(
      inputs.map((input): PostOutcome | Promise<PostOutcome> => {
        try {
          return this.enqueue(checkPosting(input));
        } catch (error) {
          return { ok: false, error: error as Error };
        }
      }),
    );
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
    return unwrap(await this.enqueue(reversalOf(first, input)));
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.writing || this.scheduled || this.queue.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    await this.release();
  }

  private enqueue(checked: CheckedPosting): Promise<PostOutcome> {
    if (this.closing) throw errors.ServiceUnavailable(ID, 'the ledger is closed');
    return new Promise<PostOutcome>((settle) => {
      this.queue.push({ checked, settle });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.writing || this.scheduled) return;
    if (this.queue.length === 0) {
      for (const resolve of this.idle.splice(0)) resolve();
      return;
    }
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  /** Writes the next batch; the one after waits a turn, so that the callers answered can post into it. */
  private async drain(): Promise<void> {
    if (this.writing || this.queue.length === 0) return this.schedule();
    this.writing = true;
    let entries = 0;
    let n = 0;
    while (n < this.queue.length && n < this.batchSize) {
      entries += (this.queue[n] as Waiting).checked.entries.length;
      if (n > 0 && entries > MAX_BATCH_ENTRIES) break;
      n++;
    }
    const batch = this.queue.splice(0, n);
    let outcomes: PostOutcome[];
    try {
      outcomes = await this.writeBatch(batch.map((w) => w.checked));
    } catch (error) {
      outcomes = batch.map(() => ({ ok: false, error: error as Error }));
    }
    this.counts.transactions++;
    this.counts.postings += batch.length;
    this.counts.largest = Math.max(this.counts.largest, batch.length);
    this.writing = false;
    batch.forEach((w, i) => w.settle(outcomes[i] ?? { ok: false, error: new Error('the ledger decided no outcome for this posting') }));
    this.schedule();
  }
}

function unwrap(outcome: PostOutcome): PostResult {
  if (!outcome.ok) throw outcome.error;
  const { ok: _, ...result } = outcome;
  return result;
}
