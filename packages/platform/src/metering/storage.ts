/**
 * What an engine of the meter implements: the exact check before a call (free quota,
 * usage cap, credit) with its hold, the record of the call when it ends (group-committed),
 * the outbox of charges not yet in the ledger, and the reads of the usage service. The
 * local engine (sqlite.ts) keeps holds and counters in memory, the nats engine
 * (postgres.ts) as rows under a per-payer lock. See README.md.
 */

/** What is known of a metered call from its admission on: who, what, at what price, when. */
export interface CallFacts {
  /** the gateway's request id (a UUID): the record's key */
  requestId: string;
  /** who pays: a customer id, or `ns.<namespace>` */
  payer: string;
  /** the namespace the call acts in (the caller's) */
  namespace: string;
  /** the caller's account id */
  account: string;
  /** the API key id the call was made with, '' for a token */
  keyId: string;
  /** where the service runs (micro for the platform's) */
  home: string;
  service: string;
  endpoint: string;
  /** units a call beyond the free quota costs */
  price: number;
  /** free calls a payer makes of this endpoint a period */
  freeQuota: number;
  /** ms since the epoch of the admission; the call's period and day are those of this instant */
  at: number;
  /** `YYYY-MM` */
  period: string;
  /** `YYYY-MM-DD` (UTC) */
  day: string;
}

/** One call about to be made, as the meter asks the engine to admit it (everything checked). */
export interface Admission extends CallFacts {
  /** the Idempotency-Key as sent, or undefined */
  idemKey: string | undefined;
  /** the posting key of the idempotent call (`idemPosting`), which every retry shares; undefined without a key */
  idem: string | undefined;
  /** the payer's usage cap this period (units), or null */
  cap: number | null;
}

/**
 * What an admitted call holds until it ends: a free slot of its endpoint's quota, credit
 * of `amount` units (its price), or nothing (a replay of an idempotent call already made).
 */
export interface Hold {
  admission: Admission;
  kind: 'free' | 'charge' | 'replay';
  /** units of credit held (the price for `charge`, else 0) */
  amount: number;
}

export interface Outcome {
  /** the gateway received the service's success */
  ok: boolean;
  /** the HTTP status of the outcome */
  code: number;
}

/** A row of `usage_calls`: one metered call, whatever its outcome. */
export interface CallRecord extends CallFacts {
  /** within the free quota */
  free: boolean;
  /** units charged: the price, or 0 (free, failed, a replay of an idempotent call, a price of 0) */
  charged: number;
  outcome: 'ok' | 'error';
  code: number;
  idemKey: string | null;
  /** the ledger posting's key when charged, else null */
  posting: string | null;
}

/**
 * A charge recorded and not yet posted to the ledger: an entry of the outbox. One call's
 * (the nats profile's, and an idempotent call's), or the charged calls of one payer,
 * endpoint and price that one group commit recorded (the local profile's): then
 * `requestId` is the first of them, `amount` their sum and `calls` their number.
 */
export interface Charge {
  requestId: string;
  payer: string;
  amount: number;
  /** the charged calls it stands for (1 for one call's) */
  calls: number;
  /** the posting's key (`usage:<payer>:…`) */
  posting: string;
  period: string;
  service: string;
  endpoint: string;
}

/** What posting a payer's charges did: the ones now in the ledger, and how the balance was left. */
export interface Posted {
  /** request ids of the charges that are in the ledger now (posted, or found posted before) */
  done: string[];
  /** units this round took from the payer's balance (charges found posted before are not counted) */
  fromBalance: number;
  /** charges the balance could no longer cover, posted against the payer's due account instead */
  toDue: number;
  /** the error that stopped the rest, if any */
  error?: unknown;
}

/** Posts charges of one payer to the ledger (metering's postCharges, over the ledger of the server). */
export type PostCharges = (charges: Charge[]) => Promise<Posted>;

/** A filter of the usage service, checked: a namespace and an inclusive range of days. */
export interface UsageFilter {
  namespace: string;
  from: string;
  to: string;
  service?: string;
  endpoint?: string;
  key?: string;
}

export interface UsageRow {
  service: string;
  endpoint: string;
  day?: string;
  key?: string;
  calls: number;
  ok: number;
  failed: number;
  free: number;
  charged: number;
}

export interface QuotaRow {
  service: string;
  endpoint: string;
  price: number;
  freeQuota: number;
  used: number;
}

export interface MeterEngine {
  /** `sqlite` or `postgres` */
  readonly kind: string;
  /** makes the tables; rebuilds what the engine keeps (the outbox of charges not yet posted) */
  start(): Promise<void>;
  /**
   * Exactly, against every call in flight (of this process, or of every node): a replay
   * of an idempotent call already made holds nothing; a call within its endpoint's free
   * quota holds a free slot; else, within the usage cap, a hold of its price against the
   * payer's balance minus the holds in flight and the charges not yet posted. Refusals are
   * thrown (usageCapExceeded, insufficientCredit). Synchronous when nothing needs reading.
   */
  admit(a: Admission): Hold | Promise<Hold>;
  /**
   * Records the call (one transaction with the others ending in the same tick) and turns
   * its hold into a charge, a used free slot, or nothing; a failure's hold is released at
   * once. Resolves once the record is durable; a record that could not be written rejects
   * (and the call is not charged).
   */
  settle(hold: Hold, outcome: Outcome): Promise<CallRecord>;
  /** charges recorded and not yet posted (this node's, and those of nodes that stopped), oldest first */
  unposted(limit: number): Promise<Charge[]>;
  /**
   * Posts a payer's charges with `post` and takes those posted out of the outbox;
   * resolves to what was posted and the payer's ledger balance after it.
   */
  post(payer: string, charges: Charge[], post: PostCharges): Promise<{ posted: Posted; balance: number }>;
  /** usage rows of the filter, grouped by endpoint, day or key */
  usage(filter: UsageFilter, by: 'endpoint' | 'day' | 'key'): Promise<UsageRow[]>;
  /** the free calls a payer used in a period, per endpoint it called (with the price and quota its last call met) */
  quotas(payer: string, period: string): Promise<QuotaRow[]>;
  /** the calls of the filter, oldest first, at most `limit` */
  calls(filter: UsageFilter, limit: number): Promise<CallRecord[]>;
  close(): Promise<void>;
}
