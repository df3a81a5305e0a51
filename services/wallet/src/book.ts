import { createHash, randomUUID } from 'node:crypto';
import { errors, type Context, type Lock, type Store, type StoreRecord, type Sync } from '@micro/sdk';
import { MAX_I64, str64, tenantStore, type TenantStore } from '@micro/services-kit';

/*
 * One tenant's wallets on the store and sync of the public SDK (see README.md, "How money
 * moves"): an account record keeps the balance and the number of entries summed into it
 * (`seq`); every credit, debit and transfer is a journal record written before anything
 * moves, then applied entry by entry under the wallets' locks; whoever next holds a
 * wallet's lock completes a journal a crash left unapplied.
 */

export interface AccountRecord {
  id: string;
  name: string;
  description: string;
  /** epoch ms */
  created: number;
  /** new for each wallet made under an id, so that a deleted wallet's entries never count for the next */
  incarnation: string;
  /** the sum of the wallet's entries 1..seq */
  balance: number;
  seq: number;
}

/** What one posting does to one wallet: its entry number `seq`, and the balance after it. */
export interface Leg {
  account: string;
  incarnation: string;
  seq: number;
  amount: number;
  balance: number;
}

export type Kind = 'credit' | 'debit' | 'transfer';

/** A posting as decided under the locks: once written (the commit point) it is applied whole, whatever happens next. */
export interface Journal {
  key: string;
  /** sha256 of what was asked: a retry with the same key and other content is a 409 */
  digest: string;
  /** the transaction id its entries carry */
  id: string;
  kind: Kind;
  amount: number;
  reference: string;
  visible: boolean;
  /** epoch ms */
  created: number;
  metadata: Record<string, string>;
  legs: Leg[];
  /** the entry on the tenant's external account (the world outside its wallets): −amount for a credit, +amount for a debit, 0 for a transfer */
  external: number;
  /** what the caller is answered, the first time and on every retry */
  result: { balance?: string };
}

export interface Entry {
  id: string;
  seq: number;
  amount: number;
  created: number;
  reference: string;
  visible: boolean;
  metadata: Record<string, string>;
}

/** The steps of a posting's write, in their order. */
export type Step = 'journal' | 'external' | 'entry' | 'account' | 'done';

export interface BookOptions {
  /** the lease of a wallet's lock, ms: a posting that is not written by then stops (default 10,000) */
  lockTtl?: number;
  /** how long a posting waits for a wallet another posting holds, ms (default 10,000) */
  lockWait?: number;
  /** the clock (default Date.now) */
  now?: () => number;
  /**
   * Told after each step of a posting's write. For tests of recovery: a throw stops the
   * posting right there as a crash would, leaving its locks to their lease.
   */
  afterStep?: (step: Step, journal: Journal) => void;
}

export interface PostRequest {
  kind: Kind;
  /** the wallet debited (debit, transfer) */
  from?: string;
  /** the wallet credited (credit, transfer) */
  to?: string;
  amount: number;
  reference: string;
  visible: boolean;
  /** default: a new one (the posting is then not retried safely) */
  key?: string;
}

/** Errors of the wallet service. */
export const walletErrors = {
  notFound: (id: string) => errors.NotFound('wallet', `wallet ${id} not found`),
  exists: (id: string) => errors.Conflict('wallet', `wallet ${id} already exists`),
  insufficient: (id: string, balance: number, amount: number) => errors.BadRequest('wallet', `insufficient balance: wallet ${id} holds ${balance}, less than the amount ${amount}`),
  tooLarge: (id: string) => errors.BadRequest('wallet', `amount would take the balance of wallet ${id} beyond ${MAX_I64}`),
  keyReused: (key: string) => errors.Conflict('wallet', `idempotency_key "${key.slice(0, 64)}" was used for another request`),
  notEmpty: (id: string, balance: number) => errors.BadRequest('wallet', `wallet ${id} holds a balance of ${balance}: debit or transfer it first`),
  busy: (id: string) => errors.ServiceUnavailable('wallet', `wallet ${id} is busy: try again (with the same idempotency_key)`),
  lapsed: () => errors.ServiceUnavailable('wallet', 'the posting took longer than its lock lease and stopped; try again with the same idempotency_key'),
  broken: (id: string, seq: number, next: number) => errors.InternalServerError('wallet', `wallet ${id}: entry ${next} cannot follow entry ${seq}`),
};

/** the part of a lease not trusted (late timers, a slow store): a tenth, at most 1 s */
const MARGIN = 1_000;
/** pending journals read at once: more than this many unfinished postings of one tenant wait for a later call */
const PENDING_PAGE = 1000;

/** The locks one posting holds, and the moment its shortest lease could have passed. */
class Held {
  private readonly locks: Lock[] = [];
  private deadline = Number.POSITIVE_INFINITY;
  /** set when a step failed the way a crash does: the locks are left to their lease */
  abandoned = false;

  constructor(
    private readonly sync: Sync,
    private readonly namespace: string,
    private readonly ttl: number,
    private readonly now: () => number,
  ) {}

  /** Takes lock `name`; a 503 naming `what` when it is still held after `wait` ms. */
  async take(name: string, what: string, wait: number): Promise<void> {
    const sent = this.now();
    try {
      this.locks.push(await this.sync.lock(name, { namespace: this.namespace, ttl: this.ttl, wait, owner: 'wallet' }));
    } catch (err) {
      if (errors.isMicroError(err) && err.code === 409) throw walletErrors.busy(what);
      throw err;
    }
    this.deadline = Math.min(this.deadline, sent + this.ttl - Math.min(MARGIN, this.ttl / 10));
  }

  /**
   * Once every lock is taken: the first leases may have run down while the later locks
   * were waited for, so when half a lease is gone they are renewed together.
   */
  async ready(): Promise<void> {
    if (this.locks.length < 2 || this.now() < this.deadline - this.ttl / 2) return;
    const sent = this.now();
    try {
      await Promise.all(this.locks.map((l) => l.renew(this.ttl)));
    } catch (err) {
      if (errors.isMicroError(err) && err.code === 409) throw walletErrors.lapsed();
      throw err;
    }
    this.deadline = sent + this.ttl - Math.min(MARGIN, this.ttl / 10);
  }

  /** Before each write: the leases are surely still ours. */
  check(): void {
    if (this.now() >= this.deadline) throw walletErrors.lapsed();
  }

  async release(): Promise<void> {
    if (this.abandoned) return;
    await Promise.all(this.locks.splice(0).map((l) => l.release().catch(() => undefined)));
  }
}

const digestOf = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');
const accountLock = (id: string) => `wallet/account/${id}`;
const keyLock = (key: string) => `wallet/key/${digestOf(key)}`;
const entryKey = (id: string, incarnation: string, seq: number) => `${id}/${incarnation}/${String(seq).padStart(16, '0')}`;

/** The wallets of one tenant. */
export class Book {
  private readonly t: TenantStore;
  private readonly ttl: number;
  private readonly wait: number;
  private readonly now: () => number;

  constructor(
    store: Store,
    private readonly sync: Sync,
    private readonly ctx: Pick<Context, 'tenant'>,
    private readonly options: BookOptions = {},
  ) {
    this.t = tenantStore(store, ctx, 'wallet');
    this.ttl = options.lockTtl ?? 10_000;
    this.wait = options.lockWait ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  private held(): Held {
    return new Held(this.sync, this.ctx.tenant, this.ttl, this.now);
  }

  // ---- wallets ------------------------------------------------------------------------

  async create(id: string, name: string, description: string): Promise<AccountRecord> {
    return this.locked([id], async (held) => {
      if (await this.account(id)) throw walletErrors.exists(id);
      const account: AccountRecord = { id, name, description, created: this.now(), incarnation: randomUUID(), balance: 0, seq: 0 };
      held.check();
      await this.t.write({ key: id, value: account }, { table: 'accounts' });
      return account;
    });
  }

  /** A wallet as it stands once every finished posting on it is applied. */
  async read(id: string): Promise<AccountRecord> {
    await this.recover();
    const account = await this.account(id);
    if (!account) throw walletErrors.notFound(id);
    return account;
  }

  async list(): Promise<AccountRecord[]> {
    await this.recover();
    const records = await this.t.read('', { prefix: true, table: 'accounts', limit: 1000 });
    return records.map((r) => r.value as AccountRecord);
  }

  /** Deletes a wallet whose balance is zero, and its entries. */
  async delete(id: string): Promise<void> {
    const gone = await this.locked([id], async (held) => {
      await this.settleTouching(new Set([id]), held);
      const account = await this.account(id);
      if (!account) throw walletErrors.notFound(id);
      if (account.balance !== 0) throw walletErrors.notEmpty(id, account.balance);
      held.check();
      await this.t.delete(id, { table: 'accounts' });
      return account;
    });
    // the entries of a deleted incarnation never count again: removing them only frees space
    const prefix = `${id}/${gone.incarnation}/`;
    for (let page = 0; page < 100; page++) {
      const keys = await this.t.list({ prefix, table: 'entries', limit: 1000 });
      if (keys.length === 0) break;
      await Promise.all(keys.map((k) => this.t.delete(k, { table: 'entries' })));
    }
  }

  /** The wallet's entries, newest first (at most 1,000). */
  async entries(id: string): Promise<Entry[]> {
    const account = await this.read(id);
    const records = await this.t.read(`${id}/${account.incarnation}/`, { prefix: true, table: 'entries', order: 'desc', limit: 1000 });
    return records.map((r) => r.value as Entry).filter((e) => e.seq <= account.seq);
  }

  private async account(id: string): Promise<AccountRecord | undefined> {
    const [record] = await this.t.read(id, { table: 'accounts' });
    return record?.value as AccountRecord | undefined;
  }

  // ---- postings -----------------------------------------------------------------------

  /** A credit, debit or transfer: applied once per key, never overdrawing; answers what the first application answered. */
  async post(request: PostRequest): Promise<{ balance?: string }> {
    const key = request.key ?? randomUUID();
    const digest = digestOf([request.kind, request.from ?? '', request.to ?? '', request.amount, request.reference, request.visible]);
    const wallets = [request.from, request.to].filter((w): w is string => w !== undefined);
    const held = this.held();
    try {
      // the key first, then the wallets in one order: two postings never wait for each other in a circle
      await held.take(keyLock(key), wallets.join(', '), this.wait);
      for (const id of [...wallets].sort()) await held.take(accountLock(id), id, this.wait);
      await held.ready();
      const mine = new Set(wallets);
      const earlier = await this.replay(key, digest, mine, held);
      if (earlier) return earlier;
      await this.settleTouching(mine, held, key);
      const journal = await this.plan(request, key, digest);
      held.check();
      await this.t.write({ key, value: journal }, { table: 'pending' });
      this.step('journal', journal, held);
      await this.apply(journal, mine, held);
      return journal.result;
    } finally {
      await held.release();
    }
  }

  /** The answer of an earlier posting with this key (finishing it if a crash left it pending); a 409 when it asked otherwise. */
  private async replay(key: string, digest: string, mine: Set<string>, held: Held): Promise<Journal['result'] | undefined> {
    const [done] = await this.t.read(key, { table: 'done' });
    if (done) {
      const value = done.value as { digest: string; result: Journal['result'] };
      if (value.digest !== digest) throw walletErrors.keyReused(key);
      return value.result;
    }
    const [pending] = await this.t.read(key, { table: 'pending' });
    if (!pending) return undefined;
    const journal = pending.value as Journal;
    if (journal.digest !== digest) throw walletErrors.keyReused(key);
    await this.apply(journal, mine, held);
    return journal.result;
  }

  /** Decides a posting against the wallets as they stand (under their locks): 404, 400 or the journal to write. */
  private async plan(request: PostRequest, key: string, digest: string): Promise<Journal> {
    const { kind, amount, from, to } = request;
    const legs: Leg[] = [];
    let balance: number | undefined;
    if (from !== undefined) {
      const account = await this.mustRead(from);
      if (account.balance < amount) throw walletErrors.insufficient(from, account.balance, amount);
      balance = account.balance - amount;
      legs.push({ account: from, incarnation: account.incarnation, seq: account.seq + 1, amount: -amount, balance });
    }
    if (to !== undefined) {
      const account = await this.mustRead(to);
      if (account.balance + amount > MAX_I64) throw walletErrors.tooLarge(to);
      balance = account.balance + amount;
      legs.push({ account: to, incarnation: account.incarnation, seq: account.seq + 1, amount, balance });
    }
    const metadata: Record<string, string> = { type: kind, idempotency_key: key };
    if (kind === 'transfer') Object.assign(metadata, { from: from as string, to: to as string });
    const external = kind === 'credit' ? -amount : kind === 'debit' ? amount : 0;
    const result = kind === 'transfer' ? {} : { balance: str64(balance as number) };
    return { key, digest, id: randomUUID(), kind, amount, reference: request.reference, visible: request.visible, created: this.now(), metadata, legs, external, result };
  }

  private async mustRead(id: string): Promise<AccountRecord> {
    const account = await this.account(id);
    if (!account) throw walletErrors.notFound(id);
    return account;
  }

  /**
   * Applies a written journal to the wallets of `mine` (whose locks are held), then
   * finishes it when every wallet it touches has its entry. Each write can be repeated:
   * entries and the external entry have keys of their own, and a wallet's record moves
   * only from entry seq−1 to seq.
   */
  private async apply(journal: Journal, mine: Set<string>, held: Held): Promise<void> {
    if (journal.external !== 0) {
      held.check();
      await this.t.write({ key: journal.id, value: { key: journal.key, amount: journal.external, created: journal.created } }, { table: 'external' });
      this.step('external', journal, held);
    }
    for (const leg of journal.legs) if (mine.has(leg.account)) await this.applyLeg(journal, leg, held);
    await this.finish(journal, held);
  }

  private async applyLeg(journal: Journal, leg: Leg, held: Held): Promise<void> {
    const account = await this.account(leg.account);
    if (!account || account.incarnation !== leg.incarnation || account.seq >= leg.seq) return;
    if (account.seq !== leg.seq - 1) throw walletErrors.broken(leg.account, account.seq, leg.seq);
    const entry: Entry = { id: journal.id, seq: leg.seq, amount: leg.amount, created: journal.created, reference: journal.reference, visible: journal.visible, metadata: journal.metadata };
    held.check();
    await this.t.write({ key: entryKey(leg.account, leg.incarnation, leg.seq), value: entry }, { table: 'entries' });
    this.step('entry', journal, held);
    held.check();
    await this.t.write({ key: leg.account, value: { ...account, balance: leg.balance, seq: leg.seq } }, { table: 'accounts' });
    this.step('account', journal, held);
  }

  /** Records the answer for retries and drops the journal, once every leg is applied. */
  private async finish(journal: Journal, held: Held): Promise<void> {
    for (const leg of journal.legs) {
      const account = await this.account(leg.account);
      if (account && account.incarnation === leg.incarnation && account.seq < leg.seq) return;
    }
    await this.t.write({ key: journal.key, value: { digest: journal.digest, id: journal.id, result: journal.result, created: journal.created } }, { table: 'done' });
    this.step('done', journal, held);
    await this.t.delete(journal.key, { table: 'pending' });
  }

  private step(step: Step, journal: Journal, held: Held): void {
    try {
      this.options.afterStep?.(step, journal);
    } catch (err) {
      held.abandoned = true;
      throw err;
    }
  }

  // ---- recovery -----------------------------------------------------------------------

  private async pending(): Promise<Journal[]> {
    const records: StoreRecord[] = await this.t.read('', { prefix: true, table: 'pending', limit: PENDING_PAGE });
    return records.map((r) => r.value as Journal);
  }

  /** Under the locks of `mine`: applies there every journal left pending (by a crash) that touches them. */
  private async settleTouching(mine: Set<string>, held: Held, except?: string): Promise<void> {
    for (const journal of await this.pending()) {
      if (journal.key !== except && journal.legs.some((l) => mine.has(l.account))) await this.apply(journal, mine, held);
    }
  }

  /**
   * Completes the journals whose writers are gone (their key's lock is free: a live
   * writer holds it until it finishes), so that reads see every acknowledged or
   * committed posting. A journal whose key is still locked is left to its writer, or to
   * whoever comes once the lease of a dead one passes.
   */
  async recover(): Promise<void> {
    for (const journal of await this.pending()) {
      const held = this.held();
      try {
        try {
          await held.take(keyLock(journal.key), journal.key, 0);
        } catch (err) {
          if (errors.isMicroError(err) && err.code === 503) continue;
          throw err;
        }
        const wallets = journal.legs.map((l) => l.account).sort();
        for (const id of wallets) await held.take(accountLock(id), id, this.wait);
        await held.ready();
        const [still] = await this.t.read(journal.key, { table: 'pending' });
        if (still) await this.apply(still.value as Journal, new Set(wallets), held);
      } finally {
        await held.release();
      }
    }
  }

  private async locked<T>(wallets: string[], fn: (held: Held) => Promise<T>): Promise<T> {
    const held = this.held();
    try {
      for (const id of [...wallets].sort()) await held.take(accountLock(id), id, this.wait);
      await held.ready();
      return await fn(held);
    } finally {
      await held.release();
    }
  }

  // ---- audit --------------------------------------------------------------------------

  /**
   * The books checked: each wallet's balance against the sum of its entries, and all
   * wallets plus the external account against zero (double entry). For tests and staff.
   */
  async audit(): Promise<{ wallets: { id: string; balance: number; entries: number }[]; external: number; total: number }> {
    const wallets = [];
    let total = 0n;
    for (const account of await this.list()) {
      const entries = await this.t.read(`${account.id}/${account.incarnation}/`, { prefix: true, table: 'entries', limit: 1000 });
      const sum = entries.map((r) => r.value as Entry).filter((e) => e.seq <= account.seq).reduce((s, e) => s + BigInt(e.amount), 0n);
      wallets.push({ id: account.id, balance: account.balance, entries: Number(sum) });
      total += BigInt(account.balance);
    }
    const external = (await this.t.read('', { prefix: true, table: 'external', limit: 1000 })).reduce((s, r) => s + BigInt((r.value as { amount: number }).amount), 0n);
    return { wallets, external: Number(external), total: Number(total + external) };
  }
}
