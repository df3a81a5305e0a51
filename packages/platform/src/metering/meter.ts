import { errors, isMicroError, type Logger } from '@micro/sdk';
import { credentialsRequired, type GatewayMeter, type MeteredCall, type MeterTicket } from '@micro/server/engine';
import { balanceAccount, dueAccount, openPayerAccounts, PLATFORM_REVENUE } from '../billing/accounts.js';
import { periodOf } from '../billing/periods.js';
import { FUNDS_ID, MAX_POST_MANY, type Ledger, type PostingInput, type PostOutcome } from '../ledger/index.js';
import type { Pricing } from '../pricing/pricing.js';
import { BLOCKED_ID, idemPosting } from './core.js';
import type { Admission, Charge, Hold, MeterEngine, Posted } from './storage.js';

/**
 * The meter of the gateway's priced calls (the gateway's `GatewayMeter`): pricing says
 * what a call costs, the engine holds and records it exactly, the outbox posts the
 * charges to the ledger. See README.md.
 */

/**
 * The ledger posting of one charge: `customer:<payer>:balance −price, platform:revenue
 * +price` (or against `customer:<payer>:due` when the balance can no longer cover it).
 * Made from the record alone, so a retry posts the same content under the same key.
 */
export function usagePosting(c: Charge, from = balanceAccount(c.payer)): PostingInput {
  return {
    key: c.posting,
    reason: `usage: ${c.service}.${c.endpoint}`,
    entries: [
      { account: from, amount: -c.amount },
      { account: PLATFORM_REVENUE, amount: c.amount },
    ],
    metadata: { kind: 'usage', period: c.period, service: c.service, endpoint: c.endpoint, calls: String(c.calls), request_id: c.requestId },
  };
}

const opened = new WeakMap<Ledger, Set<string>>();

/**
 * Posts charges to the ledger: THE one place that does. Each charge is one posting under
 * its own key (idempotent: one posted before counts as done). A charge the balance can no
 * longer cover (it was lowered outside metering after the call was admitted) goes against
 * the payer's due account, so it is invoiced rather than lost.
 *
 * All the charges of a round go through the ledger's `postMany` first (one transaction and
 * one fsync for all instead of one each, which was more than half of a metered gateway's
 * CPU); what that batch refused (funds; a key posted before with other content) is posted
 * one after another, stopping at the first error. `done` lists what is in the ledger
 * either way; the outbox keeps the rest.
 */
export async function postCharges(ledger: Ledger, charges: Charge[]): Promise<Posted> {
  const posted: Posted = { done: [], fromBalance: 0, toDue: 0 };
  try {
    for (const c of charges) await openAccounts(ledger, c.payer);
  } catch (err) {
    posted.error = err;
    return posted;
  }
  const batch = await inBatches(ledger, charges.map((c) => usagePosting(c)));
  for (const [i, c] of charges.entries()) {
    const outcome = batch?.[i];
    if (outcome?.ok) {
      count(posted, c, outcome.replayed ? 'before' : 'balance');
      continue;
    }
    // one at a time; the calls waiting go first: a posting of the local ledger is a synchronous commit (an fsync)
    if (!batch && posted.done.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      count(posted, c, await postOne(ledger, c));
    } catch (err) {
      posted.error = err;
      break;
    }
  }
  return posted;
}

function count(posted: Posted, c: Charge, where: 'balance' | 'due' | 'before'): void {
  posted.done.push(c.requestId);
  if (where === 'balance') posted.fromBalance += c.amount;
  if (where === 'due') posted.toDue++;
}

/**
 * The postings through the ledger's postMany (group commit: one transaction, one fsync,
 * for a whole round on either engine; each posting still decided on its own), in chunks of
 * MAX_POST_MANY; undefined when a chunk failed as a whole (then the charges go one by one,
 * where the error is met again and reported).
 */
async function inBatches(ledger: Ledger, inputs: PostingInput[]): Promise<PostOutcome[] | undefined> {
  const outcomes: PostOutcome[] = [];
  try {
    for (let i = 0; i < inputs.length; i += MAX_POST_MANY) outcomes.push(...(await ledger.postMany(inputs.slice(i, i + MAX_POST_MANY))));
  } catch {
    return undefined;
  }
  return outcomes;
}

async function openAccounts(ledger: Ledger, payer: string): Promise<void> {
  let set = opened.get(ledger);
  if (!set) opened.set(ledger, (set = new Set()));
  if (set.has(payer)) return;
  await openPayerAccounts(ledger, payer);
  if (set.size >= 100_000) set.clear();
  set.add(payer);
}

/** where the charge went: `balance`, `due`, or `before` (posted earlier) */
async function postOne(ledger: Ledger, c: Charge): Promise<'balance' | 'due' | 'before'> {
  try {
    const r = await ledger.post(usagePosting(c));
    return r.replayed ? 'before' : 'balance';
  } catch (err) {
    if (!isMicroError(err) || err.code !== 409) throw err;
    if (err.id === FUNDS_ID) {
      const r = await ledger.post(usagePosting(c, dueAccount(c.payer)));
      return r.replayed ? 'before' : 'due';
    }
    // the key was posted before with the other content (against due): it is in the ledger
    if (await ledger.posting(c.posting)) return 'before';
    throw err;
  }
}

export interface MeterOptions {
  engine: MeterEngine;
  /** the ledger charges are posted to (the hub's) */
  ledger: Ledger;
  /** the price and free quota of an endpoint; undefined: not metered */
  pricing: Pricing;
  /** who pays for what is done in a namespace (hub.payerOf) */
  payerOf(namespace: string): Promise<string>;
  /** a payer's cap on what it is charged in a period, units (synchronous; null: none); default none */
  usageCap?(payer: string): number | null;
  /** told a payer's ledger balance after its usage postings (the low-balance events); default none */
  onBalance?(payer: string, balanceAfter: number): void;
  /** the billing clock, ms since the epoch (default Date.now) */
  clock?: () => number;
  logger?: Logger;
  /** ms a namespace's payer is remembered (default 5,000) */
  payerTtl?: number;
  /** ms between rounds of the outbox that retry and take over the charges of stopped nodes (default 2,000) */
  postEvery?: number;
  /**
   * ms from a charge's record to the outbox round that posts it (default 50): the charges
   * recorded meanwhile go to the ledger together, one transaction (one fsync) a round
   * rather than one a tick of the event loop
   */
  postDelay?: number;
  /** ms stop waits for the outbox to post what is left (default 5,000; the rest is posted at the next start) */
  stopGrace?: number;
}

/** What a namespace's payer lookup is kept as: the answer, or the lookup in flight. */
interface KnownPayer {
  payer: string | Promise<string>;
  at: number;
}

/** The UTC day and billing period of a time, worked out once a day rather than once a call. */
class Calendar {
  private from = 0;
  private until = -1;
  private current = { period: '', day: '' };

  of(at: number): { period: string; day: string } {
    if (at < this.from || at >= this.until) {
      this.from = at - (at % 86_400_000);
      this.until = this.from + 86_400_000;
      this.current = { period: periodOf(at).id, day: new Date(at).toISOString().slice(0, 10) };
    }
    return this.current;
  }
}

const SAFE = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

export class Meter implements GatewayMeter {
  private readonly engine: MeterEngine;
  private readonly clock: () => number;
  private readonly payers = new Map<string, KnownPayer>();
  private readonly payerTtl: number;
  private readonly calendar = new Calendar();
  private posting: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  /** the round a charge asked for, postDelay after it */
  private soon: NodeJS.Timeout | undefined;
  private readonly postDelay: number;
  private stopping = false;
  private started = false;

  constructor(private readonly options: MeterOptions) {
    this.engine = options.engine;
    this.clock = options.clock ?? Date.now;
    this.payerTtl = options.payerTtl ?? 5_000;
    this.postDelay = options.postDelay ?? 50;
  }

  /** Makes the tables, rebuilds the engine's state and posts the charges left unposted (a crash). */
  async start(): Promise<void> {
    await this.engine.start();
    this.started = true;
    await this.flush().catch((err: unknown) => this.options.logger?.error({ err }, 'metering: posting the charges a crash left failed; retrying'));
    this.timer = setInterval(() => this.kick(), this.options.postEvery ?? 2_000);
    this.timer.unref();
  }

  /** Posts what it can of the outbox (within stopGrace), then closes the engine. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    if (!this.started) return this.engine.close();
    const grace = new Promise<void>((resolve) => setTimeout(resolve, this.options.stopGrace ?? 5_000).unref());
    await Promise.race([this.flush().catch((err: unknown) => this.options.logger?.error({ err }, 'metering: charges left unposted at stop are posted at the next start')), grace]);
    await this.engine.close();
  }

  admit(call: MeteredCall): MeterTicket | undefined | Promise<MeterTicket | undefined> {
    const price = this.options.pricing.priceOf(call.home, call.service, call.endpoint);
    if (price === undefined) return undefined;
    const account = call.account;
    // a priced call needs a payer
    if (!account) throw credentialsRequired();
    if (account.issuer === 'micro') return undefined;
    // the gateway lets no one but admins of micro act in another namespace; a meter used elsewhere holds to it too
    if (account.issuer !== call.namespace) throw errors.Forbidden(BLOCKED_ID, `account ${account.id} of namespace ${account.issuer} may not be billed for namespace ${call.namespace}`);
    if (!SAFE(price.price) || !SAFE(price.freeQuota)) throw errors.InternalServerError(BLOCKED_ID, `the price of ${call.service}.${call.endpoint.name} is not whole units`);
    const payer = this.payerOf(call.namespace);
    if (typeof payer === 'string') return this.hold(call, price.price, price.freeQuota, payer);
    return payer.then((p) => this.hold(call, price.price, price.freeQuota, p));
  }

  /** The payer of a namespace: from the cache without a promise, else looked up once for every call waiting. */
  private payerOf(namespace: string): string | Promise<string> {
    const now = Date.now();
    const hit = this.payers.get(namespace);
    if (hit && now - hit.at < this.payerTtl) return hit.payer;
    if (this.payers.size >= 100_000) this.payers.clear();
    const lookup = this.options.payerOf(namespace).then(
      (payer) => {
        this.payers.set(namespace, { payer, at: now });
        return payer;
      },
      (err: unknown) => {
        this.payers.delete(namespace);
        throw err;
      },
    );
    this.payers.set(namespace, { payer: lookup, at: now });
    return lookup;
  }

  private hold(call: MeteredCall, price: number, freeQuota: number, payer: string): MeterTicket | Promise<MeterTicket> {
    const at = this.clock();
    const { period, day } = this.calendar.of(at);
    const endpoint = call.endpoint.name;
    const admission: Admission = {
      requestId: call.requestId,
      payer,
      namespace: call.namespace,
      account: (call.account as { id: string }).id,
      keyId: call.keyId ?? '',
      home: call.home,
      service: call.service,
      endpoint,
      price,
      freeQuota,
      idemKey: call.idempotencyKey,
      idem: call.idempotencyKey === undefined ? undefined : idemPosting(payer, call.service, endpoint, call.idempotencyKey),
      cap: this.options.usageCap?.(payer) ?? null,
      at,
      period,
      day,
    };
    const held = this.engine.admit(admission);
    return held instanceof Promise ? held.then((h) => this.ticket(h)) : this.ticket(held);
  }

  private ticket(hold: Hold): MeterTicket {
    let settled = false;
    return {
      settle: (ok, code) => {
        // once: a second record of the same request id would fail the whole batch it joined
        if (settled) return Promise.reject(new Error(`the call ${hold.admission.requestId} was settled before`));
        settled = true;
        return this.settle(hold, ok, code);
      },
    };
  }

  private async settle(hold: Hold, ok: boolean, code: number): Promise<void> {
    const record = await this.engine.settle(hold, { ok, code });
    if (record.charged > 0 && !this.soon && !this.stopping) {
      this.soon = setTimeout(() => {
        this.soon = undefined;
        this.kick();
      }, this.postDelay);
      this.soon.unref();
    }
  }

  /** Runs the outbox now, or once more after the round in progress. */
  private kick(): void {
    if (this.posting) {
      this.again = true;
      return;
    }
    this.round().catch((err: unknown) => this.options.logger?.error({ err }, 'metering: posting usage to the ledger failed; retrying'));
  }

  /**
   * Posts every charge recorded so far to the ledger, and resolves when they are there
   * (a period's cut-off before its invoices; tests). Rejects with the error of a posting
   * that failed (it is retried by the next round).
   */
  async flush(): Promise<void> {
    while (this.posting) await this.posting;
    await this.round();
  }

  private round(): Promise<void> {
    const drained = this.drain();
    this.posting = drained
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.posting = undefined;
        if (this.again && !this.stopping) {
          this.again = false;
          this.kick();
        }
      });
    return drained;
  }

  /** Posts the outbox until it is empty, or a round fails (the timer tries again). */
  private async drain(): Promise<void> {
    for (;;) {
      const charges = await this.engine.unposted(500);
      if (charges.length === 0) return;
      const byPayer = new Map<string, Charge[]>();
      for (const c of charges) {
        const list = byPayer.get(c.payer);
        if (list) list.push(c);
        else byPayer.set(c.payer, [c]);
      }
      let failed: unknown;
      for (const [payer, list] of byPayer) {
        const { posted, balance } = await this.engine.post(payer, list, (cs) => postCharges(this.options.ledger, cs));
        if (posted.error !== undefined) failed = posted.error;
        if (posted.done.length > 0) this.observe(payer, balance);
      }
      if (failed !== undefined) throw failed;
    }
  }

  private observe(payer: string, balance: number): void {
    try {
      this.options.onBalance?.(payer, balance);
    } catch (err) {
      this.options.logger?.error({ err, payer }, 'metering: the balance observer failed');
    }
  }
}
